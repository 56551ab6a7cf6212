"""Minitron-style structured pruning of Llama-family models: GQA-aware heads, SwiGLU FFN neurons and
whole layers by block importance; every result is a plain config ``from_pretrained`` loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


def _stage(path: Path) -> dict:
    return json.loads((path / "compress.json").read_text())["stages"][-1]["report"]


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_kv_group_heads_and_ffn_give_a_standard_llama(run_cli, tiny_llama_dir, tmp_path):
    out = tmp_path / "pruned"
    result = run_cli("prune", tiny_llama_dir, "--method", "heads=0.25,ffn=0.25", "--ffn-multiple-of", "8", "-o", out)
    assert result.exit_code == 0, result.output
    config = _config(out)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"],
            config["intermediate_size"]) == (6, 3, 8, 72)
    report = _stage(out)
    assert report["structure"]["kv_heads_per_layer"] == [3] * 4
    assert "KV heads per layer [3, 3, 3, 3]" in result.output
    assert report["structure"]["heads_per_layer"] == [6] * 4 and report["structure"]["ffn_per_layer"] == [72] * 4
    kept = report["heads_kept"]["0"]
    assert len(kept["kv_groups_kept"]) == 3
    # whole groups: each kept group brings both of its query heads
    assert kept["query_heads_kept"] == [h for g in kept["kv_groups_kept"] for h in (2 * g, 2 * g + 1)]

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out).eval()  # no help from this tool
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        full = model(ids).logits[:, -1]
        cached = model(ids[:, :-1], use_cache=True)
        step = model(ids[:, -1:], past_key_values=cached.past_key_values).logits[:, -1]
    assert torch.allclose(full, step, atol=1e-4)  # the KV cache works with the new layout

    # 6 heads of 8 in a 64-wide model: onnxruntime's fusions still run, the export keeps its KV cache
    onnx_dir = tmp_path / "onnx"
    result = run_cli("export-onnx", out, "--parity-samples", "4", "-o", onnx_dir)
    assert result.exit_code == 0, result.output
    export = json.loads((onnx_dir / "compress.json").read_text())["stages"][-1]["report"]
    assert export["with_past"] and export["skip_layernorm"]["split"] > 0  # the fusions ran (then were split)


def test_query_heads_by_gradient_and_cosine_layers_on_tied_qwen2(run_cli, tiny_qwen2_dir, corpus_file, tmp_path):
    out = tmp_path / "pruned"
    result = run_cli("prune", tiny_qwen2_dir, "--method", "layers=0.34,heads=0.5", "--head-unit", "query",
                     "--layer-importance", "cosine", "--data", corpus_file, "--calibration-samples", "8",
                     "--max-length", "32", "-o", out)
    assert result.exit_code == 0, result.output
    config = _config(out)
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (2, 4, 4)
    assert config["tie_word_embeddings"] and len(config["layer_types"]) == 2
    report = _stage(out)
    assert report["layer_importance"] == "cosine" and len(report["layer_scores"]) == 3
    assert all(0 <= s <= 2 for s in report["layer_scores"])
    assert report["layers_removed"] == [min(range(3), key=lambda i: report["layer_scores"][i])]
    assert [len(k["kv_groups_kept"]) for k in report["heads_kept"].values()] == [4, 4]

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.model.layers[0].self_attn.q_proj.bias.shape[0] == 4 * 8


def test_mistral_layer_list_keeps_the_sliding_window_and_recovers_by_distillation(run_cli, tiny_mistral_dir,
                                                                                   corpus_file, tmp_path):
    out = tmp_path / "pruned"
    result = run_cli("prune", tiny_mistral_dir, "--method", "layers=[1],ffn=0.5", "--recover-from", tiny_mistral_dir,
                     "--recover-data", corpus_file, "--recover-steps", "2", "--recover-batch-size", "8",
                     "--eval-data", corpus_file, "--eval-samples", "4", "--max-length", "32", "-o", out)
    assert result.exit_code == 0, result.output
    config = _config(out)
    assert (config["num_hidden_layers"], config["sliding_window"], config["intermediate_size"]) == (2, 16, 48)
    report = _stage(out)
    assert report["recovery"]["steps"] == 2
    assert {"perplexity_pruned", "perplexity_after_recovery", "perplexity_final"} <= set(report["metrics"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "heads=0.125"], "removes 1 of 8 query heads per layer, which breaks the grouped-query layout: "
         "removing whole KV groups (4 groups of 2 query heads) needs a multiple of 2 query heads, keeping at least "
         "one group; nearest valid amounts: heads=0.25 (2 heads), heads=0.5 (4 heads)"),
        (["--method", "heads=0.25", "--head-unit", "query"], "from each of the 4 KV groups needs a multiple of 4 "
         "query heads, keeping at least one per group; nearest valid amounts: heads=0.5 (4 heads)"),
        (["--method", "layers=[0,1,2,3]"], "--method layers=[0,1,2,3]: removes every layer (4); at least one must stay"),
        (["--method", "layers=1.0"], "between 0 and 1"),
    ],
)
def test_bad_llama_pruning_requests_exit_2_with_nothing_written(run_cli, tiny_llama_dir, tmp_path, args, message):
    out = tmp_path / "pruned"
    result = run_cli("prune", tiny_llama_dir, *args, "-o", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_rope_scaling_is_carried_or_refused(run_cli, tiny_llama_dir, tmp_path):
    source = Path(shutil.copytree(tiny_llama_dir, tmp_path / "llama"))
    config = _config(source)
    config["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    (source / "config.json").write_text(json.dumps(config))
    out = tmp_path / "pruned"
    assert run_cli("prune", source, "--method", "heads=0.5", "-o", out).exit_code == 0
    assert _config(out)["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}

    config["rope_scaling"] = {"rope_type": "fancy", "factor": 2.0}
    (source / "config.json").write_text(json.dumps(config))
    bad = tmp_path / "bad"
    result = run_cli("prune", source, "--method", "ffn=0.5", "-o", bad)
    assert result.exit_code == 2
    assert "rope_scaling type 'fancy' is not one this tool can carry through pruning" in result.output
    assert not bad.exists()


@pytest.mark.parametrize("unit", ["kv-group", "query"])
def test_cut_heads_compute_what_the_masked_model_computes(tiny_llama_dir, unit):
    """Removing heads (and the KV groups nobody reads any more) equals zeroing their outputs."""
    import torch
    from transformers import AutoModelForCausalLM

    from compressor.families.llama import LlamaSurgery
    from compressor.prune.importance import unit_masks

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    surgery = LlamaSurgery()
    blocks = list(surgery.blocks(model))
    scores = [torch.rand(8, generator=torch.Generator().manual_seed(i)) for i in range(len(blocks))]
    ids = torch.tensor([[5, 9, 2, 7, 3, 11, 4]])
    kept = surgery.prune_heads(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), scores, 0.5, unit,
                               "heads=0.5")
    points = [(surgery.head_output(b), 8, 8) for b in blocks]
    with unit_masks(points) as masks, torch.no_grad():
        for mask, layer in zip(masks, kept.values()):
            mask.requires_grad_(False)
            mask.zero_()
            mask[layer["query_heads_kept"]] = 1
        expected = model(ids).logits
    pruned = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    surgery.prune_heads(pruned, scores, 0.5, unit, "heads=0.5")
    with torch.no_grad():
        assert torch.allclose(pruned(ids).logits, expected, atol=1e-5)
    assert pruned.config.num_key_value_heads == (2 if unit == "kv-group" else 4)
