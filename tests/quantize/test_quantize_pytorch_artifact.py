"""A quantized PyTorch artifact is not a plain transformers checkpoint: it says so (README.txt,
compress.json), plain transformers refuses it rather than loading random weights, and the stated
loader gives the quantized model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from quantize_models import one_torch_thread  # noqa: F401 (autouse fixture)

from compressor.artifact import open_artifact
from compressor.loading import load_model


def test_int4_artifact_states_its_loader_and_transformers_refuses_it(run_cli, tiny_gpt2_dir, tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    out = tmp_path / "int4"
    result = run_cli("quantize", tiny_gpt2_dir, "-o", out, "--method", "int4", "--block-size", "32", "--json")
    assert result.exit_code == 0, result.output
    files = {p.name for p in out.iterdir()}
    assert {"quantized.safetensors", "README.txt", "compress.json", "config.json"} <= files
    assert not files & {"model.safetensors", "pytorch_model.bin"}
    note = (out / "README.txt").read_text()
    assert "compress quantize --method int4" in note and "inc-weight-only-linear" in note
    assert "from compressor.loading import load_model" in note and "model = load_model(open_artifact(" in note
    report = json.loads((out / "compress.json").read_text())["stages"][-1]["report"]
    assert report["reload"]["loader"] == "compressor.loading.load_model"
    assert report["reload_check"]["max_abs_diff"] == 0.0
    # Plain transformers fails loudly (it would otherwise build the architecture with random weights).
    for auto in (AutoModelForCausalLM, AutoModel):
        with pytest.raises(OSError, match="no file named .*model.safetensors"):
            auto.from_pretrained(out)
    model = load_model(open_artifact(out))
    kinds = {type(m).__name__ for m in model.modules()}
    assert "INCWeightOnlyLinear" in kinds
    with torch.no_grad():
        logits = model(torch.tensor([[5, 9, 20, 31]]), use_cache=False).logits
    assert logits.shape == (1, 4, model.config.vocab_size) and bool(torch.isfinite(logits).all())


def test_the_note_replaces_a_readme_copied_from_the_source(run_cli, tiny_bert_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_bert_dir, src)
    (src / "README.txt").write_text("a float model card\n")
    out = tmp_path / "int8"
    result = run_cli("quantize", src, "-o", out, "--method", "int8-dynamic")
    assert result.exit_code == 0, result.output
    assert "compress quantize --method int8-dynamic" in (out / "README.txt").read_text()
    assert "int8-dynamic-linear" in (out / "README.txt").read_text()
