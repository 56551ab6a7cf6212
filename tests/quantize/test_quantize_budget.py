"""The accuracy budget end to end: per-layer sensitivity is measured, the most sensitive layers go
back to float until the budget is met, and an unmeetable budget exits 1 with the report and no output."""

from __future__ import annotations

import pytest
from quantize_models import SENSITIVE_LAYER, one_torch_thread, report_of, sensitive_lm  # noqa: F401

from compressor.export import ExportConfig, export_onnx


@pytest.fixture(scope="module")
def lm(tiny_gpt2_dir, corpus_file, tmp_path_factory):
    return sensitive_lm(tiny_gpt2_dir, corpus_file, tmp_path_factory.mktemp("qbudget") / "lm")


def test_over_budget_keeps_the_measured_most_sensitive_layers_in_float(run_cli, lm, corpus_file, tmp_path):
    out = tmp_path / "int4"
    result = run_cli("quantize", lm, "-o", out, "--method", "int4", "--eval-data", corpus_file,
                     "--max-perplexity-increase", "1", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    fallback = report["fallback"]
    sensitivity = fallback["sensitivity"]
    assert len(sensitivity) == 16
    assert sensitivity[0]["layer"] == SENSITIVE_LAYER  # the doctored layer, found by measurement
    losses = [s["loss_alone"] for s in sensitivity]
    assert losses == sorted(losses, reverse=True) and losses[0] > 5 * losses[2]
    kept = fallback["kept_float"]
    assert kept[0]["layer"] == SENSITIVE_LAYER
    assert "rank 1 of 16" in kept[0]["reason"] and "perplexity" in kept[0]["reason"]
    assert [k["layer"] for k in kept] == [s["layer"] for s in sensitivity[: len(kept)]]
    attempts = fallback["attempts"]
    assert len(attempts) == len(kept) and attempts[-1]["within_budget"]
    assert all(not a["within_budget"] for a in attempts[:-1])
    assert report["budget"] == {"flag": "--max-perplexity-increase", "limit": 1.0, "loss": attempts[-1]["loss"],
                                "unit": "%", "met": True}
    assert report["metrics"]["perplexity_increase_pct"] <= 1.0
    assert [d["layer"] for d in fallback["default_float"]] == ["lm_head"]  # neural-compressor skips the head
    assert report["ops"]["by_op_type"]["Linear"]["float"] == len(kept) + 1
    # The float layers really are float in the saved artifact.
    modules = report["reload"]["modules"]
    assert all(k["layer"] not in modules for k in kept) and report["reload_check"]["max_abs_diff"] == 0.0


def test_unmeetable_budget_exits_1_with_the_report_and_writes_nothing(run_cli, lm, corpus_file, tmp_path):
    out = tmp_path / "int4"
    result = run_cli("quantize", lm, "-o", out, "--method", "int4", "--eval-data", corpus_file,
                     "--max-perplexity-increase", "0", "--json")
    assert result.exit_code == 1, result.output
    report = report_of(result)  # the report still comes out on stdout
    assert report["budget"]["met"] is False and report["budget"]["loss"] > 0
    assert len(report["fallback"]["attempts"]) == 15  # all but one layer tried in float
    assert "exceeds --max-perplexity-increase 0" in result.stderr and "nothing written" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".int4.tmp-*"))


def test_within_budget_needs_no_fallback(run_cli, lm, corpus_file, tmp_path):
    out = tmp_path / "int8"
    result = run_cli("quantize", lm, "-o", out, "--method", "int8-dynamic", "--eval-data", corpus_file,
                     "--max-perplexity-increase", "5", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["budget"]["met"] and "sensitivity" not in report["fallback"]


def test_onnx_fallback_excludes_the_sensitive_nodes(run_cli, lm, corpus_file, tmp_path):
    onnx_dir = tmp_path / "onnx"
    export_onnx(lm, onnx_dir, ExportConfig(atol=1e-2))
    out = tmp_path / "int4"
    result = run_cli("quantize", onnx_dir, "-o", out, "--method", "int4-weight", "--eval-data", corpus_file,
                     "--max-perplexity-increase", "1", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    kept = [k["layer"] for k in report["fallback"]["kept_float"]]
    ranking = [s["layer"] for s in report["fallback"]["sensitivity"]]
    assert kept == ranking[: len(kept)]
    # The fitted (untied) head is what INT4 hurts most here; the optimiser's fused MLP nodes have
    # generic names (FullyConnect_MatMul_N), so the doctored layer is not asserted by name.
    assert kept[0] == "/lm_head/MatMul" and len(kept) >= 2
    assert report["ops"]["by_op_type"]["MatMul"]["float"] == len(kept)
    assert report["metrics"]["perplexity_increase_pct"] <= 1.0
