"""Gates: thresholds that decide whether an artifact may ship, evaluated on a bench report entry.

A gate passes or fails on the point estimate. Quality gates also carry the bootstrap interval; when
the threshold lies inside it, the data cannot tell pass from fail and a warning says so (more
samples, or a looser gate, are needed for the verdict to mean something).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.bench.config import GATES


@dataclass
class GateResult:
    artifact: str
    gate: str
    threshold: float
    value: float | None
    unit: str
    passed: bool
    detail: str
    ci95: list[float] | None = None

    @property
    def ci_supports_verdict(self) -> bool:
        """False when the threshold lies inside the 95% interval of the measured value."""
        if self.ci95 is None:
            return True
        low, high = self.ci95
        return not low <= self.threshold <= high

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci_supports_verdict"] = self.ci_supports_verdict
        return data


def _measure(name: str, entry: dict[str, Any], reference_batch: int) -> tuple[float | None, list[float] | None, str]:
    """(value, interval, how it was measured) of gate ``name`` for one report entry."""
    vs = (entry.get("quality") or {}).get("vs_baseline") or {}
    latency = (entry.get("latency") or {}).get(str(reference_batch)) or {}
    if name.startswith("max-") and name.endswith("-drop"):  # accuracy, f1, score: a drop in points
        key = name[4:-5].replace("-", "_")
        return vs.get(f"{key}_drop_points"), vs.get(f"{key}_drop_ci95"), f"{key.replace('_', ' ')} drop vs baseline"
    if name == "max-perplexity-increase":
        return vs.get("perplexity_increase_pct"), vs.get("perplexity_increase_ci95"), "perplexity increase vs baseline"
    if name == "min-speedup":
        return entry.get("speedup"), None, f"baseline p50 / p50 at batch {reference_batch}"
    if name == "max-latency-ms":
        return latency.get("p90_ms"), None, f"p90 at batch {reference_batch}"
    if name == "max-size-mb":
        return entry.get("size_mb"), None, "weights on disk"
    if name == "max-memory-mb":
        return (entry.get("memory") or {}).get("peak_rss_mb"), None, "peak RSS in a fresh process"
    raise KeyError(name)


def evaluate(entry: dict[str, Any], gates: dict[str, float], reference_batch: int) -> list[GateResult]:
    results = []
    for name, threshold in gates.items():
        spec = GATES[name]
        value, ci, what = _measure(name, entry, reference_batch)
        if value is None:
            passed, detail = False, f"{what}: not measured"
        else:
            passed = value >= threshold if name.startswith("min-") else value <= threshold
            relation = ">=" if name.startswith("min-") else "<="
            ci_text = f" (95% CI {ci[0]:.3g}..{ci[1]:.3g})" if ci else ""
            detail = (
                f"{what}: {value:.4g} {spec.unit}{ci_text}, needs {relation} {threshold:g} {spec.unit}"
            )
        results.append(
            GateResult(
                artifact=entry["name"], gate=name, threshold=threshold, value=value, unit=spec.unit,
                passed=passed, detail=detail, ci95=list(ci) if ci else None,
            )
        )
    return results
