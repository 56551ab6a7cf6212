"""``compress prune``: its options are declared in ``compressor.prune.options``."""

from __future__ import annotations

from compressor.cli.stage_command import stage_command
from compressor.stages import STAGES


def _summary(output: str, report: dict) -> list[str]:
    lines = [
        f"wrote {output}: {report['parameters'] / 1e6:.2f}M params (was {report['parameters_before'] / 1e6:.2f}M), "
        f"{report['size_bytes'] / 1e6:.1f} MB {report['dtype']} (was {report['size_bytes_before'] / 1e6:.1f} MB "
        f"{report['dtype_before']}); {report['methods']}"
    ]
    structure = report.get("structure")
    if structure:
        kv = structure.get("kv_heads_per_layer")
        lines.append(
            f"layers {structure['layers']}, heads per layer {structure['heads_per_layer']}, "
            + (f"KV heads per layer {kv}, " if kv else "")
            + f"FFN width {sorted(set(structure['ffn_per_layer']))}"
        )
    sparse = report.get("sparsity")
    if sparse:
        lines.append(
            f"sparsity {sparse['sparsity_of_targeted']:.1%} of block weights ({sparse['sparsity_of_model']:.1%} of the "
            f"model): compressible to {sparse['compressible_bytes'] / 1e6:.1f} MB; no speed-up on dense runtimes"
        )
    vocab = report.get("vocab")
    if vocab:
        line = f"vocabulary {vocab['size']:,} tokens (was {vocab['size_before']:,})"
        if "eval_rows" in vocab:
            line += (f"; {vocab['eval_rows_touched']} of {vocab['eval_rows']} --eval-data rows hold a dropped token "
                     f"({vocab['eval_tokens_dropped']} tokens)")
        lines.append(line)
    if report["metrics"]:
        lines.append(", ".join(f"{k} {v:.4g}" for k, v in report["metrics"].items()))
    return lines


command = stage_command(STAGES["prune"], _summary)
