"""The confirmation rows of ``compress auto``: a seeded share of --eval-data the search never sees.

The search ranks dozens of trials on dev and keeps the fastest one within budget; among many trials
near the budget the fastest "within budget" is often one whose dev rows happened to favour it (the
winner's curse: a run measured -0.9 points on dev and -2.5 on test). So --eval-data is split once,
by seed, into search rows (every trial's bench, the distillation's evaluations) and confirmation rows,
on which only the finalists are scored: the winner must stay within budget on rows that played no
part in choosing it. ``--confirm-data`` gives the confirmation rows as a file of their own instead.

Tables split by row (TSV/CSV with their header, JSONL); other formats (CoNLL, plain text) cannot be
split row by row safely, so those runs confirm on nothing unless --confirm-data is given, and say so.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

SPLITTABLE = (".tsv", ".csv", ".jsonl")
MIN_CONFIRM_ROWS = 20  # fewer confirmation rows than this decide nothing: no split


@dataclass(frozen=True)
class Holdout:
    search: str  # the data every trial is scored on
    confirm: str | None  # the data the finalists are scored on (None: no confirmation)
    search_rows: int | None = None
    confirm_rows: int | None = None
    note: str = ""


def split_rows(lines: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split ``lines`` (data rows, no header) into (search, confirm): ``fraction`` of them, chosen by
    ``seed``, confirm; both keep the file's order."""
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    confirm = set(order[: round(len(lines) * fraction)])
    return ([line for i, line in enumerate(lines) if i not in confirm],
            [line for i, line in enumerate(lines) if i in confirm])


def prepare(eval_data: str, confirm_data: str | None, fraction: float, seed: int, out_dir: Path) -> Holdout:
    """The search and confirmation data of a run, the split files written into ``out_dir`` (the same
    bytes on every call with the same inputs, so a resumed run reuses its stages)."""
    if confirm_data is not None:
        return Holdout(search=eval_data, confirm=confirm_data, note="--confirm-data")
    if fraction <= 0:
        return Holdout(search=eval_data, confirm=None, note="--confirm-fraction 0: no confirmation rows")
    path = Path(eval_data)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in SPLITTABLE:
        return Holdout(search=eval_data, confirm=None,
                       note=f"{path.name}: only {', '.join(SPLITTABLE)} files split into confirmation rows; "
                            "pass --confirm-data for a confirmation set")
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.split("\n") if line.strip()]
    header, rows = (lines[:1], lines[1:]) if suffix != ".jsonl" else ([], lines)
    from compressor.data.tables import read_table

    if len(read_table(path)[1]) != len(rows):  # a quoted field spanning lines: rows are not lines here
        return Holdout(search=eval_data, confirm=None,
                       note=f"{path.name}: its rows span several lines, so it is not split; pass --confirm-data")
    search, confirm = split_rows(rows, fraction, seed)
    if len(confirm) < MIN_CONFIRM_ROWS or not search:
        return Holdout(search=eval_data, confirm=None,
                       note=f"{path.name}: {len(rows)} rows leave {len(confirm)} confirmation rows at "
                            f"--confirm-fraction {fraction:g}, fewer than {MIN_CONFIRM_ROWS}: no confirmation")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for part, chosen in (("search", search), ("confirm", confirm)):
        target = out_dir / f"{path.stem}.{part}{suffix}"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text("\n".join(header + chosen) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        files.append(str(target.resolve()))
    return Holdout(search=files[0], confirm=files[1], search_rows=len(search), confirm_rows=len(confirm),
                   note=f"{len(confirm)} of {len(rows)} rows of {path.name} held out (--confirm-fraction {fraction:g})")
