"""Llama-family LMs (llama, qwen2, mistral) through distill, export-onnx, quantize and bench on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor import families


def _report(path: Path) -> dict:
    return json.loads((path / "compress.json").read_text())["stages"][-1]


def test_family_detection_and_student_layers(tiny_llama_dir, tiny_qwen2_dir, tiny_mistral_dir):
    from compressor.artifact import open_artifact

    for path, model_type in ((tiny_llama_dir, "llama"), (tiny_qwen2_dir, "qwen2"), (tiny_mistral_dir, "mistral")):
        artifact = open_artifact(path)
        assert (artifact.family.name, artifact.task, artifact.config["model_type"]) == ("llama", "causal-lm", model_type)
    family = families.family_by_name("llama")
    assert family.default_student_layers(3, 6) == [0, 3, 5]
    assert family.attention_window({"model_type": "mistral", "sliding_window": 16}) == 16
    assert family.attention_window({"model_type": "qwen2", "sliding_window": 16, "use_sliding_window": False}) is None


def test_distill_qwen2_student_keeps_first_and_last_layer_with_hidden_mse(run_cli, tiny_qwen2_dir, corpus_file, tmp_path):
    out = tmp_path / "student"
    result = run_cli("distill", tiny_qwen2_dir, "--data", corpus_file, "--student-layers", "2", "--max-steps", "2",
                     "--batch-size", "8", "--max-length", "32", "--alpha-hidden", "1", "-o", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["layer_types"] == ["full_attention"] * 2
    assert _report(out)["report"]["student"]["layer_map"] == [0, 2]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]


def test_student_layers_not_below_teacher_is_refused(run_cli, tiny_llama_dir, corpus_file, tmp_path):
    out = tmp_path / "student"
    result = run_cli("distill", tiny_llama_dir, "--data", corpus_file, "--student-layers", "4", "-o", out)
    assert result.exit_code == 2
    assert "--student-layers 4: must be fewer than the teacher's 4 layers" in result.output
    assert not out.exists()


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_qwen2_dir"])
def test_export_with_past_fuses_and_generates_like_pytorch(request, run_cli, fixture, corpus_file, tmp_path):
    source = request.getfixturevalue(fixture)
    out = tmp_path / "onnx"
    result = run_cli("export-onnx", source, "--parity-data", corpus_file, "--parity-samples", "8", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = _report(out)["report"]
    assert report["with_past"] and report["parity"]["next_token_agreement"] == 1.0
    # onnxruntime's fusions ran, and on CPU each fused SkipSimplifiedLayerNormalization was split again
    ops = report["graph"]["op_types"]
    assert report["skip_layernorm"]["split"] == ops["SimplifiedLayerNormalization"] - 1 > 0  # + the final norm
    assert "SkipSimplifiedLayerNormalization" not in ops and ops["Sum"] == report["skip_layernorm"]["split"]

    import torch
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    prompt = tokenizer(["the film was really"], return_tensors="pt")
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(source).eval().generate(**prompt, **settings)
    ort = ORTModelForCausalLM.from_pretrained(out, use_cache=True)
    assert ort.generate(**prompt, **settings).tolist() == expected.tolist()


def test_onnx_int4_block_size_must_divide_every_input_width(run_cli, tiny_mistral_dir, corpus_file, tmp_path):
    onnx_dir = tmp_path / "onnx"
    assert run_cli("export-onnx", tiny_mistral_dir, "--optimize", "O1", "--parity-samples", "4",
                   "-o", onnx_dir).exit_code == 0
    bad = tmp_path / "int4-bad"
    result = run_cli("quantize", onnx_dir, "--method", "int4-weight", "--block-size", "64", "-o", bad)
    assert result.exit_code == 2
    assert "--block-size 64: does not divide the input width 96" in result.output
    assert "block sizes that fit every MatMul: 16, 32" in result.output
    assert not bad.exists()
    good = tmp_path / "int4"
    result = run_cli("quantize", onnx_dir, "--method", "int4-weight", "--block-size", "32", "--accuracy-level", "4",
                     "-o", good)
    assert result.exit_code == 0, result.output
    result = run_cli("bench", good, "--baseline", onnx_dir, "--data", corpus_file, "--max-samples", "4",
                     "--max-length", "24", "--decode-tokens", "4", "--batch-sizes", "1", "--min-runs", "2",
                     "--min-seconds", "0", "--warmup", "1", "--no-memory", "--profile-runs", "0", "--json")
    assert result.exit_code == 0, result.output
    assert "sliding window" in result.output  # 24-token prompt + 4 new tokens run past the 16-token window


def test_pytorch_weight_only_int4_gptq_on_llama(run_cli, tiny_llama_dir, corpus_file, tmp_path):
    out = tmp_path / "int4"
    result = run_cli("quantize", tiny_llama_dir, "--method", "int4", "--algorithm", "gptq", "--calib-data",
                     corpus_file, "--calib-samples", "4", "--max-length", "32", "-o", out)
    assert result.exit_code == 0, result.output
    assert "Linear 28/29" in result.output  # every block projection; the LM head stays float
