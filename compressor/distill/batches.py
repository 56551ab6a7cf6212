"""Training and evaluation data for distillation: tokenised rows and length buckets.

What data each teacher distils on is its task's rule (``compressor.tasks``): a text classifier on
labelled rows, a causal LM on free text cut into blocks.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.data import DataSpec
from compressor.data.batching import pad_batch
from compressor.errors import BadInputError


@dataclass
class Rows:
    """Tokenised, unpadded rows; ``labels`` for classification."""

    rows: list[dict[str, list[int]]]
    labels: list[int] | None
    source: str
    pad_id: int

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return [len(r["input_ids"]) for r in self.rows]

    def collate(self, indices: list[int]) -> dict[str, Any]:
        """Pad to the longest row of this batch (dynamic padding); ``index`` keys the teacher cache."""
        import torch

        indices = [int(i) for i in indices]
        batch = {k: torch.from_numpy(v) for k, v in pad_batch([self.rows[i] for i in indices], self.pad_id).items()}
        batch["index"] = torch.tensor(indices, dtype=torch.long)
        if self.labels is not None:
            batch["labels"] = torch.tensor([self.labels[i] for i in indices], dtype=torch.long)
        return batch


def file_hash(spec: DataSpec) -> str:
    """sha256 of a local data file (a hub dataset: of its name and split)."""
    path = Path(spec.path)
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    else:
        digest.update(f"{spec.path}:{spec.split}".encode())
    return "sha256:" + digest.hexdigest()


def load_rows(task: Any, tokenizer: Any, spec: DataSpec, *, label2id: dict[str, int] | None, max_length: int,
              flag: str, labels_needed: bool = True) -> Rows:
    """Validated, tokenised rows of ``task`` (a ``compressor.tasks.Task``): what each teacher distils
    on is the task's rule (``Task.training_rows``); ``labels_needed`` is False when no loss reads the
    data's own labels (the teacher labels every row)."""
    rows = task.training_rows(tokenizer, spec, label2id=label2id, max_length=max_length, flag=flag,
                              labels_needed=labels_needed)
    if not len(rows):
        raise BadInputError(f"{flag} {spec.path}: no rows; the data is empty")
    return rows


class BucketBatchSampler:
    """Shuffled batches of rows of similar length, so dynamic padding pads little.

    Each epoch the rows are shuffled (seeded by ``seed`` and ``epoch``), cut into pools of ``pool``
    batches, and each pool is sorted by length before being cut into batches; the full batches are
    then shuffled and the one short batch, if any, goes last (accelerate's sharding expects that).
    Set ``epoch`` before iterating; the same epoch always yields the same batches.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, *, shuffle: bool = True, pool: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size  # accelerate reads this attribute
        self.seed = seed
        self.shuffle = shuffle
        self.pool = pool
        self.epoch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            rng.shuffle(order)
        span = self.batch_size * self.pool
        ordered: list[int] = []
        for start in range(0, len(order), span):
            ordered.extend(sorted(order[start : start + span], key=lambda i: self.lengths[i]))
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        tail = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        if self.shuffle:
            rng.shuffle(batches)
        if tail:
            batches.append(tail)
        return batches

    def __iter__(self):
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def eval_batches(rows: Rows, batch_size: int) -> list[list[int]]:
    """Evaluation batches: rows sorted by length (no shuffling), so padding is minimal."""
    order = sorted(range(len(rows)), key=lambda i: len(rows.rows[i]["input_ids"]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
