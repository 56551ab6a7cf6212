"""ONNX export: optimum export, onnxruntime graph optimisation, and a parity check that fails loudly."""

from compressor.export.config import ExportConfig
from compressor.export.stage import export_onnx

__all__ = ["ExportConfig", "export_onnx"]
