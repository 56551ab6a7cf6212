"""Recipes for ``compress run``: a trial's recipe while searching, the winner's for CI afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def recipe_text(name: str, inputs: dict[str, str], stages: list[dict[str, Any]], *, seed: int, header: str = "") -> str:
    import yaml

    body = {"name": name, "seed": seed, "inputs": inputs, "stages": stages}
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=120)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + text


def bench_stage(final: str, data: str, *, budget_gate: str, budget: float, batch_sizes: str, threads: int | None,
                min_seconds: float, memory: bool, name: str = "bench") -> dict[str, Any]:
    # Every row scored (bench's default stops at 1,000): the budget is judged on the whole data set.
    options: dict[str, Any] = {"data": data, "batch-sizes": batch_sizes, "min-seconds": min_seconds,
                               "max-samples": 10**7, budget_gate: budget}
    if threads:
        options["threads"] = threads
    if not memory:
        options.update({"no-memory": True, "profile-runs": 0, "bootstrap": 200})
    return {"name": name, "run": "bench", "artifacts": [final], "baseline": "teacher", "with": options}


def write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
