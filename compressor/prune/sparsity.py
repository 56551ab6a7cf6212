"""Unstructured (magnitude) and 2:4 semi-structured sparsity: masks, and what the zeros are worth.

Zeros inside dense matrices save nothing by themselves: PyTorch and onnxruntime run the same
multiply-adds over them. So the report says so, and shows the size the weights would take in a sparse
format (values of the kept weights plus a bitmap, or plus 2-bit indices for 2:4, as NVIDIA's sparse
tensor cores store them); the dense file on disk stays the same size. The masks are recorded in the
artifact so later fine-tuning or a sparse runtime can keep the pattern.

All functions work on plain tensors keyed by parameter name; ``in_axis`` is the reduction (input)
dimension of each matrix, along which 2:4 groups run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

MASKS_FILE = "sparsity_masks.npz"
DENSE_RUNTIME_NOTE = (
    "sparsity only zeroes weights inside dense matrices: dense runtimes (PyTorch, onnxruntime on CPU or CUDA) "
    "run the same number of multiply-adds, so it gains no speed; the gain is the compressible size"
)
SEMI_NOTE = "2:4 runs faster only with sparse tensor-core kernels (NVIDIA Ampere or newer and a sparse runtime)"


def target_weights(model: Any, blocks: Any) -> dict[str, tuple[Any, int]]:
    """The matrices of the transformer blocks (attention and FFN projections), by parameter name,
    with their input axis: ``nn.Linear`` stores [out, in], GPT-2's ``Conv1D`` [in, out]."""
    import torch
    from transformers.pytorch_utils import Conv1D

    names = {id(p): n for n, p in model.named_parameters()}
    found: dict[str, tuple[Any, int]] = {}
    for block in blocks:
        for module in block.modules():
            if isinstance(module, torch.nn.Linear):
                found[names[id(module.weight)]] = (module.weight, 1)
            elif isinstance(module, Conv1D):
                found[names[id(module.weight)]] = (module.weight, 0)
    return found


def magnitude_masks(weights: dict[str, Any], amount: float, *, per_layer: bool) -> dict[str, Any]:
    """Keep-masks zeroing the ``amount`` smallest |w|: over all matrices together (global) or in each."""
    import torch

    def keep_mask(values: list[Any]) -> Any:
        flat = torch.cat([v.detach().abs().float().reshape(-1) for v in values])
        k = int(round(amount * flat.numel()))
        if k < 1:
            return None
        return torch.kthvalue(flat, k).values

    masks = {}
    if per_layer:
        for name, w in weights.items():
            threshold = keep_mask([w])
            masks[name] = torch.ones_like(w, dtype=torch.bool) if threshold is None else w.detach().abs() > threshold
    else:
        threshold = keep_mask(list(weights.values()))
        for name, w in weights.items():
            masks[name] = torch.ones_like(w, dtype=torch.bool) if threshold is None else w.detach().abs() > threshold
    return masks


def check_2_4(shapes: dict[str, tuple[tuple[int, ...], int]]) -> None:
    """Every matrix's input dimension must split into groups of 4."""
    for name, (shape, axis) in shapes.items():
        if shape[axis] % 4:
            raise BadInputError(
                f"--method 2:4: {name} has an input dimension of {shape[axis]}, not divisible by 4; "
                "2:4 sparsity needs groups of 4 weights"
            )


def semi_structured_masks(weights: dict[str, tuple[Any, int]]) -> dict[str, Any]:
    """Keep the 2 largest |w| of every 4 consecutive weights along each matrix's input axis."""
    import torch

    check_2_4({name: (tuple(w.shape), axis) for name, (w, axis) in weights.items()})
    masks = {}
    for name, (w, axis) in weights.items():
        moved = w.detach().abs().movedim(axis, -1)
        groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // 4, 4)
        top = groups.topk(2, dim=-1).indices
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
        masks[name] = keep.reshape(moved.shape).movedim(-1, axis)
    return masks


def apply_masks(weights: dict[str, Any], masks: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask.to(weights[name].dtype))


def summary(weights: dict[str, Any], masks: dict[str, Any], *, model_params: int, pattern: str,
            bytes_per_weight: int = 4) -> dict[str, Any]:
    """Sparsity of the targeted matrices and of the whole model, and the compressible size."""
    targeted = sum(weights[n].numel() for n in masks)
    kept = sum(int(m.sum()) for m in masks.values())
    zeroed = targeted - kept
    if pattern == "2:4":
        # Values of the kept half plus 2 bits of position per kept value.
        sparse_bytes = kept * bytes_per_weight + (kept * 2 + 7) // 8
    else:
        # Values of the kept weights plus a 1-bit-per-weight bitmap.
        sparse_bytes = kept * bytes_per_weight + (targeted + 7) // 8
    dense_bytes = model_params * bytes_per_weight
    compressible = dense_bytes - targeted * bytes_per_weight + sparse_bytes
    return {
        "pattern": pattern,
        "targeted_params": int(targeted),
        "zeroed_params": int(zeroed),
        "sparsity_of_targeted": zeroed / targeted if targeted else 0.0,
        "sparsity_of_model": zeroed / model_params if model_params else 0.0,
        "dense_bytes": int(dense_bytes),
        "compressible_bytes": int(compressible),
        "compressible_ratio": compressible / dense_bytes if dense_bytes else 1.0,
        "speedup_on_dense_runtimes": 1.0,
        "note": DENSE_RUNTIME_NOTE + ("; " + SEMI_NOTE if pattern == "2:4" else ""),
        "masks_file": MASKS_FILE,
    }


def save_masks(path: Path, masks: dict[str, Any]) -> None:
    """Bit-packed keep-masks (1 = kept) with their shapes, readable with numpy alone."""
    import numpy as np

    arrays = {}
    for name, mask in masks.items():
        arrays[f"{name}::bits"] = np.packbits(mask.cpu().numpy().reshape(-1))
        arrays[f"{name}::shape"] = np.array(mask.shape, dtype=np.int64)
    np.savez_compressed(path, **arrays)


def load_masks(path: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    masks = {}
    with np.load(path) as data:
        for key in data.files:
            if key.endswith("::bits"):
                name = key[: -len("::bits")]
                shape = tuple(int(v) for v in data[f"{name}::shape"])
                count = int(np.prod(shape))
                bits = np.unpackbits(data[key])[:count].astype(bool)
                masks[name] = torch.from_numpy(bits.reshape(shape))
    return masks
