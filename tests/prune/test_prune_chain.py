"""A pruned artifact is like any other: it exports to ONNX with parity, and recovery runs through distill."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from compressor.data import DataSpec
from compressor.export import ExportConfig, export_onnx
from compressor.prune import PruneConfig, parse_methods, prune


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_gpt2_dir"])
def test_prune_then_export_onnx_with_parity(request, tmp_path, fixture):
    src = request.getfixturevalue(fixture)
    pruned = tmp_path / "pruned"
    prune(src, pruned, PruneConfig(methods=parse_methods("heads=0.3,ffn=0.3")))
    report = export_onnx(pruned, tmp_path / "onnx", ExportConfig())
    assert report["parity"]["max_abs_diff"] <= report["parity"]["atol"]
    agreement = report["parity"].get("top1_agreement", report["parity"].get("next_token_agreement"))
    assert agreement == 1.0
    assert report["with_past"] is (fixture == "tiny_gpt2_dir")  # a head-pruned GPT-2 keeps its KV cache
    lineage = json.loads((tmp_path / "onnx" / "compress.json").read_text())["stages"]
    assert [s["stage"] for s in lineage] == ["prune", "export-onnx"]


def test_ffn_pruned_gpt2_exports_with_its_kv_cache(tiny_gpt2_dir, tmp_path):
    prune(tiny_gpt2_dir, tmp_path / "pruned", PruneConfig(methods=parse_methods("ffn=0.3")))
    report = export_onnx(tmp_path / "pruned", tmp_path / "onnx", ExportConfig())
    assert report["with_past"] is True and report["parity"]["next_token_agreement"] == 1.0


def test_recovery_distils_from_the_unpruned_model(tiny_bert_dir, sst_file, tmp_path):
    pytest.importorskip("compressor.distill")
    out = tmp_path / "recovered"
    config = PruneConfig(
        methods=parse_methods("heads=0.25,ffn=0.5,magnitude=0.3"),
        data=DataSpec(str(sst_file)),
        recover_from=str(tiny_bert_dir),
        recover_data=DataSpec(str(sst_file)),
        recover_steps=3,
        recover_batch_size=8,
    )
    report = prune(tiny_bert_dir, out, config)
    assert set(report["metrics"]) == {"accuracy_before", "accuracy_pruned", "accuracy_after_recovery",
                                      "accuracy_final"}
    recovery = report["recovery"]
    assert recovery["steps"] == 3 and recovery["distill"]["training"]["steps"] == 3
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # work dirs cleaned up
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.intermediate_size == 64
    # Sparsity is applied after recovery (distillation trains dense weights), so the zeros survive.
    assert report["sparsity"]["sparsity_of_targeted"] == pytest.approx(0.3, abs=0.01)
    weights = [m.weight for m in model.bert.encoder.modules() if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.3, abs=0.01)


def test_recovery_for_gpt2(tiny_gpt2_dir, corpus_file, tmp_path):
    pytest.importorskip("compressor.distill")
    config = PruneConfig(methods=parse_methods("ffn=0.3"), recover_from=str(tiny_gpt2_dir),
                         recover_data=DataSpec(str(corpus_file)), eval_data=DataSpec(str(corpus_file)),
                         recover_steps=2, recover_batch_size=4, max_length=32)
    report = prune(tiny_gpt2_dir, tmp_path / "out", config)
    assert report["metrics"]["perplexity_after_recovery"] == pytest.approx(report["metrics"]["perplexity_final"])
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.n_inner == 88
