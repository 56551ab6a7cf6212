"""``compress quantize``: its options are declared in ``compressor.quantize.options``."""

from __future__ import annotations

from compressor.cli.stage_command import stage_command
from compressor.stages import STAGES


def _summary(output: str, report: dict) -> list[str]:
    method = report["method"] + (f"/{report['algorithm']}" if report.get("algorithm") else "")
    before, after = report["size_bytes_before"] / 1e6, report["size_bytes_after"] / 1e6
    lines = [f"wrote {output} ({method}, {before:.1f} MB -> {after:.1f} MB, {report['wall_time_s']:.1f} s)"]
    ops = ", ".join(f"{op} {c['quantized']}/{c['quantized'] + c['float']}" for op, c in report["ops"]["by_op_type"].items())
    lines.append(f"quantized ops: {ops}")
    metrics = report.get("metrics")
    if metrics:
        lines.append("quality: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    kept = report["fallback"].get("kept_float")
    if kept:
        lines.append(f"kept in float to meet the budget: {', '.join(k['layer'] for k in kept)}")
    if report["settings"].get("cpu"):
        cpu = report["settings"]["cpu"]
        lines.append(f"reduce_range {cpu['reduce_range']}: {cpu['reason']}")
    return lines


command = stage_command(STAGES["quantize"], _summary)
