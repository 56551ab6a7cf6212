"""The accuracy budget: measure quality loss, and when it is over budget, keep the most sensitive
layers in float until it is within budget or nothing is left to keep.

Engine-agnostic: an engine supplies two measurements, as callables, and this module decides.

- ``only(unit)``: quality with *only* ``unit`` quantized (everything else float). Its loss against the
  float model is that unit's measured sensitivity; ``divergence`` (KL of predictions from the float
  model's) breaks ties where accuracy on a finite set moves in whole rows.
- ``without(units)``: quality with everything quantized except ``units``.

Layers go back to float one at a time in order of measured sensitivity, so the float set is the
shortest prefix of that ranking that meets the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressor import progress, tasks


@dataclass(frozen=True)
class Unit:
    """One quantizable layer: an ONNX node or a PyTorch module."""

    name: str
    op_type: str


# budget option -> (flag, unit); every option but the perplexity one bounds a drop in points
BUDGET_OPTIONS = {
    "max_accuracy_drop": ("--max-accuracy-drop", "pt"),
    "max_f1_drop": ("--max-f1-drop", "pt"),
    "max_score_drop": ("--max-score-drop", "pt"),
    "max_perplexity_increase": ("--max-perplexity-increase", "%"),
}


@dataclass(frozen=True)
class Budget:
    """A bound on the loss of a task's metric: a drop in points (0..100 scale) for metrics where
    higher is better (accuracy, entity F1, Spearman), an increase in percent for perplexity."""

    metric: str  # the task's metric: "accuracy", "f1", "spearman", "perplexity"
    limit: float
    option: str = ""  # the task's budget option (``BUDGET_OPTIONS``)

    @classmethod
    def for_task(cls, task: str, **values: float | None) -> Budget | None:
        """The budget that applies to ``task``'s metric (its ``budget_option``), or None when none is set."""
        spec = tasks.get(task)
        value = values.get(spec.budget_option or "")
        return None if value is None else cls(spec.metric, float(value), spec.budget_option)

    @property
    def unit(self) -> str:
        return "%" if self.metric == "perplexity" else "pt"

    @property
    def flag(self) -> str:
        if self.option:
            return BUDGET_OPTIONS[self.option][0]
        return "--max-perplexity-increase" if self.metric == "perplexity" else "--max-accuracy-drop"

    def loss(self, before: dict[str, Any], after: dict[str, Any]) -> float:
        """Metric drop in points, or perplexity increase in percent (positive = worse)."""
        if self.metric == "perplexity":
            return (after["perplexity"] / before["perplexity"] - 1.0) * 100.0
        return (before[self.metric] - after[self.metric]) * 100.0

    def within(self, loss: float) -> bool:
        return loss <= self.limit + 1e-9


def loss_of(metric: str, before: dict[str, Any], after: dict[str, Any]) -> float:
    return Budget(metric, 0.0).loss(before, after)


Measure = tuple[dict[str, Any], float]  # (metrics, divergence from the float model)


@dataclass
class Sensitivity:
    unit: Unit
    metrics: dict[str, Any]
    loss: float
    divergence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.unit.name,
            "op_type": self.unit.op_type,
            "loss_alone": self.loss,
            "divergence_alone": self.divergence,
            "metrics_alone": self.metrics,
        }


def measure(units: list[Unit], only: Callable[[Unit], Measure], budget: Budget, before: dict[str, Any]) -> list[Sensitivity]:
    """Sensitivity of every unit, most sensitive first."""
    results = []
    for unit in progress.bar(units, desc="per-layer sensitivity", total=len(units)):
        metrics, divergence = only(unit)
        results.append(Sensitivity(unit, metrics, budget.loss(before, metrics), divergence))
    return sorted(results, key=lambda s: (s.loss, s.divergence), reverse=True)


@dataclass
class FallbackResult:
    within_budget: bool
    float_units: list[Unit]
    metrics: dict[str, Any]
    loss: float
    attempts: list[dict[str, Any]]


def fall_back(
    ranked: list[Sensitivity],
    without: Callable[[list[Unit]], dict[str, Any]],
    budget: Budget,
    before: dict[str, Any],
    *,
    last: tuple[dict[str, Any], float],
) -> FallbackResult:
    """Return layers to float, most sensitive first, until the loss is within budget.

    ``last`` is the measurement with everything quantized (already known; not re-measured). When only
    the least sensitive layer is left quantized and the budget is still not met, nothing is left to
    fall back and the result says so (``within_budget`` False).
    """
    metrics, loss = last
    attempts: list[dict[str, Any]] = []
    floats: list[Unit] = []
    # At least one layer stays quantized: with every layer in float there is nothing left to fall
    # back, and the "quantized" artifact would be the float model.
    for sensitivity in ranked[:-1]:
        floats = floats + [sensitivity.unit]
        progress.status(f"over budget ({loss:.3g}{budget.unit} > {budget.limit:g}{budget.unit}); "
                        f"keeping {len(floats)} layer(s) in float, latest {sensitivity.unit.name}")
        metrics = without(floats)
        loss = budget.loss(before, metrics)
        attempts.append({"float_layers": [u.name for u in floats], "metrics": metrics, "loss": loss,
                         "within_budget": budget.within(loss)})
        if budget.within(loss):
            return FallbackResult(True, floats, metrics, loss, attempts)
    return FallbackResult(False, floats, metrics, loss, attempts)


def float_reasons(ranked: list[Sensitivity], float_units: list[Unit], budget: Budget) -> list[dict[str, Any]]:
    """Why each float layer stayed float: its rank and its measured cost when quantized alone."""
    by_name = {s.unit.name: (rank, s) for rank, s in enumerate(ranked, start=1)}
    reasons = []
    for unit in float_units:
        rank, s = by_name[unit.name]
        reasons.append({
            "layer": unit.name,
            "op_type": unit.op_type,
            "loss_alone": s.loss,
            "divergence_alone": s.divergence,
            "reason": (f"sensitivity rank {rank} of {len(ranked)}: quantizing it alone costs "
                       f"{s.loss:.3g}{budget.unit} {budget.metric} (KL {s.divergence:.3g})"),
        })
    return reasons
