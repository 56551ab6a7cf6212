"""Task datasets built from tables: labelled text for classifiers, raw text for language models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.data.tables import read_table
from compressor.errors import BadInputError

DEFAULT_TEXT_COLUMNS = ("sentence", "text", "sentence1", "question", "content", "review")
DEFAULT_PAIR_COLUMNS = {"sentence1": "sentence2", "question": "sentence", "question1": "question2"}
DEFAULT_LABEL_COLUMN = "label"


@dataclass(frozen=True)
class DataSpec:
    """Where data comes from and which columns hold what; ``None`` columns take the defaults."""

    path: str
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    split: str | None = None
    limit: int | None = None
    no_header: bool = False  # a TSV/CSV without a header line: columns are named "0", "1", ...

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass
class ClassificationData:
    texts: list[str]
    pairs: list[str] | None
    labels: list[int] | None
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def _pick_text_column(spec: DataSpec, columns: list[str]) -> str:
    if spec.text_column:
        if spec.text_column not in columns:
            raise BadInputError(
                f"{spec.path}: text column {spec.text_column!r} not found; columns are: {', '.join(columns)}"
            )
        return spec.text_column
    for name in DEFAULT_TEXT_COLUMNS:
        if name in columns:
            return name
    raise BadInputError(
        f"{spec.path}: no text column (looked for {', '.join(DEFAULT_TEXT_COLUMNS)}); "
        f"columns are: {', '.join(columns)}; pass --text-column"
    )


def _label_to_id(value: Any, label2id: dict[str, int], num_labels: int) -> int | None:
    key = str(value).strip()
    if key in label2id:
        return label2id[key]
    # Checkpoints without named labels use LABEL_i; data then carries the index itself.
    if key.lstrip("-").isdigit() and all(k.startswith("LABEL_") for k in label2id):
        index = int(key)
        return index if 0 <= index < num_labels else None
    return None


def load_classification(
    spec: DataSpec,
    *,
    label2id: dict[str, int] | None,
    require_labels: bool,
) -> ClassificationData:
    """Sentences (and pairs) with label ids in the model's label set."""
    columns, rows = read_table(spec.path, split=spec.split, no_header=spec.no_header)
    if spec.limit:
        rows = rows[: spec.limit]
    text_col = _pick_text_column(spec, columns)
    pair_col = spec.text_pair_column or DEFAULT_PAIR_COLUMNS.get(text_col)
    if spec.text_pair_column and spec.text_pair_column not in columns:
        raise BadInputError(
            f"{spec.path}: text-pair column {spec.text_pair_column!r} not found; columns are: {', '.join(columns)}"
        )
    if pair_col not in columns:
        pair_col = None
    label_col = spec.label_column or DEFAULT_LABEL_COLUMN
    if label_col not in columns:
        if require_labels or spec.label_column:
            raise BadInputError(
                f"{spec.path}: label column {label_col!r} not found; columns are: {', '.join(columns)}; "
                "pass --label-column"
            )
        label_col = None

    texts = [str(row[text_col]) for row in rows]
    pairs = [str(row[pair_col]) for row in rows] if pair_col else None
    labels = None
    if label_col:
        mapping = label2id or {}
        num_labels = len(mapping)
        labels = []
        for index, row in enumerate(rows):
            label = _label_to_id(row[label_col], mapping, num_labels)
            if label is None:
                raise BadInputError(
                    f"{spec.path}: row {index + 1}: label {row[label_col]!r} is not in the model's label set "
                    f"({', '.join(map(str, mapping)) or 'none'})"
                )
            labels.append(label)
    return ClassificationData(texts=texts, pairs=pairs, labels=labels, source=spec.path)


def load_texts(spec: DataSpec) -> list[str]:
    """Documents of raw text for language modelling (plain text, or the text column of a table)."""
    columns, rows = read_table(spec.path, split=spec.split, no_header=spec.no_header)
    if spec.limit:
        rows = rows[: spec.limit]
    column = _pick_text_column(spec, columns)
    texts = [str(row[column]).replace("<br />", "\n") for row in rows]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise BadInputError(f"{spec.path}: column {column!r} holds no text")
    return texts


