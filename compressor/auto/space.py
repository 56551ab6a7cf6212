"""The search space of ``compress auto`` and how one sampled point becomes a recipe.

A trial is a recipe (``compressor.pipeline``): distill -> [prune] -> [vocab trim] -> [export] ->
[quantize] -> bench, each stage through the stage registry exactly as ``compress run`` runs it, so
the winner's recipe reproduces it.

Runtimes are a registry (``BACKENDS``): a backend names the stage that converts a PyTorch checkpoint
into its format (None: stay PyTorch) and the quantize methods for that format. A backend whose
stage, methods or extra this install lacks is left out of the space (the OpenVINO backend needs
``pip install "compress[openvino]"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from pathlib import Path

from compressor.errors import BadInputError

NONE = "none"  # "no quantization": keep the backend's float model


@dataclass(frozen=True)
class Backend:
    name: str
    format: str  # the artifact format quantize sees ("pytorch", "onnx", ...)
    export_stage: str | None  # the stage converting a PyTorch checkpoint into this format
    methods: tuple[str, ...]  # quantize methods searched, besides "none"
    # Extra options of the export stage / of a quantize method, from the trial's context.
    export_options: Callable[["Context"], dict[str, Any]] = lambda ctx: {}
    method_options: Callable[[str, "Context"], dict[str, Any]] = lambda method, ctx: {}
    requires: tuple[str, ...] = ()  # modules of an optional extra (openvino, nncf)

    def available(self) -> bool:
        from importlib.util import find_spec

        from compressor import stages
        from compressor.quantize.config import METHODS

        if self.export_stage is not None and self.export_stage not in stages.STAGES:
            return False
        if any(find_spec(module) is None for module in self.requires):
            return False
        return all((method, self.format) in METHODS for method in self.methods)


def _parity(ctx: "Context") -> dict[str, Any]:
    return {"parity-data": ctx.eval_data, "parity-samples": 256, "max-length": ctx.max_length} \
        if ctx.accepts("export-onnx", "max-length") else {"parity-data": ctx.eval_data, "parity-samples": 256}


def _parity_openvino(ctx: "Context") -> dict[str, Any]:
    return {"parity-data": ctx.eval_data, "parity-samples": 256}


def _calibrated(method: str, ctx: "Context") -> dict[str, Any]:
    if method == "int8-nncf":
        return {"calib-data": ctx.data, "calib-samples": 128}
    if method in ("int8-static", "smoothquant"):
        return {"calib-data": ctx.data, "calib-samples": 128, "max-length": ctx.max_length}
    return {}


def _onnx_methods(method: str, ctx: "Context") -> dict[str, Any]:
    tables = {"embeddings": "int4", "block-size": ctx.embedding_block} if ctx.embeddings == "int4" else {}
    return {**_calibrated(method, ctx), **tables}


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("pytorch", "pytorch", None, ("int8-dynamic",)),
        Backend("onnx", "onnx", "export-onnx", ("int8-dynamic", "int8-static"), _parity, _onnx_methods),
        Backend("openvino", "openvino", "export-openvino", ("int8-nncf",), _parity_openvino, _calibrated,
                requires=("openvino", "nncf")),
    )
}


def available_backends(wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    if wanted is not None:
        unknown = [name for name in wanted if name not in BACKENDS]
        if unknown:
            raise BadInputError(f"--backends {unknown[0]!r}: unknown backend; known: {', '.join(BACKENDS)}")
        missing = [name for name in wanted if not BACKENDS[name].available()]
        if missing:
            raise BadInputError(f"--backends {missing[0]!r}: not available in this install (its export stage or "
                                "quantize methods are missing)")
        return wanted
    return tuple(name for name, backend in BACKENDS.items() if backend.available())


def vocab_available() -> bool:
    """Whether ``prune --method vocab`` (trim the vocabulary to the tokens seen in --data) exists."""
    from compressor.prune.config import parse_methods

    try:
        parse_methods("vocab")
    except BadInputError:
        return False
    return True


@dataclass(frozen=True)
class Context:
    """What every trial shares: the inputs and the fixed settings."""

    teacher: str
    data: str
    eval_data: str
    teacher_layers: int
    max_length: int
    batch_size: int
    lr: float
    seed: int
    vocab_data: str = ""  # the text a trimmed vocabulary keeps the tokens of ("": --data)
    vocab_size: int | None = None  # the most tokens it keeps (None: every token of vocab_data)
    recover_data: str = ""  # the text recovery after pruning distils on ("": --data)
    embeddings: str = "int8"  # ONNX INT8 trials' embedding tables (quantize --embeddings)
    embedding_block: int = 128  # --block-size of INT4 tables: the largest of 128..16 dividing the hidden width
    teacher_cache: str = ""  # distill --teacher-cache shared by every trial's distillation ("": none)

    def accepts(self, stage: str, option: str) -> bool:
        from compressor import stages

        return any(o.name == option for o in stages.get(stage).options())


@dataclass(frozen=True)
class Space:
    student_layers: tuple[int, ...]
    distill_steps: tuple[int, ...]
    backends: tuple[str, ...]
    vocab: tuple[bool, ...]
    alpha_hidden: tuple[float, ...] = (0.0, 0.5)
    alpha_attn: tuple[float, ...] = (0.0, 0.5)
    prune_heads: tuple[float, ...] = (0.0, 0.25, 0.5)
    prune_ffn: tuple[float, ...] = (0.0, 0.3, 0.5)
    prune_layers: tuple[float, ...] = (0.0, 0.34)
    students: tuple[str, ...] = ()  # existing students (--student) offered besides distilling a new one
    student_depths: tuple[int, ...] = ()  # their layer counts, in the same order
    recover_steps: tuple[int, ...] | None = None  # after pruning; None: a quarter of the distillation

    @property
    def eval_steps(self) -> int:
        """Distillation evaluates on dev this often: the pruner's first rung is the shortest run's half."""
        return max(1, min(self.distill_steps, default=2) // 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_student_layers(teacher_layers: int) -> tuple[int, ...]:
    low, high = max(1, teacher_layers // 3), max(1, teacher_layers // 2)
    return tuple(range(low, high + 1))


def build_space(config: Any, teacher_layers: int, student_depths: tuple[int, ...] = ()) -> Space:
    """The space of ``config``'s ranges; ``student_depths``: the layer counts of ``config.students``."""
    layers = config.student_layers or default_student_layers(teacher_layers)
    if max(layers) >= teacher_layers:
        raise BadInputError(f"--student-layers {','.join(map(str, layers))}: a student needs fewer layers than the "
                            f"teacher's {teacher_layers}")
    can_trim = vocab_available()
    if config.vocab == "on" and not can_trim:
        raise BadInputError("--vocab on: this install has no `prune --method vocab` yet; use --vocab auto or off")
    vocab = {"on": (True,), "off": (False,), "auto": (False, True) if can_trim else (False,)}[config.vocab]
    steps = tuple(n for n in config.distill_steps if n > 0)  # 0: no new distillation, only --student
    if not steps and not config.students:
        raise BadInputError("--distill-steps 0: no new distillation needs an existing --student to search from")
    ranges = {name: getattr(config, name) for name in ("prune_heads", "prune_ffn", "prune_layers")
              if getattr(config, name) is not None}
    return Space(student_layers=tuple(layers), distill_steps=steps,
                 backends=available_backends(config.backends), vocab=vocab,
                 students=tuple(str(Path(s).resolve()) for s in config.students), student_depths=student_depths,
                 recover_steps=config.recover_steps, **ranges)


@dataclass(frozen=True)
class Point:
    """One sampled configuration."""

    student_layers: int
    distill_steps: int
    alpha_hidden: float
    alpha_attn: float
    prune_heads: float
    prune_ffn: float
    prune_layers: float
    vocab: bool
    backend: str
    quantize: str
    student: str | None = None  # an existing student (None: distil a new one)
    recover_steps: int | None = None  # None: a quarter of the distillation steps
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        prune = self.prune_method()
        if self.student:
            parts = [f"student {Path(self.student).name}"]
        else:
            parts = [f"{self.student_layers}L", f"{self.distill_steps} steps"]
            if self.alpha_hidden or self.alpha_attn:
                parts.append(f"hidden {self.alpha_hidden:g}/attn {self.alpha_attn:g}")
        parts.append(f"prune {prune} (+{self.recovery()} recovery steps)" if prune else "no prune")
        if self.vocab:
            parts.append("vocab")
        parts.append(f"{self.backend} {self.quantize}")
        return ", ".join(parts)

    def recovery(self) -> int:
        return self.recover_steps if self.recover_steps is not None else self.distill_steps // 4

    def prune_method(self) -> str | None:
        amounts = [("heads", self.prune_heads), ("ffn", self.prune_ffn), ("layers", self.prune_layers)]
        given = [f"{name}={amount:g}" for name, amount in amounts if amount > 0]
        return ",".join(given) or None


def sample(trial: Any, space: Space) -> Point:
    """Draw a point with optuna's define-by-run API (conditional dimensions get their own names)."""
    sources = (["distill"] if space.distill_steps else []) + list(space.students)
    source = trial.suggest_categorical("student", sources) if space.students else "distill"
    given = source != "distill"
    layers = trial.suggest_categorical("student_layers", list(space.student_layers)) if not given else \
        dict(zip(space.students, space.student_depths)).get(source, 0)
    backend = trial.suggest_categorical("backend", list(space.backends))
    methods = [NONE, *BACKENDS[backend].methods]
    recover = (trial.suggest_categorical("recover_steps", list(space.recover_steps)) if space.recover_steps
               else None)
    return Point(
        student_layers=0 if given else layers,
        distill_steps=0 if given else trial.suggest_categorical("distill_steps", list(space.distill_steps)),
        alpha_hidden=0.0 if given else trial.suggest_categorical("alpha_hidden", list(space.alpha_hidden)),
        alpha_attn=0.0 if given else trial.suggest_categorical("alpha_attn", list(space.alpha_attn)),
        student=source if given else None,
        recover_steps=recover,
        prune_heads=trial.suggest_categorical("prune_heads", list(space.prune_heads)),
        prune_ffn=trial.suggest_categorical("prune_ffn", list(space.prune_ffn)),
        # Removing a layer of a one- or two-layer student is what a smaller depth already explores; a
        # given student of three or more layers can lose one (pruned, then recovered).
        prune_layers=(trial.suggest_categorical("prune_layers", list(space.prune_layers)) if layers >= 3 else 0.0),
        vocab=trial.suggest_categorical("vocab", list(space.vocab)),
        backend=backend,
        quantize=trial.suggest_categorical(f"quantize_{backend}", methods),
    )


def warm_start(space: Space) -> dict[str, Any]:
    """The first trial: the shape of the project's own recipe (pipelines/bert-sst2.yaml: half depth,
    the longest distillation, a quarter of the heads and 30% of the FFN pruned, ONNX INT8), so the
    search starts from a point likely within budget and spends the rest looking for a faster one."""
    layers = max(space.student_layers)
    backend = "onnx" if "onnx" in space.backends else space.backends[0]
    steps = max(space.distill_steps, default=0)
    params: dict[str, Any] = {
        "student_layers": layers, "backend": backend, "distill_steps": steps,
        "alpha_hidden": 0.0, "alpha_attn": 0.0,
        # The recipe's amounts where the space has them, else the mildest it has.
        "prune_heads": 0.25 if 0.25 in space.prune_heads else min(space.prune_heads),
        "prune_ffn": 0.3 if 0.3 in space.prune_ffn else min(space.prune_ffn),
        "vocab": True in space.vocab,
        f"quantize_{backend}": "int8-dynamic" if "int8-dynamic" in BACKENDS[backend].methods else NONE,
    }
    if space.recover_steps:
        params["recover_steps"] = max(space.recover_steps)
    if space.students:  # a student the user already has is the likeliest point within budget
        params["student"] = space.students[0]
        for key in ("student_layers", "distill_steps", "alpha_hidden", "alpha_attn"):
            params.pop(key)
        if space.student_depths and space.student_depths[0] >= 3:
            params["prune_layers"] = min(space.prune_layers)
    elif layers >= 3:
        params["prune_layers"] = min(space.prune_layers)
    return params


def back_off(space: Space) -> dict[str, Any] | None:
    """The first trial's point with no pruning (and no vocabulary trim): the safe side of it."""
    params = warm_start(space)
    if 0.0 not in space.prune_heads or 0.0 not in space.prune_ffn:
        return None
    params.update(prune_heads=0.0, prune_ffn=0.0, vocab=False if False in space.vocab else params["vocab"])
    if "prune_layers" in params:
        if 0.0 not in space.prune_layers:
            return None
        params["prune_layers"] = 0.0
    return params


def stages_for(point: Point, ctx: Context, eval_steps: int) -> list[dict[str, Any]]:
    """The recipe stages (``name``, ``run``, ``from``, ``with``) that build ``point``'s artifact."""
    if point.student:  # an existing student: a recipe input, no distillation
        stages: list[dict[str, Any]] = []
        last = "student"
        return _after_student(point, ctx, stages, last)
    stages = [{
        "name": "student", "run": "distill", "from": "teacher",
        "with": {"data": ctx.data, "eval-data": ctx.eval_data, "student-layers": point.student_layers,
                 "max-steps": point.distill_steps, "batch-size": ctx.batch_size, "lr": ctx.lr,
                 "max-length": ctx.max_length, "eval-steps": eval_steps,
                 **({"alpha-hidden": point.alpha_hidden} if point.alpha_hidden else {}),
                 **({"alpha-attn": point.alpha_attn} if point.alpha_attn else {}),
                 # Hidden and attention losses need the live teacher; logits alone come from the cache.
                 **({"teacher-cache": ctx.teacher_cache}
                    if ctx.teacher_cache and not (point.alpha_hidden or point.alpha_attn) else {})},
    }]
    return _after_student(point, ctx, stages, "student")


def _after_student(point: Point, ctx: Context, stages: list[dict[str, Any]], last: str) -> list[dict[str, Any]]:
    method = point.prune_method()
    if method:
        stages.append({"name": "pruned", "run": "prune", "from": last, "with": {
            "method": method, "data": ctx.data, "calibration-samples": 256, "max-length": ctx.max_length,
            **({"recover-from": ctx.teacher, "recover-data": ctx.recover_data or ctx.data,
                "recover-steps": point.recovery(),
                "recover-lr": 2e-5, "recover-batch-size": ctx.batch_size,
                **({"recover-teacher-cache": ctx.teacher_cache} if ctx.teacher_cache else {})}
               if point.recovery() else {})}})
        last = "pruned"
    if point.vocab:
        method = "vocab" if ctx.vocab_size is None else f"vocab={ctx.vocab_size}"
        stages.append({"name": "vocab", "run": "prune", "from": last,
                       "with": {"method": method, "data": ctx.vocab_data or ctx.data, "max-length": ctx.max_length}})
        last = "vocab"
    backend = BACKENDS[point.backend]
    if backend.export_stage:
        stages.append({"name": f"{backend.name}", "run": backend.export_stage, "from": last,
                       "with": backend.export_options(ctx)})
        last = backend.name
    if point.quantize != NONE:
        stages.append({"name": "quantized", "run": "quantize", "from": last,
                       "with": {"method": point.quantize, **backend.method_options(point.quantize, ctx)}})
        last = "quantized"
    return stages


def recipe_inputs(point: Point, teacher: str) -> dict[str, str]:
    return {"teacher": teacher, **({"student": point.student} if point.student else {})}


def content_named(stage_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same stages named after what they compute (kind + a hash of their source and options), so
    trials sharing a prefix (the same distillation, the same pruning of it) share its output: every
    trial runs in one run directory with the recipe runner's resume, which skips a stage whose
    arguments and inputs are unchanged."""
    import hashlib
    import json

    renamed: dict[str, str] = {}
    out = []
    for stage in stage_list:
        source = renamed.get(stage["from"], stage["from"])
        digest = hashlib.sha256(json.dumps([source, stage["run"], stage["with"]], sort_keys=True,
                                           default=str).encode()).hexdigest()[:10]
        name = f"{stage['name']}-{digest}"
        renamed[stage["name"]] = name
        out.append({**stage, "name": name, "from": source})
    return out
