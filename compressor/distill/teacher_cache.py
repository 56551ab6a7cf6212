"""Teacher outputs kept per training row, so the teacher runs once per row instead of once per step.

A classifier's row is its logits (a few floats); an LM's row is the top-k logits of every position
(fp16 values, int32 token ids: see ``losses.topk_targets``). Hidden states and attention maps are not
cached: they are too big, so losses that need them run the teacher live.

The cache fills as rows are first seen. A batch is served from the cache only when every one of its
rows is there; otherwise the teacher runs on the batch and its rows are stored.

``--teacher-cache DIR`` keeps it across runs (``save``/``load``): ``compress auto`` recovers many
pruned students from one teacher on the same rows, and the teacher's forward pass was 42% of each
recovery step (MiniLM-L6 teacher, 3-layer student, batch 32, 2 CPU threads). A row's logits depend in
their last bits on the batch they were computed in, so a file is keyed (``cache_file``) on everything
that decides the batches as well as the teacher and the data: a run that reads it gets exactly the
numbers a live teacher would have given it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

# Stop adding rows past this many bytes; the rest is recomputed when seen again.
DEFAULT_LIMIT_BYTES = 2 << 30


class TeacherCache:
    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self._rows: dict[int, dict[str, torch.Tensor]] = {}
        self.limit_bytes = limit_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.loaded = 0  # rows read from a --teacher-cache file

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, indices: list[int], device: torch.device | str) -> dict[str, torch.Tensor] | None:
        """The stacked targets of these rows, or None (a miss) if any row is not cached."""
        if not all(i in self._rows for i in indices):
            self.misses += 1
            return None
        self.hits += 1
        keys = self._rows[indices[0]].keys()
        return {k: torch.stack([self._rows[i][k] for i in indices]).to(device) for k in keys}

    def put(self, indices: list[int], targets: dict[str, torch.Tensor]) -> None:
        """Store row ``n`` of each target tensor under ``indices[n]``."""
        self._add(indices, {k: v.detach().cpu() for k, v in targets.items()})

    def _add(self, indices: list[int], targets: dict[str, Any]) -> int:
        """Store row ``n`` of each target (a tensor or a list of rows) under ``indices[n]``, up to the
        byte limit; returns how many rows were new."""
        added = 0
        for n, index in enumerate(indices):
            if index in self._rows:
                continue
            row = {k: v[n].clone() for k, v in targets.items()}
            size = sum(t.numel() * t.element_size() for t in row.values())
            if self.bytes + size > self.limit_bytes:
                break
            self._rows[index] = row
            self.bytes += size
            added += 1
        return added

    def stats(self) -> dict[str, int]:
        return {"rows": len(self._rows), "bytes": self.bytes, "batch_hits": self.hits, "batch_misses": self.misses,
                "rows_loaded": self.loaded}

    def _add_file(self, path: Path) -> int:
        """Add the rows stored in ``path`` (a ``save`` file; absent: none); returns how many were new. A
        file that cannot be read adds nothing: the teacher recomputes what it held."""
        if not path.is_file():
            return 0
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            indices, targets = stored["indices"].tolist(), stored["targets"]
        except Exception:  # a truncated or foreign file: a cache miss, never a failed run
            return 0
        return self._add(indices, targets)

    def load(self, path: Path) -> int:
        """Read the rows of ``path`` before a run (counted in ``stats()["rows_loaded"]``)."""
        added = self._add_file(path)
        self.loaded += added
        return added

    def save(self, path: Path) -> None:
        """Write every cached row to ``path`` atomically, with the rows another run added meanwhile."""
        self._add_file(path)  # merged on the way out: they served nothing in this run, so are not counted
        if not self._rows:
            return
        indices = sorted(self._rows)
        keys = self._rows[indices[0]].keys()
        # Rows of one shape are stacked; rows of different lengths (an LM's positions) stay a list.
        targets: dict[str, Any] = {}
        for k in keys:
            values = [self._rows[i][k] for i in indices]
            same = all(v.shape == values[0].shape for v in values)
            targets[k] = torch.stack(values) if same else values
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"indices": torch.tensor(indices, dtype=torch.long), "targets": targets}, tmp)
        os.replace(tmp, path)


def cache_file(directory: str | Path, key: dict[str, Any]) -> Path:
    """The file in ``directory`` holding the rows of runs with this ``key`` (the teacher's and the
    data's hashes and every setting that decides the batches)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(directory) / f"teacher-{digest}.pt"
