"""``compress bench``: its options are declared in ``compressor.bench.options``."""

from __future__ import annotations

from typing import Any

from compressor.cli.stage_command import stage_command
from compressor.stages import STAGES


def _summary(output: Any, report: dict) -> list[str]:
    from compressor.bench.reports import summary_lines

    return summary_lines(report)


command = stage_command(STAGES["bench"], _summary, summarize_gate_failure=True)
