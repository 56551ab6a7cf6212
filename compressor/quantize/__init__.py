"""Quantization: INT8/INT4/FP16 for ONNX (onnxruntime) and INT8/INT4 for PyTorch (torch.ao,
neural-compressor), with a measured accuracy budget and per-layer float fallback."""

from compressor.quantize.config import QuantizeConfig
from compressor.quantize.stage import quantize

__all__ = ["QuantizeConfig", "quantize"]
