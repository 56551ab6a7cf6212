"""Recipes: a YAML list of named stages, each reading an earlier stage's artifact by name.

    name: bert-sst2
    inputs:
      teacher: ../shared/assets/teachers/minilm-l6-sst2
    stages:
      - name: student
        run: distill
        from: teacher
        with: {data: ../shared/assets/glue/SST-2/train.tsv, student-layers: 3}
      - name: report
        run: bench
        artifacts: [teacher, student]
        baseline: teacher
        with: {data: ../shared/assets/glue/SST-2/dev.tsv, max-accuracy-drop: 1.0}

Paths are relative to the working directory, as on a command line; ``${VAR}`` and
``${VAR:-default}`` expand from the environment. Stage options (``with``) are exactly the command's CLI flags, so a recipe and a command line mean the
same thing and are validated by the same code. Everything is checked before anything runs; errors
name the recipe file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

# Stage kinds a recipe may use -> the CLI command that runs them.
STAGE_COMMANDS = ("distill", "prune", "quantize", "export-onnx", "export-openvino", "bench")
_STAGE_KEYS = {"name", "run", "from", "with", "artifacts", "baseline"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Stage:
    name: str
    run: str
    line: int
    source: str | None = None  # name of the input or stage it reads (single-artifact stages)
    artifacts: list[str] = field(default_factory=list)  # bench
    baseline: str | None = None  # bench
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reads(self) -> list[str]:
        names = [self.source] if self.source else []
        names += self.artifacts
        if self.baseline:
            names.append(self.baseline)
        return names


@dataclass
class Recipe:
    path: Path
    name: str
    inputs: dict[str, str]
    stages: list[Stage]
    seed: int | None = None

    def where(self, stage: Stage) -> str:
        return f"{self.path}:{stage.line} (stage {stage.name!r})"


def _expand(value: Any, path: Path, line: int) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` from the environment; an unset variable without a default is
    an error, not an empty string."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name not in os.environ:
                if default is not None:
                    return default
                raise BadInputError(f"{path}:{line}: environment variable ${{{name}}} is not set")
            return os.environ[name]

        return _ENV.sub(replace, value)
    if isinstance(value, list):
        return [_expand(v, path, line) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, path, line) for k, v in value.items()}
    return value


def _lines(text: str) -> list[int]:
    """1-based line of each item of the top-level ``stages`` sequence."""
    import yaml

    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "stages" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _apply_overrides(data: dict[str, Any], overrides: list[str], path: Path) -> None:
    """``--set stage.key=value`` (or ``inputs.NAME=path``, ``seed=N``): YAML-typed values."""
    import yaml

    stages = {s.get("name"): s for s in data.get("stages", []) if isinstance(s, dict)}
    for item in overrides:
        target, sep, raw = item.partition("=")
        if not sep or not target:
            raise BadInputError(f"--set {item!r}: expected STAGE.KEY=VALUE")
        value = yaml.safe_load(raw) if raw else ""
        scope, dot, key = target.partition(".")
        if not dot:
            if scope != "seed":
                raise BadInputError(f"--set {item!r}: expected STAGE.KEY=VALUE")
            data["seed"] = value
        elif scope == "inputs":
            data.setdefault("inputs", {})[key] = str(value)
        elif scope in stages:
            stage = stages[scope]
            if key in ("from", "baseline", "artifacts"):
                stage[key] = value
            else:
                stage.setdefault("with", {})[key] = value
        else:
            raise BadInputError(f"--set {item!r}: {path} has no stage named {scope!r}")


def load_recipe(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Recipe:
    """Parse and structurally validate a recipe (stage names, references, kinds)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"{file}: no such recipe file")
    text = file.read_text()
    try:
        data = yaml.safe_load(text)
        lines = _lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise BadInputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{file}: a recipe is a mapping with 'stages' (and optional 'name', 'inputs', 'seed')")
    unknown = set(data) - {"name", "inputs", "stages", "seed", "description"}
    if unknown:
        raise BadInputError(f"{file}: unknown top-level key {sorted(unknown)[0]!r}")
    _apply_overrides(data, overrides or [], file)

    inputs = data.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise BadInputError(f"{file}: 'inputs' must map names to artifact paths")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise BadInputError(f"{file}: 'stages' must be a non-empty list")

    # Paths in a recipe, like paths on a command line, are relative to the working directory.
    resolved_inputs = {str(name): _expand(str(value), file, 1) for name, value in inputs.items()}

    known: set[str] = set(resolved_inputs)
    stages: list[Stage] = []
    for index, raw in enumerate(raw_stages):
        line = lines[index] if index < len(lines) else 0
        where = f"{file}:{line}"
        if not isinstance(raw, dict):
            raise BadInputError(f"{where}: a stage is a mapping with 'name' and 'run'")
        extra = set(raw) - _STAGE_KEYS
        if extra:
            raise BadInputError(f"{where}: unknown stage key {sorted(extra)[0]!r} (allowed: {', '.join(sorted(_STAGE_KEYS))})")
        name, run = raw.get("name"), raw.get("run")
        if not isinstance(name, str) or not _NAME.match(name):
            raise BadInputError(f"{where}: stage needs a 'name' of letters, digits, '-', '_' or '.'")
        if name in known:
            raise BadInputError(f"{where}: name {name!r} is already used by an input or an earlier stage")
        if run not in STAGE_COMMANDS:
            raise BadInputError(f"{where}: unknown stage {run!r}; stages are: {', '.join(STAGE_COMMANDS)}")
        options = raw.get("with") or {}
        if not isinstance(options, dict):
            raise BadInputError(f"{where}: 'with' must be a mapping of option names to values")
        stage = Stage(name=name, run=run, line=line, options=_expand(options, file, line))
        if run == "bench":
            artifacts = raw.get("artifacts")
            if not isinstance(artifacts, list) or not artifacts:
                raise BadInputError(f"{where}: a bench stage needs 'artifacts', a list of input or stage names")
            stage.artifacts = [str(a) for a in artifacts]
            stage.baseline = raw.get("baseline")
            if not stage.baseline:
                raise BadInputError(f"{where}: a bench stage needs a 'baseline' (an input or stage name)")
        else:
            stage.source = raw.get("from")
            if not stage.source:
                raise BadInputError(f"{where}: stage {name!r} needs 'from', the input or stage it reads")
        for ref in stage.reads:
            if ref not in known:
                raise BadInputError(
                    f"{where}: stage {name!r} reads {ref!r}, which is not an input or a stage defined earlier"
                )
        known.add(name)
        stages.append(stage)

    seed = data.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise BadInputError(f"{file}: seed must be an integer, got {seed!r}")
    return Recipe(path=file, name=str(data.get("name") or file.stem), inputs=resolved_inputs, stages=stages, seed=seed)
