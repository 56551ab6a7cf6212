"""``compress distill``: its options are declared in ``compressor.distill.options``."""

from __future__ import annotations

from typing import Any

from compressor.cli.stage_command import stage_command
from compressor.stages import STAGES


def _summary(output: Any, report: dict) -> list[str]:
    student_info, training, metric = report["student"], report["training"], report["eval_metric"]
    summary = [
        f"wrote {output}: {student_info['layers']}-layer student ({student_info['parameters'] / 1e6:.1f}M params, "
        f"teacher {report['teacher']['parameters'] / 1e6:.1f}M), layer map {','.join(map(str, report['layer_map']))}",
        f"{report['size_bytes'] / 1e6:.1f} MB {report['dtype']} "
        f"(teacher {report['teacher']['size_bytes'] / 1e6:.1f} MB {report['teacher']['dtype']})",
        f"trained {training['steps']} steps ({training['epochs']:.2f} epochs, {training['samples_per_s']} samples/s)",
    ]
    metrics = report["metrics"]
    if metric in metrics:
        line = f"{metric}: {metrics[metric]:.4g} (best, step {training['best_step']})"
        if f"teacher_{metric}" in metrics:
            line += f"; teacher {metrics[f'teacher_{metric}']:.4g}"
        summary.append(line)
    return summary


command = stage_command(STAGES["distill"], _summary,
                        extra_help="Runs data-parallel unchanged under `accelerate launch -m compressor.cli distill ...`.")
