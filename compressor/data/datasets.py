"""Task datasets built from tables: labelled text for classifiers, raw text for language models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.data.tables import read_table
from compressor.errors import BadInputError

DEFAULT_TEXT_COLUMNS = ("sentence", "text", "sentence1", "question", "content", "review")
DEFAULT_PAIR_COLUMNS = {"sentence1": "sentence2", "question": "sentence", "question1": "question2"}
DEFAULT_LABEL_COLUMN = "label"


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HEADER_SUFFIXES = {".tsv", ".csv"}  # files whose first row is taken as the header


def header_looks_like_data(path: str, columns: list[str]) -> str | None:
    """Why the header of the TSV/CSV ``path`` looks like a row of data (GLUE CoLA, for one, has no
    header: ``gj04<TAB>1<TAB><TAB>Our friends won't buy this analysis.``); None when it looks like a header."""
    if Path(path).suffix.lower() not in _HEADER_SUFFIXES:
        return None
    names = [str(c) for c in columns]
    for name in names:
        if _NUMBER.fullmatch(name.strip()):
            return f"column name {name!r} is a number"
    for name in names:
        if len(name) > 40 or len(name.split()) >= 5:
            return f"column name {name[:40] + '...' if len(name) > 40 else name!r} reads like a sentence"
    for name in names:
        if names.count(name) > 1:
            return f"column name {name!r} appears {names.count(name)} times"
    return None


def check_header(path: str, columns: list[str], problem: str, flag: str = "") -> None:
    """Raise, in place of the plain ``problem`` (a column not found), an error that says the file
    seems to have no header row and how to read it, when its first row looks like data."""
    reason = header_looks_like_data(path, columns)
    if reason:
        raise BadInputError(
            f"{flag + ' ' if flag else ''}{path}: {problem}, and the first row looks like data rather than a "
            f"header ({reason}); for a file without a header row pass --no-header with --text-column INDEX "
            "--label-column INDEX"
        )


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
            check_header(spec.path, columns, f"text column {spec.text_column!r} not found")
            raise BadInputError(
                f"{spec.path}: text column {spec.text_column!r} not found; columns are: {', '.join(columns)}"
            )
        return spec.text_column
    for name in DEFAULT_TEXT_COLUMNS:
        if name in columns:
            return name
    check_header(spec.path, columns, "no text column")
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
        check_header(spec.path, columns, f"text-pair column {spec.text_pair_column!r} not found")
        raise BadInputError(
            f"{spec.path}: text-pair column {spec.text_pair_column!r} not found; columns are: {', '.join(columns)}"
        )
    if pair_col not in columns:
        pair_col = None
    label_col = spec.label_column or DEFAULT_LABEL_COLUMN
    if label_col not in columns:
        if require_labels or spec.label_column:
            check_header(spec.path, columns, f"label column {label_col!r} not found")
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


