"""Guards against NaN/inf: a training loss that diverged, weights about to be written, quantization
scales and calibration ranges. Each failure is a run-time failure (exit 3) naming where the value is,
raised before anything is written (stages write into a staged output that a failure removes).

The checks are cheap by construction: the loss is a float the loop already has; weights and scales
are scanned once, at evaluation or save time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from compressor.errors import RuntimeFailureError


def describe(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def first_nonfinite(tensors: Iterable[tuple[str, Any]]) -> tuple[str, str] | None:
    """``(name, "nan"|"inf")`` of the first floating-point tensor holding a non-finite value, else None."""
    import torch

    for name, tensor in tensors:
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            return name, "nan" if bool(torch.isnan(tensor).any()) else "inf"
    return None


def check_loss(stage: str, value: float, step: int, parts: dict[str, float], hint: str) -> None:
    """Raise when the loss of optimizer step ``step`` (1-based) is NaN or infinite."""
    if math.isfinite(value):
        return
    terms = ", ".join(f"{name} {part:.4g}" for name, part in parts.items())
    raise RuntimeFailureError(f"{stage}: loss became {describe(value)} at step {step} ({terms}; {hint}); "
                              "nothing written")


def check_weights(stage: str, what: str, model: Any, hint: str = "") -> None:
    """Raise when ``model`` (a module or a state dict) has a NaN/inf parameter or buffer."""
    items = model.items() if isinstance(model, dict) else model.state_dict().items()
    found = first_nonfinite(items)
    if found is not None:
        name, kind = found
        extra = f"; {hint}" if hint else ""
        raise RuntimeFailureError(f"{stage}: the {what} has {kind} weights ({name}{extra}); nothing written")
