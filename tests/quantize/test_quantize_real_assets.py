"""Real-asset checks of `compress quantize` (slow; run with `pytest -m slow tests/quantize`).

benchmarks/quantize.py measures the full tables; these only guard the properties a regression would
break: ONNX int8 keeps SST-2 accuracy, GPTQ INT4 keeps GPT-2 perplexity and reloads exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.data import DataSpec
from compressor.export import ExportConfig, export_onnx
from compressor.quantize import QuantizeConfig, quantize

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ASSETS / "teachers").exists(), reason="real assets not available"),
]


def test_minilm_onnx_int8_dynamic_keeps_sst2_accuracy_within_budget(tmp_path):
    dev = DataSpec(str(ASSETS / "glue/SST-2/dev.tsv"))
    export_onnx(ASSETS / "teachers/minilm-l6-sst2", tmp_path / "fp32", ExportConfig(parity_data=dev, parity_samples=64))
    report = quantize(tmp_path / "fp32", tmp_path / "int8",
                      QuantizeConfig(method="int8-dynamic", eval_data=dev, eval_samples=300, max_accuracy_drop=1.0))
    assert report["budget"]["met"]
    assert report["metrics"]["accuracy_after"] > 0.85
    assert report["compression_ratio"] > 3.5


def test_gpt2_int4_gptq_keeps_perplexity_and_reloads_exactly(tmp_path):
    report = quantize(
        ASSETS / "teachers/gpt2-imdb", tmp_path / "int4",
        QuantizeConfig(method="int4", algorithm="gptq", calib_data=DataSpec(str(ASSETS / "imdb/train.jsonl"), limit=500),
                       calib_samples=32, eval_data=DataSpec(str(ASSETS / "imdb/heldout-1000.txt")), eval_samples=32,
                       max_perplexity_increase=10.0),
    )
    assert report["budget"]["met"] and report["metrics"]["perplexity_increase_pct"] < 2.0
    assert report["reload_check"]["max_abs_diff"] == 0.0
    assert report["size_bytes_after"] < report["size_bytes_before"] / 2
