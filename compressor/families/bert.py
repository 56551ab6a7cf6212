"""BERT family: bert (MiniLM is a bert), distilbert and roberta encoders."""

from __future__ import annotations

from typing import Any

from compressor.families.base import CLASSIFICATION, ENCODER, Family

BERT = Family(
    name="bert",
    model_types=("bert", "distilbert", "roberta"),
    tasks=(CLASSIFICATION, ENCODER),
    architecture_tasks=(("ForSequenceClassification", CLASSIFICATION), ("Model", ENCODER)),
    default_task=ENCODER,
)


# Where each model type keeps its stack of transformer blocks (under ``model.base_model``) and the
# config field that counts them. Used by stages that take layers out (distill's students).
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
