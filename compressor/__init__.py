"""compress: distil, prune, quantize, export and benchmark Hugging Face models, with proof.

The public API is loaded lazily so that ``import compressor`` (and ``compress --help``) stays fast:
torch, transformers and onnxruntime are imported only by the stage that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from compressor.errors import BadInputError, CompressError, GateFailedError, RuntimeFailureError

_LAZY = {
    "bench": "compressor.bench:bench",
    "BenchConfig": "compressor.bench:BenchConfig",
    "export_onnx": "compressor.export:export_onnx",
    "export_openvino": "compressor.export_openvino:export_openvino",
    "OpenVinoExportConfig": "compressor.export_openvino:OpenVinoExportConfig",
    "distill": "compressor.distill:distill",
    "DistillConfig": "compressor.distill:DistillConfig",
    "ExportConfig": "compressor.export:ExportConfig",
    "open_artifact": "compressor.artifact:open_artifact",
    "quantize": "compressor.quantize:quantize",
    "QuantizeConfig": "compressor.quantize:QuantizeConfig",
    "prune": "compressor.prune:prune",
    "PruneConfig": "compressor.prune:PruneConfig",
    "run_pipeline": "compressor.pipeline:run_pipeline",
}

__all__ = ["BadInputError", "CompressError", "GateFailedError", "RuntimeFailureError", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'compressor' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
