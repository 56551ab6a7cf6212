"""Typed configuration of the quantize stage and the table of methods (what each needs, where it applies).

The table is data, not imports: the CLI and validation read it without loading torch or onnxruntime.
Everything that can be checked without the model is checked here, on construction, so the API and
the CLI refuse the same inputs with the same one-line messages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from compressor.artifact import ONNX, OPENVINO, PYTORCH
from compressor.data import DataSpec
from compressor.devices import DEVICES
from compressor.errors import BadInputError


@dataclass(frozen=True)
class Method:
    name: str
    format: str  # the artifact format it applies to
    engine: str  # the library that does the work (reported)
    summary: str
    engine_class: str  # "module:Class" implementing compressor.quantize.engine.Engine
    needs_calibration: bool = False


_ORT = "compressor.quantize.onnx_ort:OnnxEngine"
_TORCH_DYNAMIC = "compressor.quantize.torch_engine:DynamicEngine"
_INC = "compressor.quantize.torch_inc:WeightOnlyEngine"
_NNCF = "compressor.quantize.openvino_nncf:NncfEngine"

# The method registry: (method name, format) -> Method. int8-dynamic exists for both formats.
METHODS: dict[tuple[str, str], Method] = {
    (m.name, m.format): m
    for m in (
        Method("int8-dynamic", ONNX, "onnxruntime", "INT8 weights, activations quantized at run time", _ORT),
        Method("int8-static", ONNX, "onnxruntime", "INT8 QDQ weights and activations, calibrated", _ORT, True),
        Method("int4-weight", ONNX, "onnxruntime", "INT4 block-wise weights (MatMulNBits)", _ORT),
        Method("fp16", ONNX, "onnxruntime", "float16 weights and compute (for GPU execution)", _ORT),
        Method("int8-dynamic", PYTORCH, "torch.ao", "INT8 nn.Linear weights, activations quantized at run time",
               _TORCH_DYNAMIC),
        Method("int4", PYTORCH, "neural-compressor", "INT4 weight-only (RTN, GPTQ or AWQ)", _INC),
        Method("int8", PYTORCH, "neural-compressor", "INT8 weight-only (RTN, GPTQ or AWQ)", _INC),
        Method("smoothquant", PYTORCH, "torch.ao", "SmoothQuant W8A8: smoothed INT8 Linear", _TORCH_DYNAMIC, True),
        Method("int8-nncf", OPENVINO, "nncf", "INT8 weights and activations (nncf.quantize, transformer preset), "
               "calibrated", _NNCF, True),
        Method("int8-weight", OPENVINO, "nncf", "INT8 weight-only (nncf.compress_weights)", _NNCF),
        Method("int4-weight", OPENVINO, "nncf", "INT4 weight-only, group-wise (nncf.compress_weights)", _NNCF),
    )
}
METHOD_NAMES = tuple(dict.fromkeys(name for name, _ in METHODS))

# What to use instead when a method is asked for on the other format.
ALTERNATIVES: dict[tuple[str, str], str] = {
    ("int8-static", PYTORCH): "--method smoothquant (PyTorch W8A8), or export-onnx first for int8-static",
    ("int4-weight", PYTORCH): "--method int4 (PyTorch weight-only), or export-onnx first for int4-weight",
    ("fp16", PYTORCH): "export-onnx --fp16, or export-onnx then --method fp16",
    ("int4", ONNX): "--method int4-weight (ONNX MatMulNBits)",
    ("int8", ONNX): "--method int8-dynamic or --method int8-static (ONNX INT8)",
    ("smoothquant", ONNX): "--method int8-static (ONNX W8A8, calibrated)",
    ("int8-nncf", PYTORCH): "export-openvino first, then --method int8-nncf",
    ("int8-nncf", ONNX): "export-openvino first, then --method int8-nncf",
    ("int8-weight", PYTORCH): "--method int8 (PyTorch weight-only), or export-openvino first",
    ("int8-weight", ONNX): "--method int8-dynamic (ONNX), or export-openvino first",
    ("int8-static", OPENVINO): "--method int8-nncf (OpenVINO INT8, calibrated)",
    ("int8-dynamic", OPENVINO): "--method int8-nncf (OpenVINO INT8, calibrated) or int8-weight",
    ("int4", OPENVINO): "--method int4-weight (NNCF weight compression)",
    ("int8", OPENVINO): "--method int8-weight (NNCF weight compression)",
}

ALGORITHMS = ("rtn", "gptq", "awq")
WEIGHT_ONLY = ("int4", "int8")
CALIB_METHODS = ("minmax", "entropy", "percentile")
EMBEDDINGS = ("int8", "int4")  # embedding tables of ONNX int8-dynamic / int8-static
ACCURACY_LEVELS = (0, 1, 2, 3, 4)


def method_for(name: str, fmt: str) -> Method:
    """The method ``name`` for an artifact of format ``fmt``; names the alternative when it does not apply."""
    method = METHODS.get((name, fmt))
    if method is not None:
        return method
    others = [f for n, f in METHODS if n == name]
    hint = ALTERNATIVES.get((name, fmt), "")
    raise BadInputError(
        f"--method {name}: applies to {' and '.join(others)} artifacts, and SRC is a {fmt} artifact"
        + (f"; use {hint}" if hint else "")
    )


def _check_budget(flag: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{flag} {value!r}: not a number")
    if math.isnan(value) or value < 0:
        raise BadInputError(f"{flag} {value}: must be a non-negative number")


@dataclass(frozen=True)
class QuantizeConfig:
    method: str
    algorithm: str | None = None  # rtn | gptq | awq, for PyTorch int4/int8 (default rtn)
    per_channel: bool = True
    block_size: int = 32  # INT4/INT8 weight-only group size; MatMulNBits block size
    symmetric: bool = True
    accuracy_level: int | None = None  # MatMulNBits compute precision (0 unset .. 4 int8)
    alpha: float = 0.5  # SmoothQuant migration strength
    calib_data: DataSpec | None = None
    calib_samples: int = 128
    calib_method: str = "entropy"  # measured best on SST-2 (see benchmarks/quantize.py)
    eval_data: DataSpec | None = None
    eval_samples: int | None = None
    max_accuracy_drop: float | None = None  # points (0..100 scale)
    max_perplexity_increase: float | None = None  # percent
    max_f1_drop: float | None = None  # token classifiers: entity F1 drop in points
    max_score_drop: float | None = None  # sentence embeddings: Spearman drop in points (x100)
    max_length: int = 128
    # ONNX int8-dynamic/int8-static: embedding tables (Gather) in INT8, or block-wise INT4
    # (GatherBlockQuantized, --block-size blocks along each row): the table is most of a small encoder's bytes.
    embeddings: str = "int8"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise BadInputError(f"--method {self.method!r}: unknown method; choose one of {', '.join(METHOD_NAMES)}")
        if self.algorithm is not None:
            if self.algorithm not in ALGORITHMS:
                raise BadInputError(
                    f"--algorithm {self.algorithm!r}: unknown algorithm; choose one of {', '.join(ALGORITHMS)}"
                )
            if self.method not in WEIGHT_ONLY:
                raise BadInputError(
                    f"--algorithm {self.algorithm}: applies to --method int4 or int8 (PyTorch weight-only), "
                    f"not {self.method}"
                )
        if self.calib_data is None:
            if any(m.needs_calibration for (n, _), m in METHODS.items() if n == self.method):
                raise BadInputError(f"--method {self.method} needs calibration data: pass --calib-data FILE")
            if self.algorithm in ("gptq", "awq"):
                raise BadInputError(f"--algorithm {self.algorithm} needs calibration data: pass --calib-data FILE")
        if self.calib_method not in CALIB_METHODS:
            raise BadInputError(
                f"--calib-method {self.calib_method!r}: unknown; choose one of {', '.join(CALIB_METHODS)}"
            )
        if self.calib_samples < 1:
            raise BadInputError(f"--calib-samples {self.calib_samples}: must be at least 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise BadInputError(f"--eval-samples {self.eval_samples}: must be at least 1")
        if self.block_size != -1 and (self.block_size < 16 or self.block_size & (self.block_size - 1)):
            raise BadInputError(
                f"--block-size {self.block_size}: must be a power of two >= 16 (or -1 for one group per row)"
            )
        if self.embeddings not in EMBEDDINGS:
            raise BadInputError(f"--embeddings {self.embeddings!r}: choose one of {', '.join(EMBEDDINGS)}")
        if self.accuracy_level is not None and self.accuracy_level not in ACCURACY_LEVELS:
            raise BadInputError(f"--accuracy-level {self.accuracy_level}: choose one of 0, 1, 2, 3, 4")
        if not 0.0 <= self.alpha <= 1.0:
            raise BadInputError(f"--alpha {self.alpha}: must be between 0 and 1")
        if self.max_length < 8:
            raise BadInputError(f"--max-length {self.max_length}: must be at least 8")
        if self.device not in DEVICES:
            raise BadInputError(f"--device {self.device!r}: unknown device; choose one of {', '.join(DEVICES)}")
        given = {"--max-accuracy-drop": self.max_accuracy_drop, "--max-perplexity-increase": self.max_perplexity_increase,
                 "--max-f1-drop": self.max_f1_drop, "--max-score-drop": self.max_score_drop}
        for flag, value in given.items():
            _check_budget(flag, value)
        budgets = [flag for flag, value in given.items() if value is not None]
        if len(budgets) > 1:
            raise BadInputError(f"{' and '.join(budgets)}: give one budget, not several")
        if budgets and self.eval_data is None:
            raise BadInputError(f"{budgets[0]} needs evaluation data to measure against: pass --eval-data FILE")

    @property
    def resolved_algorithm(self) -> str | None:
        return (self.algorithm or "rtn") if self.method in WEIGHT_ONLY else None

    @property
    def has_budget(self) -> bool:
        return any(v is not None for v in (self.max_accuracy_drop, self.max_perplexity_increase, self.max_f1_drop,
                                           self.max_score_drop))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["algorithm"] = self.resolved_algorithm
        data["calib_data"] = self.calib_data.to_dict() if self.calib_data else None
        data["eval_data"] = self.eval_data.to_dict() if self.eval_data else None
        return data
