"""Typed configuration of ``compress auto``; everything judged from the values alone is judged here.

Checks that need the teacher (which budget its task owns, whether the data suits it) happen in
``search.check_inputs`` before anything is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from compressor.errors import BadInputError
from compressor.quantize.config import EMBEDDINGS  # the embedding tables of ONNX INT8 trials (quantize --embeddings)

OBJECTIVES = ("latency", "size", "throughput")
VOCAB_MODES = ("auto", "on", "off")
# One trial (the shortest distillation, export, quantization, a dev bench) plus the final measurement
# of the winner cannot fit in less: a smaller budget would end with no trial at all.
MIN_TIME_BUDGET_S = 60.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str = "--time-budget") -> float:
    """``90s``, ``60m``, ``1.5h`` or plain seconds -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise BadInputError(f"{flag} {text!r}: expected a duration such as 90s, 60m or 1.5h")
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None]
    if not math.isfinite(seconds):
        raise BadInputError(f"{flag} {text!r}: must be finite")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _number_list(text: str, flag: str, convert: Callable[[str], Any], example: str) -> tuple[Any, ...]:
    """``500,1000`` (or a YAML list as text, ``[500, 1000]``) -> the sorted distinct values."""
    try:
        values = tuple(sorted({convert(part) for part in str(text).strip("[]() ").split(",") if part.strip()}))
    except ValueError:
        raise BadInputError(f"{flag} {text!r}: expected comma-separated {example}") from None
    if not values:
        raise BadInputError(f"{flag} {text!r}: give at least one value")
    return values


def int_list(text: str | None, flag: str, low: int = 1) -> tuple[int, ...] | None:
    if text is None:
        return None
    values = _number_list(text, flag, int, "integers such as 500,1000")
    if values[0] < low:
        raise BadInputError(f"{flag} {text!r}: values must be >= {low}")
    return values


def share_list(text: str | None, flag: str) -> tuple[float, ...] | None:
    """``0,0.25,0.5`` -> (0.0, 0.25, 0.5): shares removed by pruning, each in [0, 1)."""
    if text is None:
        return None
    values = _number_list(text, flag, float, "shares such as 0,0.25,0.5")
    if not all(0 <= v < 1 for v in values):
        raise BadInputError(f"{flag} {text!r}: shares removed must be in [0, 1)")
    return values


@dataclass(frozen=True)
class Budget:
    """The quality budget: a task's ``budget_option`` (``max_accuracy_drop``) and its value."""

    option: str
    value: float

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")

    @property
    def gate(self) -> str:  # the same name as bench's gate
        return self.option.replace("_", "-")


@dataclass(frozen=True)
class AutoConfig:
    teacher: str
    data: str
    eval_data: str
    output: str
    budget: Budget
    objective: str = "latency"
    time_budget_s: float = 3600.0
    test_data: str | None = None
    resume: bool = False
    trials: int | None = None  # stop after this many trials in this invocation (None: the time budget decides)
    # The search space's ranges (None: derived from the teacher).
    student_layers: tuple[int, ...] | None = None
    distill_steps: tuple[int, ...] = (500, 1000, 2000)
    # Shares of heads, FFN width and layers pruned (None: the space's defaults, 0-0.5, 0-0.5, 0-0.34).
    prune_heads: tuple[float, ...] | None = None
    prune_ffn: tuple[float, ...] | None = None
    prune_layers: tuple[float, ...] | None = None
    backends: tuple[str, ...] | None = None  # None: every registered backend this install supports
    vocab: str = "auto"  # auto: search vocabulary trimming where `prune --method vocab` exists
    vocab_data: str | None = None  # the text whose tokens a trimmed vocabulary keeps (None: --data)
    vocab_size: int | None = None  # the most tokens it keeps, the most frequent first (None: every one seen)
    embeddings: str = "int8"  # ONNX INT8 trials' embedding tables: int8, or int4 (quantize --embeddings int4)
    students: tuple[str, ...] = ()  # existing students of the teacher, searched besides distilling new ones
    recover_steps: tuple[int, ...] | None = None  # recovery lengths after pruning (None: distill steps / 4)
    # The text the recovery distils on (None: --data). Unlabelled in-domain text the teacher did not train
    # on gives softer targets than its own training rows (SST-2, heads and FFN halved: test -0.33 against
    # -0.99 recovering on SST-2 train; benchmarks/results/auto_options.json).
    recover_data: str | None = None
    # Choosing the winner (``holdout``, ``finalists``): the share of --eval-data held out from the search
    # (or a file of its own), and the finalists benched on it side by side, how many at a time, how often.
    confirm_fraction: float = 0.3
    confirm_data: str | None = None
    finalists: int = 4
    finalist_rounds: int = 5
    # Each finalist is timed at least this long per round (as many passes of the confirmation rows as that
    # takes): one pass of a few hundred sub-millisecond calls is too short to rank models 5-10% apart.
    finalist_seconds: float = 2.0
    # Finalists whose best-round objective is within this share of the best one's are tied on a timed objective
    # (the same artifact's rounds spread 5-10% on a shared CPU): the smallest of them wins.
    finalist_tie: float = 0.05
    # Fixed training and measuring settings.
    batch_size: int = 32
    max_length: int = 128
    lr: float = 1e-4
    threads: int | None = None
    bench_seconds: float = 1.0  # minimum timing per batch size in each trial's bench
    throughput_batch: int = 8
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise BadInputError(f"--objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if self.vocab not in VOCAB_MODES:
            raise BadInputError(f"--vocab {self.vocab!r}: choose one of {', '.join(VOCAB_MODES)}")
        if not math.isfinite(self.budget.value) or self.budget.value < 0:
            raise BadInputError(f"{self.budget.flag} {self.budget.value:g}: must be a finite number >= 0")
        if self.time_budget_s < MIN_TIME_BUDGET_S:
            raise BadInputError(
                f"--time-budget {format_duration(self.time_budget_s)}: below the minimum of "
                f"{format_duration(MIN_TIME_BUDGET_S)} (one trial: distill, export, quantize, bench; then the "
                "winner's final measurement)")
        if not (0 <= self.confirm_fraction <= 0.9):
            raise BadInputError(f"--confirm-fraction {self.confirm_fraction:g}: expected a share in [0, 0.9]")
        for name, value in (("--finalists", self.finalists), ("--finalist-rounds", self.finalist_rounds)):
            if value < 1:
                raise BadInputError(f"{name} {value}: must be at least 1")
        if self.embeddings not in EMBEDDINGS:
            raise BadInputError(f"--embeddings {self.embeddings!r}: choose one of {', '.join(EMBEDDINGS)}")
        if self.vocab == "off" and (self.vocab_size is not None or self.vocab_data is not None):
            flag = "--vocab-size" if self.vocab_size is not None else "--vocab-data"
            raise BadInputError(f"{flag}: --vocab off searches no vocabulary trimming; drop one of them")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise BadInputError(f"--vocab-size {self.vocab_size}: must be at least 1")
        if self.trials is not None and self.trials < 1:
            raise BadInputError(f"--trials {self.trials}: must be at least 1")
        for name, value, low in (("--batch-size", self.batch_size, 1), ("--max-length", self.max_length, 8),
                                 ("--throughput-batch", self.throughput_batch, 2)):
            if value < low:
                raise BadInputError(f"{name} {value}: must be at least {low}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BadInputError(f"--lr {self.lr:g}: must be a finite number > 0")
        if self.threads is not None and self.threads < 1:
            raise BadInputError(f"--threads {self.threads}: must be at least 1")
        if not (0 <= self.finalist_seconds <= 3600):
            raise BadInputError(f"--finalist-seconds {self.finalist_seconds:g}: expected a value in [0, 3600]")
        if not (0 <= self.finalist_tie <= 0.5):
            raise BadInputError(f"--finalist-tie {self.finalist_tie:g}: expected a share in [0, 0.5]")
        if not (0 <= self.bench_seconds <= 3600):
            raise BadInputError(f"--bench-seconds {self.bench_seconds:g}: expected a value in [0, 3600]")

    def budget_gate(self, entry: dict[str, Any]) -> Any:
        """The budget's bench gate on one bench entry (``.value``: the quality cost, ``.passed``)."""
        from compressor.bench import gates

        return gates.evaluate(entry, {self.budget.gate: self.budget.value}, 1)[0]

    def objective_value(self, entry: dict[str, Any]) -> float | None:
        """What the search minimises, read from one bench entry: p50 at batch 1, size, or minus the
        samples/s at the throughput batch (None when the entry lacks it)."""
        latency = entry.get("latency") or {}
        if self.objective == "latency":
            return (latency.get("1") or {}).get("p50_ms")
        if self.objective == "size":
            return entry.get("size_mb")
        rate = (latency.get(str(self.throughput_batch)) or {}).get("samples_per_s")
        return -rate if rate else None

    @property
    def objective_tie(self) -> float:
        """The share within which finalists' objectives are tied: ``finalist_tie`` for timed objectives;
        none for size, which is exact."""
        return 0.0 if self.objective == "size" else self.finalist_tie

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["budget"] = {"option": self.budget.option, "value": self.budget.value}
        return data
