"""GPT-2 family: decoder-only causal language models."""

from __future__ import annotations

from typing import Any

from compressor.families.base import CAUSAL_LM, Family

GPT2 = Family(
    name="gpt2",
    model_types=("gpt2",),
    tasks=(CAUSAL_LM,),
    architecture_tasks=(("LMHeadModel", CAUSAL_LM), ("ForCausalLM", CAUSAL_LM)),
    default_task=CAUSAL_LM,
)


def layers(model: Any) -> Any:
    """The ``nn.ModuleList`` of transformer blocks (``transformer.h``) of a GPT-2 model."""
    return model.base_model.h


def set_layers(model: Any, modules: list[Any]) -> None:
    """Replace the block stack with ``modules`` and update ``n_layer`` to match."""
    import torch

    model.base_model.h = torch.nn.ModuleList(modules)
    model.config.n_layer = len(modules)
