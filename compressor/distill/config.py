"""Typed configuration of the distill stage; validated on construction so the API and CLI agree.

Checks that need the teacher (layer counts, label sets, vocabularies) happen in the stage, before any
output is created; everything that can be judged from the values alone is judged here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.data import DataSpec
from compressor.devices import DEVICES
from compressor.dtypes import DTYPES
from compressor.errors import BadInputError

HIDDEN_LOSSES = ("mse", "cosine")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass(frozen=True)
class DistillConfig:
    data: DataSpec
    eval_data: DataSpec | None = None
    # Where the student comes from: exactly one of an existing checkpoint (``--student DIR``), a config
    # (``--student-config FILE``, random init), or teacher layers (``--student-layers``/``--layer-map``).
    # None of them: half the teacher's layers, evenly spread.
    student: str | None = None
    student_config: str | None = None
    student_layers: int | None = None
    layer_map: tuple[int, ...] | None = None
    # Training length: ``max_steps`` (optimizer steps) wins over ``epochs`` when both are given.
    max_steps: int | None = None
    epochs: float = 1.0
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of the optimizer steps spent warming up, then linear decay to 0
    max_length: int = 128  # classification: tokens per row; LM: block size (context)
    # Losses: each weight 0 turns its term off.
    temperature: float = 2.0
    alpha_kd: float = 1.0
    alpha_ce: float = 0.0
    alpha_hidden: float = 0.0
    alpha_attn: float = 0.0
    # MiniLM-v2 attention relations: Q-Q, K-K, V-V of teacher layer ``relation_layer`` (Python
    # indexing: -1 is the last) against the student's last layer, re-split into ``relation_heads``.
    alpha_relation: float = 0.0
    relation_heads: int = 12
    relation_layer: int = -1
    hidden_loss: str = "mse"
    embedding_loss: str = "mse+cosine"  # sentence-embedding models: loss on the pooled embedding
    # Teacher outputs are cached per training row when the losses allow it (not with hidden/attention
    # terms, which need the teacher's internals); LMs cache the top-k logits of each position.
    cache_teacher: bool = True
    top_k: int = 64
    # Keep the cached teacher outputs in this directory across runs (see teacher_cache).
    teacher_cache: str | None = None
    eval_steps: int | None = None  # also evaluate every N optimizer steps (always at each epoch end)
    checkpoint_steps: int | None = None  # save a resumable checkpoint every N optimizer steps
    checkpoint_dir: str | None = None  # default: a hidden sibling of the output, ``.NAME.checkpoints``
    resume: bool = False
    eval_teacher: bool = True  # report the teacher's own metric on --eval-data, for comparison
    seed: int = 0
    device: str = "cpu"
    mixed_precision: str = "auto"  # auto: bf16 (or fp16) on a GPU, none on the CPU
    dtype: str = "auto"  # storage dtype of the student written; auto: the teacher's (training is float32)

    def __post_init__(self) -> None:
        # --layer-map alone means "copy these teacher layers"; with --student or --student-config it only
        # says which teacher layer each student layer is matched to by the hidden/attention losses.
        sources = [name for name, value in (("--student", self.student), ("--student-config", self.student_config),
                                            ("--student-layers", self.student_layers)) if value is not None]
        if len(sources) > 1:
            raise BadInputError(f"{' and '.join(sources)}: choose one way to make the student")
        if self.student_layers is not None and self.student_layers < 1:
            raise BadInputError(f"--student-layers {self.student_layers}: must be at least 1")
        if self.layer_map is not None:
            text = ",".join(map(str, self.layer_map))
            if not self.layer_map:
                raise BadInputError("--layer-map: empty; give teacher layer indices such as 0,2,4")
            if any(i < 0 for i in self.layer_map):
                raise BadInputError(f"--layer-map {text}: indices must be >= 0")
            if len(set(self.layer_map)) != len(self.layer_map):
                raise BadInputError(f"--layer-map {text}: repeated indices; each teacher layer can be used once")
            if self.student_layers is not None and self.student_layers != len(self.layer_map):
                raise BadInputError(
                    f"--student-layers {self.student_layers} with --layer-map {text}: the map names "
                    f"{len(self.layer_map)} layers"
                )
        for name, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--temperature", self.temperature)):
            if not value > 0:
                raise BadInputError(f"{name} {value}: must be a positive number")
        for name, value in (("--batch-size", self.batch_size), ("--grad-accum", self.grad_accum), ("--top-k", self.top_k)):
            if value < 1:
                raise BadInputError(f"{name} {value}: must be at least 1")
        for name, value in (("--max-steps", self.max_steps), ("--eval-steps", self.eval_steps),
                            ("--checkpoint-steps", self.checkpoint_steps)):
            if value is not None and value < 1:
                raise BadInputError(f"{name} {value}: must be at least 1")
        if self.max_length < 8:
            raise BadInputError(f"--max-length {self.max_length}: must be at least 8")
        if not 0 <= self.warmup < 1:
            raise BadInputError(f"--warmup {self.warmup}: must be a fraction in [0, 1)")
        if self.weight_decay < 0:
            raise BadInputError(f"--weight-decay {self.weight_decay}: must be >= 0")
        weights = {"--alpha-kd": self.alpha_kd, "--alpha-ce": self.alpha_ce, "--alpha-hidden": self.alpha_hidden,
                   "--alpha-attn": self.alpha_attn, "--alpha-relation": self.alpha_relation}
        for name, value in weights.items():
            if value < 0:
                raise BadInputError(f"{name} {value}: loss weights must be >= 0")
        if not any(weights.values()):
            raise BadInputError(
                "--alpha-kd/--alpha-ce/--alpha-hidden/--alpha-attn/--alpha-relation: all 0; at least one loss is needed"
            )
        if self.teacher_cache is not None and not self.cache_teacher:
            raise BadInputError("--teacher-cache with --no-cache-teacher: choose one")
        if self.teacher_cache is not None and self.needs_teacher_internals:
            raise BadInputError("--teacher-cache: hidden-state, attention and relation losses need the live teacher "
                                "(only logits are cached); drop --teacher-cache or those losses")
        if self.relation_heads < 1:
            raise BadInputError(f"--relation-heads {self.relation_heads}: must be at least 1")
        if self.hidden_loss not in HIDDEN_LOSSES:
            raise BadInputError(f"--hidden-loss {self.hidden_loss!r}: choose one of {', '.join(HIDDEN_LOSSES)}")
        if self.device not in DEVICES:
            raise BadInputError(f"--device {self.device!r}: unknown device; choose one of {', '.join(DEVICES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise BadInputError(
                f"--mixed-precision {self.mixed_precision!r}: choose one of {', '.join(MIXED_PRECISION)}"
            )
        if self.dtype not in DTYPES:
            raise BadInputError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.mixed_precision in ("fp16", "bf16") and self.device == "cpu":
            raise BadInputError(f"--mixed-precision {self.mixed_precision} with --device cpu: mixed precision is for GPUs")

    @property
    def needs_teacher_internals(self) -> bool:
        """Hidden-state, attention and relation losses need the live teacher; logits alone can be cached."""
        return self.alpha_hidden > 0 or self.alpha_attn > 0 or self.alpha_relation > 0

    def losses(self) -> dict[str, Any]:
        return {
            "kd": {"weight": self.alpha_kd, "temperature": self.temperature},
            "ce": {"weight": self.alpha_ce},
            "hidden": {"weight": self.alpha_hidden, "kind": self.hidden_loss},
            "embedding": {"kind": self.embedding_loss},
            "attention": {"weight": self.alpha_attn},
            "relation": {"weight": self.alpha_relation, "heads": self.relation_heads,
                         "teacher_layer": self.relation_layer},
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["data"] = self.data.to_dict()
        data["eval_data"] = self.eval_data.to_dict() if self.eval_data else None
        data["layer_map"] = list(self.layer_map) if self.layer_map is not None else None
        return data
