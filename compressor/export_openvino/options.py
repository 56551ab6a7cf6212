"""``compress export-openvino``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.export_openvino.config import OpenVinoExportConfig
from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, Option, data_spec

OPTIONS = (
    Option("fp16", "flag", False, help="Store weights as fp16 (openvino.save_model compress_to_fp16); compute stays f32."),
    Option("parity-data", path="data", help="Data file for the parity check (default: built-in sentences)."),
    Option("parity-samples", "int", 512, min=1, max=10**7, help="Rows (or LM blocks) to compare."),
    Option("atol", "float", min=0, min_open=True, max=1e6, help="Max |logit diff| allowed (default 1e-3; fp16 1e-1)."),
    *COLUMN_OPTIONS,
    ALLOW_PICKLE,
)


def build(values: dict[str, Any]) -> OpenVinoExportConfig:
    v = values
    return OpenVinoExportConfig(fp16=v["fp16"], parity_data=data_spec(v, "parity_data"),
                                parity_samples=v["parity_samples"], atol=v["atol"])
