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


def meter(total: int | None, desc: str, *, disable: bool = False, **kwargs: Any) -> Any:
    """A bar updated by hand (``update(n)``, ``set_postfix(...)``) for loops that are not one iterable,
    e.g. a training loop showing loss, metric and ETA."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=disable or not enabled(), file=sys.stderr, leave=False, **kwargs)
