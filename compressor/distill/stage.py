"""The distill stage: a teacher artifact in, a smaller student artifact out.

Every input (teacher, student choice, data, resume checkpoint, output path) is judged before any
model is loaded or anything written. Under ``accelerate launch`` every process trains; only the
main process writes the output (and creates directories); the others wait for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from compressor import dtypes, finite, progress
from compressor.artifact import PYTORCH, Artifact, StageTimer, _check_output_path, open_artifact, staged_output, write_manifest
from compressor.artifact import check_writable_dir
from compressor.devices import require_device
from compressor.distill.batches import file_hash, load_rows
from compressor.distill.config import DistillConfig
from compressor.distill.student import (
    FROM_TEACHER,
    StudentPlan,
    build_student,
    count_parameters,
    hidden_width,
    layer_count,
    plan_student,
)
from compressor import tasks
from compressor.errors import BadInputError, RuntimeFailureError
from compressor.loading import load_model, load_tokenizer

# Settings that do not change the trained weights; a resumed run may change them.
_NOT_FINGERPRINTED = ("resume", "checkpoint_steps", "checkpoint_dir", "eval_teacher", "eval_steps", "dtype",
                      "teacher_cache")


def checkpoint_dir_for(dst: Path, config: DistillConfig) -> Path:
    return Path(config.checkpoint_dir) if config.checkpoint_dir else dst.parent / f".{dst.name}.checkpoints"


def _make_accelerator(config: DistillConfig) -> Any:
    from accelerate import Accelerator

    precision = config.mixed_precision
    if precision == "auto":
        if config.device == "cuda":
            import torch

            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "no"
    return Accelerator(cpu=config.device == "cpu", mixed_precision=precision,
                       gradient_accumulation_steps=config.grad_accum)


def _check_teacher(source: Artifact) -> None:
    if source.format != PYTORCH:
        raise BadInputError(f"{source.path}: is a {source.format} artifact; distill needs a PyTorch teacher")
    if not tasks.get(source.task).distillable:
        raise BadInputError(
            f"{source.path}: is a {source.task} model without a task head; distill needs a text classifier or a causal LM"
        )


def _check_relation(config: DistillConfig, source: Artifact) -> None:
    """--relation-layer against the teacher's depth, from its config alone (before loading anything)."""
    if not config.alpha_relation:
        return
    n = layer_count(source.config)
    if not -n <= config.relation_layer < n:
        raise BadInputError(
            f"--relation-layer {config.relation_layer}: the teacher {source.path} has layers 0..{n - 1} (or -1..-{n})"
        )


def _check_relation_widths(config: DistillConfig, relations: Any) -> None:
    for who, modules in zip(("teacher", "student"), relations):
        for name, module in zip("QKV", modules):
            width = int(module.weight.shape[0])
            if width % config.relation_heads:
                raise BadInputError(
                    f"--relation-heads {config.relation_heads}: the {who}'s {name} projection is {width} wide, "
                    f"not divisible by it"
                )


def _remove_checkpoints(directory: Path) -> None:
    for name in ("latest", "next", "previous"):
        shutil.rmtree(directory / name, ignore_errors=True)
    try:
        directory.rmdir()  # only if nothing else lives there (a user-chosen --checkpoint-dir)
    except OSError:
        pass


def distill(teacher: str | Path, dst: str | Path, config: DistillConfig, *, force: bool = False,
            allow_pickle: bool = False, on_eval: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Distil ``teacher`` into a smaller student written to ``dst``; returns the stage report.

    ``on_eval(step, metric)`` is called after each evaluation on ``eval_data`` (``compress auto`` reports
    it to its pruner; an exception it raises stops the run before anything is written)."""
    source = open_artifact(teacher)
    _check_teacher(source)
    require_device(config.device)
    dst = Path(dst)
    # Fail on an existing output now, not after the training run.
    _check_output_path(dst, [source.path], force)
    plan = plan_student(config, source)
    _check_relation(config, source)
    task = tasks.get(source.task)
    tokenizer = load_tokenizer(source.path)
    max_length = source.family.clamp_length(plan.config, source.family.clamp_length(source.config, config.max_length))
    train, eval_rows = _rows(config, source, task, tokenizer, max_length)
    data_hash = file_hash(config.data)
    source_hash = source.content_hash()
    checkpoints = checkpoint_dir_for(dst, config)
    if config.checkpoint_steps and config.checkpoint_dir:  # before training, not at the first checkpoint
        check_writable_dir(checkpoints, "--checkpoint-dir")
    fingerprint = {k: v for k, v in config.to_dict().items() if k not in _NOT_FINGERPRINTED}
    fingerprint.update(teacher_hash=source_hash, data_hash=data_hash)

    from compressor.distill.trainer import Distiller, check_resumable

    if config.teacher_cache:
        if not task.teacher_cacheable:
            raise BadInputError(f"--teacher-cache: a {task.name} teacher's outputs are not cached (per-token logits "
                                "padded to their batch); drop --teacher-cache")
        check_writable_dir(Path(config.teacher_cache), "--teacher-cache")

    if config.resume:
        check_resumable(checkpoints, fingerprint)
    timer = StageTimer()

    from accelerate.utils import set_seed

    accelerator = _make_accelerator(config)
    main = accelerator.is_main_process
    set_seed(config.seed)
    # Attention maps come only from the eager attention code path.
    model_kwargs = {"attn_implementation": "eager"} if config.alpha_attn else {}
    teacher_model = load_model(source, allow_pickle=allow_pickle, **model_kwargs)
    student = build_student(plan, teacher_model, source, allow_pickle=allow_pickle, model_kwargs=model_kwargs)
    relations = ((), ())
    if config.alpha_relation:  # the family's hooks; a family without them is exit 2 before any training
        relations = (source.family.attention_projections(teacher_model, config.relation_layer),
                     source.family.attention_projections(student, -1))
        _check_relation_widths(config, relations)
    teacher_params, student_params = count_parameters(teacher_model), count_parameters(student)
    if main:
        progress.status(
            f"distilling {source.path} ({layer_count(source.config)} layers, {teacher_params / 1e6:.1f}M params) into a "
            f"{plan.layers}-layer student ({student_params / 1e6:.1f}M params, {plan.source}) on {len(train)} rows"
        )
    cache_file = None
    if config.teacher_cache:
        from compressor.distill.teacher_cache import cache_file as keyed_file

        # Everything that decides the teacher's inputs batch by batch, so its cached outputs are exact: the
        # data's columns and row limit (not its path), the length every row is cut to as resolved, and this
        # process's share of the batches.
        key = {k: fingerprint.get(k) for k in ("teacher_hash", "data_hash", "batch_size", "seed", "top_k", "device",
                                               "mixed_precision")}
        key.update(columns={k: v for k, v in config.data.to_dict().items() if k != "path"}, max_length=max_length,
                   task=task.name, processes=accelerator.num_processes, process=accelerator.process_index)
        cache_file = keyed_file(config.teacher_cache, key)
    distiller = Distiller(
        accelerator, task=task, config=config, teacher=teacher_model, student=student,
        layer_map=plan.layer_map, teacher_width=hidden_width(source.config), student_width=plan.width,
        train=train, eval_rows=eval_rows, checkpoint_dir=checkpoints, fingerprint=fingerprint, relations=relations,
        on_eval=on_eval, cache_file=cache_file,
    )
    metric = task.metric
    teacher_metric = None
    if eval_rows is not None and config.eval_teacher:
        teacher_metric = distiller.evaluate(teacher_model, eval_rows)
    try:
        training = distiller.run()
    except RuntimeFailureError:
        if main and not config.resume:  # a diverged run's checkpoints lead nowhere; keep a resumed run's
            _remove_checkpoints(checkpoints)
        raise
    final = distiller.final_student()
    distiller.check_student(final)  # never write a NaN model
    teacher_dtype = dtypes.storage_dtype(source.path, source.config)
    dtype = dtypes.resolve(config.dtype, source.path, source.config)
    if main:
        final = _in_storage_dtype(final, dtype)
    report = _report(source, source_hash, plan, config, train_rows=len(train), eval_rows=eval_rows,
                     data_hash=data_hash, max_length=max_length, training=training, metric=metric,
                     teacher_metric=teacher_metric, teacher_params=teacher_params, student_params=student_params)
    if main:
        with staged_output(dst, sources=[source.path], force=force) as out:
            final.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
            report["size_bytes"] = sum(p.stat().st_size for p in out.glob("*.safetensors"))
            report["dtype"] = dtype
            report["teacher"].update(size_bytes=source.size_bytes(), dtype=teacher_dtype)
            write_manifest(out, source=source, source_hash=source_hash, stage="distill", config=config.to_dict(),
                           report=report, timer=timer, fmt=PYTORCH, seed=config.seed)
        _remove_checkpoints(checkpoints)
    accelerator.wait_for_everyone()
    return report


def _rows(config: DistillConfig, source: Artifact, task: Any, tokenizer: Any, max_length: int) -> tuple[Any, Any]:
    """Training and evaluation rows, validated (the task's rule for what a teacher distils on)."""
    label2id = source.config.get("label2id")
    # Without the hard-label loss only the teacher's outputs train the student, so unlabelled rows
    # (a transfer set such as in-domain text) are enough; evaluation always needs labels.
    train = load_rows(task, tokenizer, config.data, label2id=label2id, max_length=max_length, flag="--data",
                      labels_needed=config.alpha_ce > 0)
    eval_rows = None
    if config.eval_data is not None:
        eval_rows = load_rows(task, tokenizer, config.eval_data, label2id=label2id, max_length=max_length,
                              flag="--eval-data", labels_needed=True)
    return train, eval_rows


def _in_storage_dtype(model: Any, dtype: str) -> Any:
    """Trained in float32; only what is written takes the storage dtype (checked finite after the cast)."""
    if dtype == "float32":
        return model
    model = dtypes.cast(model, dtype)
    finite.check_weights("distill", f"student in {dtype}", model, "pass --dtype float32")
    return model


def _report(source: Artifact, source_hash: str, plan: StudentPlan, config: DistillConfig, *, train_rows: int,
            eval_rows: Any, data_hash: str, max_length: int, training: dict[str, Any], metric: str,
            teacher_metric: float | None, teacher_params: int, student_params: int) -> dict[str, Any]:
    curve = training.pop("eval_curve")
    best = next((p[metric] for p in curve if p["step"] == training["best_step"]), None)
    metrics: dict[str, float] = {}
    if best is not None:
        metrics[metric] = best
    if teacher_metric is not None:
        metrics[f"teacher_{metric}"] = teacher_metric
    return {
        "teacher": {"path": str(source.path.resolve()), "hash": source_hash, "layers": layer_count(source.config),
                    "parameters": teacher_params},
        "student": {**plan.describe(), "parameters": student_params,
                    "initialised_from_teacher_layers": list(plan.layer_map) if plan.source == FROM_TEACHER else None},
        "layer_map": list(plan.layer_map),
        "losses": config.losses(),
        "data": {"train": config.data.path, "train_hash": data_hash, "train_rows": train_rows,
                 "eval": config.eval_data.path if config.eval_data else None,
                 "eval_hash": file_hash(config.eval_data) if config.eval_data else None,
                 "eval_rows": len(eval_rows) if eval_rows is not None else None, "max_length": max_length},
        "metrics": metrics,
        "eval_metric": metric,
        "eval_curve": curve,
        "training": training,
    }
