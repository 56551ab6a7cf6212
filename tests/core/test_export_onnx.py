"""`compress export-onnx` end to end on tiny models: artifacts that load without this tool, parity
that fails loudly, and every bad input the issue lists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest

from compressor.artifact import open_artifact
from conftest import tree_hash


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, sst_file, tmp_path_factory):
    from click.testing import CliRunner

    from compressor.cli.main import cli

    out = tmp_path_factory.mktemp("export") / "bert-onnx"
    before = tree_hash(tiny_bert_dir)
    result = CliRunner().invoke(cli, ["export-onnx", str(tiny_bert_dir), "-o", str(out), "--parity-data", str(sst_file), "--json"])
    assert result.exit_code == 0, result.output
    assert tree_hash(tiny_bert_dir) == before  # the input is never modified
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def gpt2_onnx(tiny_gpt2_dir, corpus_file, tmp_path_factory):
    from click.testing import CliRunner

    from compressor.cli.main import cli

    out = tmp_path_factory.mktemp("export") / "gpt2-onnx"
    before = tree_hash(tiny_gpt2_dir)
    result = CliRunner().invoke(
        cli, ["export-onnx", str(tiny_gpt2_dir), "-o", str(out), "--parity-data", str(corpus_file), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert tree_hash(tiny_gpt2_dir) == before
    return out, json.loads(result.stdout)


def test_bert_report_and_manifest(bert_onnx):
    out, report = bert_onnx
    parity = report["parity"]
    assert parity["samples"] == 64
    assert parity["max_abs_diff"] < 1e-3
    assert parity["top1_agreement"] == 1.0
    assert parity["accuracy_reference"] == parity["accuracy_candidate"]
    assert report["graph"]["opset"] >= 14
    # O2 fuses attention into onnxruntime's contrib op
    assert "Attention" in report["graph"]["op_types"] or "MultiHeadAttention" in report["graph"]["op_types"]
    art = open_artifact(out)
    assert art.format == "onnx" and art.family.name == "bert"
    assert [s.stage for s in art.stages] == ["export-onnx"]
    assert art.stages[0].config["optimize"] == "O2"
    assert art.stages[0].report["parity"] == parity


def test_bert_loads_with_optimum_and_plain_onnxruntime(bert_onnx, tiny_bert_dir):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, _ = bert_onnx
    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer(["the film was very good", "this plot was dull"], padding=True, return_tensors="np")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    plain = session.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items()})[0]
    ort_model = ORTModelForSequenceClassification.from_pretrained(out)
    optimum_logits = ort_model(**tokenizer(["the film was very good", "this plot was dull"], padding=True, return_tensors="pt")).logits
    torch_model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    import torch

    with torch.inference_mode():
        reference = torch_model(**tokenizer(["the film was very good", "this plot was dull"], padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(plain, reference.numpy(), atol=1e-4)
    np.testing.assert_allclose(optimum_logits.detach().numpy(), reference.numpy(), atol=1e-4)


def test_gpt2_with_past_generates_like_pytorch(gpt2_onnx, tiny_gpt2_dir):
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, report = gpt2_onnx
    assert report["with_past"] is True
    assert report["parity"]["next_token_agreement"] >= 0.995
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    assert "past_key_values.0.key" in names
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = tokenizer("the film was", return_tensors="pt")
    ort_model = ORTModelForCausalLM.from_pretrained(out)
    torch_model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    onnx_tokens = ort_model.generate(**prompt, max_new_tokens=8, do_sample=False)
    with torch.inference_mode():
        torch_tokens = torch_model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert onnx_tokens.shape == (1, prompt["input_ids"].shape[1] + 8)
    assert torch.equal(onnx_tokens, torch_tokens)


def test_inspect_shows_lineage(bert_onnx, run_cli):
    out, _ = bert_onnx
    result = run_cli("inspect", out)
    assert result.exit_code == 0
    assert "1. export-onnx from" in result.output
    assert "agreement 100.00%" in result.output
    data = json.loads(run_cli("inspect", out, "--json").stdout)
    assert data["stages"][0]["stage"] == "export-onnx" and data["format"] == "onnx"


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_optimize_levels_and_opset(run_cli, tiny_bert_dir, tmp_path, level):
    out = tmp_path / "o"
    result = run_cli("export-onnx", tiny_bert_dir, "-o", out, "--optimize", level, "--opset", "17", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["graph"]["opset"] == 17
    fused = "Attention" in report["graph"]["op_types"]
    assert fused == (level == "O3")  # O1 is basic graph optimisation only; O0 none
    assert json.loads((out / "compress.json").read_text())["stages"][0]["config"]["optimize"] == level


def test_parity_failure_exits_3_and_writes_nothing(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "o"
    result = run_cli("export-onnx", tiny_bert_dir, "-o", out, "--atol", "1e-12", "--json")
    assert result.exit_code == 3
    assert "parity check failed" in result.stderr and "1e-12" in result.stderr
    assert json.loads(result.stdout)["parity"]["max_abs_diff"] > 1e-12  # report still printed
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_config_file_supplies_options(run_cli, tiny_bert_dir, tmp_path):
    config = tmp_path / "export.yaml"
    config.write_text("optimize: O1\nparity-samples: 4\n")
    out = tmp_path / "o"
    result = run_cli("export-onnx", tiny_bert_dir, "-o", out, "--config", config, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity"]["samples"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimise: O1\n")
    result = run_cli("export-onnx", tiny_bert_dir, "-o", tmp_path / "o2", "--config", bad)
    assert result.exit_code == 2 and "unknown option 'optimise'" in result.output


# --- bad inputs: exit 2, one clear line, nothing written ---------------------------------------


def _bad(run_cli, tmp_path, *args, expect):
    out = tmp_path / "out"
    result = run_cli("export-onnx", *args, "-o", out)
    assert result.exit_code == 2, result.output
    assert expect in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_bad_nonexistent_path(run_cli, tmp_path):
    _bad(run_cli, tmp_path, tmp_path / "nope", expect="nope: no such file or directory")


def test_bad_directory_without_config(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _bad(run_cli, tmp_path, tmp_path / "empty", expect="no config.json")


def test_bad_config_not_json(run_cli, bert_copy, tmp_path):
    (bert_copy / "config.json").write_text("{model_type: bert")
    _bad(run_cli, tmp_path, bert_copy, expect="config.json: not valid JSON")


def test_bad_unsupported_model_type(run_cli, bert_copy, tmp_path):
    config = json.loads((bert_copy / "config.json").read_text())
    config["model_type"] = "t5"
    (bert_copy / "config.json").write_text(json.dumps(config))
    _bad(run_cli, tmp_path, bert_copy, expect="model_type 't5' is not supported")


def test_bad_truncated_safetensors(run_cli, bert_copy, tmp_path):
    weights = bert_copy / "model.safetensors"
    os.truncate(weights, 100)
    _bad(run_cli, tmp_path, bert_copy, expect="model.safetensors: corrupt or truncated")


def test_bad_output_exists(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("export-onnx", tiny_bert_dir, "-o", out)
    assert result.exit_code == 2 and "already exists; pass --force" in result.output
    assert list(out.iterdir()) == []


def test_bad_opset_out_of_range(run_cli, tiny_bert_dir, tmp_path):
    _bad(run_cli, tmp_path, tiny_bert_dir, "--opset", "7", expect="--opset 7: out of range")


def test_bad_optimize_level(run_cli, tiny_bert_dir, tmp_path):
    _bad(run_cli, tmp_path, tiny_bert_dir, "--optimize", "O9", expect="--optimize 'O9': unknown level")


def test_bad_fp16_on_cpu(run_cli, tiny_bert_dir, tmp_path):
    _bad(run_cli, tmp_path, tiny_bert_dir, "--fp16", "--device", "cpu", expect="--fp16 with --device cpu")


def test_bad_cuda_without_gpu(run_cli, tiny_bert_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the no-GPU error cannot occur")
    _bad(run_cli, tmp_path, tiny_bert_dir, "--device", "cuda", expect="--device cuda: no CUDA GPU")


def test_bad_parity_data_missing_column(run_cli, tiny_bert_dir, tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text("body\tlabel\ngood\t1\n")
    _bad(run_cli, tmp_path, tiny_bert_dir, "--parity-data", data, expect="no text column")
    _bad(run_cli, tmp_path, tiny_bert_dir, "--parity-data", data, "--text-column", "review",
         expect="text column 'review' not found; columns are: body, label")


def test_bad_onnx_artifact_as_source(run_cli, bert_onnx, tmp_path):
    out, _ = bert_onnx
    _bad(run_cli, tmp_path, out, expect="already a onnx artifact")


def test_killed_export_leaves_nothing_at_output(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compressor.cli", "export-onnx", str(tiny_bert_dir), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "export finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()


def test_sigterm_cleans_up_temporary_output(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compressor.cli", "export-onnx", str(tiny_bert_dir), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
