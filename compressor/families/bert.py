"""BERT family: bert (MiniLM is a bert), distilbert and roberta encoders, and their pruning surgery."""

from __future__ import annotations

from typing import Any

from compressor.families.base import Family, Shape, renumber

# Where each model type keeps its stack of transformer blocks (under ``model.base_model``) and the
# config field that counts them.
_LAYER_STACKS = {"bert": ("encoder", "layer", "num_hidden_layers"),
                 "roberta": ("encoder", "layer", "num_hidden_layers"),
                 "distilbert": ("transformer", "layer", "n_layers")}


def layers(model: Any) -> Any:
    """The ``nn.ModuleList`` of transformer blocks of a BERT-family model (any head)."""
    outer, inner, _ = _LAYER_STACKS[model.config.model_type]
    return getattr(getattr(model.base_model, outer), inner)


def set_layers(model: Any, modules: list[Any]) -> None:
    """Replace the block stack with ``modules`` and update the config's layer count to match."""
    import torch

    outer, inner, count = _LAYER_STACKS[model.config.model_type]
    setattr(getattr(model.base_model, outer), inner, torch.nn.ModuleList(modules))
    setattr(model.config, count, len(modules))
    renumber(modules)


class BertSurgery:
    """Where a BERT/RoBERTa block keeps its heads and FFN, in the layout the pruning code expects."""

    shape = Shape(layers="num_hidden_layers", heads="num_attention_heads", hidden="hidden_size",
                  ffn="intermediate_size")

    def blocks(self, model: Any) -> Any:
        return layers(model)

    def set_blocks(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

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


class Bert(Family):
    name = "bert"
    model_types = ("bert", "distilbert", "roberta")
    architecture_tasks = (("ForSequenceClassification", "text-classification"),
                          ("ForTokenClassification", "token-classification"), ("Model", "feature-extraction"))
    file_tasks = ("sentence-embedding",)
    default_task = "feature-extraction"
    structural_model_types = ("bert", "roberta")
    layer_keys = ("num_hidden_layers", "n_layers")
    width_keys = ("hidden_size", "dim")

    def layers(self, model: Any) -> Any:
        return layers(model)

    def set_layers(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

    trims_vocab = True

    def vocab_embeddings(self, model: Any) -> tuple[Any, Any | None]:
        # word_embeddings of bert/roberta, distilbert's embeddings.word_embeddings; a masked-LM head if any.
        return model.get_input_embeddings(), model.get_output_embeddings()

    def attention_projections(self, model: Any, layer: int) -> tuple[Any, Any, Any]:
        block = layers(model)[layer]
        if model.config.model_type == "distilbert":
            return block.attention.q_lin, block.attention.k_lin, block.attention.v_lin
        attention = block.attention.self
        return attention.query, attention.key, attention.value

    def surgery(self, model_type: str) -> BertSurgery | None:
        return BertSurgery() if model_type in self.structural_model_types else None


BERT = Bert()
