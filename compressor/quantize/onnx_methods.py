"""The onnxruntime graph transforms the ONNX engine builds candidates with, as plain functions: INT8
dynamic, INT8 static (QDQ, calibrated), INT4 MatMulNBits, INT4 embedding tables (after either INT8) and
FP16. Each writes ``out`` from a float graph, keeping the nodes named in ``exclude`` in float."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor import progress
from compressor.quantize.config import QuantizeConfig

# Which node types each method quantizes. Dynamic INT8 covers the fused Attention (QAttention),
# embedding tables (Gather) and Gemm (rewritten to MatMul + Add first, so a Gemm node "X" is named
# "X_MatMul" afterwards); static QDQ sticks to MatMul/Gemm, because onnxruntime's CPU provider has
# no quantized Attention in QDQ form and a DequantizeLinear in front of an embedding Gather would
# expand the whole table on every run.
DYNAMIC_OPS = ("MatMul", "Gemm", "Attention", "Gather", "EmbedLayerNormalization", "Conv", "LSTM")
STATIC_OPS = ("MatMul", "Gemm")
FP16_OPS = (
    "MatMul", "Gemm", "Attention", "MultiHeadAttention", "SkipLayerNormalization", "LayerNormalization",
    "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "Softmax", "Conv",
)
GEMM_SUFFIX = "_MatMul"
_CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over prepared batches, with a progress bar."""

    def __init__(self, runner: Any, batches: list[dict[str, Any]]) -> None:
        feeds = [runner.feeds({k: v for k, v in b.items() if k != "labels"}) for b in batches]
        self._iter = progress.bar(feeds, desc="calibrating", total=len(feeds))
        self._len = len(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)

    def __len__(self) -> int:
        return self._len


def dynamic(input_file: Path, out: Path, exclude: list[str], *, per_channel: bool, reduce_range: bool,
            extra: dict[str, Any]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = exclude + [name + GEMM_SUFFIX for name in exclude]  # Gemm nodes are renamed before quantizing
    quantize_dynamic(
        str(input_file), str(out), op_types_to_quantize=list(DYNAMIC_OPS), per_channel=per_channel,
        reduce_range=reduce_range, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
        extra_options={**extra, "MatMulConstBOnly": True},
    )


def static(input_file: Path, out: Path, exclude: list[str], *, weight_only: list[str], reader: Any,
           config: QuantizeConfig, reduce_range: bool, extra: dict[str, Any], workdir: Path,
           calibration_cache: Path) -> None:
    """QDQ MatMul/Gemm. The ``weight_only`` nodes are quantized first, as int8-dynamic does: fused
    Attention becomes QAttention and embedding Gathers look up an INT8 table."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    source, options = input_file, {**extra, "ActivationSymmetric": False, "WeightSymmetric": True}
    if weight_only:
        # The QDQ pass below then sees QAttention and the dequantized lookups as foreign ops, so float
        # is the default type for tensors shape inference cannot follow through them.
        source = workdir / "weight-only-int8.onnx"
        quantize_dynamic(
            str(input_file), str(source), op_types_to_quantize=["Attention", "Gather"], nodes_to_quantize=weight_only,
            per_channel=config.per_channel, reduce_range=reduce_range, weight_type=QuantType.QInt8,
            extra_options=extra,
        )
        options["DefaultTensorType"] = onnx.TensorProto.FLOAT
    if config.calib_method == "percentile":
        options["CalibPercentile"] = 99.999
    quantize_static(
        str(source), str(out), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(STATIC_OPS),
        per_channel=config.per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
        calibrate_method=getattr(CalibrationMethod, _CALIB[config.calib_method]),
        calibration_cache_path=str(calibration_cache), extra_options=options,
    )


def int4(model: Any, out: Path, exclude: list[str], config: QuantizeConfig) -> None:
    """MatMulNBits block-wise INT4 weights. Edits ``model`` (an onnx ModelProto) in place."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        model, bits=4, block_size=config.block_size, is_symmetric=config.symmetric,
        accuracy_level=config.accuracy_level, nodes_to_exclude=exclude, op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


def int4_embeddings(path: Path, gathers: list[str], config: QuantizeConfig) -> None:
    """Rewrite the embedding Gathers named in ``gathers`` of the graph at ``path`` (still float after the
    INT8 pass) as GatherBlockQuantized: INT4 values in ``config.block_size`` blocks along each row, one
    float scale per block. In place."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if not gathers:
        return
    model = onnx.load(str(path))
    others = [node.name for node in model.graph.node if node.op_type == "Gather" and node.name not in gathers]
    quantizer = MatMulNBitsQuantizer(
        model, bits=4, block_size=config.block_size, is_symmetric=config.symmetric, nodes_to_exclude=others,
        op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(path), use_external_data_format=False)


def fp16(input_file: Path, out: Path, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(input_file))
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=exclude or None)
    onnx.save_model(converted, str(out))
