"""Recovery after pruning: a short distillation from the unpruned model, through the distill stage.

The teacher is judged before any work (same family, task, vocabulary and labels as the model being
pruned); the pruned checkpoint is then the distill stage's ``--student``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from compressor import tasks
from compressor.artifact import PYTORCH, Artifact, open_artifact
from compressor.errors import BadInputError
from compressor.loading import load_tokenizer
from compressor.prune.config import PruneConfig


def check_teacher(config: PruneConfig, source: Artifact, tokenizer: Any) -> Artifact:
    """The ``--recover-from`` artifact, refused unless it can teach the pruned model."""
    flag = f"--recover-from {config.recover_from}"
    try:
        teacher = open_artifact(config.recover_from)  # type: ignore[arg-type]
    except BadInputError as exc:
        raise BadInputError(f"{flag}: {exc.message}") from exc
    if teacher.format != PYTORCH:
        raise BadInputError(f"{flag}: is a {teacher.format} artifact; recovery needs the PyTorch teacher")
    if teacher.family.name != source.family.name:
        raise BadInputError(
            f"{flag}: is a {teacher.family.name} model ({teacher.config.get('model_type')}); the model being pruned "
            f"is {source.family.name} ({source.config.get('model_type')})"
        )
    if teacher.task != source.task:
        raise BadInputError(f"{flag}: is a {teacher.task} model; the model being pruned is {source.task}")
    t_vocab, s_vocab = teacher.config.get("vocab_size"), source.config.get("vocab_size")
    if t_vocab != s_vocab:
        raise BadInputError(f"{flag}: vocab_size {t_vocab} differs from the pruned model's {s_vocab}")
    if load_tokenizer(teacher.path).get_vocab() != tokenizer.get_vocab():
        raise BadInputError(f"{flag}: its tokenizer has a different vocabulary from the pruned model's")
    if tasks.get(source.task).uses_labels and teacher.config.get("label2id") != source.config.get("label2id"):
        raise BadInputError(
            f"{flag}: labels {teacher.config.get('label2id')} differ from the pruned model's "
            f"{source.config.get('label2id')}"
        )
    return teacher


def check_recover_data(config: PruneConfig, source: Artifact) -> None:
    """Read the head of the training file now, so a wrong column or task fails before any work
    (the distill stage reads the whole file later)."""
    spec = dataclasses.replace(config.recover_data, limit=256)  # type: ignore[arg-type]
    tasks.get(source.task).check_data("--recover-data", spec, label2id=source.config.get("label2id"))


def recover(teacher: Artifact, student_dir: Path, work_dir: Path, config: PruneConfig,
            max_length: int) -> dict[str, Any]:
    """Distil ``teacher`` into the pruned checkpoint in ``student_dir``; the result lands in ``work_dir``."""
    from compressor.distill import DistillConfig, distill

    options: dict[str, Any] = {
        "data": config.recover_data,
        "student": str(student_dir),
        "max_steps": config.recover_steps,
        "lr": config.recover_lr,
        "batch_size": config.recover_batch_size,
        "teacher_cache": config.recover_teacher_cache,
        "max_length": max_length,
        "seed": config.seed,
        "device": config.device,
        "eval_teacher": False,  # the prune report measures every model on the same data itself
        "dtype": "float32",  # an intermediate: the prune stage casts what it writes
    }
    options.update(config.recover_options)
    return distill(teacher.path, work_dir, DistillConfig(**options))
