"""Latency statistics and the measurement loop: pure Python/numpy, no model code.

The loop never times itself: each call returns the seconds *it* measured, so a CPU call wrapped in
``perf_counter`` and a GPU call timed with CUDA events share one loop, and the loop's own overhead
(a list append) never lands inside a sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds one synchronous call takes (CPU, or an onnxruntime run, which blocks until done)."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run_loop(
    call: Callable[[int], float],
    *,
    warmup: int,
    min_runs: int,
    min_seconds: float,
    max_runs: int | None = None,
) -> list[float]:
    """Run ``call(i)`` ``warmup`` times untimed, then until both ``min_runs`` samples and
    ``min_seconds`` of wall time are collected. ``call`` returns its own elapsed seconds.

    ``i`` counts from 0 across warm-up and measured calls, so callers cycling through a list of
    inputs keep cycling instead of restarting on the first (often shortest) input.
    """
    for i in range(warmup):
        call(i)
    samples: list[float] = []
    start = time.perf_counter()
    i = warmup
    while len(samples) < min_runs or time.perf_counter() - start < min_seconds:
        if max_runs is not None and len(samples) >= max_runs:
            break
        samples.append(call(i))
        i += 1
    return samples


def summarize(samples_s: list[float] | np.ndarray) -> dict[str, float | int]:
    """Mean, std and percentiles in milliseconds (linear interpolation, numpy's default)."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "runs": int(ms.size),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min_ms": float(ms.min()),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(ms.max()),
    }


def throughput(items_per_call: list[int] | np.ndarray, samples_s: list[float] | np.ndarray) -> float:
    """Items (samples or tokens) per second over all measured calls: total items / total time."""
    total = float(np.sum(samples_s))
    return float(np.sum(items_per_call)) / total if total > 0 else float("nan")


def side_by_side(
    fns: dict[str, Callable[[Any], Any]], inputs: list[Any], *, warmup: int = 10, rounds: int = 2
) -> dict[str, list[float]]:
    """Seconds per call of each fn on each input, for comparing models in one process.

    Each round runs every fn over all inputs as one block (after ``warmup`` untimed calls), the order
    of the fns reversed every round so slow drift of the machine hits all of them alike. Blocks, not
    alternating calls: onnxruntime's and OpenMP's worker threads spin for a while after each run, so
    calling model B right after model A times B against A's spinning threads (on a 2-core machine an
    interleaved FP32 PyTorch call read 75 ms against 7 ms alone).
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            fn = fns[name]
            for x in inputs[:warmup]:
                fn(x)
            times[name] += [timed(fn, x) for x in inputs]
    return times
