"""Storage precision: the float dtype a checkpoint's weights are stored in, and the one distill and
prune write.

Models are loaded in float32 and trained/pruned in float32 whatever they are stored in; ``--dtype``
only decides what is written. ``auto`` keeps the source's storage dtype, so a teacher stored in fp16
gives an fp16 student (not an fp32 one bigger on disk than its teacher).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

AUTO = "auto"
DTYPES = (AUTO, "float32", "float16", "bfloat16")
_SAFETENSORS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _header_dtypes(path: Path) -> Counter:
    """Elements per float dtype in one safetensors file, from its JSON header alone."""
    counts: Counter = Counter()
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    for name, info in header.items():
        if name != "__metadata__" and info.get("dtype") in _SAFETENSORS:
            counts[_SAFETENSORS[info["dtype"]]] += prod(info.get("shape") or [1])
    return counts


def storage_dtype(directory: Path, config: dict[str, Any]) -> str:
    """The float dtype most weights are stored in: read from the safetensors headers, else from
    config.json's ``dtype``/``torch_dtype``, else float32."""
    counts: Counter = Counter()
    for path in sorted(Path(directory).glob("model*.safetensors")):
        try:
            counts += _header_dtypes(path)
        except (OSError, ValueError, struct.error):
            continue  # a corrupt file is reported by the loader
    if counts:
        return counts.most_common(1)[0][0]
    declared = str(config.get("dtype") or config.get("torch_dtype") or "float32").replace("torch.", "")
    return declared if declared in _SAFETENSORS.values() else "float32"


def resolve(option: str, directory: Path, config: dict[str, Any]) -> str:
    """The dtype to write: ``option``, or with ``auto`` the source's storage dtype."""
    return storage_dtype(directory, config) if option == AUTO else option


def cast(model: Any, dtype: str) -> Any:
    """``model`` converted in place to ``dtype`` for saving (save_pretrained records it in config.json)."""
    import torch

    return model.to(getattr(torch, dtype))
