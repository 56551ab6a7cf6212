"""compress auto on tiny models: a short search end to end, resume, the recipe it hands to CI, and the
bad inputs (exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import factories

# Small enough for a tiny model: two short distillation lengths, fast timing.
FAST = ("--distill-steps", "2,4", "--batch-size", "16", "--max-length", "32", "--bench-seconds", "0",
        "--threads", "1", "--time-budget", "30m", "--finalist-seconds", "0", "--embeddings", "int4")  # --trials ends the search; a loaded machine must not stop it


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto-data")
    return (factories.write_sst(root / "train.tsv", rows=64, seed=1), factories.write_sst(root / "dev.tsv", rows=80, seed=2),
            factories.write_sst(root / "test.tsv", rows=32, seed=3))


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir, split):
    """One search of two trials, shared by the tests that read its outputs."""
    from click.testing import CliRunner

    from compressor.cli.main import cli

    train, dev, test = split
    out = tmp_path_factory.mktemp("auto-run") / "run"
    result = CliRunner().invoke(cli, ["auto", str(tiny_bert_dir), "--data", str(train), "--eval-data", str(dev),
                                      "--test-data", str(test), "--max-accuracy-drop", "100", "--objective",
                                      "latency", "-o", str(out), "--trials", "2", "--json", *FAST])
    return out, result


def test_search_writes_front_plot_winner_recipe_and_baseline(searched):
    out, result = searched
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["trials"]["total"] == 2
    front = json.loads((out / "pareto.json").read_text())
    assert front["front"] and len(front["trials"]) == 2
    assert (out / "pareto.md").read_text().startswith("# compress auto")
    assert (out / "pareto.png").stat().st_size > 0
    winner = report["winner"]
    assert (out / "winner" / "compress.json").is_file()
    assert winner["final"]["split"] == "test" and winner["final"]["data"].endswith("test.tsv")
    baseline = json.loads((out / "baseline" / "report.json").read_text())
    assert baseline["artifacts"][0]["latency"]["1"]["p50_ms"] > 0
    state = json.loads((out / "auto.json").read_text())
    assert state["teacher"]["hash"] and (out / "study.db").is_file()
    # Every distillation keeps the teacher's outputs in the run's cache for the next trial.
    assert list((out / "teacher-cache").glob("teacher-*.pt"))
    # --embeddings int4: every ONNX INT8 trial quantizes its tables to INT4 in blocks tiling the width (32)
    onnx_int8 = [t.read_text() for t in (out / "trials").glob("*.yaml")]
    onnx_int8 = [t for t in onnx_int8 if "run: export-onnx" in t and ("int8-dynamic" in t or "int8-static" in t)]
    assert onnx_int8  # the first trial is the project recipe's shape: ONNX int8-dynamic
    assert all("embeddings: int4" in text and "block-size: 32" in text for text in onnx_int8), onnx_int8
    if (out / "winner" / "model.onnx").is_file() and "int8" in winner["configuration"]:
        import onnx

        ops = {n.op_type for n in onnx.load(str(out / "winner" / "model.onnx")).graph.node}
        assert "GatherBlockQuantized" in ops


def test_trials_never_see_the_confirmation_rows_and_finalists_are_retimed(searched, split):
    out, result = searched
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    held = report["holdout"]
    assert (held["search_rows"], held["confirm_rows"]) == (56, 24)  # 30% of the 80 dev rows held out
    dev_rows = split[1].read_text().splitlines()
    search_rows = Path(held["search"]).read_text().splitlines()
    confirm_rows = Path(held["confirm"]).read_text().splitlines()
    assert search_rows[0] == confirm_rows[0] == dev_rows[0]  # the header kept on both
    # Every dev row in exactly one part (the multiset of rows: the generated data repeats some sentences).
    assert sorted(search_rows[1:] + confirm_rows[1:]) == sorted(dev_rows[1:])
    for trial in (out / "trials").glob("*.yaml"):  # every trial's bench scored the search rows only
        assert held["search"] in trial.read_text() and held["confirm"] not in trial.read_text()
    finalists = report["finalists"]
    assert {f["trial"] for f in finalists} == {0, 1}  # both trials within the (wide) budget, one group
    for f in finalists:
        assert len(f["objective_rounds"]) == 5 and f["objective"] > 0 and f["confirmed"]
        # the best round decides (interference only adds time); the median is kept for the record
        assert f["objective"] == min(f["objective_rounds"]) <= f["objective_median"] <= max(f["objective_rounds"])
    winner = report["winner"]
    chosen = next(f for f in finalists if f["trial"] == winner["trial"])
    fastest = min(f["objective"] for f in finalists)
    assert chosen["objective"] <= fastest * 1.05 and chosen["size_mb"] > 0  # within --finalist-tie of the fastest
    tied = [f for f in finalists if f["objective"] <= fastest * 1.05]
    assert chosen["size_mb"] == min(f["size_mb"] for f in tied)
    assert winner["confirmation"] == chosen
    assert (out / "finalists" / "group-1" / "round-5" / "report.json").is_file()


def test_recipe_validates_and_reproduces_the_winner(searched, run_cli, tmp_path):
    out, result = searched
    assert result.exit_code == 0, result.output
    recipe = out / "recipe.yaml"
    dry = run_cli("run", recipe, "--out", tmp_path / "repro", "--dry-run")
    assert dry.exit_code == 0, dry.output
    run = run_cli("run", recipe, "--out", tmp_path / "repro", "--json")
    assert run.exit_code == 0, run.output
    stages = json.loads(run.stdout)["stages"]
    final = [s for s in stages if s["run"] != "bench"][-1]
    rebuilt = Path(final["output"])
    manifest = json.loads((rebuilt / "compress.json").read_text())
    winner_manifest = json.loads((out / "winner" / "compress.json").read_text())
    # Same stages with the same settings, and the same weights (seeded, same machine).
    assert [s["stage"] for s in manifest["stages"]] == [s["stage"] for s in winner_manifest["stages"]]
    assert [s["config"] for s in manifest["stages"]] == [s["config"] for s in winner_manifest["stages"]]
    weights = sorted(p.name for p in (out / "winner").iterdir() if p.suffix in (".onnx", ".safetensors"))
    assert weights
    for name in weights:
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            a, b = load_file(str(out / "winner" / name)), load_file(str(rebuilt / name))
            assert all((a[k] == b[k]).all() for k in a)
        else:  # the ONNX graph: same initializers
            import onnx
            from onnx import numpy_helper

            a, b = onnx.load(str(out / "winner" / name)), onnx.load(str(rebuilt / name))
            wa = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
            wb = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
            assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_resume_continues_the_study(searched, run_cli, tiny_bert_dir, split, tmp_path):
    out, result = searched
    assert result.exit_code == 0, result.output
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    train, dev, _ = split
    again = run_cli("auto", tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "100",
                    "-o", copy, "--resume", "--trials", "1", "--json", *FAST)
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout[again.stdout.index("{"):])
    assert report["trials"]["total"] == 3 and report["trials"]["this_run"] == 1
    assert len(json.loads((copy / "auto.json").read_text())["invocations"]) == 2


# -- bad inputs: exit 2, one line naming the option, nothing written -----------------------------------

def _bad(run_cli, out, *args):
    result = run_cli("auto", *args, "-o", out)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("compress: error:"), result.stderr
    return message[0]


def test_no_budget(run_cli, tiny_bert_dir, split, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    assert "no quality budget" in _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev)
    assert not out.exists()


def test_budget_of_the_wrong_kind(run_cli, tiny_bert_dir, split, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-perplexity-increase", "5")
    assert "--max-perplexity-increase" in line and "--max-accuracy-drop" in line
    assert not out.exists()


def test_time_budget_below_one_trial(run_cli, tiny_bert_dir, split, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "1",
                "--time-budget", "20s")
    assert "--time-budget 20s" in line and "minimum of 1m" in line
    assert not out.exists()


def test_test_data_of_another_task(run_cli, tiny_bert_dir, split, corpus_file, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--test-data", corpus_file,
                "--max-accuracy-drop", "1")
    assert "--test-data" in line and "text-classification" in line
    assert not out.exists()


def test_no_distillation_without_a_student(run_cli, tiny_bert_dir, split, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "1",
                "--distill-steps", "0")
    assert "--distill-steps 0" in line and "--student" in line
    assert not out.exists()


def test_resume_with_another_teacher(searched, run_cli, tmp_path, split):
    out, result = searched
    assert result.exit_code == 0, result.output
    other = factories.tiny_bert(tmp_path / "other", seed=7)
    before = sorted(p.name for p in out.iterdir())
    train, dev, _ = split
    line = _bad(run_cli, out, other, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "100", "--resume")
    assert "--resume" in line and "teacher" in line
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_with_other_confirmation_rows(searched, run_cli, tmp_path, split, tiny_bert_dir):
    out, result = searched
    assert result.exit_code == 0, result.output
    before = sorted(p.name for p in out.iterdir())
    train, dev, _ = split
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "100",
                "--resume", "--confirm-fraction", "0.5")
    assert "--confirm-fraction 0.5" in line and "0.3" in line
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("case", ["size-below-minimum", "size-with-vocab-off", "missing-vocab-data",
                                  "missing-recover-data", "prune-share-of-one"])
def test_bad_vocabulary_and_recovery_options(case, run_cli, tiny_bert_dir, split, tmp_path):
    train, dev, _ = split
    out = tmp_path / "run"
    extra, expect = {
        "size-below-minimum": (["--vocab-size", "3"], "--vocab-size 3: below the 11 tokens"),
        "size-with-vocab-off": (["--vocab", "off", "--vocab-size", "500"], "--vocab-size: --vocab off"),
        "missing-vocab-data": (["--vocab-data", str(tmp_path / "nope.txt")], "--vocab-data"),
        "missing-recover-data": (["--recover-data", str(tmp_path / "gone.tsv")], "--recover-data"),
        "prune-share-of-one": (["--prune-heads", "0.5,1"], "--prune-heads '0.5,1': shares removed must be in [0, 1)"),
    }[case]
    line = _bad(run_cli, out, tiny_bert_dir, "--data", train, "--eval-data", dev, "--max-accuracy-drop", "1", *extra)
    assert expect in line
    assert not out.exists()
