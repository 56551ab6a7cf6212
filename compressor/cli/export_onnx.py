"""``compress export-onnx``."""

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


@click.command("export-onnx")
@click.argument("src", type=str)
@output_options
@click.option("--opset", type=int, default=None, help="ONNX opset (14-22; default: optimum's choice).")
@click.option("--optimize", default="O2", show_default=True, help="onnxruntime graph optimisation: O0, O1, O2, O3.")
@click.option("--fp16", is_flag=True, help="Convert to fp16 (GPU only).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--parity-data", default=None, help="Data file for the parity check (default: built-in sentences).")
@click.option("--parity-samples", type=int, default=512, show_default=True, help="Rows (or LM blocks) to compare.")
@click.option("--atol", type=float, default=None, help="Max |logit diff| allowed (default 1e-3; O3 5e-2; fp16 1e-1).")
@column_options
@allow_pickle_option
@common_options
@click.pass_context
def command(ctx: click.Context, src: str, output: str, force: bool, opset: int | None, optimize: str, fp16: bool,
            device: str, parity_data: str | None, parity_samples: int, atol: float | None, text_column: str | None,
            text_pair_column: str | None, label_column: str | None, allow_pickle: bool, as_json: bool) -> dict:
    """Export SRC (a PyTorch checkpoint) to ONNX, optimise it and check parity against PyTorch.

    Fails with exit 3, writing nothing, when logits differ by more than --atol.
    """
    set_json(ctx, as_json)
    from compressor.export import ExportConfig, export_onnx

    config = ExportConfig(
        opset=opset,
        optimize=optimize.upper(),
        fp16=fp16,
        device=device,
        parity_data=data_spec(parity_data, text_column, text_pair_column, label_column),
        parity_samples=parity_samples,
        atol=atol,
    )
    report = export_onnx(src, output, config, force=force, allow_pickle=allow_pickle)
    parity = report["parity"]
    agreement = parity.get("top1_agreement", parity.get("next_token_agreement"))
    summary = [
        f"wrote {output} ({report['size_bytes'] / 1e6:.1f} MB, {report['graph']['nodes']} nodes, opset {report['graph']['opset']})",
        f"parity: max |logit diff| {parity['max_abs_diff']:.2e} (atol {parity['atol']:g}), agreement {agreement:.2%}",
    ]
    if "accuracy_candidate" in parity:
        summary.append(
            f"accuracy: PyTorch {parity['accuracy_reference']:.2%}, ONNX {parity['accuracy_candidate']:.2%}"
        )
    emit(ctx, report, summary)
    return report
