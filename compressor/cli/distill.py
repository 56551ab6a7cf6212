"""``compress distill``."""

from __future__ import annotations

import os

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


def _layer_map(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    try:
        # "[0, 2, 4]" is how click hands over a YAML list from --config.
        return tuple(int(part) for part in value.strip("[]() ").split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated teacher layer indices such as 0,2,4") from None


@click.command("distill")
@click.argument("teacher", type=str)
@output_options
@click.option("--data", required=True, help="Training data: a labelled table (classifier) or text/JSONL corpus (LM).")
@click.option("--eval-data", default=None, help="Evaluation data: accuracy (classifier) or perplexity (LM).")
@column_options
@click.option("--student", "student", default=None, help="Start from this existing checkpoint (same family).")
@click.option("--student-config", default=None, help="A smaller config.json of the same family (random init).")
@click.option("--student-layers", type=int, default=None, help="Copy N teacher layers (default: half, evenly spread).")
@click.option("--layer-map", callback=_layer_map, default=None,
              help="Teacher layers to copy (e.g. 0,2,4); with --student/--student-config: the layers matched.")
@click.option("--alpha-kd", type=float, default=1.0, show_default=True, help="Weight of the soft-logit KL (x T^2).")
@click.option("--alpha-ce", type=float, default=0.0, show_default=True, help="Weight of the hard-label / next-token CE.")
@click.option("--alpha-hidden", type=float, default=0.0, show_default=True, help="Weight of the hidden-state loss.")
@click.option("--alpha-attn", type=float, default=0.0, show_default=True, help="Weight of the attention KL.")
@click.option("--hidden-loss", default="mse", show_default=True, help="Hidden-state loss: mse or cosine.")
@click.option("--temperature", type=float, default=2.0, show_default=True, help="Softmax temperature of the KD loss.")
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Passes over the data (fractions allowed).")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Rows per batch (per process).")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Batches per optimizer step.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Peak AdamW learning rate.")
@click.option("--weight-decay", type=float, default=0.01, show_default=True, help="AdamW weight decay.")
@click.option("--warmup", type=float, default=0.06, show_default=True, help="Warm-up fraction of the steps.")
@click.option("--max-length", type=int, default=128, show_default=True, help="Max tokens per row (LM: block size).")
@click.option("--no-cache-teacher", is_flag=True, help="Run the teacher at every step instead of caching its logits.")
@click.option("--top-k", type=int, default=64, show_default=True, help="Logits per position an LM cache keeps.")
@click.option("--eval-steps", type=int, default=None, help="Also evaluate every N steps (always at each epoch end).")
@click.option("--checkpoint-steps", type=int, default=None, help="Save a resumable checkpoint every N steps.")
@click.option("--checkpoint-dir", default=None, help="Where checkpoints go (default: .OUTPUT.checkpoints beside it).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: a CPU run is repeatable.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--mixed-precision", default="auto", show_default=True, help="auto, no, fp16 or bf16 (GPU).")
@click.option("--dtype", default="auto", show_default=True,
              help="Storage dtype of the student: auto (the teacher's), float32, float16 or bfloat16. "
                   "Training runs in float32 either way.")
@allow_pickle_option
@common_options
@click.pass_context
def command(ctx: click.Context, teacher: str, output: str, force: bool, data: str, eval_data: str | None,
            text_column: str | None, text_pair_column: str | None, label_column: str | None, student: str | None,
            student_config: str | None, student_layers: int | None, layer_map: tuple[int, ...] | None,
            alpha_kd: float, alpha_ce: float, alpha_hidden: float, alpha_attn: float, hidden_loss: str,
            temperature: float, epochs: float, max_steps: int | None, batch_size: int, grad_accum: int, lr: float,
            weight_decay: float, warmup: float, max_length: int, no_cache_teacher: bool, top_k: int,
            eval_steps: int | None, checkpoint_steps: int | None, checkpoint_dir: str | None, resume: bool,
            seed: int, device: str, mixed_precision: str, dtype: str, allow_pickle: bool, as_json: bool) -> None:
    """Distil TEACHER (a BERT classifier or GPT-2 LM) into a smaller student written to -o DIR.

    Runs data-parallel unchanged under `accelerate launch -m compressor.cli distill ...`.
    """
    set_json(ctx, as_json)
    from compressor.distill import DistillConfig, distill

    config = DistillConfig(
        data=data_spec(data, text_column, text_pair_column, label_column),
        eval_data=data_spec(eval_data, text_column, text_pair_column, label_column),
        student=student, student_config=student_config, student_layers=student_layers, layer_map=layer_map,
        max_steps=max_steps, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        weight_decay=weight_decay, warmup=warmup, max_length=max_length, temperature=temperature,
        alpha_kd=alpha_kd, alpha_ce=alpha_ce, alpha_hidden=alpha_hidden, alpha_attn=alpha_attn,
        hidden_loss=hidden_loss, cache_teacher=not no_cache_teacher, top_k=top_k, eval_steps=eval_steps,
        checkpoint_steps=checkpoint_steps, checkpoint_dir=checkpoint_dir, resume=resume, seed=seed, device=device,
        mixed_precision=mixed_precision, dtype=dtype,
    )
    report = distill(teacher, output, config, force=force, allow_pickle=allow_pickle)
    # Under `accelerate launch` every process returns; one report is enough.
    if os.environ.get("RANK", "0") != "0":
        return
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
    emit(ctx, report, summary)
