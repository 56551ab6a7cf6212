"""``compress distill``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.distill.config import HIDDEN_LOSSES, MIXED_PRECISION, DistillConfig
from compressor.errors import BadInputError
from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, DEVICE, SEED, Option, data_spec, dtype_option

OPTIONS = (
    Option("data", required=True, path="data", help="Training data: a labelled table (classifier) or text/JSONL corpus (LM)."),
    Option("eval-data", path="data", help="Evaluation data: accuracy (classifier) or perplexity (LM)."),
    *COLUMN_OPTIONS,
    Option("student", path="artifact", help="Start from this existing checkpoint (same family)."),
    Option("student-config", help="A smaller config.json of the same family (random init)."),
    Option("student-layers", "int", min=1, max=1024, help="Copy N teacher layers (default: half, evenly spread)."),
    Option("layer-map", metavar="I,J,...",
           help="Teacher layers to copy (e.g. 0,2,4); with --student/--student-config: the layers matched."),
    Option("alpha-kd", "float", 1.0, min=0, max=1e6, help="Weight of the soft-logit KL (x T^2)."),
    Option("alpha-ce", "float", 0.0, min=0, max=1e6, help="Weight of the hard-label / next-token CE."),
    Option("alpha-hidden", "float", 0.0, min=0, max=1e6, help="Weight of the hidden-state loss."),
    Option("alpha-attn", "float", 0.0, min=0, max=1e6, help="Weight of the attention KL."),
    Option("alpha-relation", "float", 0.0, min=0, max=1e6,
           help="Weight of the MiniLM-v2 attention-relation KL (Q-Q, K-K, V-V of --relation-layer against the "
                "student's last layer)."),
    Option("relation-heads", "int", 12, min=1, max=4096,
           help="Relation heads the Q/K/V projections are re-split into (both widths must divide by it)."),
    Option("relation-layer", "int", -1, min=-1024, max=1023,
           help="Teacher layer whose relations the student's last layer learns (-1: the last)."),
    Option("hidden-loss", "choice", "mse", choices=HIDDEN_LOSSES, help="Hidden-state loss: mse or cosine."),
    Option("embedding-loss", "choice", "mse+cosine", choices=("mse+cosine", "cosine", "mse"),
           help="Sentence-embedding models: the --alpha-kd loss on pooled embeddings (squared L2, 1 - cosine, or both)."),
    Option("temperature", "float", 2.0, min=0, min_open=True, max=1000, help="Softmax temperature of the KD loss."),
    Option("epochs", "float", 1.0, min=0, min_open=True, max=1e6, help="Passes over the data (fractions allowed)."),
    Option("max-steps", "int", min=1, max=10**9, help="Optimizer steps (overrides --epochs)."),
    Option("batch-size", "int", 32, min=1, max=65536, help="Rows per batch (per process)."),
    Option("grad-accum", "int", 1, min=1, max=65536, help="Batches per optimizer step."),
    Option("lr", "float", 1e-4, min=0, min_open=True, max=10, help="Peak AdamW learning rate."),
    Option("weight-decay", "float", 0.01, min=0, max=10, help="AdamW weight decay."),
    Option("warmup", "float", 0.06, min=0, max=0.999, help="Warm-up fraction of the steps, in [0, 1)."),
    Option("max-length", "int", 128, min=8, max=1 << 16, help="Max tokens per row (LM: block size)."),
    Option("no-cache-teacher", "flag", False, help="Run the teacher at every step instead of caching its logits."),
    Option("teacher-cache", metavar="DIR",
           help="Keep the teacher's cached outputs in DIR: a later run with the same teacher, data and batching "
                "(seed, batch size, max length) reads them instead of running the teacher."),
    Option("top-k", "int", 64, min=1, max=1 << 20, help="Logits per position an LM cache keeps."),
    Option("eval-steps", "int", min=1, max=10**9, help="Also evaluate every N steps (always at each epoch end)."),
    Option("checkpoint-steps", "int", min=1, max=10**9, help="Save a resumable checkpoint every N steps."),
    Option("checkpoint-dir", help="Where checkpoints go (default: .OUTPUT.checkpoints beside it)."),
    Option("resume", "flag", False, help="Continue from the last checkpoint of an interrupted run."),
    SEED,
    DEVICE,
    Option("mixed-precision", "choice", "auto", choices=MIXED_PRECISION, help="auto, no, fp16 or bf16 (GPU)."),
    dtype_option("teacher"),
    ALLOW_PICKLE,
)


def layer_map(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        # "[0, 2, 4]" is how a YAML list arrives as text.
        return tuple(int(part) for part in value.strip("[]() ").split(",") if part.strip())
    except ValueError:
        raise BadInputError(f"--layer-map {value!r}: expected comma-separated teacher layer indices such as 0,2,4") from None


def build(values: dict[str, Any]) -> DistillConfig:
    v = values
    return DistillConfig(
        data=data_spec(v, "data"), eval_data=data_spec(v, "eval_data"), student=v["student"],
        student_config=v["student_config"], student_layers=v["student_layers"], layer_map=layer_map(v["layer_map"]),
        max_steps=v["max_steps"], epochs=v["epochs"], batch_size=v["batch_size"], grad_accum=v["grad_accum"],
        lr=v["lr"], weight_decay=v["weight_decay"], warmup=v["warmup"], max_length=v["max_length"],
        temperature=v["temperature"], alpha_kd=v["alpha_kd"], alpha_ce=v["alpha_ce"], alpha_hidden=v["alpha_hidden"],
        alpha_attn=v["alpha_attn"], alpha_relation=v["alpha_relation"], relation_heads=v["relation_heads"],
        relation_layer=v["relation_layer"], hidden_loss=v["hidden_loss"], embedding_loss=v["embedding_loss"], cache_teacher=not v["no_cache_teacher"],
        teacher_cache=v["teacher_cache"], top_k=v["top_k"], eval_steps=v["eval_steps"], checkpoint_steps=v["checkpoint_steps"],
        checkpoint_dir=v["checkpoint_dir"], resume=v["resume"], seed=v["seed"], device=v["device"],
        mixed_precision=v["mixed_precision"], dtype=v["dtype"],
    )
