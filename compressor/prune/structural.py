"""Physically shrinking BERT, GPT-2 and Llama-family models: whole layers, attention heads and FFN neurons.

Everything here leaves a model that ``AutoModel*.from_pretrained`` rebuilds from its own config:

- BERT/GPT-2 heads go through transformers' own ``prune_heads`` (the config's ``pruned_heads`` records them and
  ``from_pretrained`` re-applies the cut on load), so the config stays standard;
- Llama-family heads (grouped-query attention, no ``prune_heads`` in transformers) are cut by the
  family's adapter (``adapter.prune_heads``) to one layout for every layer, written as plain
  ``num_attention_heads`` / ``num_key_value_heads`` / ``head_dim``;
- FFN neurons are removed in equal numbers from every layer, so one ``intermediate_size`` /
  ``n_inner`` describes the result;
- removed layers shrink the block list and the layer count; ``pruned_heads`` is renumbered.

Each family's surgery adapter (``Family.surgery``) says where the parts live; the selection of what to
remove is in importance.py.
"""

from __future__ import annotations

from typing import Any

from compressor import families
from compressor.errors import BadInputError


def adapter_for(family: str, model_type: str) -> Any | None:
    """The structural adapter of a model type, or None when only sparsity is supported."""
    return families.family_by_name(family).surgery(model_type)


def num_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def heads_per_layer(adapter: Any, model: Any) -> list[int]:
    return [adapter.heads(block)[0] for block in adapter.blocks(model)]


def ffn_per_layer(adapter: Any, model: Any) -> list[int]:
    return [int(adapter.ffn_weights(block)[0].shape[0]) for block in adapter.blocks(model)]


def drop_layers(adapter: Any, model: Any, remove: list[int]) -> None:
    """Remove whole blocks; ``config.pruned_heads`` is renumbered to the surviving blocks."""
    blocks = list(adapter.blocks(model))
    if getattr(model.config, "scale_attn_by_inverse_layer_idx", False):
        raise BadInputError(
            "--method layers: this GPT-2 scales attention by its layer index (scale_attn_by_inverse_layer_idx); "
            "removing layers would change every later layer's scaling"
        )
    keep = [i for i in range(len(blocks)) if i not in set(remove)]
    old_pruned = {int(k): list(v) for k, v in (model.config.pruned_heads or {}).items()}
    adapter.set_blocks(model, [blocks[i] for i in keep])
    model.config.pruned_heads = {new: old_pruned[old] for new, old in enumerate(keep) if old in old_pruned}


def original_head_ids(adapter: Any, block: Any, total_heads: int) -> list[int]:
    """Original ids of the heads a block still has: transformers' ``prune_heads`` takes original ids,
    so a model pruned twice is cut where intended."""
    pruned = adapter.pruned_heads(block)
    return [h for h in range(total_heads) if h not in pruned]


def prune_heads(adapter: Any, model: Any, remove: list[list[int]]) -> dict[int, list[int]]:
    """Remove heads given by their current position in each layer; returns original ids removed."""
    total = int(getattr(model.config, adapter.shape.heads))
    plan: dict[int, list[int]] = {}
    for layer, (block, positions) in enumerate(zip(adapter.blocks(model), remove)):
        if not positions:
            continue
        ids = original_head_ids(adapter, block, total)
        plan[layer] = sorted(ids[p] for p in positions)
    if plan:
        model.prune_heads(plan)
    return plan


def prune_ffn(adapter: Any, model: Any, keep: list[Any]) -> int:
    """Keep the given neuron indices in every layer (all of the same length); update the config."""
    widths = {len(k) for k in keep}
    if len(widths) != 1:
        raise ValueError(f"FFN pruning must keep the same width in every layer, got {sorted(widths)}")
    for block, indices in zip(adapter.blocks(model), keep):
        adapter.prune_ffn(block, indices)
    width = widths.pop()
    adapter.set_ffn_width(model.config, width)
    return width
