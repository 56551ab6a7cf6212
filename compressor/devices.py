"""Device selection shared by every stage: a clear error when CUDA is asked for but absent."""

from __future__ import annotations

from compressor.errors import BadInputError

DEVICES = ("cpu", "cuda")


def require_device(device: str) -> str:
    if device not in DEVICES:
        raise BadInputError(f"--device {device!r}: unknown device; choose one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BadInputError("--device cuda: no CUDA GPU is available on this machine; use --device cpu")
    return device
