"""ONNX methods through onnxruntime.quantization: INT8 dynamic, INT8 static (QDQ), INT4 MatMulNBits, FP16.

One engine object per run: it pre-processes the graph once (symbolic shape inference, which knows
onnxruntime's fused transformer ops), calibrates once (static ranges are cached and reused), and then
builds candidates that keep any set of nodes in float, which is what the accuracy budget needs.
onnxruntime's SmoothQuant option is not used: it imports neural-compressor's removed 2.x API.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError, RuntimeFailureError
from compressor.quantize import onnx_methods
from compressor.quantize.onnx_methods import DYNAMIC_OPS, FP16_OPS, GEMM_SUFFIX, STATIC_OPS
from compressor.quantize.config import QuantizeConfig
from compressor.quantize.engine import Engine
from compressor.quantize.isa import IntegerISA
from compressor.quantize.sensitivity import Unit

# Integer and QDQ ops: an input graph holding any of these is already quantized.
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
    "QAttention", "MatMulNBits", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QLinearConv",
    "ConvInteger", "GatherBlockQuantized", "QEmbedLayerNormalization", "DynamicQuantizeLSTM",
})

def graph_op_types(model: Any) -> dict[str, int]:
    ops = Counter(node.op_type for node in model.graph.node)
    return dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def quantized_op_types(onnx_file: Path) -> set[str]:
    """Integer/QDQ op types in a graph, plus ``float16`` when its weights are mostly half precision."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    found = {node.op_type for node in model.graph.node} & QUANTIZED_OPS
    dtypes = Counter(init.data_type for init in model.graph.initializer)
    if dtypes[onnx.TensorProto.FLOAT16] > dtypes[onnx.TensorProto.FLOAT]:
        found.add("float16")
    return found


def _check_block(widths: dict[str, int], block_size: int, kind: str = "MatMul") -> None:
    """MatMulNBits quantizes each weight column in blocks along the input width (GatherBlockQuantized,
    each table row along its width): a block size that does not divide every width would pad the last
    block with zeros; refuse it instead."""
    bad = {name: width for name, width in widths.items() if block_size != -1 and width % block_size}
    if bad:
        name, width = next(iter(bad.items()))
        fits = [b for b in (16, 32, 64, 128, 256) if all(w % b == 0 for w in widths.values())]
        span = "input width" if kind == "MatMul" else "row width"
        raise BadInputError(
            f"--block-size {block_size}: does not divide the {span} {width} of {kind} {name!r} "
            f"({len(bad)} of {len(widths)} {kind}s); int4 blocks must tile each weight's width "
            f"(block sizes that fit every {kind}: {', '.join(map(str, fits)) or 'none; use -1'})"
        )


def _remove_with_external_data(onnx_file: Path) -> None:
    """Delete an ONNX file and the external-data files it references (uuid-named, beside it)."""
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
        locations = {entry.value for init in model.graph.initializer for entry in init.external_data
                     if entry.key == "location"}
    except Exception:  # noqa: BLE001 - a half-written file: remove what we can
        locations = set()
    for location in locations:
        (onnx_file.parent / location).unlink(missing_ok=True)
    onnx_file.unlink(missing_ok=True)


class OnnxEngine(Engine):
    """Builds quantized variants of one ONNX graph. ``build(float_units)`` returns a path."""

    @classmethod
    def from_artifact(cls, source: Any, method: str, config: QuantizeConfig, workdir: Path,
                      allow_pickle: bool) -> OnnxEngine:
        from compressor.quantize.isa import detect

        return cls(source.onnx_file, method, config, detect(), workdir)

    def __init__(self, onnx_file: Path, method: str, config: QuantizeConfig, isa: IntegerISA, workdir: Path) -> None:
        import onnx

        self.method = method
        self.config = config
        self.isa = isa
        self.workdir = workdir
        self.float_file = onnx_file
        self.float_runner = self.runner(None)
        self._builds = 0
        self._calibration_cache = workdir / "calibration.json"
        self.preprocess: dict[str, Any] = {}
        self.input_file = self._preprocess(onnx_file)
        self.model = onnx.load(str(self.input_file))
        self._units = self._find_units()

    # -- preparation --------------------------------------------------------------------------------
    def _preprocess(self, onnx_file: Path) -> Path:
        """Symbolic shape inference so the quantizer knows every tensor's type, even after fused
        contrib ops (Attention, SkipLayerNormalization); without it onnxruntime cannot quantize an
        O2-optimised transformer graph. FP16 conversion needs no types."""
        if self.method == "fp16":
            self.preprocess = {"shape_inference": "not needed for fp16"}
            return onnx_file
        from onnxruntime.quantization import quant_pre_process

        out = self.workdir / "preprocessed.onnx"
        stray = Path("sym_shape_infer_temp.onnx")  # written to the cwd when inference is incomplete
        existed = stray.exists()
        try:
            quant_pre_process(str(onnx_file), str(out), skip_optimization=True, auto_merge=True)
            self.preprocess = {"shape_inference": "symbolic (onnxruntime quant_pre_process)"}
            return out
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises a bare Exception("Incomplete symbolic shape inference")
            if not existed and stray.exists():
                _remove_with_external_data(stray)
            self.preprocess = {"shape_inference": f"incomplete ({str(exc).splitlines()[0]}); float assumed"}
            return onnx_file

    def _initializers(self) -> dict[str, Any]:
        return {init.name: init for init in self.model.graph.initializer}

    def _find_units(self) -> list[Unit]:
        import onnx

        inits = self._initializers()
        floats = (onnx.TensorProto.FLOAT,)
        units, widths = [], {}
        self._tables: dict[str, tuple[int, int]] = {}  # embedding Gather -> its table's (rows, width)
        for node in self.model.graph.node:
            if not node.name:
                continue
            op = node.op_type
            # Only embedding Gathers (a float table) are quantized; index Gathers on shapes are not.
            embedding = op == "Gather" and node.input[0] in inits and inits[node.input[0]].data_type in floats
            if embedding:
                self._tables[node.name] = (int(inits[node.input[0]].dims[0]), int(inits[node.input[0]].dims[-1]))
            if self.method == "int8-dynamic" and op in DYNAMIC_OPS:
                if op == "Gather" and not embedding:
                    continue
                # Only MatMuls with a weight: quantizing activation x activation products (unfused
                # attention) costs two DynamicQuantizeLinear per product and buys nothing.
                if op == "MatMul" and node.input[1] not in inits:
                    continue
                units.append(Unit(node.name, op))
            elif self.method == "int8-static" and (op in STATIC_OPS or op == "Attention" or embedding):
                units.append(Unit(node.name, op))
            elif self.method == "int4-weight" and op == "MatMul":
                weight = inits.get(node.input[1])
                if weight is not None and weight.data_type in floats and len(weight.dims) == 2:
                    widths[node.name] = int(weight.dims[0])
                    units.append(Unit(node.name, op))
            elif self.method == "fp16" and op in FP16_OPS:
                units.append(Unit(node.name, op))
        _check_block(widths, self.config.block_size)
        if self.config.embeddings == "int4":
            tables = self._largest_tables([u.name for u in units if u.op_type == "Gather"])
            if not tables:
                raise BadInputError(f"--embeddings int4: {self.float_file} has no embedding Gather with a float table "
                                    f"to rewrite (graph ops: {', '.join(graph_op_types(self.model))})")
            _check_block({name: self._tables[name][1] for name in tables}, self.config.block_size, "embedding Gather")
        return units

    def units(self) -> list[Unit]:
        return list(self._units)

    def settings(self) -> dict[str, Any]:
        c = self.config
        base: dict[str, Any] = {"engine": "onnxruntime.quantization", **self.preprocess}
        if self.method == "int8-dynamic":
            base.update(per_channel=c.per_channel, reduce_range=self.isa.reduce_range, weight_type="int8",
                        activation_type="uint8 (dynamic)", op_types=list(DYNAMIC_OPS), matmul_const_b_only=True,
                        cpu=self.isa.to_dict(), embeddings=self._embedding_settings())
        elif self.method == "int8-static":
            base.update(format="QDQ", per_channel=c.per_channel, reduce_range=self.isa.reduce_range,
                        weight_type="int8", activation_type="uint8", calibration_method=c.calib_method,
                        op_types=list(STATIC_OPS), cpu=self.isa.to_dict(),
                        activation_type_reason="u8 activations x s8 weights is the fast integer path on x86",
                        attention="fused Attention -> QAttention (INT8 weights, activations quantized at run "
                                  "time): QDQ has no quantized fused-Attention kernel on CPU, and a float "
                                  "Attention keeps a quarter of the weights and most of the latency in fp32",
                        embeddings=self._embedding_settings())
        elif self.method == "int4-weight":
            base.update(operator="MatMulNBits", bits=4, block_size=c.block_size, symmetric=c.symmetric,
                        accuracy_level=c.accuracy_level)
        else:
            base.update(keep_io_types=True, converter="onnxruntime.transformers.float16")
        return base

    def _embedding_settings(self) -> dict[str, Any]:
        if self.config.embeddings == "int4":
            return {"tables": "int4", "operator": "GatherBlockQuantized", "block_size": self.config.block_size,
                    "symmetric": self.config.symmetric,
                    "applies_to": "the vocabulary table (most rows); smaller tables stay int8"}
        return {"tables": "int8", "note": "embedding Gathers look up an INT8 table, dequantized after the lookup; "
                "a float table would hold most of a small model's bytes"}

    def calibrate(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        """Collect activation ranges once (static only); later builds reuse the cached ranges."""
        if self.method != "int8-static":
            return {}
        try:
            self._build(self.workdir / "calibrated.onnx", [], batches=batches)
        except Exception:  # noqa: BLE001 - onnxruntime asserts on a NaN range ("scale issue")
            self._check_ranges()  # a non-finite range explains the failure better than the engine does
            raise
        self._check_ranges()
        return {"batches": len(batches), "rows": int(sum(len(b["input_ids"]) for b in batches))}

    def _check_ranges(self) -> None:
        """Every calibrated activation range must be finite: a NaN/inf range (activations that overflowed,
        NaN weights) gives NaN scales and a graph that outputs NaN."""
        if not self._calibration_cache.is_file():
            return
        import numpy as np
        from onnxruntime.quantization.calibrate import load_tensors_data

        for name, data in load_tensors_data(self._calibration_cache).items():
            low, high = (float(np.max(np.abs(np.asarray(v, dtype=np.float64)))) for v in data.range_value)
            if not (math.isfinite(low) and math.isfinite(high)):
                lowest, highest = (np.asarray(v).reshape(-1)[:1].tolist() for v in data.range_value)
                raise RuntimeFailureError(
                    f"{self.float_file}: int8-static calibration range of tensor {name!r} is not finite "
                    f"({lowest} .. {highest}); the model's activations overflow or hold NaN on the calibration "
                    "data; nothing written"
                )

    # -- building -----------------------------------------------------------------------------------
    def build(self, float_units: list[str]) -> Path:
        """A quantized graph with ``float_units`` kept in float."""
        self._builds += 1
        out = self.workdir / f"candidate-{self._builds}.onnx"
        self._build(out, sorted(float_units))
        return out

    def only(self, unit: str) -> Path:
        return self.build([u.name for u in self._units if u.name != unit])

    def runner(self, candidate: Path | None) -> Any:
        from compressor.inference import OnnxRunner

        return OnnxRunner(self.float_file if candidate is None else candidate, device=self.config.device)

    def discard(self, path: Path) -> None:
        """Candidates are large; keep only the ones still needed."""
        for item in (path, Path(str(path) + ".data")):
            item.unlink(missing_ok=True)

    def _build(self, out: Path, exclude: list[str], batches: list[dict[str, Any]] | None = None) -> None:
        logging.getLogger("root").setLevel(logging.ERROR)  # onnxruntime.quantization logs on the root logger
        try:
            if self.method == "int8-dynamic":
                self._dynamic(out, exclude)
            elif self.method == "int8-static":
                self._static(out, exclude, batches)
            elif self.method == "int4-weight":
                self._int4(out, exclude)
            else:
                self._fp16(out, exclude)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise RuntimeFailureError(
                f"{self.float_file}: onnxruntime {self.method} quantization failed ({str(exc).splitlines()[0]})"
            ) from exc

    def _extra(self) -> dict[str, Any]:
        import onnx

        extra: dict[str, Any] = {}
        if self.input_file == self.float_file:  # shape inference was incomplete
            extra["DefaultTensorType"] = onnx.TensorProto.FLOAT
        return extra

    def _int4_tables(self, exclude: list[str]) -> list[str]:
        """The embedding Gathers that --embeddings int4 turns into INT4 tables (none with int8): the
        vocabulary table(s), the ones with the most rows. Position and token-type tables stay INT8: they
        hold a few hundred KB, and each GatherBlockQuantized lookup costs more on CPU than a Gather and a
        DequantizeLinear (about 50 us against 10 us for 25 rows of 384 with onnxruntime 1.31)."""
        if self.config.embeddings != "int4":
            return []
        return self._largest_tables([u.name for u in self._units if u.op_type == "Gather" and u.name not in exclude])

    def _largest_tables(self, gathers: list[str]) -> list[str]:
        most = max((self._tables[name][0] for name in gathers), default=0)
        return [name for name in gathers if self._tables[name][0] == most]

    def _dynamic(self, out: Path, exclude: list[str]) -> None:
        tables = self._int4_tables(exclude)
        onnx_methods.dynamic(self.input_file, out, exclude + tables, per_channel=self.config.per_channel,
                             reduce_range=self.isa.reduce_range, extra=self._extra())
        onnx_methods.int4_embeddings(out, tables, self.config)

    def _static(self, out: Path, exclude: list[str], batches: list[dict[str, Any]] | None) -> None:
        tables = self._int4_tables(exclude)
        weight_only = [u.name for u in self._units if u.op_type in ("Attention", "Gather")
                       and u.name not in exclude + tables]
        reader = onnx_methods.CalibrationReader(self.float_runner, batches) if batches is not None else None
        onnx_methods.static(self.input_file, out, exclude + tables, weight_only=weight_only, reader=reader,
                            config=self.config, reduce_range=self.isa.reduce_range, extra=self._extra(),
                            workdir=self.workdir, calibration_cache=self._calibration_cache)
        onnx_methods.int4_embeddings(out, tables, self.config)

    def _int4(self, out: Path, exclude: list[str]) -> None:
        onnx_methods.int4(self.model, out, exclude, self.config)
        # MatMulNBitsQuantizer edits the graph it was given: reload a clean copy for the next build.
        import onnx

        self.model = onnx.load(str(self.input_file))

    def _fp16(self, out: Path, exclude: list[str]) -> None:
        onnx_methods.fp16(self.input_file, out, exclude)

    # -- reporting ----------------------------------------------------------------------------------
    def op_counts(self, candidate: Path, float_units: list[str]) -> dict[str, Any]:
        """Per op type, how many quantizable nodes were quantized and how many stayed float.

        A node counts as quantized when the quantizer replaced it (its name is gone: MatMulInteger,
        QAttention, MatMulNBits), fed it from a DequantizeLinear (QDQ) or gave it an integer table
        (embedding Gather); for fp16, when it was not blocked from conversion.
        """
        import onnx

        model = onnx.load(str(candidate), load_external_data=False)
        nodes = {node.name: node for node in model.graph.node}
        producers = {out: node.op_type for node in model.graph.node for out in node.output}
        integer = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4)
        int_inits = {init.name for init in model.graph.initializer if init.data_type in integer}
        blocked = set(float_units)
        counts: dict[str, dict[str, int]] = {}
        for unit in self._units:
            if self.method == "fp16":
                quantized = unit.name not in blocked
            else:
                node = nodes.get(unit.name)
                if node is None and unit.op_type == "Gemm":
                    node = nodes.get(unit.name + GEMM_SUFFIX)
                # Replaced by an integer op, fed by a DequantizeLinear (QDQ), or reading an integer
                # table (a quantized embedding Gather keeps its name).
                quantized = node is None or any(
                    producers.get(i) == "DequantizeLinear" or i in int_inits for i in node.input
                )
            entry = counts.setdefault(unit.op_type, {"quantized": 0, "float": 0})
            entry["quantized" if quantized else "float"] += 1
        return {"by_op_type": counts, "graph_op_types": graph_op_types(model)}

    def save(self, candidate: Path, out_dir: Path) -> tuple[list[str], None]:
        check_scales(candidate)  # never write a graph with NaN/inf quantization scales
        target = out_dir / "model.onnx"
        shutil.copyfile(candidate, target)
        data = Path(str(candidate) + ".data")
        if data.exists():  # not produced at these sizes, but keep external data next to its graph
            shutil.copyfile(data, out_dir / data.name)
        return [target.name], None


def check_scales(onnx_file: Path) -> None:
    """Raise when a quantization scale initializer of the graph is NaN or infinite."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file), load_external_data=False)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    for init in model.graph.initializer:
        if "scale" not in init.name.lower() or init.data_type not in floats or init.external_data:
            continue
        values = numpy_helper.to_array(init).astype(np.float64)
        if not np.isfinite(values).all():
            kind = "nan" if np.isnan(values).any() else "inf"
            raise RuntimeFailureError(f"quantize: the quantized graph's scale {init.name!r} is {kind}; nothing written")
