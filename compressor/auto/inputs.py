"""What ``compress auto`` checks before writing anything (exit 2): the budget against the teacher's
task, every data file against that task, the run directory and, on ``--resume``, the teacher's identity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.auto.config import AutoConfig
from compressor.auto.space import Context, Space, build_space
from compressor.errors import BadInputError

STATE_FILE = "auto.json"


@dataclass
class Inputs:
    """What the checks found: the teacher, its task and identity, and the search space."""

    teacher: Any  # compressor.artifact.Artifact
    task: Any  # compressor.tasks.Task
    teacher_hash: str
    space: Space
    context: Context
    run_dir: Path


def check_inputs(config: AutoConfig) -> Inputs:
    """Every check that can fail on the inputs, before anything is written (exit 2)."""
    from compressor import tasks
    from compressor.artifact import open_artifact
    from compressor.data import DataSpec
    from compressor.data.tables import check_data_path

    teacher = open_artifact(config.teacher)
    task = tasks.get(teacher.task)
    if task.budget_option is None:
        raise BadInputError(f"{config.teacher}: a {task.name} model has no quality metric to budget; compress auto "
                            "needs one")
    if config.budget.option != task.budget_option:
        own = "--" + task.budget_option.replace("_", "-")
        raise BadInputError(f"{config.budget.flag}: {config.teacher} is a {task.name} model, whose budget is {own}")
    label2id = teacher.config.get("label2id")
    from compressor.loading import load_tokenizer

    tokenizer = load_tokenizer(teacher.path)
    for flag, path in (("--data", config.data), ("--eval-data", config.eval_data), ("--test-data", config.test_data),
                       ("--confirm-data", config.confirm_data), ("--vocab-data", config.vocab_data),
                       ("--recover-data", config.recover_data)):
        if path is None:
            continue
        try:
            check_data_path(path)
        except BadInputError as exc:
            raise BadInputError(f"{flag} {exc.message}") from exc
        try:
            if flag == "--data":
                task.check_data(flag, DataSpec(path=path), label2id=label2id)
            elif flag in ("--vocab-data", "--recover-data"):  # text only: distillation and vocabulary need no labels
                task.batches(flag, tokenizer, DataSpec(path=path), label2id=label2id, samples=8,
                             max_length=config.max_length, batch_size=8, require_labels=False)
            else:  # scored data: a few rows must make batches the teacher's task can score (labels and all)
                task.batches(flag, tokenizer, DataSpec(path=path), label2id=label2id, samples=8,
                             max_length=config.max_length, batch_size=8, require_labels=True)
        except BadInputError as exc:
            message = exc.message if exc.message.startswith(flag) else f"{flag} {path}: {exc.message}"
            raise BadInputError(f"{message} (the teacher is a {task.name} model)") from exc
    _check_vocab_size(config, tokenizer, teacher.config)
    run_dir = Path(config.output)
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInputError(f"-o {run_dir}: exists and is not a directory")
    state_file = run_dir / STATE_FILE
    teacher_hash = teacher.content_hash()
    if config.resume:
        if not state_file.is_file():
            raise BadInputError(f"--resume: {run_dir} holds no compress auto run ({STATE_FILE} missing)")
        try:
            state = json.loads(state_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInputError(f"--resume: {state_file}: not valid JSON ({exc})") from exc
        recorded = state.get("teacher") or {}
        if recorded.get("hash") != teacher_hash:
            raise BadInputError(f"--resume: {run_dir} was searched for teacher {recorded.get('path')} (content "
                                f"{str(recorded.get('hash'))[:12]}), not {config.teacher} ({teacher_hash[:12]})")
        if state.get("config", {}).get("objective") != config.objective:
            raise BadInputError(f"--resume --objective {config.objective}: {run_dir} was searched for "
                                f"{state.get('config', {}).get('objective')}")
        for key in ("confirm_fraction", "confirm_data"):  # the trials were scored on the rows these chose
            recorded_value = state.get("config", {}).get(key, getattr(config, key))
            if recorded_value != getattr(config, key):
                flag = "--" + key.replace("_", "-")
                raise BadInputError(f"--resume {flag} {getattr(config, key)}: {run_dir} was searched with {flag} "
                                    f"{recorded_value}; the held-out rows cannot change mid-search")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise BadInputError(f"-o {run_dir}: already exists; pass --resume to continue its search, or choose another")
    depths = []
    for path in config.students:
        student = open_artifact(path)
        if student.task != teacher.task or type(student.family) is not type(teacher.family) or \
                student.format != teacher.format:
            raise BadInputError(f"--student {path}: a {student.format} {student.task} model; the teacher "
                                f"{config.teacher} is a {teacher.format} {teacher.task} model of another family or task")
        depths.append(student.family.layer_count(student.config))
    layers = teacher.family.layer_count(teacher.config)
    space = build_space(config, layers, tuple(depths))
    context = Context(teacher=str(Path(config.teacher).resolve()), data=str(Path(config.data).resolve()),
                      eval_data=str(Path(config.eval_data).resolve()), teacher_layers=layers,
                      max_length=config.max_length, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                      vocab_data=str(Path(config.vocab_data or config.data).resolve()), vocab_size=config.vocab_size,
                      recover_data=str(Path(config.recover_data or config.data).resolve()),
                      embeddings=config.embeddings, embedding_block=_embedding_block(config, teacher),
                      # Trials distil from one teacher on the same rows: its outputs are kept for the next one.
                      teacher_cache=str((run_dir / "teacher-cache").resolve()) if task.teacher_cacheable else "")
    return Inputs(teacher=teacher, task=task, teacher_hash=teacher_hash, space=space, context=context,
                  run_dir=run_dir)


def _check_vocab_size(config: AutoConfig, tokenizer: Any, model_config: dict[str, Any]) -> None:
    """--vocab-size below what every trimmed vocabulary keeps (specials, single characters) fails now,
    not in each trial that trims."""
    if config.vocab_size is None:
        return
    from compressor.prune import vocab

    special, characters = vocab.always_kept(tokenizer, model_config)
    always = special | characters
    if config.vocab_size < len(always):
        raise BadInputError(f"--vocab-size {config.vocab_size}: below the {len(always):,} tokens a trimmed "
                            f"vocabulary of {config.teacher} always keeps (special tokens and single characters)")


def _embedding_block(config: AutoConfig, teacher: Any) -> int:
    """INT4 table blocks: the largest of 128, 64, 32, 16 that tiles a row (fewer blocks, fewer scales)."""
    width = teacher.family.hidden_width(teacher.config)
    fits = [b for b in (128, 64, 32, 16) if width % b == 0]
    if config.embeddings == "int4" and not fits:
        raise BadInputError(f"--embeddings int4: the hidden width {width} of {config.teacher} is not a multiple of 16, "
                            "so INT4 blocks cannot tile an embedding row")
    return fits[0] if fits else 128
