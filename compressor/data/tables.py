"""Reading a data file into rows of named columns: TSV, CSV, JSONL, Parquet or plain text.

GLUE TSVs are read with quoting disabled because their sentences contain unbalanced quotes. Plain
text yields one ``text`` column: one row per blank-line-separated document.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

TEXT_SUFFIXES = {".txt", ".text", ".raw"}
TABLE_SUFFIXES = {".tsv", ".csv", ".jsonl", ".json", ".parquet"}


def _read_delimited(path: Path, delimiter: str, no_header: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            return [], []
        rows = []
        first = 2
        if no_header:  # columns are named by index: "0", "1", ...; the first line is data
            rows.append(dict(zip(map(str, range(len(header))), header)))
            header, first = [str(i) for i in range(len(header))], 2
        for number, values in enumerate(reader, start=first):
            if not values:
                continue
            if len(values) != len(header):
                raise BadInputError(
                    f"{path}: line {number} has {len(values)} fields, the header has {len(header)}"
                )
            rows.append(dict(zip(header, values)))
    return header, rows


def _read_jsonl(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise BadInputError(f"{path}: line {number} is not a JSON object")
            columns.update(dict.fromkeys(row))
            rows.append(row)
    return list(columns), rows


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    return list(table.column_names), table.to_pylist()


def _read_text(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    documents = [block.strip() for block in text.split("\n\n") if block.strip()]
    return ["text"], [{"text": doc} for doc in documents]


def _read_hub(name: str, split: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import datasets
    except ImportError as exc:
        raise BadInputError(
            f"{name}: no such file, and hub datasets need the 'datasets' package (pip install datasets)"
        ) from exc
    dataset_name, _, config = name.partition(":")
    try:
        dataset = datasets.load_dataset(dataset_name, config or None, split=split or "train")
    except Exception as exc:  # offline, unknown name, unknown split: all the same to the user
        raise BadInputError(f"{name}: no such file, and not loadable from the hub ({str(exc).splitlines()[0]})") from exc
    return list(dataset.column_names), dataset.to_list()


def _looks_local(path: str | Path) -> bool:
    """A name with a data suffix or an explicit path is a local file, never a hub dataset."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES | TEXT_SUFFIXES or str(path).startswith(("/", ".", "~"))


def check_data_path(path: str | Path) -> None:
    """Exit-2 error now when ``path`` names a local data file that is missing or a directory (hub
    dataset names are checked when read)."""
    file = Path(path)
    if file.is_dir():
        raise BadInputError(f"{path}: is a directory; expected a data file")
    if not file.exists() and _looks_local(path):
        raise BadInputError(f"{path}: no such data file")


def read_table(path: str | Path, *, split: str | None = None,
               no_header: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a local file (by suffix) or, when no such file exists, a hub dataset.
    ``no_header``: a TSV/CSV whose first line is data; its columns are named "0", "1", ..."""
    file = Path(path)
    if not file.exists():
        if _looks_local(path):
            raise BadInputError(f"{path}: no such data file")
        return _read_hub(str(path), split)
    if file.is_dir():
        raise BadInputError(f"{path}: is a directory; expected a data file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".tsv":
            columns, rows = _read_delimited(file, "\t", no_header)
        elif suffix == ".csv":
            columns, rows = _read_delimited(file, ",", no_header)
        elif suffix in {".jsonl", ".json"}:
            columns, rows = _read_jsonl(file)
        elif suffix == ".parquet":
            columns, rows = _read_parquet(file)
        elif suffix in TEXT_SUFFIXES:
            columns, rows = _read_text(file)
        else:
            raise BadInputError(
                f"{path}: unknown data format {suffix or '(no suffix)'}; use .tsv, .csv, .jsonl, .parquet or .txt"
            )
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not rows:
        raise BadInputError(f"{path}: no rows; the data file is empty")
    return columns, rows
