"""OpenVINO export: a PyTorch checkpoint or an ONNX artifact to an OpenVINO IR, refused when parity fails."""

from compressor.export_openvino.config import OpenVinoExportConfig
from compressor.export_openvino.stage import export_openvino

__all__ = ["OpenVinoExportConfig", "export_openvino"]
