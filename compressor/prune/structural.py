"""Physically shrinking BERT and GPT-2: whole layers, attention heads and FFN neurons.

Everything here leaves a model that ``AutoModel*.from_pretrained`` rebuilds from its own config:

- heads go through transformers' own ``prune_heads`` (the config's ``pruned_heads`` records them and
  ``from_pretrained`` re-applies the cut on load), so the config stays standard;
- FFN neurons are removed in equal numbers from every layer, so one ``intermediate_size`` /
  ``n_inner`` describes the result;
- removed layers shrink the block list and the layer count; ``pruned_heads`` is renumbered.

Each family's adapter says where the parts live; the selection of what to remove is in importance.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressor.errors import BadInputError
from compressor.families import bert as bert_family
from compressor.families import gpt2 as gpt2_family

# Model types whose structure this module knows; other members of a family get sparsity only.
STRUCTURAL_MODEL_TYPES = {"bert": ("bert", "roberta"), "gpt2": ("gpt2",)}


@dataclass(frozen=True)
class Shape:
    """What a family calls its sizes in ``config.json``."""

    layers: str
    heads: str
    hidden: str
    ffn: str


class BertAdapter:
    shape = Shape(layers="num_hidden_layers", heads="num_attention_heads", hidden="hidden_size",
                  ffn="intermediate_size")

    def blocks(self, model: Any) -> Any:
        return bert_family.layers(model)

    def set_blocks(self, model: Any, modules: list[Any]) -> None:
        bert_family.set_layers(model, modules)
        for index, block in enumerate(modules):
            block.attention.self.layer_idx = index

    def heads(self, block: Any) -> tuple[int, int]:
        attention = block.attention.self
        return attention.num_attention_heads, attention.attention_head_size

    def pruned_heads(self, block: Any) -> set[int]:
        return set(block.attention.pruned_heads)

    def head_output(self, block: Any) -> Any:
        """The module whose input is the concatenated per-head context (where a head mask goes)."""
        return block.attention.output.dense

    def head_weights(self, block: Any) -> tuple[Any, Any, Any, Any]:
        """q, k, v as [heads*head_dim, hidden] and the output projection as [hidden, heads*head_dim]."""
        attention = block.attention
        return (attention.self.query.weight, attention.self.key.weight, attention.self.value.weight,
                attention.output.dense.weight)

    def ffn_output(self, block: Any) -> Any:
        """The module whose input is the FFN activation (where a neuron mask goes)."""
        return block.output.dense

    def ffn_weights(self, block: Any) -> tuple[Any, Any]:
        """FFN in as [width, hidden] and out as [hidden, width]."""
        return block.intermediate.dense.weight, block.output.dense.weight

    def prune_ffn(self, block: Any, keep: Any) -> None:
        from transformers.pytorch_utils import prune_linear_layer

        block.intermediate.dense = prune_linear_layer(block.intermediate.dense, keep, dim=0)
        block.output.dense = prune_linear_layer(block.output.dense, keep, dim=1)

    def ffn_width(self, config: dict[str, Any]) -> int:
        return int(config["intermediate_size"])

    def set_ffn_width(self, config: Any, width: int) -> None:
        config.intermediate_size = width


class GPT2Adapter:
    shape = Shape(layers="n_layer", heads="n_head", hidden="n_embd", ffn="n_inner")

    def blocks(self, model: Any) -> Any:
        return gpt2_family.layers(model)

    def set_blocks(self, model: Any, modules: list[Any]) -> None:
        gpt2_family.set_layers(model, modules)
        # The KV cache is indexed by layer_idx; it must follow the new numbering.
        for index, block in enumerate(modules):
            block.attn.layer_idx = index

    def heads(self, block: Any) -> tuple[int, int]:
        return block.attn.num_heads, block.attn.head_dim

    def pruned_heads(self, block: Any) -> set[int]:
        return set(block.attn.pruned_heads)

    def head_output(self, block: Any) -> Any:
        return block.attn.c_proj

    def head_weights(self, block: Any) -> tuple[Any, Any, Any, Any]:
        # Conv1D stores [in, out]; transpose to the Linear layout the scoring code expects.
        attn = block.attn
        q, k, v = attn.c_attn.weight.t().split(attn.split_size, dim=0)
        return q, k, v, attn.c_proj.weight.t()

    def ffn_output(self, block: Any) -> Any:
        return block.mlp.c_proj

    def ffn_weights(self, block: Any) -> tuple[Any, Any]:
        return block.mlp.c_fc.weight.t(), block.mlp.c_proj.weight.t()

    def prune_ffn(self, block: Any, keep: Any) -> None:
        from transformers.pytorch_utils import prune_conv1d_layer

        block.mlp.c_fc = prune_conv1d_layer(block.mlp.c_fc, keep, dim=1)
        block.mlp.c_proj = prune_conv1d_layer(block.mlp.c_proj, keep, dim=0)

    def ffn_width(self, config: dict[str, Any]) -> int:
        return int(config.get("n_inner") or 4 * config["n_embd"])

    def set_ffn_width(self, config: Any, width: int) -> None:
        config.n_inner = width


def adapter_for(family: str, model_type: str) -> BertAdapter | GPT2Adapter | None:
    """The structural adapter of a model type, or None when only sparsity is supported."""
    if model_type not in STRUCTURAL_MODEL_TYPES.get(family, ()):
        return None
    return BertAdapter() if family == "bert" else GPT2Adapter()


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
