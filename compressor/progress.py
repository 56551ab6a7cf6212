"""Progress on stderr: bars on a terminal; in CI logs (stderr not a terminal) a plain progress line
every ``LOG_INTERVAL_S`` seconds of a long loop (nothing for a short one); nothing with ``--quiet``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_quiet = False

LOG_INTERVAL_S = 30.0  # at most this long between two progress lines when no bar is shown
_clock = time.monotonic  # replaced by tests


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def bar(iterable: Iterable[T], desc: str, total: int | None = None, **kwargs: Any) -> Iterator[T]:
    if _logging():
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        return _logged(iterable, LogMeter(total, desc, unit=kwargs.get("unit", "it")))
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, disable=not enabled(), file=sys.stderr, leave=False, **kwargs))


def status(message: str) -> None:
    """A one-line note of what is happening now (not a result: results go in reports)."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def meter(total: int | None, desc: str, *, disable: bool = False, samples_per_update: int | None = None,
          **kwargs: Any) -> Any:
    """A bar updated by hand (``update(n)``, ``set_postfix(...)``) for loops that are not one iterable,
    e.g. a training loop showing loss, metric and ETA. Where no bar is shown (stderr not a terminal),
    a ``LogMeter`` with the same methods prints a line now and then instead; ``samples_per_update``
    (e.g. the batch size of a training step) lets it report samples/s."""
    if not disable and _logging():
        return LogMeter(total, desc, initial=kwargs.get("initial", 0), unit=kwargs.get("unit", "it"),
                        samples_per_update=samples_per_update)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=disable or not enabled(), file=sys.stderr, leave=False, **kwargs)


def _logging() -> bool:
    """Progress lines instead of bars: not quiet, and stderr is not a terminal (a CI log, a file)."""
    return not _quiet and not sys.stderr.isatty()


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class LogMeter:
    """tqdm's hand-updated interface for logs: ``update`` prints ``desc: n/total (p%), postfix, rate,
    ETA`` when ``LOG_INTERVAL_S`` has passed since the last line (or the start), and ``close`` a last
    line if any was printed. A loop shorter than the interval prints nothing."""

    def __init__(self, total: int | None, desc: str, *, initial: int = 0, unit: str = "it",
                 samples_per_update: int | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.samples_per_update = samples_per_update
        self.postfix: dict[str, Any] = {}
        self.lines = 0
        self._start_n = self._logged_n = initial
        self._start = self._last = _clock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if _clock() - self._last >= LOG_INTERVAL_S:
            self._log()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def write(self, text: str) -> None:
        status(text)

    def close(self) -> None:
        if not self._closed and self.lines and self.n != self._logged_n:
            self._log()
        self._closed = True

    def __enter__(self) -> LogMeter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def line(self) -> str:
        """The progress line for now."""
        elapsed = _clock() - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        head = f"{self.desc}: {count}" if self.unit == "it" else f"{self.desc}: {self.unit} {count}"
        if self.total:
            head += f" ({100 * self.n / self.total:.0f}%)"
        parts = [head, *(f"{key} {value}" for key, value in self.postfix.items())]
        if self.samples_per_update:
            parts.append(f"{_number(rate * self.samples_per_update)} samples/s")
        else:
            parts.append(f"{_number(rate)} {self.unit}/s")
        if self.total and self.n >= self.total:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _log(self) -> None:
        status(self.line())
        self.lines += 1
        self._logged_n = self.n
        self._last = _clock()


def _logged(iterable: Iterable[T], log: LogMeter) -> Iterator[T]:
    try:
        for item in iterable:
            yield item
            log.update(1)
    finally:
        log.close()
