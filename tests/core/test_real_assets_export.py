"""Real-asset export checks (slow; run by `pytest -m slow`, the demo and benchmarks, not by default)."""

from __future__ import annotations

import pytest

from compressor.data import DataSpec
from compressor.export import ExportConfig, export_onnx
from conftest import ASSETS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ASSETS / "teachers").exists(), reason="../shared/assets is not beside this checkout"),
]


def test_sst2_teacher_onnx_accuracy_matches_pytorch(tmp_path):
    report = export_onnx(
        ASSETS / "teachers/minilm-l6-sst2",
        tmp_path / "onnx",
        ExportConfig(parity_data=DataSpec(str(ASSETS / "glue/SST-2/dev.tsv")), parity_samples=872),
    )
    parity = report["parity"]
    assert parity["samples"] == 872
    assert abs(parity["accuracy_candidate"] - parity["accuracy_reference"]) <= 0.001
    assert parity["accuracy_reference"] == pytest.approx(0.8956, abs=1e-3)


def test_gpt2_teacher_onnx_next_token_agreement(tmp_path):
    report = export_onnx(
        ASSETS / "teachers/gpt2-imdb",
        tmp_path / "onnx",
        ExportConfig(parity_data=DataSpec(str(ASSETS / "wikitext-2-raw/wikitext2_raw_test_joined.txt")), parity_samples=64),
    )
    assert report["parity"]["tokens"] == 64 * 128
    assert report["parity"]["next_token_agreement"] >= 0.995


def test_llama_teacher_onnx_with_past_agrees_and_generates_like_pytorch(tmp_path):
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = ASSETS / "teachers/llama-imdb"
    report = export_onnx(teacher, tmp_path / "onnx",
                         ExportConfig(parity_data=DataSpec(str(ASSETS / "imdb/heldout-1000.txt")), parity_samples=32))
    assert report["with_past"] and report["parity"]["next_token_agreement"] >= 0.995
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    prompt = tokenizer(["This movie was one of the"], return_tensors="pt")
    settings = dict(max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32).generate(**prompt, **settings)
    generated = ORTModelForCausalLM.from_pretrained(tmp_path / "onnx", use_cache=True).generate(**prompt, **settings)
    assert generated.tolist() == expected.tolist()
