"""The one summary printed at the end of a run: each stage, its artifact, and the bench verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _size_mb(path: str | None) -> str:
    if not path or not Path(path).is_dir():
        return "-"
    suffixes = {".safetensors", ".bin", ".onnx", ".onnx_data", ".data", ".pt"}
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and p.suffix in suffixes)
    return f"{size / 1e6:.1f} MB" if size else "-"


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"run {report.get('run_dir', '?')}:"]
    for stage in report.get("stages", []):
        state = "skipped (up to date)" if stage.get("skipped") else f"{stage.get('wall_time_s', 0):.1f} s"
        lines.append(f"  {stage['name']:<14} {stage.get('run', ''):<12} {_size_mb(stage.get('output')):>10}  {state}")
        markdown = Path(stage.get("output") or "") / "report.md"
        if stage.get("run") == "bench" and markdown.is_file():
            lines += ["", markdown.read_text().rstrip()]
    if "passed" in report:
        lines.append("gates: PASSED" if report["passed"] else "gates: FAILED")
    return lines
