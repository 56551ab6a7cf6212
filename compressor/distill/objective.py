"""What the student is trained on: the student wrapped with its hidden-state projections, and the
weighted sum of the distillation losses (the task's output terms plus the shared internal ones)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from compressor.distill import losses
from compressor.distill.config import DistillConfig
from compressor.tasks.base import Task

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class DistillModule(nn.Module):
    """The student plus the learned projections that map its hidden states to the teacher's width.

    One module so that ``accelerator.prepare`` wraps (and all-reduces) both.
    """

    def __init__(self, student: nn.Module, projections: nn.ModuleList | None, *, hidden: bool, attentions: bool,
                 model_kwargs: dict[str, Any], relation_modules: tuple[nn.Module, ...] = ()) -> None:
        super().__init__()
        self.student = student
        self.projections = projections
        self.want_hidden = hidden
        self.want_attentions = attentions
        self.extra = dict(model_kwargs)
        # Plain attribute, not submodules: they already belong to ``student`` (no double registration).
        self.__dict__["relation_modules"] = tuple(relation_modules)

    def forward(self, **inputs: torch.Tensor) -> dict[str, Any]:
        with capture_outputs(self.relation_modules) as captured:
            out = self.student(**inputs, output_hidden_states=self.want_hidden,
                               output_attentions=self.want_attentions, **self.extra)
        result: dict[str, Any] = {"logits": out.logits}
        if self.relation_modules:
            result["relations"] = captured
        if self.want_hidden:
            states = out.hidden_states[1:]  # [0] is the embedding output
            if self.projections is not None:
                states = [proj(h) for proj, h in zip(self.projections, states)]
            result["hidden"] = list(states)
        if self.want_attentions:
            result["attentions"] = list(out.attentions)
        return result


@contextlib.contextmanager
def capture_outputs(modules: tuple[nn.Module, ...]) -> Iterator[list[torch.Tensor]]:
    """The outputs of ``modules`` during the block, in the order given (the family's Q, K, V
    projections for the relation loss); the hooks are removed on exit, so nothing stays attached
    to a model that is later saved or evaluated."""
    captured: list[torch.Tensor | None] = [None] * len(modules)

    def hook_for(i: int) -> Any:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            captured[i] = output
        return hook

    handles = [module.register_forward_hook(hook_for(i)) for i, module in enumerate(modules)]
    try:
        yield captured  # type: ignore[misc]
    finally:
        for handle in handles:
            handle.remove()


def make_projections(student_width: int, teacher_width: int, layers: int) -> nn.ModuleList | None:
    """A learned linear map per matched layer when widths differ (TinyBERT's W_h); None when equal."""
    if student_width == teacher_width:
        return None
    return nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(layers))


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in MODEL_INPUTS}


def compute_losses(task: Task, config: DistillConfig, out: dict[str, Any], targets: dict[str, Any],
                   batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the enabled losses, and each term's value for the progress line. The
    output-level terms (KD, CE) are the task's; hidden-state and attention terms are shared."""
    mask = batch.get("attention_mask")
    parts: dict[str, torch.Tensor] = task.output_losses(config, out["logits"], targets, batch)
    if config.alpha_hidden:
        terms = [losses.hidden_loss(s, t, mask, config.hidden_loss) for s, t in zip(out["hidden"], targets["hidden"])]
        parts["hidden"] = torch.stack(terms).mean()
    if config.alpha_attn:
        terms = [losses.attention_kl(s, t, mask) for s, t in zip(out["attentions"], targets["attentions"])]
        parts["attn"] = torch.stack(terms).mean()
    if config.alpha_relation:
        parts["relation"] = losses.relation_kl(out["relations"], targets["relations"], config.relation_heads, mask)
    weights = {"kd": config.alpha_kd, "ce": config.alpha_ce, "hidden": config.alpha_hidden, "attn": config.alpha_attn,
               "relation": config.alpha_relation}
    total = sum(weights[name] * value for name, value in parts.items())
    return total, {name: float(value.detach()) for name, value in parts.items()}
