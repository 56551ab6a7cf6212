"""``compress export-openvino``: its options are declared in ``compressor.export_openvino.options``."""

from __future__ import annotations

from typing import Any

from compressor.cli.stage_command import stage_command
from compressor.stages import STAGES


def _summary(output: Any, report: dict) -> list[str]:
    parity = report["parity"]
    agreement = parity.get("top1_agreement", parity.get("next_token_agreement"))
    summary = [
        f"wrote {output} ({report['size_bytes'] / 1e6:.1f} MB, {sum(report['ops'].values())} ops"
        + (", stateful KV cache" if report["stateful"] else "") + ")",
        f"parity: max |logit diff| {parity['max_abs_diff']:.2e} (atol {parity['atol']:g})"
        + (f", agreement {agreement:.2%}" if agreement is not None else ""),
    ]
    if "accuracy_candidate" in parity:
        summary.append(f"accuracy: {report['source_format']} {parity['accuracy_reference']:.2%}, "
                       f"OpenVINO {parity['accuracy_candidate']:.2%}")
    return summary


command = stage_command(STAGES["export-openvino"], _summary)
