"""Real-asset checks (``pytest -m slow tests/prune``): the real teachers prune, reload and export."""

from __future__ import annotations

import pytest
from conftest import ASSETS

from compressor.data import DataSpec
from compressor.export import ExportConfig, export_onnx
from compressor.prune import PruneConfig, prune

pytestmark = pytest.mark.slow

MINILM = ASSETS / "teachers" / "minilm-l6-sst2"
GPT2 = ASSETS / "teachers" / "gpt2-imdb"


@pytest.mark.skipif(not MINILM.exists(), reason="shared assets not present")
def test_minilm_heads_and_ffn_prune_and_export(tmp_path):
    dev = DataSpec(str(ASSETS / "glue/SST-2/dev.tsv"))
    report = prune(MINILM, tmp_path / "p", PruneConfig(methods="heads=0.25,ffn=0.3", data=dev,
                                                        calibration_samples=128, eval_samples=256))
    assert sum(report["structure"]["heads_per_layer"]) == 54 and report["structure"]["ffn_per_layer"] == [1072] * 6
    assert report["metrics"]["accuracy_before"] > 0.85
    export = export_onnx(tmp_path / "p", tmp_path / "o", ExportConfig(parity_data=dev, parity_samples=128))
    assert export["parity"]["top1_agreement"] == 1.0


@pytest.mark.skipif(not GPT2.exists(), reason="shared assets not present")
def test_gpt2_ffn_prune_keeps_a_standard_config_and_the_kv_cache_export(tmp_path):
    report = prune(GPT2, tmp_path / "p", PruneConfig(methods="ffn=0.3"))
    assert report["structure"]["ffn_per_layer"] == [712] * 6
    export = export_onnx(tmp_path / "p", tmp_path / "o", ExportConfig(parity_samples=16))
    assert export["with_past"] and export["parity"]["next_token_agreement"] > 0.99
