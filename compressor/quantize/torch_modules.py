"""Module surgery shared by the PyTorch methods: finding, replacing and temporarily swapping layers.

torch.ao and neural-compressor's GPTQ/AWQ only handle ``nn.Linear`` reliably, so a family whose
projections are something else (GPT-2's ``Conv1D``) converts them first (``Family.to_linear``); the
conversion is exact (same product, same bias) and the loader repeats it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compressor.modules import get_module, set_module, swapped

__all__ = ["Candidate", "count_module_types", "forward_batches", "get_module", "linear_names", "set_module",
           "swapped", "tied_output_linear"]


def tied_output_linear(model: nn.Module) -> str | None:
    """Name of an output Linear whose weight *is* the input embedding (GPT-2's lm_head), else None.

    Quantizing it would store a second, quantized copy of the embedding table beside the float one
    the embedding still needs, making the artifact larger, so methods leave it in float.
    """
    get_output = getattr(model, "get_output_embeddings", None)
    get_input = getattr(model, "get_input_embeddings", None)
    if get_output is None or get_input is None:
        return None
    output, embedding = get_output(), get_input()
    if output is None or embedding is None or output.weight is not embedding.weight:
        return None
    for name, module in model.named_modules():
        if module is output:
            return name
    return None


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if type(module) is nn.Linear]


def count_module_types(model: nn.Module, quantized_names: set[str]) -> dict[str, dict[str, int]]:
    """Linear and Embedding layers by kind: quantized (in ``quantized_names``) or float."""
    counts: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        if name in quantized_names:
            kind = "Linear"
            state = "quantized"
        elif type(module) is nn.Linear:
            kind, state = "Linear", "float"
        elif isinstance(module, nn.Embedding):
            kind, state = "Embedding", "float"
        else:
            continue
        entry = counts.setdefault(kind, {"quantized": 0, "float": 0})
        entry[state] += 1
    return counts


class Candidate:
    """A model with some layers swapped in; ``restore()`` undoes the swap."""

    def __init__(self, model: nn.Module, replacements: dict[str, nn.Module]) -> None:
        self.model = model
        self._context = swapped(model, replacements)
        self._context.__enter__()

    def restore(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None


def forward_batches(model: nn.Module, batches: list[dict[str, Any]], task_kwargs: dict[str, Any], desc: str) -> None:
    """Run ``model`` over numpy batches (calibration): hooks and observers see real activations."""
    from compressor import progress

    with torch.no_grad():
        for batch in progress.bar(batches, desc=desc, total=len(batches)):
            model(**{k: torch.from_numpy(v) for k, v in batch.items() if k != "labels"}, **task_kwargs)
