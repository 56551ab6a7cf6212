"""Typed configuration of the prune stage and the ``--method`` spec parser.

``--method heads=0.25,ffn=0.3`` becomes a tuple of ``Method``; everything that can be judged from the
values alone (names, amounts, combinations, recovery flags) is judged here, so the API and the CLI fail
the same way. Checks that need the model (layer counts, divisibility for 2:4) happen in the stage,
before any output exists.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.data import DataSpec
from compressor.devices import DEVICES
from compressor.dtypes import DTYPES
from compressor.errors import BadInputError

HEADS, FFN, LAYERS = "heads", "ffn", "layers"
MAGNITUDE, MAGNITUDE_LAYER, SEMI_2_4 = "magnitude", "magnitude-layer", "2:4"
STRUCTURAL = (LAYERS, HEADS, FFN)  # applied in this order: fewer layers means fewer heads to score
SPARSITY = (MAGNITUDE, MAGNITUDE_LAYER, SEMI_2_4)
# Vocabulary trimming: the embedding rows of tokens --data never uses. Independent of the others, so it
# composes with any of them in one run; applied last (after recovery, which distils with the teacher's
# own vocabulary).
VOCAB = "vocab"
NO_AMOUNT = (SEMI_2_4, VOCAB)  # methods that take no amount
METHODS = STRUCTURAL + SPARSITY + (VOCAB,)
IMPORTANCE = ("auto", "gradient", "magnitude")
HEAD_UNITS = ("kv-group", "query")  # grouped-query attention: what a removed head is
LAYER_IMPORTANCE = ("ablation", "cosine")


@dataclass(frozen=True)
class Method:
    """One pruning method: ``amount`` is the fraction removed (fixed 0.5 for 2:4); ``layers`` an
    explicit list of layer indices to remove (``layers=[1,3]``) instead of an amount; ``size`` the most
    tokens vocab keeps (``vocab=15000``; None: every token --data uses)."""

    name: str
    amount: float | None = None
    layers: tuple[int, ...] | None = None
    size: int | None = None

    @property
    def spec(self) -> str:
        if self.layers is not None:
            return f"{self.name}=[{','.join(map(str, self.layers))}]"
        if self.size is not None:
            return f"{self.name}={self.size}"
        return self.name if self.amount is None or self.name == SEMI_2_4 else f"{self.name}={self.amount:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "amount": self.amount, "layers": list(self.layers) if self.layers else None,
                **({"size": self.size} if self.size is not None else {})}


def _split(text: str) -> list[str]:
    """Split on commas that are not inside ``[...]`` (``layers=[1,3],ffn=0.3``)."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items]


def _check_amount(label: str, value: float) -> float:
    if not 0 < value < 1:
        raise BadInputError(f"{label}: the amount is the fraction removed and must be between 0 and 1 (exclusive)")
    return value


def _parse_one(item: str, amount: float | None) -> Method:
    name, has_value, value = item.partition("=")
    name = name.strip().lower()
    if name not in METHODS:
        raise BadInputError(f"--method {item!r}: unknown method {name!r}; choose from {', '.join(METHODS)}")
    value = value.strip()
    if name == SEMI_2_4:
        if has_value:
            raise BadInputError(
                f"--method {item!r}: 2:4 sparsity removes exactly 2 of every 4 weights; it takes no amount"
            )
        return Method(name=name, amount=0.5)
    if name == VOCAB:
        if not has_value:
            return Method(name=name)
        if not re.fullmatch(r"\d+", value) or int(value) < 1:
            raise BadInputError(f"--method {item!r}: vocab takes no amount, only the most tokens to keep as a whole "
                                "number (vocab=15000); plain vocab keeps every token --data uses")
        return Method(name=name, size=int(value))
    if name == LAYERS and value.startswith("["):
        if not re.fullmatch(r"\[\s*\d+(\s*,\s*\d+)*\s*\]", value):
            raise BadInputError(f"--method {item!r}: a layer list is written layers=[1,3] (indices from 0)")
        indices = tuple(int(v) for v in value.strip("[] ").split(","))
        if len(set(indices)) != len(indices):
            raise BadInputError(f"--method {item!r}: a layer is listed twice")
        return Method(name=name, layers=tuple(sorted(indices)))
    if has_value:
        try:
            parsed = float(value)
        except ValueError:
            raise BadInputError(f"--method {item!r}: amount {value!r} is not a number") from None
        return Method(name=name, amount=_check_amount(f"--method {item}", parsed))
    if amount is None:
        raise BadInputError(f"--method {item!r}: needs an amount; write {name}=0.3 or pass --amount")
    return Method(name=name, amount=_check_amount(f"--amount {amount:g}", amount))


def parse_methods(text: str, amount: float | None = None) -> tuple[Method, ...]:
    """``heads=0.25,ffn=0.3`` (or ``heads`` with ``amount``) as methods in the order they are applied."""
    if amount is not None:
        _check_amount(f"--amount {amount:g}", amount)
    items = [item for item in _split(text or "")]
    if not text or not text.strip() or any(not item for item in items):
        raise BadInputError(f"--method {text!r}: empty method; e.g. --method heads=0.25,ffn=0.3")
    methods = [_parse_one(item, amount) for item in items]
    names = [m.name for m in methods]
    for name in set(names):
        if names.count(name) > 1:
            raise BadInputError(f"--method {text!r}: {name!r} is given twice")
    sparsity = [n for n in names if n in SPARSITY]
    if len(sparsity) > 1:
        raise BadInputError(f"--method {text!r}: choose one sparsity pattern, not {' and '.join(sparsity)}")
    takes_amount = [item for item in items if "=" not in item and item.lower() not in NO_AMOUNT]
    if amount is not None and not takes_amount:
        raise BadInputError(f"--amount {amount:g}: no method in --method {text!r} takes it (each has its own "
                            f"amount, or takes none)")
    order = {name: i for i, name in enumerate(METHODS)}
    return tuple(sorted(methods, key=lambda m: order[m.name]))


@dataclass(frozen=True)
class PruneConfig:
    methods: tuple[Method, ...] | str  # a str is parsed as a --method spec
    # Calibration data: importance by gradients (Michel et al.) when given, weight magnitude otherwise;
    # for vocab, the text whose tokens are kept (every row, not only --calibration-samples).
    data: DataSpec | None = None
    importance: str = "auto"
    head_unit: str = "kv-group"
    layer_importance: str = "ablation"
    calibration_samples: int = 256  # rows (classification) or blocks of max_length tokens (LM)
    # Metric before/after pruning and recovery; defaults to the calibration data when only that is given.
    eval_data: DataSpec | None = None
    eval_samples: int | None = None
    max_length: int = 128
    ffn_multiple_of: int | None = None  # round the FFN width kept down to this; None: automatic (importance.py)
    # Recovery: a short distillation from the unpruned teacher through the distill stage.
    recover_from: str | None = None
    recover_data: DataSpec | None = None
    recover_steps: int | None = None
    recover_lr: float = 1e-4
    recover_batch_size: int = 32
    recover_teacher_cache: str | None = None  # distill --teacher-cache for the recovery
    recover_options: dict[str, Any] = field(default_factory=dict)  # more DistillConfig fields, from the API
    seed: int = 0
    device: str = "cpu"
    dtype: str = "auto"  # storage dtype of the output; auto: the source's (pruning and recovery run in float32)

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):  # the API and recipes may pass the CLI's spec string
            object.__setattr__(self, "methods", parse_methods(self.methods))
        if not self.methods:
            raise BadInputError("--method: no pruning method given; e.g. --method heads=0.25,ffn=0.3")
        if self.importance not in IMPORTANCE:
            raise BadInputError(f"--importance {self.importance!r}: choose one of {', '.join(IMPORTANCE)}")
        if self.head_unit not in HEAD_UNITS:
            raise BadInputError(f"--head-unit {self.head_unit!r}: choose one of {', '.join(HEAD_UNITS)}")
        if self.layer_importance not in LAYER_IMPORTANCE:
            raise BadInputError(
                f"--layer-importance {self.layer_importance!r}: choose one of {', '.join(LAYER_IMPORTANCE)}"
            )
        if self.method(VOCAB) and self.data is None:
            raise BadInputError("--method vocab: needs --data FILE, the text whose tokens are kept")
        if self.importance == "gradient" and self.data is None:
            raise BadInputError("--importance gradient: needs calibration data; pass --data")
        counts = (("--calibration-samples", self.calibration_samples), ("--ffn-multiple-of", self.ffn_multiple_of or 1),
                  ("--recover-batch-size", self.recover_batch_size))
        for name, value in counts:
            if value < 1:
                raise BadInputError(f"{name} {value}: must be at least 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise BadInputError(f"--eval-samples {self.eval_samples}: must be at least 1")
        if self.max_length < 8:
            raise BadInputError(f"--max-length {self.max_length}: must be at least 8")
        if self.device not in DEVICES:
            raise BadInputError(f"--device {self.device!r}: unknown device; choose one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise BadInputError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        recovery = {"--recover-data": self.recover_data, "--recover-steps": self.recover_steps,
                    "--recover-teacher-cache": self.recover_teacher_cache}
        if self.recover_from is None:
            given = [flag for flag, value in recovery.items() if value is not None]
            if given:
                raise BadInputError(f"{given[0]}: recovery needs --recover-from TEACHER (the unpruned model)")
        else:
            if self.recover_data is None:
                raise BadInputError(f"--recover-from {self.recover_from}: recovery needs --recover-data TRAIN")
            if self.recover_steps is None or self.recover_steps < 1:
                raise BadInputError(f"--recover-steps {self.recover_steps}: recovery needs at least 1 step")
            if not self.recover_lr > 0:
                raise BadInputError(f"--recover-lr {self.recover_lr}: must be a positive number")

    @property
    def use_gradients(self) -> bool:
        return self.importance == "gradient" or (self.importance == "auto" and self.data is not None)

    def method(self, name: str) -> Method | None:
        return next((m for m in self.methods if m.name == name), None)

    @property
    def sparsity(self) -> Method | None:
        return next((m for m in self.methods if m.name in SPARSITY), None)

    @property
    def metric_data(self) -> DataSpec | None:
        return self.eval_data or self.data

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = [m.to_dict() for m in self.methods]
        data["method_spec"] = ",".join(m.spec for m in self.methods)
        for key in ("data", "eval_data", "recover_data"):
            value = getattr(self, key)
            data[key] = value.to_dict() if value else None
        data["importance"] = "gradient" if self.use_gradients else "magnitude"
        return data
