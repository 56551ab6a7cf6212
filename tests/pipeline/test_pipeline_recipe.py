"""Recipe validation, planning, resume and --set, on export-onnx stages of a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.errors import BadInputError
from compressor.pipeline import load_recipe

RECIPE = """\
name: tiny
inputs:
  teacher: {teacher}
stages:
  - name: onnx
    run: export-onnx
    from: teacher
    with:
      optimize: O1
      parity-samples: 8
  - name: onnx2
    run: export-onnx
    from: teacher
    with: {{parity-samples: 4}}
"""


@pytest.fixture
def recipe(tmp_path, tiny_bert_dir):
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.format(teacher=tiny_bert_dir))
    return path


def _write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_dry_run_prints_plan_and_runs_nothing(run_cli, recipe, tmp_path):
    result = run_cli("run", recipe, "--out", tmp_path / "run", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout[result.stdout.index("{"):])
    assert [s["name"] for s in plan["stages"]] == ["onnx", "onnx2"]
    assert "--optimize O1 --parity-samples 8" in plan["stages"][0]["command"]
    assert not (tmp_path / "run").exists()


def test_run_then_resume_skips_unchanged_and_reruns_changed(run_cli, recipe, tmp_path):
    out = tmp_path / "run"
    first = run_cli("run", recipe, "--out", out, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert [s["skipped"] for s in report["stages"]] == [False, False]
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx2" / "compress.json").is_file()

    again = run_cli("run", recipe, "--out", out)
    assert again.exit_code == 2 and "pass --resume" in again.output

    resumed = json.loads(run_cli("run", recipe, "--out", out, "--resume", "--json").stdout)
    assert [s["skipped"] for s in resumed["stages"]] == [True, True]

    changed = json.loads(run_cli("run", recipe, "--out", out, "--resume", "--set", "onnx2.optimize=O0", "--json").stdout)
    assert [s["skipped"] for s in changed["stages"]] == [True, False]
    manifest = json.loads((out / "onnx2" / "compress.json").read_text())
    assert manifest["stages"][-1]["config"]["optimize"] == "O0"


def test_resume_with_the_run_directory_spelled_absolute(run_cli, recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", recipe, "--out", "run").exit_code == 0
    resumed = json.loads(run_cli("run", recipe, "--out", tmp_path / "run", "--resume", "--json").stdout)
    assert [s["skipped"] for s in resumed["stages"]] == [True, True]


def test_tampered_output_is_rerun(run_cli, recipe, tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", recipe, "--out", out).exit_code == 0
    (out / "onnx" / "model.onnx").write_bytes(b"broken")
    resumed = json.loads(run_cli("run", recipe, "--out", out, "--resume", "--json").stdout)
    assert [s["skipped"] for s in resumed["stages"]] == [False, True]


def test_unknown_option_names_the_line(run_cli, tmp_path, tiny_bert_dir):
    path = _write(tmp_path, RECIPE.format(teacher=tiny_bert_dir).replace("optimize: O1", "optimise: O1"))
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert f"{path}:5 (stage 'onnx'): No such option '--optimise'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_stage_kind(tmp_path, tiny_bert_dir):
    text = RECIPE.format(teacher=tiny_bert_dir).replace("run: export-onnx\n    from: teacher\n    with: {parity", "run: sparsify\n    from: teacher\n    with: {parity")
    path = _write(tmp_path, text)
    with pytest.raises(BadInputError, match=r"r.yaml:11: unknown stage 'sparsify'"):
        load_recipe(path)


def test_reference_to_later_or_unknown_stage(tmp_path, tiny_bert_dir):
    text = RECIPE.format(teacher=tiny_bert_dir).replace("from: teacher\n    with: {parity", "from: onnx3\n    with: {parity")
    with pytest.raises(BadInputError, match=r"r.yaml:11: stage 'onnx2' reads 'onnx3', which is not an input or a stage defined earlier"):
        load_recipe(_write(tmp_path, text))


def test_duplicate_stage_name(tmp_path, tiny_bert_dir):
    text = RECIPE.format(teacher=tiny_bert_dir).replace("name: onnx2", "name: onnx")
    with pytest.raises(BadInputError, match="name 'onnx' is already used"):
        load_recipe(_write(tmp_path, text))


def test_set_unknown_stage_and_malformed(recipe):
    with pytest.raises(BadInputError, match="no stage named 'nope'"):
        load_recipe(recipe, ["nope.optimize=O1"])
    with pytest.raises(BadInputError, match="expected STAGE.KEY=VALUE"):
        load_recipe(recipe, ["onnx.optimize"])


def test_set_input_and_env_expansion(tmp_path, tiny_gpt2_dir, monkeypatch):
    path = _write(tmp_path, "inputs:\n  teacher: ${TEACHER_DIR}\nstages:\n  - {name: o, run: export-onnx, from: teacher}\n")
    monkeypatch.setenv("TEACHER_DIR", "/somewhere")
    assert load_recipe(path).inputs["teacher"] == "/somewhere"
    assert load_recipe(path, [f"inputs.teacher={tiny_gpt2_dir}"]).inputs["teacher"] == str(tiny_gpt2_dir)
    monkeypatch.delenv("TEACHER_DIR")
    with pytest.raises(BadInputError, match=r"\$\{TEACHER_DIR\} is not set"):
        load_recipe(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "stages:\n  - name: a\n    run: [unclosed\n")
    with pytest.raises(BadInputError, match=r"r.yaml:\d+: not valid YAML"):
        load_recipe(path)


def test_stage_failure_exit_code_and_message(run_cli, tmp_path, tiny_bert_dir):
    path = _write(tmp_path, RECIPE.format(teacher=tiny_bert_dir).replace("parity-samples: 8", "atol: 1.0e-12"))
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 3
    assert "stage 'onnx'" in result.stderr and "parity check failed" in result.stderr
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert state["stages"]["onnx"]["status"] == "failed"
    assert not (tmp_path / "run" / "onnx").exists()


def test_env_default(tmp_path, monkeypatch):
    path = _write(tmp_path, "inputs:\n  teacher: ${NOT_SET_X:-fallback}/t\nstages:\n  - {name: o, run: export-onnx, from: teacher}\n")
    monkeypatch.delenv("NOT_SET_X", raising=False)
    assert load_recipe(path).inputs["teacher"] == "fallback/t"


def test_llama_recipe_plans_every_stage(run_cli, tmp_path):
    from conftest import ASSETS

    if not (ASSETS / "teachers" / "llama-imdb").is_dir():
        pytest.skip("real assets not present")
    recipe = Path(__file__).resolve().parents[2] / "pipelines" / "llama-lm.yaml"
    result = run_cli("run", recipe, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0, result.output
    for stage in ("student", "pruned", "pruned-onnx", "pruned-int8", "pruned-int4", "teacher-onnx", "bench"):
        assert f"  {stage}: compress " in result.output
    assert "--head-unit kv-group" in result.output and "--block-size 32" in result.output


# smoke.yaml takes its models from environment variables; test_pipeline_smoke runs it whole
SHIPPED = sorted(p for p in (Path(__file__).resolve().parents[2] / "pipelines").glob("*.yaml") if p.stem != "smoke")


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_recipe_plans_every_stage(run_cli, tmp_path, recipe):
    """Each recipe under pipelines/ validates whole (stage options, inputs, artifact kinds) and plans a
    command for each of its stages: an edit that breaks a recipe fails here, not in a user's CI."""
    from conftest import ASSETS

    if not ASSETS.is_dir():
        pytest.skip("real assets not present")
    result = run_cli("run", recipe, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0, result.output
    for stage in load_recipe(recipe).stages:
        assert f"  {stage.name}: compress " in result.output
