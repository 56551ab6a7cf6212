"""Teacher outputs kept per training row, so the teacher runs once per row instead of once per step.

A classifier's row is its logits (a few floats); an LM's row is the top-k logits of every position
(fp16 values, int32 token ids: see ``losses.topk_targets``). Hidden states and attention maps are not
cached: they are too big, so losses that need them run the teacher live.

The cache fills as rows are first seen. A batch is served from the cache only when every one of its
rows is there; otherwise the teacher runs on the batch and its rows are stored.
"""

from __future__ import annotations

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
        cpu = {k: v.detach().cpu() for k, v in targets.items()}
        for n, index in enumerate(indices):
            if index in self._rows:
                continue
            row = {k: v[n].clone() for k, v in cpu.items()}
            size = sum(t.numel() * t.element_size() for t in row.values())
            if self.bytes + size > self.limit_bytes:
                return
            self._rows[index] = row
            self.bytes += size

    def stats(self) -> dict[str, int]:
        return {"rows": len(self._rows), "bytes": self.bytes, "batch_hits": self.hits, "batch_misses": self.misses}
