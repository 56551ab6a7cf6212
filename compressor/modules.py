"""Module surgery on plain torch models: find, replace and temporarily swap submodules by name.

Shared by the quantization engines (candidates are module swaps) and the quantized-weights format
(rebuilding a model), so it lives below both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@contextmanager
def swapped(model: nn.Module, replacements: dict[str, nn.Module]) -> Iterator[nn.Module]:
    """``model`` with some submodules replaced, restored on exit (used to measure one layer at a time)."""
    originals = {name: get_module(model, name) for name in replacements}
    try:
        for name, module in replacements.items():
            set_module(model, name, module)
        yield model
    finally:
        for name, module in originals.items():
            set_module(model, name, module)
