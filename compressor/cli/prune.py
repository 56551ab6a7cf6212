"""``compress prune``."""

from __future__ import annotations

import click

from compressor.cli.common import (
    allow_pickle_option,
    column_options,
    common_options,
    data_spec,
    emit,
    output_options,
    set_json,
)


def _summary(output: str, report: dict) -> list[str]:
    lines = [
        f"wrote {output}: {report['parameters'] / 1e6:.2f}M params (was {report['parameters_before'] / 1e6:.2f}M), "
        f"{report['size_bytes'] / 1e6:.1f} MB {report['dtype']} (was {report['size_bytes_before'] / 1e6:.1f} MB "
        f"{report['dtype_before']}); {report['methods']}"
    ]
    structure = report.get("structure")
    if structure:
        lines.append(
            f"layers {structure['layers']}, heads per layer {structure['heads_per_layer']}, "
            f"FFN width {sorted(set(structure['ffn_per_layer']))}"
        )
    sparse = report.get("sparsity")
    if sparse:
        lines.append(
            f"sparsity {sparse['sparsity_of_targeted']:.1%} of block weights ({sparse['sparsity_of_model']:.1%} of the "
            f"model): compressible to {sparse['compressible_bytes'] / 1e6:.1f} MB; no speed-up on dense runtimes"
        )
    if report["metrics"]:
        lines.append(", ".join(f"{k} {v:.4g}" for k, v in report["metrics"].items()))
    return lines


@click.command("prune")
@click.argument("src", type=str)
@output_options
@click.option("--method", "method", required=True,
              help="heads, ffn, layers (structural); magnitude (global unstructured), magnitude-layer (per matrix) "
                   "or 2:4 (sparsity). Combine with amounts: heads=0.25,ffn=0.3; layers=[1,3] removes given layers.")
@click.option("--amount", type=float, default=None, help="Fraction removed, for methods given without one.")
@click.option("--data", default=None, help="Calibration data: gradient importance (labelled rows for a classifier).")
@click.option("--importance", default="auto", show_default=True,
              help="auto (gradient with --data, else magnitude), gradient or magnitude.")
@click.option("--calibration-samples", type=int, default=256, show_default=True, help="Rows (LM: blocks) scored.")
@click.option("--eval-data", default=None, help="Data for the metric before/after (default: --data).")
@click.option("--eval-samples", type=int, default=None, help="Rows (LM: blocks) evaluated (default: all).")
@click.option("--max-length", type=int, default=128, show_default=True, help="Max tokens per row (LM: block size).")
@click.option("--ffn-multiple-of", type=int, default=None,
              help="Round the FFN width kept down to this (default: the largest of 64/32/16/8 that removes at "
                   "most 5% of the width beyond the amount).")
@click.option("--recover-from", default=None, help="The unpruned teacher to distil from after pruning.")
@click.option("--recover-data", default=None, help="Training data for the recovery distillation.")
@click.option("--recover-steps", type=int, default=None, help="Optimizer steps of recovery.")
@click.option("--recover-lr", type=float, default=1e-4, show_default=True, help="Peak learning rate of recovery.")
@click.option("--recover-batch-size", type=int, default=32, show_default=True, help="Batch size of recovery.")
@column_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: a CPU run is repeatable.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--dtype", default="auto", show_default=True,
              help="Storage dtype of the output: auto (the source's), float32, float16 or bfloat16. "
                   "Pruning and recovery run in float32 either way.")
@allow_pickle_option
@common_options
@click.pass_context
def command(ctx: click.Context, src: str, output: str, force: bool, method: str, amount: float | None,
            data: str | None, importance: str, calibration_samples: int, eval_data: str | None,
            eval_samples: int | None, max_length: int, ffn_multiple_of: int | None, recover_from: str | None,
            recover_data: str | None, recover_steps: int | None, recover_lr: float, recover_batch_size: int,
            text_column: str | None, text_pair_column: str | None, label_column: str | None, seed: int, device: str,
            dtype: str, allow_pickle: bool, as_json: bool) -> None:
    """Prune SRC (a PyTorch checkpoint) into -o DIR: physically remove heads, FFN neurons or layers, or zero
    weights (sparsity), optionally recovering quality by distillation from the unpruned model.

    The output is a standard checkpoint that AutoModel*.from_pretrained loads without this tool.
    """
    set_json(ctx, as_json)
    from compressor.prune import PruneConfig, parse_methods, prune

    columns = (text_column, text_pair_column, label_column)
    config = PruneConfig(
        methods=parse_methods(method, amount),
        data=data_spec(data, *columns),
        importance=importance,
        calibration_samples=calibration_samples,
        eval_data=data_spec(eval_data, *columns),
        eval_samples=eval_samples,
        max_length=max_length,
        ffn_multiple_of=ffn_multiple_of,
        recover_from=recover_from,
        recover_data=data_spec(recover_data, *columns),
        recover_steps=recover_steps,
        recover_lr=recover_lr,
        recover_batch_size=recover_batch_size,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    report = prune(src, output, config, force=force, allow_pickle=allow_pickle)
    emit(ctx, report, _summary(output, report))
