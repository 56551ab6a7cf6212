"""Token-tagged sentences: CoNLL files and JSONL/Parquet tables with ``tokens`` and ``tags`` lists.

CoNLL: one token per line, its tag in the LAST column (CoNLL-2003: ``token POS chunk NER``), a blank
line between sentences, ``-DOCSTART-`` lines skipped. Every token line of a file must have as many
columns as the first one. Tables: a ``tokens`` list and a ``tags`` list per row (tag names or ids,
as Hugging Face datasets store them). Tags are returned as ids in the model's label set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

CONLL_SUFFIXES = {".conll", ".conllu", ".iob", ".iob2", ".bio", ".txt"}
TOKEN_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("tags", "ner_tags", "labels")


@dataclass
class TaggedData:
    words: list[list[str]]
    tags: list[list[int]] | None
    source: str
    iob1_starts: int = 0  # I-X tags that open an entity (after O or another type): IOB1-style input

    def __len__(self) -> int:
        return len(self.words)


def _tag_line(line: str) -> list[str]:
    return line.split()


def looks_like_conll(path: str | Path) -> bool:
    """Whether a text file reads as CoNLL (a -DOCSTART- line, or token lines whose last column is
    an IOB tag): used to refuse it where sentences are expected."""
    file = Path(path)
    if not file.is_file() or file.suffix.lower() not in CONLL_SUFFIXES:
        return False
    tagged = total = 0
    with file.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if number > 200:
                break
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "-DOCSTART-":
                return True
            total += 1
            last = parts[-1]
            if len(parts) >= 2 and (last == "O" or last[:2] in ("B-", "I-", "E-", "S-")):
                tagged += 1
    return total > 0 and tagged / total > 0.8


def read_conll(path: str | Path) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of (tokens, tag names) from a CoNLL file; exit-2 errors name the file and line."""
    file = Path(path)
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    current: list[str] = []
    columns: int | None = None
    try:
        handle = file.open(encoding="utf-8")
        lines = list(handle)
        handle.close()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for number, line in enumerate(lines, start=1):
        parts = _tag_line(line)
        if not parts:
            if words:
                sentences.append(words)
                tags.append(current)
                words, current = [], []
            continue
        if parts[0] == "-DOCSTART-":
            continue
        if columns is None:
            columns = len(parts)
            if columns < 2:
                raise BadInputError(
                    f"{path}: line {number} has 1 column; CoNLL needs a token and its tag (the tag in the last column)"
                )
        elif len(parts) != columns:
            raise BadInputError(
                f"{path}: line {number} has {len(parts)} columns, expected {columns} like line 1 of the data "
                "(token ... tag, the tag in the last column)"
            )
        words.append(parts[0])
        current.append(parts[-1])
    if words:
        sentences.append(words)
        tags.append(current)
    if not sentences:
        raise BadInputError(f"{path}: no sentences; the data file is empty")
    return sentences, tags


def _pick(columns: list[str], spec_column: str | None, defaults: tuple[str, ...], what: str, path: str) -> str | None:
    if spec_column:
        if spec_column not in columns:
            raise BadInputError(f"{path}: {what} column {spec_column!r} not found; columns are: {', '.join(columns)}")
        return spec_column
    return next((c for c in defaults if c in columns), None)


def _sentence_level_error(path: str, columns: list[str], label_column: str | None) -> BadInputError:
    label = label_column or "label"
    return BadInputError(
        f"{path}: holds sentence-level labels (columns: {', '.join(columns)}); a token classifier needs a tag per "
        f"token: a CoNLL file (token ... tag per line) or JSONL with 'tokens' and 'tags' lists"
        + (f" (column {label!r} has one label per row)" if label in columns else "")
    )


def _read_rows(spec: Any) -> tuple[list[list[str]], list[list[Any]] | None]:
    from compressor.data.tables import read_table

    columns, rows = read_table(spec.path, split=spec.split, no_header=getattr(spec, "no_header", False))
    token_col = _pick(columns, spec.text_column, TOKEN_COLUMNS, "token", spec.path)
    tag_col = _pick(columns, spec.label_column, TAG_COLUMNS, "tag", spec.path)
    if token_col is None:
        raise _sentence_level_error(spec.path, columns, spec.label_column)
    words, tags = [], [] if tag_col else None
    for number, row in enumerate(rows, start=1):
        tokens = row[token_col]
        if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
            raise _sentence_level_error(spec.path, columns, spec.label_column)
        words.append([str(t) for t in tokens])
        if tag_col is not None:
            row_tags = row[tag_col]
            if not isinstance(row_tags, (list, tuple)):
                raise BadInputError(
                    f"{spec.path}: row {number}: {tag_col!r} is {row_tags!r}, a sentence-level label; a token "
                    "classifier needs one tag per token"
                )
            if len(row_tags) != len(tokens):
                raise BadInputError(
                    f"{spec.path}: row {number}: {len(tokens)} tokens but {len(row_tags)} tags"
                )
            tags.append(list(row_tags))
    return words, tags


def _tag_ids(path: str, tags: list[list[Any]], label2id: dict[str, int]) -> list[list[int]]:
    id2label = {v: k for k, v in label2id.items()}
    unknown: dict[str, None] = {}
    out = []
    for sentence in tags:
        ids = []
        for tag in sentence:
            key = str(tag).strip()
            if key in label2id:
                ids.append(label2id[key])
            elif isinstance(tag, int) and tag in id2label:
                ids.append(int(tag))
            elif key.isdigit() and int(key) in id2label and not any(k.isdigit() for k in label2id):
                ids.append(int(key))
            else:
                unknown[key] = None
                ids.append(-100)
        out.append(ids)
    if unknown:
        names = sorted(unknown)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise BadInputError(
            f"{path}: tags {shown} are not in the model's label set ({', '.join(label2id)})"
        )
    return out


def count_iob1_starts(tags: list[list[str]]) -> int:
    """I-X tags that start an entity (after O, at a sentence start, or after another type): valid
    IOB1, which seqeval's default mode reads as an entity start, as conlleval does."""
    count = 0
    for sentence in tags:
        previous = "O"
        for tag in sentence:
            if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
                count += 1
            previous = tag
    return count


def load_tagged(spec: Any, *, label2id: dict[str, int] | None, require_tags: bool) -> TaggedData:
    """Token-tagged sentences of ``spec`` (CoNLL by suffix, else a table), tags as label ids."""
    path = Path(spec.path)
    if path.is_dir():
        raise BadInputError(f"{spec.path}: is a directory; expected a data file")
    if path.suffix.lower() in CONLL_SUFFIXES:
        if not path.exists():
            raise BadInputError(f"{spec.path}: no such data file")
        words, tag_names = read_conll(path)
        tags: list[list[Any]] | None = tag_names
    else:
        words, tags = _read_rows(spec)
    if spec.limit:
        words, tags = words[: spec.limit], (tags[: spec.limit] if tags is not None else None)
    if tags is None:
        if require_tags:
            raise BadInputError(f"{spec.path}: no tags column (looked for {', '.join(TAG_COLUMNS)}); pass --label-column")
        return TaggedData(words=words, tags=None, source=spec.path)
    ids = _tag_ids(spec.path, tags, label2id or {})
    id2label = {v: k for k, v in (label2id or {}).items()}
    names = [[id2label.get(i, "O") for i in sentence] for sentence in ids]
    return TaggedData(words=words, tags=ids, source=spec.path, iob1_starts=count_iob1_starts(names))
