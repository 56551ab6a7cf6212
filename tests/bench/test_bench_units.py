"""bench's pure parts on plain numbers: statistics, bootstrap intervals, gates, reports, weight stats."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from compressor import metrics
from compressor.bench import checks, gates, quality, reports, timing
from compressor.bench.config import BenchConfig, check_gate_value, gate_name, parse_batch_sizes, parse_gate
from compressor.data import DataSpec
from compressor.errors import BadInputError

# ------------------------------------------------------------------------------------ timing


def test_summarize_matches_numpy_percentiles():
    samples = np.linspace(0.001, 0.1, 100)  # 1..100 ms
    stats = timing.summarize(samples)
    ms = samples * 1e3
    assert stats["runs"] == 100
    assert stats["p50_ms"] == pytest.approx(np.percentile(ms, 50))
    assert stats["p90_ms"] == pytest.approx(np.percentile(ms, 90))
    assert stats["p99_ms"] == pytest.approx(np.percentile(ms, 99))
    assert stats["mean_ms"] == pytest.approx(ms.mean())
    assert stats["std_ms"] == pytest.approx(ms.std(ddof=1))
    assert stats["min_ms"] == pytest.approx(1.0) and stats["max_ms"] == pytest.approx(100.0)


def test_run_loop_warmup_is_not_sampled_and_min_runs_holds():
    calls = []

    def call(i):
        calls.append(i)
        return 0.5 if i < 3 else 0.001 * i  # warm-up calls are slow; they must not be samples

    samples = timing.run_loop(call, warmup=3, min_runs=5, min_seconds=0)
    assert calls == list(range(8))  # indices keep counting through warm-up, for cycling inputs
    assert samples == [0.001 * i for i in range(3, 8)]


def test_run_loop_min_seconds_extends_runs():
    samples = timing.run_loop(lambda i: 0.0, warmup=0, min_runs=1, min_seconds=0.05)
    assert len(samples) > 1  # kept going for 50 ms of wall time


def test_side_by_side_times_each_fn_in_blocks_alternating_order():
    calls: list[tuple[str, int]] = []
    fns = {name: (lambda n: lambda x: calls.append((n, x)))(name) for name in ("a", "b")}
    times = timing.side_by_side(fns, [0, 1, 2], warmup=1, rounds=2)
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6}
    assert all(t >= 0 for v in times.values() for t in v)
    # Round 1: a's warm-up then its block, then b's; round 2 reversed. Never a, b, a, b call by call.
    assert [n for n, _ in calls] == ["a"] * 4 + ["b"] * 4 + ["b"] * 4 + ["a"] * 4
    assert [x for _, x in calls[:4]] == [0, 0, 1, 2]


def test_classifier_timing_covers_every_latency_batch_once():
    from compressor.bench.stage import _time_forward

    class Runner:
        def __init__(self):
            self.seen: list[int] = []

        def prepare(self, batch):
            return batch

        def time_forward(self, batch):
            self.seen.append(int(batch["row"]))
            return 0.001

    runner = Runner()
    config = BenchConfig(baseline="b", data=DataSpec("d"), warmup=3, min_runs=5, min_seconds=0.0)
    samples = _time_forward(runner, [{"row": i} for i in range(50)], config)
    assert len(samples) == 50  # more than --min-runs 5: one pass over all 50 batches
    assert sorted(runner.seen[3:]) == list(range(50))  # after 3 warm-up calls, each row timed once


def test_throughput_is_items_over_total_time():
    assert timing.throughput([8, 8], [0.5, 0.5]) == pytest.approx(16.0)


# ----------------------------------------------------------------------------------- quality


def test_classification_identical_predictions_have_zero_interval():
    y = np.array([0, 1] * 50)
    pred = y.copy()
    pred[:10] = 1 - pred[:10]
    vs = quality.classification_vs_baseline(pred, pred, y, 2, resamples=200)
    assert vs["accuracy_diff_points"] == 0.0 and vs["accuracy_diff_ci95"] == [0.0, 0.0]
    assert vs["accuracy_drop_points"] == 0.0 and str(vs["accuracy_drop_points"]) == "0.0"  # no "-0"
    assert vs["agreement"] == 1.0


def test_classification_difference_and_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    base = y.copy()
    cand = y.copy()
    cand[:40] = 1 - cand[:40]  # exactly 10 points worse
    vs = quality.classification_vs_baseline(cand, base, y, 2, resamples=2000, seed=3)
    assert vs["accuracy_drop_points"] == pytest.approx(10.0)
    low, high = vs["accuracy_drop_ci95"]
    assert low < 10.0 < high
    assert 6.0 < low and high < 14.0  # binomial SE at n=400 is ~1.5 points
    assert vs["agreement"] == pytest.approx(0.9)
    assert vs["macro_f1_diff_points"] < 0
    scores = quality.classification_scores(cand, y, 2)
    assert scores["accuracy"] == pytest.approx(0.9) and scores["samples"] == 400


def test_macro_f1_rows_agrees_with_macro_f1():
    rng = np.random.default_rng(0)
    pred, y = rng.integers(0, 3, (5, 50)), rng.integers(0, 3, (5, 50))
    rows = metrics.macro_f1_rows(pred, y, 3)
    assert rows == pytest.approx([metrics.macro_f1(p, t, 3) for p, t in zip(pred, y)])


def test_lm_perplexity_increase():
    base = np.full(50, np.log(100.0))
    cand = base + np.log(1.05)  # every block 5% more perplexed
    scores = quality.lm_scores(cand, tokens_per_block=127)
    assert scores["perplexity"] == pytest.approx(105.0) and scores["tokens"] == 50 * 127
    vs = quality.lm_vs_baseline(cand, base, agreement=0.97, resamples=200)
    assert vs["perplexity_increase_pct"] == pytest.approx(5.0)
    assert vs["perplexity_increase_ci95"] == pytest.approx([5.0, 5.0])
    noisy = cand + np.random.default_rng(0).normal(0, 0.05, 50)
    low, high = quality.lm_vs_baseline(noisy, base, agreement=1.0)["perplexity_increase_ci95"]
    assert low < high


# ------------------------------------------------------------------------------------- gates


def test_gate_names_and_values():
    assert gate_name("--max_accuracy_drop") == "max-accuracy-drop"
    assert parse_gate("min-speedup=1.5") == ("min-speedup", 1.5)
    with pytest.raises(BadInputError, match="unknown gate 'max-acuracy-drop'"):
        parse_gate("max-acuracy-drop=1")
    with pytest.raises(BadInputError, match="expected NAME=VALUE"):
        parse_gate("min-speedup")
    with pytest.raises(BadInputError, match="out of range"):
        check_gate_value("max-accuracy-drop", 101)
    with pytest.raises(BadInputError, match="out of range"):
        check_gate_value("min-speedup", 0)
    with pytest.raises(BadInputError, match="not a number"):
        check_gate_value("max-size-mb", "big")
    with pytest.raises(BadInputError, match="finite"):
        check_gate_value("max-latency-ms", float("nan"))
    assert check_gate_value("max-accuracy-drop", 0) == 0.0  # zero drop allowed: a strict gate


def test_config_validation():
    spec = DataSpec(path="x.tsv")
    assert parse_batch_sizes("8, 1,8") == (1, 8)
    with pytest.raises(BadInputError, match="--batch-sizes '1,x'"):
        BenchConfig(baseline="b", data=spec, batch_sizes="1,x")
    with pytest.raises(BadInputError, match="--min-runs 0"):
        BenchConfig(baseline="b", data=spec, min_runs=0)
    with pytest.raises(BadInputError, match="--max-memory-mb needs"):
        BenchConfig(baseline="b", data=spec, gates={"max-memory-mb": 100}, measure_memory=False)
    config = BenchConfig(baseline="b", data=spec, batch_sizes=(4, 16), threads=3)
    assert config.reference_batch == 4 and config.to_dict()["threads"] == 3


def _entry(name="int8", **overrides):
    entry = {
        "name": name, "role": "artifact", "format": "onnx", "precision": "int8", "size_mb": 20.0,
        "parameters": 22_000_000, "sparsity": 0.0, "memory": {"peak_rss_mb": 300.0},
        "latency": {"1": {"p50_ms": 4.0, "p90_ms": 5.0, "samples_per_s": 250.0},
                    "8": {"p50_ms": 20.0, "p90_ms": 22.0, "samples_per_s": 400.0}},
        "speedup": 2.0,
        "quality": {"samples": 872, "accuracy": 0.89, "macro_f1": 0.889,
                    "vs_baseline": {"accuracy_diff_points": -0.6, "accuracy_diff_ci95": [-1.4, 0.1],
                                    "accuracy_drop_points": 0.6, "accuracy_drop_ci95": [-0.1, 1.4],
                                    "macro_f1_diff_points": -0.5, "macro_f1_diff_ci95": [-1.3, 0.2],
                                    "agreement": 0.98}},
    }
    entry.update(overrides)
    return entry


def test_evaluate_gates_with_numbers():
    results = gates.evaluate(
        _entry(),
        {"max-accuracy-drop": 1.0, "min-speedup": 2.5, "max-latency-ms": 5.0, "max-size-mb": 19.0,
         "max-memory-mb": 400},
        reference_batch=1,
    )
    verdicts = {r.gate: (r.passed, r.value) for r in results}
    assert verdicts == {
        "max-accuracy-drop": (True, 0.6),
        "min-speedup": (False, 2.0),
        "max-latency-ms": (True, 5.0),  # p90 at batch 1; equal to the bound passes
        "max-size-mb": (False, 20.0),
        "max-memory-mb": (True, 300.0),
    }
    speed = next(r for r in results if r.gate == "min-speedup")
    assert "2 x" in speed.detail and ">= 2.5 x" in speed.detail
    accuracy = next(r for r in results if r.gate == "max-accuracy-drop")
    assert not accuracy.ci_supports_verdict  # 1.0 lies inside [-0.1, 1.4]
    warnings = checks.ci_warnings(results)
    assert len(warnings) == 1 and warnings[0]["kind"] == "ci-too-wide" and "[-0.1, 1.4]" in warnings[0]["message"]


def test_unmeasured_gate_fails():
    result = gates.evaluate(_entry(memory=None), {"max-memory-mb": 100}, reference_batch=1)[0]
    assert not result.passed and "not measured" in result.detail


# ------------------------------------------------------------------------------------ checks


def test_provider_coverage_counts_unique_nodes():
    def node(name, dur, provider, op):
        return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur, "args": {"provider": provider, "op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run"},
        node("MatMul_1", 30, "CUDAExecutionProvider", "MatMul"),
        node("MatMul_1", 30, "CUDAExecutionProvider", "MatMul"),  # a second run of the same node
        node("DynQ_2", 40, "CPUExecutionProvider", "DynamicQuantizeLinear"),
        {"cat": "Node", "name": "MatMul_1_fence_before", "dur": 1, "args": {}},
    ]
    coverage = checks.provider_coverage(events)
    assert coverage["nodes_by_provider"] == {"CPUExecutionProvider": 1, "CUDAExecutionProvider": 1}
    assert coverage["op_types_by_provider"]["CPUExecutionProvider"] == {"DynamicQuantizeLinear": 1}
    assert coverage["time_share_by_provider"]["CPUExecutionProvider"] == pytest.approx(0.4)
    found = checks.provider_warnings("int8", "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], coverage)
    assert [w["kind"] for w in found] == ["nodes-off-requested-provider"]
    assert "1 of 2 nodes did not run on CUDAExecutionProvider" in found[0]["message"]
    assert "DynamicQuantizeLinear x1" in found[0]["message"]
    missing = checks.provider_warnings("int8", "cuda", ["CPUExecutionProvider"], None)
    assert [w["kind"] for w in missing] == ["execution-provider-missing"]
    all_cpu = {"nodes_by_provider": {"CPUExecutionProvider": 9}, "op_types_by_provider": {}}
    assert checks.provider_warnings("fp32", "cpu", ["CPUExecutionProvider"], all_cpu) == []


def test_slower_than_parent():
    assert checks.slower_than_parent("int8", 4.0, "fp32", 5.0, 1) is None
    note = checks.slower_than_parent("int8", 6.0, "fp32", 5.0, 1)
    assert note["kind"] == "quantized-slower-than-float" and "1.20x" in note["message"]


def test_machine_busy_warning():
    assert checks.machine_busy_warning(0.2, 2, 2) is None  # background noise
    assert checks.machine_busy_warning(1.0, 8, 2) is None  # room for everyone
    note = checks.machine_busy_warning(1.5, 2, 2)
    assert note["kind"] == "machine-busy" and "1.5 of 2 CPUs busy while benching with 2 threads" in note["message"]
    sample = checks.busy_cpus(0.05)
    if sample is not None:  # Linux
        busy, cpus = sample
        assert 0.0 <= busy <= cpus and cpus == checks.cpu_count()


# ----------------------------------------------------------------------------------- reports


def _report(passed=False):
    base = _entry(name="teacher", role="baseline", precision="float", speedup=1.0,
                  quality={"samples": 872, "accuracy": 0.8956, "macro_f1": 0.895})
    slow = _entry(name="slow", speedup=0.5, latency={"1": {"p50_ms": 16.0, "p90_ms": 17.0}},
                  quality={"samples": 872, "accuracy": 0.85, "macro_f1": 0.85,
                           "vs_baseline": {"accuracy_diff_points": -4.56, "accuracy_diff_ci95": [-6.0, -3.0],
                                           "agreement": 0.9}})
    results = gates.evaluate(_entry(), {"max-accuracy-drop": 1.0, "min-speedup": 2.5}, 1)
    return {
        "schema_version": reports.SCHEMA_VERSION, "passed": passed, "task": "text-classification",
        "environment": {"device": "cpu", "threads": 2, "reference_batch": 1},
        "config": {"batch_sizes": [1, 8], "data": {"path": "dev.tsv"}},
        "baseline": base, "artifacts": [_entry(), slow], "parents": [],
        "gates": [r.to_dict() for r in results],
        "warnings": [{"kind": "ci-too-wide", "artifact": "int8", "message": "int8: too wide"}],
    }


def test_pareto_front():
    # (latency, accuracy): the slow-and-worse point is dominated; ties on both are kept.
    points = [(10.0, 90.0), (4.0, 89.4), (16.0, 85.0), (2.0, 80.0)]
    assert reports.pareto_front(points, higher_is_better=True) == [3, 1, 0]
    # perplexity: lower is better
    assert reports.pareto_front([(10.0, 100.0), (5.0, 110.0), (6.0, 120.0)], higher_is_better=False) == [1, 0]


def test_junit_has_one_case_per_gate_with_failures():
    root = ET.fromstring(reports.junit_xml(_report()))
    cases = root.findall(".//testcase")
    assert len(cases) == 2
    assert root.find("testsuite").get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("name") == "min-speedup >= 2.5"
    assert "needs >= 2.5" in failed[0].find("failure").get("message")


def test_markdown_table_and_files(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = _report()
    written = reports.write_reports(report, str(tmp_path / "out"), None)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## compress bench: FAILED" in text
    assert "| teacher (baseline) | onnx |" in text
    assert "89.00% / F1 88.90 (-0.60 pt [-1.40, +0.10])" in text
    assert "| min-speedup | int8 | 2 x | 2.5 x | **FAIL** |" in text
    assert "- int8: too wide" in text
    assert summary.read_text().startswith("earlier step\n## compress bench: FAILED")  # appended, not replaced
    assert json.loads((tmp_path / "out" / "report.json").read_text())["schema_version"] == 1
    assert (tmp_path / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(written) == {"json", "markdown", "plot", "junit", "step_summary"}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left
