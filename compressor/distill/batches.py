"""Training and evaluation data for distillation: the task rule, tokenised rows and length buckets.

The task rule (what data each teacher distils on):
- a text classifier trains on labelled rows: a table (TSV/CSV/JSONL/Parquet) with a text column and a
  label column whose values are in the teacher's label set. Plain text cannot teach a classifier.
- a causal LM trains on free text: a plain-text file, or a table's document column (``text``,
  ``content``, ``review``, or the one named by --text-column). A table of labelled sentences or sentence
  pairs (GLUE style: ``sentence``/``sentence1``/``question`` plus ``label``) is classification data
  and is refused unless --text-column names its column explicitly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.data import DataSpec, load_classification, load_texts, read_table
from compressor.data.batching import encode_classification, lm_blocks, pad_batch
from compressor.data.datasets import DEFAULT_LABEL_COLUMN, DEFAULT_PAIR_COLUMNS, _pick_text_column
from compressor.data.datasets import check_header
from compressor.errors import BadInputError
from compressor.families.base import CAUSAL_LM, CLASSIFICATION

# Sentence columns that, next to a label, mark a table as classification data.
_SENTENCE_COLUMNS = ("sentence", "sentence1", "question", "question1")


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


def check_task(task: str, spec: DataSpec, flag: str) -> None:
    """Refuse data of the other task, with the rule in the message (see the module docstring)."""
    columns, _ = read_table(spec.path, split=spec.split)
    label_col = spec.label_column or DEFAULT_LABEL_COLUMN
    if task == CLASSIFICATION:
        if label_col not in columns:
            check_header(spec.path, columns, f"no label column {label_col!r}", flag)
            raise BadInputError(
                f"{flag} {spec.path}: the teacher is a text classifier, which distils on labelled rows, but this "
                f"data has no label column {label_col!r} (columns: {', '.join(columns)}); LM text cannot train a "
                "classifier; pass a labelled table or --label-column"
            )
        return
    if spec.text_column:
        return  # the user named the text column: take it as the corpus
    text_col = _pick_text_column(spec, columns)
    pair_col = spec.text_pair_column or DEFAULT_PAIR_COLUMNS.get(text_col)
    if (label_col in columns and text_col in _SENTENCE_COLUMNS) or (pair_col and pair_col in columns):
        raise BadInputError(
            f"{flag} {spec.path}: columns {', '.join(columns)} are labelled sentences (classification data), but the "
            "teacher is a causal LM, which distils on free text: give a plain-text file or a table with a "
            "'text' column, or name the column with --text-column"
        )


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


def load_rows(task: str, tokenizer: Any, spec: DataSpec, *, label2id: dict[str, int] | None, max_length: int,
              flag: str) -> Rows:
    """Validated, tokenised rows. Classification: one row per example, at most ``max_length`` tokens.
    LM: the documents joined by EOS and cut into ``max_length``-token blocks (no padding at all)."""
    check_task(task, spec, flag)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if task == CLASSIFICATION:
        data = load_classification(spec, label2id=label2id, require_labels=True)
        rows = encode_classification(tokenizer, data, max_length)
        labels = data.labels
    elif task == CAUSAL_LM:
        try:
            blocks = lm_blocks(tokenizer, load_texts(spec), block_size=max_length)
        except BadInputError as exc:
            raise BadInputError(f"{flag} {spec.path}: {exc.message}") from exc
        rows = [{"input_ids": block} for block in blocks.tolist()]
        labels = None
    else:
        raise BadInputError(f"distill supports text classifiers and causal LMs, not {task!r} models")
    if not rows:
        raise BadInputError(f"{flag} {spec.path}: no rows; the data is empty")
    return Rows(rows=rows, labels=labels, source=spec.path, pad_id=pad_id)


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
