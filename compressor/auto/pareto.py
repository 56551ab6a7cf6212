"""The Pareto front of a search: quality cost (the budget's measure, lower is better) against the
objective (latency, size or throughput), as a JSON table, a Markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OBJECTIVE_LABELS = {"latency": ("p50 ms (batch 1)", "p50_ms"), "size": ("size MB", "size_mb"),
                    "throughput": ("samples/s", "samples_per_s")}


def front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both cost and objective (``objective_value``: lower is better)."""
    done = [r for r in rows if r.get("cost") is not None and r.get("objective_value") is not None]
    kept = []
    for row in done:
        dominated = any(
            o["cost"] <= row["cost"] and o["objective_value"] <= row["objective_value"]
            and (o["cost"] < row["cost"] or o["objective_value"] < row["objective_value"])
            for o in done
        )
        if not dominated:
            kept.append(row)
    return sorted(kept, key=lambda r: r["objective_value"])


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(rows: list[dict[str, Any]], *, metric: str, budget_flag: str, budget: float, objective: str,
             winner: int | None) -> str:
    label, _ = OBJECTIVE_LABELS[objective]
    lines = [f"# compress auto: Pareto front ({metric} cost vs {label})", "",
             f"Budget: {budget_flag} {budget:g} (cost on the rows of --eval-data the search scored; the winner is "
             f"chosen among the fastest of these on the held-out confirmation rows: finalists in auto.json). "
             f"Objective: {objective}.", "",
             "| trial | configuration | dev " + metric + " | cost | within budget | p50 ms | size MB | samples/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(winner)**" if r["trial"] == winner else ""
        lines.append(f"| {r['trial']}{mark} | {r['configuration']} | {_fmt(r.get('quality'))} | {_fmt(r.get('cost'), 3)} "
                     f"| {'yes' if r.get('feasible') else 'no'} | {_fmt(r.get('p50_ms'), 3)} | {_fmt(r.get('size_mb'), 3)} "
                     f"| {_fmt(r.get('samples_per_s'), 4)} |")
    return "\n".join(lines) + "\n"


def write(run_dir: Path, rows: list[dict[str, Any]], *, metric: str, budget_flag: str, budget: float,
          objective: str, winner: int | None) -> dict[str, Any]:
    """Write pareto.json, pareto.md and pareto.png (every trial, the front highlighted) into ``run_dir``."""
    kept = front(rows)
    table = {"objective": objective, "metric": metric, "budget": {"option": budget_flag, "value": budget},
             "winner": winner, "front": kept, "trials": rows}
    (run_dir / "pareto.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
    (run_dir / "pareto.md").write_text(markdown(kept, metric=metric, budget_flag=budget_flag, budget=budget,
                                                objective=objective, winner=winner))
    _plot(run_dir / "pareto.png", rows, kept, metric=metric, objective=objective, winner=winner)
    return table


def _plot(path: Path, rows: list[dict[str, Any]], kept: list[dict[str, Any]], *, metric: str, objective: str,
          winner: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, key = OBJECTIVE_LABELS[objective]
    done = [r for r in rows if r.get(key) is not None and r.get("quality") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for feasible, colour, name in ((True, "tab:blue", "within budget"), (False, "tab:grey", "over budget")):
        pts = [r for r in done if bool(r.get("feasible")) == feasible]
        if pts:
            ax.scatter([r[key] for r in pts], [r["quality"] for r in pts], c=colour, label=name, alpha=0.7)
    line = sorted((r for r in kept if r.get(key) is not None and r.get("quality") is not None), key=lambda r: r[key])
    if line:
        ax.plot([r[key] for r in line], [r["quality"] for r in line], "-", c="tab:orange", label="Pareto front")
    for r in done:
        ax.annotate(str(r["trial"]), (r[key], r["quality"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if r["trial"] == winner:
            ax.scatter([r[key]], [r["quality"]], marker="*", s=250, c="tab:red", label="winner", zorder=5)
    teacher = next((r.get("teacher_quality") for r in done if r.get("teacher_quality") is not None), None)
    if teacher is not None:
        ax.axhline(teacher, ls="--", c="black", lw=0.8, label="teacher")
    ax.set_xlabel(label)
    ax.set_ylabel(f"dev {metric}")
    if objective != "throughput":
        ax.set_xscale("log")
    ax.set_title("compress auto: trials")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
