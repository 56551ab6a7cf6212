"""A head-pruned GPT-2 (layers with different head counts) exports WITH its KV cache: per-layer cache
shapes, parity of every decode step, generation through optimum's ORTModelForCausalLM, and bench's
decode figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from compressor.export import ExportConfig, export_onnx
from compressor.inference import OnnxRunner

PRUNED = {0: [1], 2: [0, 3], 3: [1, 2, 3]}  # of 4 heads: layers keep 3, 4, 2 and 1
HEADS = [3, 4, 2, 1]


@pytest.fixture(scope="module")
def head_pruned(tiny_gpt2_dir, tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("heads") / "pruned"
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    model.prune_heads(PRUNED)  # what `compress prune --method heads=...` does; config.pruned_heads records it
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def exported(head_pruned, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("heads") / "onnx"
    return out, export_onnx(head_pruned, out, ExportConfig())  # O2, as by default


def test_exports_with_a_per_layer_kv_cache(exported):
    out, report = exported
    assert report["export_task"] == "text-generation-with-past" and report["with_past"] is True
    assert report["past_heads_per_layer"] == HEADS
    parity = report["parity"]
    assert parity["max_abs_diff"] <= parity["atol"] and parity["next_token_agreement"] == 1.0
    assert parity["decode"]["steps"] == 8 and parity["decode"]["next_token_agreement"] == 1.0
    assert parity["decode"]["max_abs_diff"] <= parity["atol"]
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert [outputs[f"present.{n}.key"][1] for n in range(4)] == HEADS  # the cache really is smaller
    # A pruned layer's past takes any head count (the first call's empty cache has config.n_head).
    assert inputs["past_key_values.0.key"][1] == "past_heads_0" and inputs["past_key_values.1.key"][1] == 4
    feeds = OnnxRunner(out / "model.onnx").feeds({"input_ids": np.array([[5, 6, 7]])})
    assert [feeds[f"past_key_values.{n}.value"].shape for n in range(4)] == [(1, h, 0, 8) for h in HEADS]


def test_ort_model_for_causal_lm_decodes_like_pytorch(exported, head_pruned):
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch_model = AutoModelForCausalLM.from_pretrained(head_pruned).eval()
    ort_model = ORTModelForCausalLM.from_pretrained(out)
    assert ort_model.can_use_cache
    ids = tokenizer("the film was really good but the plot was quite dull and the cast was tired",
                    return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        reference = torch_model(ids).logits
    # One token at a time through optimum's own cache handling (its first call builds an empty cache
    # with config.n_head heads in every layer), against PyTorch on the whole sequence.
    past = None
    for t in range(ids.shape[1]):
        step = ort_model(input_ids=ids[:, t : t + 1], attention_mask=torch.ones(1, t + 1, dtype=torch.long),
                         past_key_values=past, use_cache=True)
        past = step.past_key_values
        torch.testing.assert_close(step.logits[:, -1], reference[:, t], atol=1e-4, rtol=0)
    keys = [layer[0] for layer in past] if isinstance(past[0], tuple) else past[::2]
    assert [k.shape[1] for k in keys] == HEADS
    prompt = tokenizer("this story was", return_tensors="pt")
    with torch.inference_mode():
        expected = torch_model.generate(**prompt, max_new_tokens=12, do_sample=False,
                                        pad_token_id=tokenizer.eos_token_id)
    generated = ort_model.generate(**prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert torch.equal(generated, expected)


def test_bench_measures_decode_of_the_head_pruned_onnx(run_cli, exported, head_pruned, corpus_file):
    out, _ = exported
    result = run_cli("bench", out, "--baseline", head_pruned, "--data", corpus_file, "--batch-sizes", "1",
                     "--warmup", "1", "--min-runs", "3", "--min-seconds", "0", "--threads", "2", "--bootstrap", "200",
                     "--no-memory", "--decode-tokens", "4", "--max-length", "32", "--max-samples", "8", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["artifacts"][0]
    decode = entry["decode"]["1"]
    assert decode["new_tokens"] == 4 and decode["runs"] == entry["latency"]["1"]["runs"] * 4
    assert decode["p50_ms"] > 0 and entry["decode_speedup"] > 0
    assert entry["quality"]["vs_baseline"]["agreement"] == 1.0
