"""SmoothQuant (Xiao et al. 2023) math on plain tensors, and the Linear wrapper that applies it.

Activation outliers live in a few input channels; dividing those channels by ``s`` and multiplying
the matching weight columns by ``s`` leaves ``x @ W.T`` unchanged but moves the quantization
difficulty from activations to weights:

    s_j = max|X_j| ** alpha / max|W_:,j| ** (1 - alpha)

The division is kept as an explicit per-channel multiply in front of the Linear instead of being
folded into the preceding LayerNorm: in post-LN BERT that LayerNorm's output is also the residual
stream, so folding would change the model; the multiply is exact for every architecture.

neural-compressor 3.x's ``SmoothQuantConfig`` runs only through intel-extension-for-pytorch, which
has no build for this torch; this module implements the same transform, and the smoothed Linear is
then quantized to INT8 weights and INT8 (dynamic) activations with torch.ao.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compressor.formats.torch_quantized import SmoothQuantLinear

MIN_SCALE = 1e-5


def smoothing_scales(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-input-channel scales ``s`` for a Linear ``weight`` of shape (out, in)."""
    w_absmax = weight.detach().abs().amax(dim=0).float().clamp(min=MIN_SCALE)
    a_absmax = act_absmax.float().clamp(min=MIN_SCALE)
    scales = a_absmax.pow(alpha) / w_absmax.pow(1.0 - alpha)
    return scales.clamp(min=MIN_SCALE)


def smooth_weight(weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``W diag(s)``: column j multiplied by s_j."""
    return weight * scales.to(weight.dtype).unsqueeze(0)


def smooth_linear(linear: nn.Linear, act_absmax: torch.Tensor, alpha: float) -> SmoothQuantLinear:
    """A float ``SmoothQuantLinear`` equivalent to ``linear`` (up to float rounding)."""
    scales = smoothing_scales(act_absmax, linear.weight, alpha)
    smoothed = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        smoothed.weight.copy_(smooth_weight(linear.weight, scales))
        if linear.bias is not None:
            smoothed.bias.copy_(linear.bias)
    return SmoothQuantLinear(smoothed, 1.0 / scales)


def activation_absmax(model: nn.Module, names: list[str], run: Any) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| seen by each named Linear while ``run(model)`` feeds calibration data."""
    stats: dict[str, torch.Tensor] = {}
    hooks = []

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()
            current = x.reshape(-1, x.shape[-1]).abs().amax(dim=0).float()
            stats[name] = current if name not in stats else torch.maximum(stats[name], current)

        return hook

    for name in names:
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook_for(name)))
    try:
        run(model)
    finally:
        for handle in hooks:
            handle.remove()
    return stats
