"""Making the student: from the teacher's own layers, from a smaller config, or an existing checkpoint.

``plan_student`` judges the user's choice from config files alone (no weights loaded), so every bad
input fails before any work; ``build_student`` then makes the model. The plan also fixes the layer
map: which teacher layer each student layer is matched to by the hidden-state and attention losses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor import families, tasks
from compressor.artifact import PYTORCH, Artifact, open_artifact
from compressor.distill.config import DistillConfig
from compressor.errors import BadInputError
from compressor.families.base import Family, every_kth, spread_with_ends

FROM_TEACHER = "teacher-layers"
FROM_CONFIG = "config"
FROM_CHECKPOINT = "checkpoint"


def _family_of(config: dict[str, Any]) -> Family:
    family, _ = families.detect(config)
    return family


def layer_count(config: dict[str, Any]) -> int:
    return _family_of(config).layer_count(config)


def hidden_width(config: dict[str, Any]) -> int:
    return _family_of(config).hidden_width(config)


def even_spread(n: int, m: int) -> list[int]:
    """``n`` of ``m`` layers, evenly spaced and ending at the last one (3 of 6: 1, 3, 5; 2 of 6: 2, 5).

    Matches each student layer to the teacher layer at the same relative depth, top to top.
    """
    return [(i + 1) * m // n - 1 for i in range(n)]


def default_init_layers(family_name: str, n: int, m: int) -> list[int]:
    """Which teacher layers a ``--student-layers N`` student is copied from: the family's choice
    (``Family.default_student_layers``, measured on the real teachers)."""
    return families.family_by_name(family_name).default_student_layers(n, m)


__all__ = ["default_init_layers", "every_kth", "even_spread", "spread_with_ends"]


@dataclass(frozen=True)
class StudentPlan:
    source: str  # FROM_TEACHER, FROM_CONFIG or FROM_CHECKPOINT
    layers: int
    layer_map: tuple[int, ...]  # teacher layer matched by each student layer
    width: int
    config: dict[str, Any]  # the student's config.json (for FROM_TEACHER: the teacher's, before cutting)
    checkpoint: Artifact | None = None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "layers": self.layers, "layer_map": list(self.layer_map),
                "hidden_size": self.width,
                "path": str(self.checkpoint.path) if self.checkpoint else None}


def _check_map(layer_map: tuple[int, ...], teacher_layers: int, student_layers: int) -> None:
    text = ",".join(map(str, layer_map))
    bad = [i for i in layer_map if i >= teacher_layers]
    if bad:
        raise BadInputError(
            f"--layer-map {text}: index {bad[0]} is out of range; the teacher has {teacher_layers} layers "
            f"(0..{teacher_layers - 1})"
        )
    if len(layer_map) != student_layers:
        raise BadInputError(f"--layer-map {text}: names {len(layer_map)} layers, the student has {student_layers}")


def _read_student_config(path: str) -> tuple[dict[str, Any], Path]:
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    if not file.is_file():
        raise BadInputError(f"--student-config {path}: no such file")
    return families.read_json_object(file, "--student-config"), file


def _check_compatible(what: str, student: dict[str, Any], teacher: Artifact, source: Path | str) -> None:
    """Same family and vocabulary as the teacher: the student shares its tokenizer and outputs."""
    family, _ = families.detect(student, source) if "model_type" in student else (None, None)
    if family is None:
        raise BadInputError(f"{what} {source}: has no 'model_type' field")
    if family.name != teacher.family.name:
        raise BadInputError(
            f"{what} {source}: model_type {student['model_type']!r} is of the {family.name} family; "
            f"the teacher {teacher.path} is {teacher.config.get('model_type')!r} ({teacher.family.name} family)"
        )
    s_vocab, t_vocab = student.get("vocab_size"), teacher.config.get("vocab_size")
    if s_vocab != t_vocab:
        raise BadInputError(
            f"{what} {source}: vocab_size {s_vocab} differs from the teacher's {t_vocab}; the student must "
            "share the teacher's tokenizer"
        )


def plan_student(config: DistillConfig, teacher: Artifact) -> StudentPlan:
    """Validate the student options against the teacher; no weights are read."""
    t_layers = layer_count(teacher.config)
    if config.student is not None:
        student = open_artifact(config.student)
        if student.format != PYTORCH:
            raise BadInputError(f"--student {config.student}: is a {student.format} artifact; a PyTorch checkpoint is needed")
        _check_compatible("--student", student.config, teacher, config.student)
        if student.task != teacher.task:
            raise BadInputError(f"--student {config.student}: is a {student.task} model; the teacher is {teacher.task}")
        if tasks.get(teacher.task).uses_labels and student.config.get("label2id") != teacher.config.get("label2id"):
            raise BadInputError(
                f"--student {config.student}: labels {student.config.get('label2id')} differ from the teacher's "
                f"{teacher.config.get('label2id')}"
            )
        n = layer_count(student.config)
        layer_map = config.layer_map or tuple(even_spread(n, t_layers))
        _check_map(layer_map, t_layers, n)
        return StudentPlan(FROM_CHECKPOINT, n, layer_map, hidden_width(student.config), student.config, student)
    if config.student_config is not None:
        data, file = _read_student_config(config.student_config)
        _check_compatible("--student-config", data, teacher, file)
        n = layer_count(data)
        if n < 1:
            raise BadInputError(f"--student-config {file}: has {n} layers; at least 1 is needed")
        layer_map = config.layer_map or tuple(even_spread(n, t_layers))
        _check_map(layer_map, t_layers, n)
        return StudentPlan(FROM_CONFIG, n, layer_map, hidden_width(data), data)
    if t_layers < 2:
        raise BadInputError(f"{teacher.path}: the teacher has {t_layers} layer; a student needs fewer layers than that")
    n = config.student_layers or (len(config.layer_map) if config.layer_map else t_layers // 2)
    if n >= t_layers:
        raise BadInputError(
            f"--student-layers {n}: must be fewer than the teacher's {t_layers} layers (1..{t_layers - 1})"
        )
    layer_map = config.layer_map or tuple(teacher.family.default_student_layers(n, t_layers))
    _check_map(layer_map, t_layers, n)
    return StudentPlan(FROM_TEACHER, n, layer_map, hidden_width(teacher.config), teacher.config)


def select_layers(model: Any, family: Family | str, indices: list[int]) -> Any:
    """Keep only the blocks at ``indices`` (in that order), renumbered 0..n-1, in place."""
    family = families.family_by_name(family) if isinstance(family, str) else family
    blocks = family.layers(model)
    family.set_layers(model, [blocks[i] for i in indices])
    pruned = getattr(model.config, "pruned_heads", None) or {}
    if pruned:
        model.config.pruned_heads = {new: list(pruned[old]) for new, old in enumerate(indices) if old in pruned}
    return model


def build_student(plan: StudentPlan, teacher_model: Any, teacher: Artifact, *, allow_pickle: bool = False,
                  model_kwargs: dict[str, Any] | None = None) -> Any:
    """The student model, in train mode. Random parts are drawn from torch's global RNG (seed it first)."""
    kwargs = model_kwargs or {}
    if plan.source == FROM_TEACHER:
        # Embeddings, pooler, classifier / LM head come with the copy; only the block stack is cut.
        student = select_layers(copy.deepcopy(teacher_model), teacher.family, list(plan.layer_map))
    elif plan.source == FROM_CHECKPOINT:
        from compressor.loading import load_model

        student = load_model(plan.checkpoint, allow_pickle=allow_pickle, **kwargs)
    else:
        from transformers import AutoConfig

        data = {k: v for k, v in plan.config.items() if k not in ("model_type", "transformers_version")}
        # The student answers the teacher's question: same labels and head.
        for key in ("id2label", "label2id", "architectures", "problem_type", "pad_token_id",
                    "bos_token_id", "eos_token_id"):
            if key in teacher.config:
                data[key] = teacher.config[key]
        cfg = AutoConfig.for_model(plan.config["model_type"], **data)
        student = teacher.family.auto_class(teacher.task).from_config(cfg, **kwargs)
    student.train()
    return student


def count_parameters(model: Any) -> int:
    # Tied weights (GPT-2's lm_head and wte) are one tensor; parameters() already yields it once.
    return sum(p.numel() for p in model.parameters())
