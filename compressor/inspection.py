"""Human and machine views of an artifact's lineage, for ``compress inspect``."""

from __future__ import annotations

from typing import Any

from compressor.artifact import open_artifact


def _headline(stage: str, report: dict[str, Any]) -> str:
    parts = []
    if "size_bytes" in report:
        parts.append(f"size {report['size_bytes'] / 1e6:.1f} MB")
    parity = report.get("parity")
    if parity:
        parts.append(f"parity max|diff| {parity['max_abs_diff']:.2e}")
        for key in ("top1_agreement", "next_token_agreement"):
            if key in parity:
                parts.append(f"agreement {parity[key]:.2%}")
    for key, value in report.get("metrics", {}).items():
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def describe(directory: str) -> tuple[dict[str, Any], list[str]]:
    artifact = open_artifact(directory)
    lines = [
        f"{artifact.path}: {artifact.format} artifact, family {artifact.family.name}, task {artifact.task}, "
        f"{artifact.size_bytes() / 1e6:.1f} MB of weights",
    ]
    if not artifact.stages:
        lines.append("  lineage: none (an original checkpoint, not written by compress)")
    for index, record in enumerate(artifact.stages, start=1):
        lines.append(f"  {index}. {record.stage} from {record.source_path} ({record.source_hash[:19]}…)")
        cpu = f" ({record.cpu_time_s:.1f} CPU s)" if record.cpu_time_s is not None else ""
        lines.append(f"     at {record.started_at}, {record.wall_time_s:.1f} s{cpu}, seed {record.seed}")
        headline = _headline(record.stage, record.report)
        if headline:
            lines.append(f"     {headline}")
    report = artifact.manifest.to_dict() if artifact.manifest else {
        "format": artifact.format, "family": artifact.family.name, "task": artifact.task, "stages": []
    }
    report["path"] = str(artifact.path)
    return report, lines
