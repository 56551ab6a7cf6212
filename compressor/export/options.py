"""``compress export-onnx``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.export.config import MAX_OPSET, MIN_OPSET, OPTIMIZE_LEVELS, SKIP_LAYERNORM, ExportConfig
from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, DEVICE, Option, data_spec

OPTIONS = (
    Option("opset", "int", min=MIN_OPSET, max=MAX_OPSET, help="ONNX opset (14-22; default: optimum's choice)."),
    Option("optimize", "choice", "O2", choices=OPTIMIZE_LEVELS, noun="level", help="onnxruntime graph optimisation: O0, O1, O2, O3."),
    Option("fp16", "flag", False, help="Convert to fp16 (GPU only)."),
    Option("skip-layernorm", "choice", "auto", choices=SKIP_LAYERNORM, noun="mode",
           help="Fused SkipLayerNormalization: split into Sum + LayerNormalization (faster on onnxruntime's "
                "CPU kernels), fused, or auto (split for --device cpu)."),
    DEVICE,
    Option("parity-data", path="data", help="Data file for the parity check (default: built-in sentences)."),
    Option("parity-samples", "int", 512, min=1, max=10**7, help="Rows (or LM blocks) to compare."),
    Option("atol", "float", min=0, min_open=True, max=1e6,
           help="Max |logit diff| allowed (default 1e-3; O3 5e-2; fp16 1e-1)."),
    *COLUMN_OPTIONS,
    ALLOW_PICKLE,
)


def build(values: dict[str, Any]) -> ExportConfig:
    v = values
    return ExportConfig(opset=v["opset"], optimize=v["optimize"].upper(), fp16=v["fp16"], device=v["device"],
                        parity_data=data_spec(v, "parity_data"), parity_samples=v["parity_samples"], atol=v["atol"],
                        skip_layernorm=v["skip_layernorm"])
