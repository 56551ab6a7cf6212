"""Choosing ``compress auto``'s winner from the search's feasible trials: confirm, then re-time.

A trial's own bench is one short timing on a shared machine (the same artifact read 0.67 and 1.23 ms
in two trials), and its quality is the dev score the search selected on. So the winner is not simply
the fastest feasible trial. The feasible trials, fastest first, are taken ``size`` at a time as
finalists and benched together against the teacher on the confirmation rows (``holdout``), for
``rounds`` rounds in alternating order; each finalist's objective is its best round (the lowest: time
and minus throughput). Other processes on a shared machine only ever add time, and they come in bursts:
in one run a finalist's rounds read 0.50, 1.24, 1.15, 0.99 and 0.58 ms, so a median ranks the models by
which of them the bursts happened to hit; the best round is the least disturbed reading of each
model's own cost (timeit's rule). The
winner is the best finalist within budget on the confirmation rows; when none is, the next finalists
are tried (while the time budget lasts), and when none of them confirms, there is no winner. Finalists
whose best rounds are within ``tie`` of the best one's cannot be told apart by timing on a shared machine, so
the smallest on disk of them wins (``pick``).
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from compressor import progress, stages
from compressor.errors import GateFailedError


def _key(path: str) -> str:
    """An artifact directory as one key: trials repeating a configuration share its stages' directory."""
    return str(Path(path).resolve())


def measure(rows: list[dict[str, Any]], *, teacher: str, data: str, config: Any, rounds: int,
            report_dir: Path) -> list[dict[str, Any]]:
    """Bench ``rows``' artifacts together against ``teacher`` on ``data`` ``rounds`` times (the order
    reversed every round); returns one record per row: the confirmation cost (the budget's gate on
    ``data``), the objective (the best round) and every round's value."""
    bench = stages.get("bench")
    batches = "1" if config.objective != "throughput" else f"1,{config.throughput_batch}"
    paths = [_key(r["artifact"]) for r in rows]
    values: dict[str, list[float]] = {p: [] for p in paths}
    costs: dict[str, tuple[float, bool, Any, float | None]] = {}
    for round_ in range(rounds):
        order = paths if round_ % 2 == 0 else paths[::-1]
        given = {"baseline": teacher, "data": data, "batch-sizes": batches, "min-seconds": config.finalist_seconds,
                 "max-samples": 10**7, "no-memory": True, "profile-runs": 0, "report-dir": str(report_dir / f"round-{round_ + 1}"),
                 config.budget.gate: config.budget.value, **({"threads": config.threads} if config.threads else {})}
        _, bench_config = bench.parse(given, "compress auto finalists")
        try:
            report = bench.invoke(order, None, bench_config)
        except GateFailedError as exc:  # some finalist over budget here: still a measurement
            report = exc.report or {}
        for entry in report.get("artifacts", []):
            path = _key(entry["path"])
            value = config.objective_value(entry)
            if path in values and value is not None:
                values[path].append(float(value))
            if path not in costs:
                gate = config.budget_gate(entry)
                costs[path] = (float(gate.value), bool(gate.passed), (entry.get("quality") or {}), entry.get("size_mb"))
    records = []
    for row, path in zip(rows, paths):
        cost, passed, quality, size_mb = costs.get(path, (float("nan"), False, {}, None))
        measured = values[path]
        records.append({"trial": row["trial"], "configuration": row["configuration"], "search_cost": row["cost"],
                        "search_objective": row["objective_value"], "confirm_cost": cost, "confirmed": passed,
                        "confirm_quality": quality, "size_mb": size_mb, "objective_rounds": measured,
                        "objective": min(measured) if measured else None,
                        "objective_median": statistics.median(measured) if measured else None})
    return records


def pick(records: list[dict[str, Any]], tie: float = 0.0) -> dict[str, Any] | None:
    """The best confirmed record: the lowest objective, or, among those within ``tie`` (a share of
    the best's magnitude) of it, the smallest on disk; the chosen record notes the trials it was tied with."""
    confirmed = [r for r in records if r["confirmed"] and r["objective"] is not None]
    if not confirmed:
        return None
    best = min(confirmed, key=lambda r: r["objective"])
    tied = [r for r in confirmed if r["objective"] - best["objective"] <= tie * abs(best["objective"])]
    chosen = min(tied, key=lambda r: (r.get("size_mb") if r.get("size_mb") is not None else math.inf,
                                      r["objective"]))
    if len(tied) > 1:
        chosen["tied_with"] = sorted(r["trial"] for r in tied if r is not chosen)
    return chosen


def choose(feasible: list[dict[str, Any]], *, teacher: str, data: str, config: Any, size: int, rounds: int,
           report_dir: Path, deadline: float | None = None, tie: float = 0.0) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The winning row (or None) and every finalist's record, in the order they were measured; each
    artifact is measured once, however many trials built it. Past
    ``deadline`` (``time.monotonic()``) no further group is started once one has been measured."""
    ordered, seen = [], set()
    for row in sorted(feasible, key=lambda r: r["objective_value"]):
        # Trials that repeat a configuration share its stages, so their artifact: bench it once, as the
        # trial that read fastest, and give the slot to the next distinct artifact.
        path = _key(row["artifact"])
        if path not in seen:
            seen.add(path)
            ordered.append(row)
    measured: list[dict[str, Any]] = []
    for start in range(0, len(ordered), size):
        if measured and deadline is not None and time.monotonic() > deadline:
            progress.status(f"finalists: out of time after {len(measured)} of {len(ordered)} feasible trials")
            break
        group = ordered[start:start + size]
        progress.status(f"finalists: trials {', '.join(str(r['trial']) for r in group)} on {data} "
                        f"({rounds} rounds side by side)")
        records = measure(group, teacher=teacher, data=data, config=config, rounds=rounds,
                          report_dir=report_dir / f"group-{start // size + 1}")
        measured += records
        best = pick(records, tie)
        if best is not None:
            return next(r for r in group if r["trial"] == best["trial"]), measured
    return None, measured
