"""Structural pruning on tiny BERT and GPT-2: the shrunken model computes exactly what the original
computes with those units masked out, and reloads with plain ``from_pretrained``."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from compressor.prune import importance, structural

CASES = [("bert", "tiny_bert_dir", AutoModelForSequenceClassification), ("gpt2", "tiny_gpt2_dir", AutoModelForCausalLM)]


@contextmanager
def zero_units(module, units: int, size: int, dead: list[int]):
    """Zero the input slices of ``module`` belonging to ``dead`` units (what pruning them means)."""
    mask = torch.ones(units)
    mask[dead] = 0

    def hook(_m, args):
        x = args[0]
        return ((x.unflatten(-1, (units, size)) * mask.view(units, 1)).flatten(-2), *args[1:])

    handle = module.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def load(request, fixture, auto):
    path = request.getfixturevalue(fixture)
    return path, auto.from_pretrained(path).eval()


def inputs():
    torch.manual_seed(1)
    return {"input_ids": torch.randint(5, 30, (3, 12))}


@pytest.mark.parametrize("family, fixture, auto", CASES)
def test_pruned_heads_equal_masked_heads_and_reload(request, tmp_path, family, fixture, auto):
    _, model = load(request, fixture, auto)
    adapter = structural.adapter_for(family, model.config.model_type)
    remove = [[1], [0, 2], [], [3]]  # uneven per layer
    with torch.no_grad(), ExitStack() as stack:
        for block, dead in zip(adapter.blocks(model), remove):
            stack.enter_context(zero_units(adapter.head_output(block), *adapter.heads(block), dead))
        expected = model(**inputs()).logits
    plan = structural.prune_heads(adapter, model, remove)
    assert plan == {0: [1], 1: [0, 2], 3: [3]}
    assert structural.heads_per_layer(adapter, model) == [3, 2, 4, 3]
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, expected, atol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = auto.from_pretrained(tmp_path).eval()  # plain transformers, no compress code
    assert structural.heads_per_layer(adapter, reloaded) == [3, 2, 4, 3]
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs()).logits, expected, atol=1e-5)

    # Pruning again addresses current positions; the original ids are what transformers records.
    second = structural.prune_heads(adapter, reloaded, [[0], [], [], []])
    assert second == {0: [0]}
    assert sorted(reloaded.config.pruned_heads[0]) == [0, 1]


@pytest.mark.parametrize("family, fixture, auto", CASES)
def test_pruned_ffn_equals_masked_neurons_and_config_is_standard(request, tmp_path, family, fixture, auto):
    _, model = load(request, fixture, auto)
    adapter = structural.adapter_for(family, model.config.model_type)
    width = structural.ffn_per_layer(adapter, model)[0]
    torch.manual_seed(0)
    keep = [torch.sort(torch.randperm(width)[:88]).values for _ in adapter.blocks(model)]
    with torch.no_grad(), ExitStack() as stack:
        for block, kept in zip(adapter.blocks(model), keep):
            dead = sorted(set(range(width)) - set(kept.tolist()))
            stack.enter_context(zero_units(adapter.ffn_output(block), width, 1, dead))
        expected = model(**inputs()).logits
    assert structural.prune_ffn(adapter, model, keep) == 88
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, expected, atol=1e-5)
    model.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    assert ('"intermediate_size": 88' if family == "bert" else '"n_inner": 88') in config
    assert "pruned_heads" not in config or '"pruned_heads": {}' in config
    reloaded = auto.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs()).logits, expected, atol=1e-5)


@pytest.mark.parametrize("family, fixture, auto", CASES)
def test_dropped_layers_equal_skipped_blocks_and_pruned_heads_are_renumbered(request, tmp_path, family, fixture, auto):
    _, model = load(request, fixture, auto)
    adapter = structural.adapter_for(family, model.config.model_type)
    structural.prune_heads(adapter, model, [[], [], [], [2]])
    blocks = list(adapter.blocks(model))
    with torch.no_grad(), importance.skip_block(blocks[0]), importance.skip_block(blocks[2]):
        expected = model(**inputs()).logits
    structural.drop_layers(adapter, model, [0, 2])
    assert len(adapter.blocks(model)) == 2 and getattr(model.config, adapter.shape.layers) == 2
    assert model.config.pruned_heads == {1: [2]}  # old layer 3 is now layer 1
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, expected, atol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = auto.from_pretrained(tmp_path).eval()
    assert structural.heads_per_layer(adapter, reloaded) == [4, 3]
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs()).logits, expected, atol=1e-5)


def test_head_pruned_gpt2_still_generates_with_its_kv_cache(tiny_gpt2_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    adapter = structural.adapter_for("gpt2", "gpt2")
    structural.prune_heads(adapter, model, [[0], [1, 2], [], [3]])
    structural.drop_layers(adapter, model, [2])
    prompt = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
        uncached = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0, use_cache=False)
    assert torch.equal(cached, uncached)
