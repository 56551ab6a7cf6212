"""Typed configuration of ``compress bench``: what to measure, how long, and the gates that decide.

Validated on construction, so the Python API, the CLI flags and ``--config`` files reject the same
values with the same one-line messages (exit 2).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.data import DataSpec
from compressor.devices import DEVICES
from compressor.errors import BadInputError


@dataclass(frozen=True)
class GateSpec:
    name: str
    unit: str
    low: float  # smallest allowed threshold
    high: float  # largest allowed threshold
    low_inclusive: bool
    help: str


# name -> what it bounds. ``low``/``high`` are the thresholds that make sense: an accuracy drop is in
# points of a 0..100 scale; a speedup or a latency of 0 (or less) cannot be measured against.
GATES: dict[str, GateSpec] = {
    spec.name: spec
    for spec in (
        GateSpec("max-accuracy-drop", "points", 0.0, 100.0, True,
                 "fail when accuracy falls more than P points below the baseline (classifiers)"),
        GateSpec("max-perplexity-increase", "%", 0.0, 1e6, True,
                 "fail when perplexity rises more than P percent above the baseline (LMs)"),
        GateSpec("max-f1-drop", "points", 0.0, 100.0, True,
                 "fail when entity F1 falls more than P points below the baseline (token classifiers)"),
        GateSpec("max-score-drop", "points", 0.0, 100.0, True,
                 "fail when STS Spearman (x100) falls more than P points below the baseline (sentence embeddings)"),
        GateSpec("min-speedup", "x", 0.0, 1e6, False,
                 "fail when baseline p50 / artifact p50 at batch 1 is below X"),
        GateSpec("max-latency-ms", "ms", 0.0, 1e9, False, "fail when p90 latency at batch 1 exceeds MS"),
        GateSpec("max-size-mb", "MB", 0.0, 1e9, False, "fail when the weights on disk exceed MB (10^6 bytes)"),
        GateSpec("max-memory-mb", "MB", 0.0, 1e9, False, "fail when peak RSS of a fresh process exceeds MB"),
    )
}

# Gates on a task's quality metric: each applies to the tasks whose ``budget_option`` it is; a gate
# that cannot be evaluated is a usage error, not a pass.
QUALITY_GATES = {"max-accuracy-drop", "max-perplexity-increase", "max-f1-drop", "max-score-drop"}


def gate_name(name: str) -> str:
    """Canonical gate name (``max_accuracy_drop`` and ``--max-accuracy-drop`` are accepted)."""
    canonical = name.strip().lstrip("-").replace("_", "-").lower()
    if canonical not in GATES:
        raise BadInputError(f"unknown gate {name!r}; known gates: {', '.join(GATES)}")
    return canonical


def check_gate_value(name: str, value: Any) -> float:
    spec = GATES[gate_name(name)]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"--{spec.name} {value!r}: not a number") from None
    if not math.isfinite(number):
        raise BadInputError(f"--{spec.name} {value!r}: must be a finite number")
    above_low = number >= spec.low if spec.low_inclusive else number > spec.low
    if not above_low or number > spec.high:
        bracket = "[" if spec.low_inclusive else "("
        raise BadInputError(
            f"--{spec.name} {value}: out of range; expected a value in "
            f"{bracket}{spec.low:g}, {spec.high:g}] ({spec.unit})"
        )
    return number


def parse_gate(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` from ``--gate``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise BadInputError(f"--gate {text!r}: expected NAME=VALUE, e.g. max-accuracy-drop=1.0")
    canonical = gate_name(name)
    return canonical, check_gate_value(canonical, value.strip())


def parse_batch_sizes(text: str | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    sizes = []
    for item in items:
        try:
            size = int(str(item).strip())
        except ValueError:
            raise BadInputError(f"--batch-sizes {text!r}: {item!r} is not an integer") from None
        if size < 1 or size > 4096:
            raise BadInputError(f"--batch-sizes {text!r}: batch size {size} out of range 1..4096")
        sizes.append(size)
    if not sizes:
        raise BadInputError("--batch-sizes: give at least one batch size, e.g. 1,8")
    return tuple(sorted(set(sizes)))


def default_threads() -> int:
    """CPUs this process may run on (a container's limit, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BenchConfig:
    baseline: str
    data: DataSpec
    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 8)
    threads: int | None = None  # None: every CPU this process may use (resolved and reported)
    warmup: int = 5
    min_runs: int = 20
    min_seconds: float = 1.0
    max_samples: int = 1000  # rows (classifier) or text blocks (LM) for quality and latency inputs
    max_length: int = 128  # tokens per classifier input; LM block / prompt length
    decode_tokens: int = 32  # LM: tokens generated per decode-latency run
    quality_batch_size: int = 32
    bootstrap: int = 1000  # bootstrap resamples for the 95% confidence intervals
    seed: int = 0
    measure_memory: bool = True
    profile_runs: int = 5  # ONNX runs with onnxruntime profiling on, to see which EP ran each node
    gates: dict[str, float] = field(default_factory=dict)
    report_dir: str | None = None
    junit: str | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise BadInputError(f"--device {self.device!r}: unknown device; choose one of {', '.join(DEVICES)}")
        object.__setattr__(self, "batch_sizes", parse_batch_sizes(self.batch_sizes))
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise BadInputError(f"--threads {self.threads}: must be between 1 and 1024")
        if self.warmup < 0:
            raise BadInputError(f"--warmup {self.warmup}: must be 0 or more")
        if self.min_runs < 1:
            raise BadInputError(f"--min-runs {self.min_runs}: must be at least 1")
        if not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise BadInputError(f"--min-seconds {self.min_seconds}: must be 0 or more")
        if self.max_samples < 1:
            raise BadInputError(f"--max-samples {self.max_samples}: must be at least 1")
        if not 2 <= self.max_length <= 1 << 16:
            raise BadInputError(f"--max-length {self.max_length}: must be between 2 and 65536")
        if self.decode_tokens < 1:
            raise BadInputError(f"--decode-tokens {self.decode_tokens}: must be at least 1")
        if self.quality_batch_size < 1:
            raise BadInputError(f"--quality-batch-size {self.quality_batch_size}: must be at least 1")
        if not 100 <= self.bootstrap <= 100_000:
            raise BadInputError(f"--bootstrap {self.bootstrap}: must be between 100 and 100000 resamples")
        if self.profile_runs < 0:
            raise BadInputError(f"--profile-runs {self.profile_runs}: must be 0 or more")
        gates = {gate_name(name): check_gate_value(name, value) for name, value in dict(self.gates).items()}
        object.__setattr__(self, "gates", gates)
        if "max-memory-mb" in gates and not self.measure_memory:
            raise BadInputError("--max-memory-mb needs the memory measurement; drop --no-memory")

    @property
    def resolved_threads(self) -> int:
        return self.threads or default_threads()

    @property
    def reference_batch(self) -> int:
        """The batch size speed gates use: 1 when measured (the serving case), else the smallest."""
        return 1 if 1 in self.batch_sizes else self.batch_sizes[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["data"] = self.data.to_dict()
        data["batch_sizes"] = list(self.batch_sizes)
        data["threads"] = self.resolved_threads
        return data
