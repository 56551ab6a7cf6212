"""pipelines/smoke.yaml: the whole chain on tiny random models of both families, as CI runs it."""

from __future__ import annotations

import json
from pathlib import Path

from compressor.artifact import open_artifact

SMOKE = Path(__file__).resolve().parents[2] / "pipelines" / "smoke.yaml"


def test_smoke_recipe_runs_every_stage_for_both_families(run_cli, tiny_bert_dir, tiny_gpt2_dir, sst_file, corpus_file,
                                                         tmp_path, monkeypatch):
    monkeypatch.setenv("SMOKE_BERT", str(tiny_bert_dir))
    monkeypatch.setenv("SMOKE_GPT2", str(tiny_gpt2_dir))
    monkeypatch.setenv("SMOKE_CLS_DATA", str(sst_file))
    monkeypatch.setenv("SMOKE_LM_DATA", str(corpus_file))
    out = tmp_path / "run"
    result = run_cli("run", SMOKE, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    names = [s["name"] for s in report["stages"]]
    assert names == ["bert-student", "bert-pruned", "bert-onnx", "bert-int8", "bert-bench",
                     "gpt2-student", "gpt2-onnx", "gpt2-int8", "gpt2-int4", "gpt2-bench"]

    # Each artifact carries its whole lineage.
    assert [s.stage for s in open_artifact(out / "bert-int8").stages] == ["distill", "prune", "export-onnx", "quantize"]
    assert [s.stage for s in open_artifact(out / "gpt2-int4").stages] == ["distill", "quantize"]
    student = open_artifact(out / "bert-student")
    assert student.config["num_hidden_layers"] == 2

    for bench in ("bert-bench", "gpt2-bench"):
        bench_report = json.loads((out / bench / "report.json").read_text())
        assert bench_report["passed"] is True
        assert len(bench_report["artifacts"]) == 4
        for entry in bench_report["artifacts"]:
            assert entry["latency"]["1"]["p50_ms"] > 0
        assert (out / bench / "report.md").read_text().startswith("## compress bench: passed")
        assert (out / bench / "junit.xml").is_file() and (out / bench / "report.png").stat().st_size > 0
    lm = json.loads((out / "gpt2-bench" / "report.json").read_text())
    assert all(e["quality"]["perplexity"] > 1 for e in lm["artifacts"])

    # The run summary ends with the bench verdict.
    assert "gates: PASSED" in result.stderr
