"""Progress bars on stderr: shown on a terminal, silent in CI logs or with ``--quiet``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def bar(iterable: Iterable[T], desc: str, total: int | None = None, **kwargs: Any) -> Iterator[T]:
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, disable=not enabled(), file=sys.stderr, leave=False, **kwargs))


def status(message: str) -> None:
    """A one-line note of what is happening now (not a result: results go in reports)."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)
