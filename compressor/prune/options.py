"""``compress prune``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, DEVICE, SEED, Option, data_spec, dtype_option
from compressor.prune.config import PruneConfig, parse_methods

OPTIONS = (
    Option("method", required=True,
           help="heads, ffn, layers (structural); magnitude (global unstructured), magnitude-layer (per matrix) "
                "or 2:4 (sparsity); vocab (keep only the tokens --data uses, plus special tokens). Combine with "
                "amounts: heads=0.25,ffn=0.3,vocab; layers=[1,3] removes given layers."),
    Option("amount", "float", min=0, max=1, min_open=True, help="Fraction removed, for methods given without one."),
    Option("data", path="data", help="Calibration data: gradient importance (labelled rows for a classifier); "
                                     "with vocab, the text whose tokens are kept."),
    Option("importance", "choice", "auto", choices=("auto", "gradient", "magnitude"),
           help="auto (gradient with --data, else magnitude), gradient or magnitude."),
    Option("head-unit", "choice", "kv-group", choices=("kv-group", "query"),
           help="Grouped-query attention: remove whole KV groups with their query heads (kv-group) or the same "
                "number of query heads from every group (query)."),
    Option("layer-importance", "choice", "ablation", choices=("ablation", "cosine"),
           help="layers=AMOUNT: ablation (loss increase when a block is skipped) or cosine (distance between a "
                "block's input and output hidden states, ShortGPT/Minitron depth pruning)."),
    Option("calibration-samples", "int", 256, min=1, max=10**7, help="Rows (LM: blocks) scored."),
    Option("eval-data", path="data", help="Data for the metric before/after (default: --data)."),
    Option("eval-samples", "int", min=1, max=10**9, help="Rows (LM: blocks) evaluated (default: all)."),
    Option("max-length", "int", 128, min=8, max=1 << 16, help="Max tokens per row (LM: block size)."),
    Option("ffn-multiple-of", "int", min=1, max=4096,
           help="Round the FFN width kept down to this (default: the largest of 64/32/16/8 that removes at "
                "most 5% of the width beyond the amount)."),
    Option("recover-from", path="artifact", help="The unpruned teacher to distil from after pruning."),
    Option("recover-data", path="data", help="Training data for the recovery distillation."),
    Option("recover-steps", "int", min=1, max=10**9, help="Optimizer steps of recovery."),
    Option("recover-lr", "float", 1e-4, min=0, min_open=True, max=10, help="Peak learning rate of recovery."),
    Option("recover-batch-size", "int", 32, min=1, max=65536, help="Batch size of recovery."),
    Option("recover-teacher-cache", metavar="DIR",
           help="Keep the teacher's outputs on the recovery rows in DIR (distill --teacher-cache): a later "
                "recovery on the same data, seed and batch size skips the teacher."),
    *COLUMN_OPTIONS,
    SEED,
    DEVICE,
    dtype_option("source"),
    ALLOW_PICKLE,
)


def build(values: dict[str, Any]) -> PruneConfig:
    v = values
    return PruneConfig(
        methods=parse_methods(v["method"], v["amount"]), data=data_spec(v, "data"), importance=v["importance"],
        head_unit=v["head_unit"], layer_importance=v["layer_importance"],
        calibration_samples=v["calibration_samples"], eval_data=data_spec(v, "eval_data"),
        eval_samples=v["eval_samples"], max_length=v["max_length"], ffn_multiple_of=v["ffn_multiple_of"],
        recover_from=v["recover_from"], recover_data=data_spec(v, "recover_data"), recover_steps=v["recover_steps"],
        recover_lr=v["recover_lr"], recover_batch_size=v["recover_batch_size"],
        recover_teacher_cache=v["recover_teacher_cache"], seed=v["seed"], device=v["device"],
        dtype=v["dtype"],
    )
