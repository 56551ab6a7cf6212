"""``compress quantize``."""

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


@click.command("quantize")
@click.argument("src", type=str)
@output_options
@click.option("--method", required=True,
              help="ONNX: int8-dynamic, int8-static, int4-weight, fp16. PyTorch: int8-dynamic, int4, int8, smoothquant.")
@click.option("--algorithm", default=None, help="PyTorch int4/int8 weight-only: rtn (default), gptq or awq.")
@click.option("--per-channel/--per-tensor", default=True, show_default=True, help="INT8 weight scales per output channel.")
@click.option("--block-size", "--group-size", "block_size", type=int, default=32, show_default=True,
              help="Weight-only group size (int4/int8, int4-weight MatMulNBits block).")
@click.option("--symmetric/--asymmetric", default=True, show_default=True, help="Weight-only zero point.")
@click.option("--accuracy-level", type=int, default=None, help="MatMulNBits compute precision: 0-4 (4 = int8 compute).")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="SmoothQuant migration strength (0..1).")
@click.option("--calib-data", default=None, help="Calibration data file (int8-static, smoothquant, gptq, awq).")
@click.option("--calib-samples", type=int, default=128, show_default=True, help="Rows (or LM blocks) to calibrate on.")
@click.option("--calib-method", default="entropy", show_default=True, help="int8-static: entropy, minmax or percentile.")
@click.option("--eval-data", default=None, help="Labelled data (or text for LMs) to measure quality before and after.")
@click.option("--eval-samples", type=int, default=None, help="Rows (or LM blocks) to evaluate (default: all).")
@click.option("--max-accuracy-drop", type=float, default=None, help="Classifiers: allowed accuracy drop in points.")
@click.option("--max-perplexity-increase", type=float, default=None, help="LMs: allowed perplexity increase in percent.")
@click.option("--max-length", type=int, default=128, show_default=True, help="Tokens per row (LM block length).")
@click.option("--device", default="cpu", show_default=True, help="Where ONNX candidates are evaluated: cpu or cuda.")
@click.option("--seed", type=int, default=0, show_default=True)
@column_options
@allow_pickle_option
@common_options
@click.pass_context
def command(ctx: click.Context, src: str, output: str, force: bool, method: str, algorithm: str | None,
            per_channel: bool, block_size: int, symmetric: bool, accuracy_level: int | None, alpha: float,
            calib_data: str | None, calib_samples: int, calib_method: str, eval_data: str | None,
            eval_samples: int | None, max_accuracy_drop: float | None, max_perplexity_increase: float | None,
            max_length: int, device: str, seed: int, text_column: str | None, text_pair_column: str | None,
            label_column: str | None, allow_pickle: bool, as_json: bool) -> None:
    """Quantize SRC (a PyTorch checkpoint or an ONNX artifact) into a new artifact.

    With --eval-data and a budget (--max-accuracy-drop or --max-perplexity-increase), quality is
    measured before and after; when over budget the most sensitive layers (measured one by one) are
    kept in float until it fits. Exit 1, writing nothing, when no fallback meets the budget.
    """
    set_json(ctx, as_json)
    from compressor.quantize import QuantizeConfig, quantize

    config = QuantizeConfig(
        method=method,
        algorithm=algorithm,
        per_channel=per_channel,
        block_size=block_size,
        symmetric=symmetric,
        accuracy_level=accuracy_level,
        alpha=alpha,
        calib_data=data_spec(calib_data, text_column, text_pair_column, label_column),
        calib_samples=calib_samples,
        calib_method=calib_method,
        eval_data=data_spec(eval_data, text_column, text_pair_column, label_column),
        eval_samples=eval_samples,
        max_accuracy_drop=max_accuracy_drop,
        max_perplexity_increase=max_perplexity_increase,
        max_length=max_length,
        device=device,
        seed=seed,
    )
    report = quantize(src, output, config, force=force, allow_pickle=allow_pickle)
    emit(ctx, report, _summary(output, report))
