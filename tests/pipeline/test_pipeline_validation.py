"""A recipe is checked whole before any stage runs (options through the stages' own parsers and typed
configs, input artifacts, data files); the run directory is created only after that; every stage's
report lands in run.json and in ``run --json``."""

from __future__ import annotations

import json

import pytest

GOOD = """\
name: tiny
inputs:
  teacher: {teacher}
stages:
  - name: onnx
    run: export-onnx
    from: teacher
    with: {{optimize: O1, parity-samples: 8}}
  - name: int8
    run: quantize
    from: onnx
    with: {{method: int8-dynamic}}
  - name: pruned
    run: prune
    from: teacher
    with: {{method: "{prune_method}"}}
  - name: bench
    run: bench
    artifacts: [onnx, int8]
    baseline: teacher
    with: {{data: "{data}", batch-sizes: "1", threads: 1, warmup: 0, min-runs: 2, min-seconds: 0,
           max-samples: 16, bootstrap: 100, no-memory: true, max-accuracy-drop: 100}}
"""


def _recipe(tmp_path, tiny_bert_dir, sst_file, **fields):
    values = {"teacher": tiny_bert_dir, "data": sst_file, "prune_method": "heads=0.25"} | fields
    path = tmp_path / "r.yaml"
    path.write_text(GOOD.format(**values))
    return path


@pytest.mark.parametrize("change, message", [
    ({"prune_method": "heads=1.5"}, "heads=1.5"),
    ({"prune_method": "bogus=0.5"}, "bogus"),
])
def test_a_bad_value_in_a_later_stage_fails_before_any_stage_runs(run_cli, tmp_path, tiny_bert_dir, sst_file,
                                                                  change, message):
    path = _recipe(tmp_path, tiny_bert_dir, sst_file, **change)
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.stderr and "stage 'pruned'" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, message", [
    ("parity-samples", "0", "--parity-samples 0: out of range"),
    ("parity-samples", "many", "--parity-samples: 'many' is not a valid integer"),
    ("atol", ".nan", "--atol nan: must be a finite number"),
    ("optimize", "O9", "--optimize 'O9': unknown level; choose one of"),
    ("parity-data", "missing.tsv", "--parity-data missing.tsv: no such data file"),
])
def test_option_values_are_checked_by_the_stage_parser(run_cli, tmp_path, tiny_bert_dir, sst_file, option, value,
                                                       message):
    path = _recipe(tmp_path, tiny_bert_dir, sst_file)
    text = path.read_text().replace("parity-samples: 8", f"{option}: {value}")
    path.write_text(text)
    result = run_cli("run", path, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_missing_data_file_in_the_last_stage_fails_first(run_cli, tmp_path, tiny_bert_dir, sst_file):
    path = _recipe(tmp_path, tiny_bert_dir, tmp_path / "nowhere.tsv")
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "stage 'bench'" in result.stderr and "nowhere.tsv: no such data file" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_missing_input_artifact_fails_before_anything_runs(run_cli, tmp_path, tiny_bert_dir, sst_file):
    path = _recipe(tmp_path, tmp_path / "no-teacher", sst_file)
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "input 'teacher'" in result.stderr and "no-teacher" in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_stage_has_its_report_in_run_json_and_run_json_output(run_cli, tmp_path, tiny_bert_dir, sst_file):
    path = _recipe(tmp_path, tiny_bert_dir, sst_file)
    result = run_cli("run", path, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    for entry in printed["stages"]:
        assert isinstance(entry["report"], dict) and entry["report"], entry["name"]
        assert state["stages"][entry["name"]]["report"] == json.loads(json.dumps(entry["report"]))
    assert printed["stages"][0]["report"]["parity"]["max_abs_diff"] < 1e-3
    assert printed["stages"][1]["report"]["method"] == "int8-dynamic"
    assert printed["stages"][2]["report"]["structure"]["heads_per_layer"]
    assert printed["stages"][3]["report"]["passed"] is True
