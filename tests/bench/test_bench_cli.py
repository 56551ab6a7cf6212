"""`compress bench` end to end on tiny models: numbers checked independently, reports, gates, honesty
checks, and every bad input the issue lists (exit 2, a line naming the value, no reports written)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import factories
from compressor.export import ExportConfig, export_onnx
from compressor.manifest import Manifest, StageRecord

FAST = ["--warmup", "1", "--min-runs", "3", "--min-seconds", "0", "--threads", "2", "--bootstrap", "200"]


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig())
    return out


@pytest.fixture(scope="module")
def gpt2_onnx(tiny_gpt2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "gpt2-onnx"
    export_onnx(tiny_gpt2_dir, out, ExportConfig())
    return out


@pytest.fixture(scope="module")
def pruned_bert(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT with the first half of every encoder Linear's rows zeroed (unstructured sparsity)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("bench") / "bert-zeroed"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    zeroed = total = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                if name.startswith("bert.encoder"):
                    rows = module.weight.shape[0] // 2
                    module.weight[:rows] = 0.0
                    zeroed += rows * module.weight.shape[1]
                total += module.weight.numel()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out, zeroed / total


def _independent_accuracy(model_dir: Path, data: Path) -> float:
    """Accuracy computed one sentence at a time with plain transformers, not through bench's code."""
    import csv

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with data.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    correct = 0
    with torch.no_grad():
        for row in rows:
            logits = model(**tokenizer(row["sentence"], return_tensors="pt")).logits
            correct += int(logits.argmax(-1).item() == int(row["label"]))
    return correct / len(rows)


def test_classifier_bench_end_to_end(run_cli, tiny_bert_dir, bert_onnx, sst_file, tmp_path, monkeypatch):
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    reports = tmp_path / "reports"
    result = run_cli(
        "bench", bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file, "--batch-sizes", "1,4", *FAST,
        "--max-accuracy-drop", "100", "--gate", "min-speedup=0.001", "--max-size-mb", "50", "--max-memory-mb", "5000",
        "--max-latency-ms", "10000", "--report-dir", reports, "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((reports / "report.json").read_text()) | {"reports": report["reports"]}
    assert report["schema_version"] == 1 and report["passed"] is True
    assert report["environment"]["threads"] == 2 and report["environment"]["reference_batch"] == 1
    base, onnx_entry = report["baseline"], report["artifacts"][0]
    assert [base["role"], base["format"], onnx_entry["format"]] == ["baseline", "pytorch", "onnx"]

    # Quality: the baseline's accuracy is what plain transformers gets; fp32 ONNX agrees exactly.
    assert base["quality"]["accuracy"] == pytest.approx(_independent_accuracy(tiny_bert_dir, sst_file))
    assert base["quality"]["samples"] == 64
    vs = onnx_entry["quality"]["vs_baseline"]
    assert vs["agreement"] == 1.0 and vs["accuracy_diff_points"] == 0.0 and vs["accuracy_diff_ci95"] == [0.0, 0.0]

    # Latency: both batch sizes, enough runs, ordered percentiles, throughput consistent with the mean.
    for entry in (base, onnx_entry):
        for size in ("1", "4"):
            stats = entry["latency"][size]
            assert stats["runs"] >= 3
            assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
            assert stats["samples_per_s"] == pytest.approx(int(size) / (stats["mean_ms"] / 1e3), rel=1e-6)
    assert base["speedup"] == 1.0
    assert onnx_entry["speedup"] == pytest.approx(base["latency"]["1"]["p50_ms"] / onnx_entry["latency"]["1"]["p50_ms"])

    # Size, parameters, memory.
    # onnxruntime's optimiser stores identical initialisers once (a random tiny model's zero biases and
    # unit LayerNorm weights), so the graph holds slightly fewer values than the PyTorch module.
    assert 0.95 * base["parameters"] <= onnx_entry["parameters"] <= base["parameters"]
    assert base["sparsity"] == onnx_entry["sparsity"] == 0.0
    assert onnx_entry["size_bytes"] == (bert_onnx / "model.onnx").stat().st_size
    for entry in (base, onnx_entry):
        assert entry["memory"]["peak_rss_mb"] >= entry["memory"]["engine_rss_mb"] > 0
    # A fresh ONNX process never imports torch; a contaminated reading would show the parent's peak.
    assert onnx_entry["memory"]["peak_rss_mb"] < base["memory"]["peak_rss_mb"]
    assert onnx_entry["memory"]["peak_rss_mb"] < 250

    # ONNX execution providers: every node ran on the CPU EP that was asked for; no warnings.
    coverage = onnx_entry["provider_coverage"]
    assert list(coverage["nodes_by_provider"]) == ["CPUExecutionProvider"]
    assert coverage["nodes_by_provider"]["CPUExecutionProvider"] > 10
    assert [w for w in report["warnings"] if w["kind"] != "machine-busy"] == []  # (a shared CI box may be busy)

    # Gates: five, all passing, listed on stderr with their numbers.
    assert len(report["gates"]) == 5 and all(g["passed"] for g in report["gates"])
    assert "gate max-size-mb [bert-onnx]: PASS" in result.stderr
    junit = ET.parse(reports / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == 5 and junit.find("testsuite").get("failures") == "0"
    markdown = (reports / "report.md").read_text()
    assert "## compress bench: passed" in markdown and "| bert-onnx | onnx | float |" in markdown
    assert step_summary.read_text() == markdown + "\n"
    assert (reports / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_gate_failure_exits_1_with_each_gate_listed(
    run_cli, tiny_bert_dir, bert_onnx, pruned_bert, sst_file, tmp_path
):
    pruned, expected_sparsity = pruned_bert
    reports = tmp_path / "reports"
    junit = tmp_path / "ci" / "bench-junit.xml"
    result = run_cli(
        "bench", bert_onnx, pruned, "--baseline", tiny_bert_dir, "--data", sst_file, "--batch-sizes", "1", *FAST,
        "--no-memory", "--max-size-mb", "0.01", "--max-accuracy-drop", "100", "--report-dir", reports,
        "--junit", junit, "--json",
    )
    assert result.exit_code == 1, result.output
    size_mb = (bert_onnx / "model.onnx").stat().st_size / 1e6
    expected = f"gate max-size-mb [bert-onnx]: FAIL — weights on disk: {size_mb:.4g} MB, needs <= 0.01 MB"
    assert expected in result.stderr
    assert "gate max-accuracy-drop [bert-onnx]: PASS" in result.stderr
    assert "compress: error: 2 of 4 gates failed: bert-onnx max-size-mb" in result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert [g["passed"] for g in report["gates"]] == [False, True, False, True]
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False, True, False]
    # The zeroed copy: same parameters, the sparsity that was made, the accuracy plain transformers gets.
    base, zeroed = report["baseline"], report["artifacts"][1]
    assert zeroed["parameters"] == base["parameters"] and zeroed["sparsity"] == pytest.approx(expected_sparsity)
    assert zeroed["quality"]["accuracy"] == pytest.approx(_independent_accuracy(pruned, sst_file))
    assert not (reports / "junit.xml").exists()  # --junit chose where it goes
    assert "**FAIL**" in (reports / "report.md").read_text()


def test_lm_bench_perplexity_and_decode(run_cli, tiny_gpt2_dir, gpt2_onnx, corpus_file, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    result = run_cli(
        "bench", gpt2_onnx, "--baseline", tiny_gpt2_dir, "--data", corpus_file, "--batch-sizes", "1,2", *FAST,
        "--no-memory", "--decode-tokens", "4", "--max-length", "64", "--max-perplexity-increase", "0.5",
        "--max-samples", "16", "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    base, onnx_entry = report["baseline"], report["artifacts"][0]
    assert report["task"] == "causal-lm"
    # Perplexity: the same number transformers' own loss gives on the same 64-token blocks.
    from compressor.data import DataSpec, load_texts
    from compressor.data.batching import lm_blocks
    from compressor.loading import load_tokenizer

    texts = load_texts(DataSpec(str(corpus_file)))
    blocks = lm_blocks(load_tokenizer(tiny_gpt2_dir), texts, block_size=64, max_blocks=16)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    with torch.no_grad():
        ids = torch.from_numpy(blocks)
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert base["quality"]["blocks"] == 16 and base["quality"]["tokens"] == 16 * 63
    assert base["quality"]["perplexity"] == pytest.approx(np.exp(loss), rel=1e-4)
    vs = onnx_entry["quality"]["vs_baseline"]
    assert abs(vs["perplexity_increase_pct"]) < 1e-3 and vs["agreement"] == 1.0
    for entry in (base, onnx_entry):
        for size in ("1", "2"):
            prefill, decode = entry["latency"][size], entry["decode"][size]
            assert prefill["sequence_length"] == 64 and decode["prompt_length"] == 64  # fits 64 + 4 in 128 positions
            assert decode["runs"] == prefill["runs"] * 4  # every generated token is a sample
            assert decode["tokens_per_s"] == pytest.approx(int(size) / (decode["mean_ms"] / 1e3), rel=1e-6)
    assert onnx_entry["decode_speedup"] > 0
    assert report["gates"][0]["gate"] == "max-perplexity-increase" and report["gates"][0]["passed"]
    assert "decode" in result.stderr and "ms/token" in result.stderr


@pytest.fixture(scope="module")
def slow_quantized(tmp_path_factory, bert_onnx):
    """An ONNX model 4x deeper and 4x wider than its recorded float parent (the tiny BERT ONNX), with
    a quantize stage in its lineage: a "quantized" artifact that is certainly slower than its parent."""
    root = tmp_path_factory.mktemp("bench")
    big = factories.tiny_bert(root / "big", layers=8, hidden=128)
    out = root / "int8-slow"
    export_onnx(big, out, ExportConfig())
    manifest = Manifest.read(out)
    manifest.stages.append(StageRecord(
        stage="quantize", source_path=str(bert_onnx), source_hash="sha256:test", config={"method": "int8-dynamic"},
        report={}, seed=0, wall_time_s=0.1, started_at="2026-01-01T00:00:00+00:00",
    ))
    manifest.write(out)
    return out


def test_quantized_slower_than_float_parent_warns(run_cli, tiny_bert_dir, slow_quantized, bert_onnx, sst_file):
    result = run_cli(
        "bench", slow_quantized, "--baseline", tiny_bert_dir, "--data", sst_file, "--batch-sizes", "1",
        *FAST, "--min-runs", "10", "--no-memory", "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    entry = report["artifacts"][0]
    assert entry["precision"] == "int8-dynamic" and entry["lineage"] == ["export-onnx", "quantize"]
    # The parent was not among the benched models: it was timed at the reference batch for the check.
    assert [p["role"] for p in report["parents"]] == ["parent"] and list(report["parents"][0]["latency"]) == ["1"]
    assert entry["float_parent"]["compared"] is True
    kinds = [w["kind"] for w in report["warnings"] if w["kind"] != "machine-busy"]
    assert kinds == ["quantized-slower-than-float"]
    assert "int8-slow is quantized but slower than its float parent bert-onnx (float parent)" in result.stderr


# ------------------------------------------------------------------------------------ bad inputs


def _bad(run_cli, tmp_path, *args):
    reports = tmp_path / "reports"
    result = run_cli("bench", *args, "--report-dir", reports, *FAST)
    assert result.exit_code == 2, result.output
    assert not reports.exists()
    assert "Traceback" not in result.output
    return result.stderr


def test_bad_artifact_missing(run_cli, tiny_bert_dir, sst_file, tmp_path):
    err = _bad(run_cli, tmp_path, tmp_path / "nope", "--baseline", tiny_bert_dir, "--data", sst_file)
    assert f"artifact {tmp_path / 'nope'}: no such file or directory" in err


def test_bad_not_an_artifact(run_cli, tiny_bert_dir, sst_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _bad(run_cli, tmp_path, empty, "--baseline", tiny_bert_dir, "--data", sst_file)
    assert f"{empty}: no config.json" in err
    err = _bad(run_cli, tmp_path, sst_file, "--baseline", tiny_bert_dir, "--data", sst_file)
    assert f"{sst_file}: not a directory" in err


def test_bad_baseline_of_another_task(run_cli, tiny_bert_dir, tiny_gpt2_dir, sst_file, tmp_path):
    err = _bad(run_cli, tmp_path, tiny_bert_dir, "--baseline", tiny_gpt2_dir, "--data", sst_file)
    assert f"{tiny_bert_dir}: task text-classification differs from the baseline's ({tiny_gpt2_dir}: causal-lm)" in err


def test_bad_classifier_data_without_label_column(run_cli, tiny_bert_dir, bert_onnx, tmp_path):
    data = factories.write_sst(tmp_path / "nolabel.tsv", rows=8, label_column="polarity")
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", data)
    assert f"{data}: label column 'label' not found; columns are: sentence, polarity" in err


def test_bad_cuda_without_gpu(run_cli, tiny_bert_dir, bert_onnx, sst_file, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file, "--device", "cuda")
    assert "--device cuda: no CUDA GPU is available" in err


def test_bad_empty_data(run_cli, tiny_bert_dir, bert_onnx, tiny_gpt2_dir, tmp_path):
    header_only = tmp_path / "empty.tsv"
    header_only.write_text("sentence\tlabel\n")
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", header_only)
    assert f"{header_only}: no rows; the data file is empty" in err
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    err = _bad(run_cli, tmp_path, tiny_gpt2_dir, "--baseline", tiny_gpt2_dir, "--data", blank)
    assert f"{blank}: no rows; the data file is empty" in err


def test_bad_unknown_gate(run_cli, tiny_bert_dir, bert_onnx, sst_file, tmp_path):
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file,
               "--gate", "max-acuracy-drop=1")
    assert "unknown gate 'max-acuracy-drop'; known gates: max-accuracy-drop" in err
    config = tmp_path / "bench.yaml"
    config.write_text("max_accuracy_drop: 1.0\nmax_latency: 5\n")
    result = run_cli("bench", bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file, "--config", config)
    assert result.exit_code == 2 and "unknown option 'max_latency'" in result.output


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-accuracy-drop", "150", "--max-accuracy-drop 150.0: out of range; expected a value in [0, 100]"),
        ("--max-accuracy-drop", "-1", "--max-accuracy-drop -1.0: out of range"),
        ("--min-speedup", "0", "--min-speedup 0.0: out of range; expected a value in (0,"),
        ("--gate", "max-size-mb=-5", "--max-size-mb -5: out of range"),
        ("--gate", "max-memory-mb=lots", "--max-memory-mb 'lots': not a number"),
    ],
)
def test_bad_gate_value_out_of_range(run_cli, tiny_bert_dir, bert_onnx, sst_file, tmp_path, flag, value, message):
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file, flag, value)
    assert message in err


def test_bad_gate_for_the_other_task(run_cli, tiny_gpt2_dir, corpus_file, tmp_path):
    err = _bad(run_cli, tmp_path, tiny_gpt2_dir, "--baseline", tiny_gpt2_dir, "--data", corpus_file,
               "--max-accuracy-drop", "1")
    assert "--max-accuracy-drop: applies to classifiers" in err and "causal-lm" in err


def test_bad_batch_sizes(run_cli, tiny_bert_dir, bert_onnx, sst_file, tmp_path):
    err = _bad(run_cli, tmp_path, bert_onnx, "--baseline", tiny_bert_dir, "--data", sst_file, "--batch-sizes", "1,0")
    assert "--batch-sizes '1,0': batch size 0 out of range" in err


@pytest.mark.slow
def test_real_teacher_accuracy_matches_its_card(run_cli, tmp_path):
    """The SST-2 teacher's dev accuracy through bench is the 89.56% its README states."""
    from conftest import ASSETS

    teacher = ASSETS / "teachers" / "minilm-l6-sst2"
    result = run_cli("bench", teacher, "--baseline", teacher, "--data", ASSETS / "glue" / "SST-2" / "dev.tsv",
                     "--batch-sizes", "1", *FAST, "--no-memory", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["baseline"]["quality"]["samples"] == 872
    assert report["baseline"]["quality"]["accuracy"] == pytest.approx(0.8956, abs=5e-4)


def test_bad_too_little_text_for_one_block(run_cli, tiny_gpt2_dir, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("the film was good.\n")
    err = _bad(run_cli, tmp_path, tiny_gpt2_dir, "--baseline", tiny_gpt2_dir, "--data", short)
    assert f"{short}: text has" in err and "fewer than one block of 128" in err


def test_bad_truncated_weights_fail_before_any_timing(run_cli, tiny_bert_dir, bert_copy, sst_file, tmp_path):
    weights = bert_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    err = _bad(run_cli, tmp_path, bert_copy, "--baseline", tiny_bert_dir, "--data", sst_file)
    assert f"{weights}: corrupt or truncated safetensors file" in err
    assert "timing" not in err  # nothing was measured first


def test_precision_of_a_graph_quantized_by_another_tool_is_read_from_its_ops(bert_onnx, tmp_path):
    """A peer's INT8 graph has no quantize record in any lineage: bench must not call it float."""
    import onnx
    from onnx import TensorProto, helper

    from compressor.bench.checks import graph_precision

    assert graph_precision(bert_onnx / "model.onnx") == "float"

    def graph_with(op: str, domain: str = "") -> Path:
        node = helper.make_node(op, ["a", "b"], ["c"], domain=domain)
        value = helper.make_tensor_value_info
        graph = helper.make_graph([node], "g", [value("a", TensorProto.UINT8, [1, 4]), value("b", TensorProto.UINT8, [4, 4])],
                                  [value("c", TensorProto.INT32, [1, 4])])
        path = tmp_path / f"{op}.onnx"
        onnx.save(helper.make_model(graph), str(path))
        return path

    assert graph_precision(graph_with("MatMulInteger")) == "int8 (graph)"
    assert graph_precision(graph_with("MatMulNBits", "com.microsoft")) == "int4 (graph)"
