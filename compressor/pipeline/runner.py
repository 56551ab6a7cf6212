"""Running a recipe: each stage through the library's stage API (``compressor.stages``), artifact to
artifact, resumable.

Every stage is resolved and checked before any stage runs: its options through the same parser and
typed config the command uses, every input artifact, data file and reference. The run directory is
created only once all of that has passed. A stage's output lands in RUN_DIR/<stage>. ``run.json`` in RUN_DIR records, per stage, the exact
arguments, the content hashes of what it read and of what it wrote; with ``resume`` a stage whose
arguments and input hashes match a complete, unchanged output is skipped. Bench stages always run:
they measure this machine now, and their gates decide the exit code.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor import progress, stages
from compressor.errors import BadInputError, CompressError, GateFailedError
from compressor.manifest import hash_directory
from compressor.pipeline.recipe import Recipe, Stage

STATE_FILE = "run.json"


def _flag_args(options: dict[str, Any]) -> list[str]:
    """Recipe ``with`` values → the command's flags (lists become comma-separated values)."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


@dataclass
class PlannedStage:
    stage: Stage
    args: list[str]
    output: Path
    inputs: dict[str, Path] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    config: Any = None

    def command_line(self) -> str:
        return "compress " + shlex.join([self.stage.run, *self.args])


def _check_paths(definition: stages.StageDef, values: dict[str, Any], where: str) -> None:
    """Every data file and artifact an option names exists now (outputs of earlier stages aside,
    which are never named by options)."""
    from compressor.data.tables import check_data_path

    for option in definition.options():
        value = values.get(option.key)
        if value is None or option.path is None:
            continue
        if option.path == "artifact" and not Path(value).is_dir():
            raise BadInputError(f"{where}: {option.flag} {value}: no such artifact directory")
        if option.path == "data":
            try:
                check_data_path(value)
            except BadInputError as exc:
                raise BadInputError(f"{where}: {option.flag} {exc.message}") from exc


def plan(recipe: Recipe, run_dir: Path) -> list[PlannedStage]:
    """Resolve and check every stage (options, typed configs, paths, references) before anything runs."""
    from compressor.artifact import open_artifact

    locations: dict[str, Path] = {name: Path(path) for name, path in recipe.inputs.items()}
    for name, path in locations.items():
        try:
            open_artifact(path)
        except BadInputError as exc:
            raise BadInputError(f"{recipe.path}: input {name!r}: {exc.message}") from exc
    planned: list[PlannedStage] = []
    for stage in recipe.stages:
        definition = stages.get(stage.run)
        where = recipe.where(stage)
        output = run_dir / stage.name
        options = dict(stage.options)
        has_seed = any(o.name == "seed" for o in definition.options())
        if recipe.seed is not None and definition.writes_artifact and has_seed and "seed" not in options:
            options["seed"] = recipe.seed
        inputs = {name: locations[name] for name in stage.reads}
        if definition.takes == "artifacts":
            given = {**options, "baseline": str(locations[stage.baseline]), "report-dir": str(output)}
            args = [*(str(locations[a]) for a in stage.artifacts), "--baseline", str(locations[stage.baseline])]
            args += ["--report-dir", str(output)]
        else:
            given = dict(options)
            args = [str(locations[stage.source]), "-o", str(output), "--force"]
        args += _flag_args(options)
        reserved = {"baseline", "report-dir", "report_dir"} if definition.takes == "artifacts" else set()
        clash = sorted(reserved & set(options))
        if clash:
            raise BadInputError(f"{where}: option {clash[0]!r} is set by the recipe itself ('baseline', the run "
                                "directory); remove it from 'with'")
        values, config = definition.parse(given, where)
        _check_paths(definition, {k: v for k, v in values.items() if k != "baseline"}, where)
        locations[stage.name] = output
        planned.append(PlannedStage(stage=stage, args=args, output=output, inputs=inputs, values=values,
                                    config=config))
    return planned


def _load_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {"stages": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc.msg}); remove it to start the run afresh") from exc


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str) + "\n")
    os.replace(tmp, run_dir / STATE_FILE)


def _hashes(paths: dict[str, Path]) -> dict[str, str]:
    return {name: hash_directory(path) if path.is_dir() else "missing" for name, path in paths.items()}


def _canonical(args: list[str], cwd: str | None) -> list[str]:
    """Arguments with every path-like one made absolute against the directory the stage ran from,
    so a run started with ``--out runs/x`` resumes with ``--out /abs/runs/x`` and the reverse."""
    base = Path(cwd) if cwd else Path.cwd()
    return [str((base / arg).resolve()) if os.sep in arg and not arg.startswith("-") else arg for arg in args]


def _is_complete(entry: dict[str, Any] | None, step: PlannedStage, input_hashes: dict[str, str]) -> bool:
    if not entry or entry.get("status") != "complete" or step.stage.run == "bench":
        return False
    if _canonical(entry.get("args", []), entry.get("cwd")) != _canonical(step.args, None):
        return False
    if entry.get("input_hashes") != input_hashes:
        return False
    return step.output.is_dir() and hash_directory(step.output) == entry.get("output_hash")


def run_recipe(
    recipe: Recipe,
    run_dir: Path,
    *,
    resume: bool = False,
    dry_run: bool = False,
    hooks: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run (or with ``dry_run`` only plan) the recipe; returns the run report.

    ``hooks`` maps a stage kind to observer keywords its function takes (``{"distill": {"on_eval": f}}``:
    ``compress auto`` watches each trial's distillation this way); they never change what is computed.

    Raises the failing stage's error; a failed bench gate raises ``GateFailedError`` carrying the
    whole run report, after every stage has run.
    """
    steps = plan(recipe, run_dir)
    state = _load_state(run_dir) if run_dir.exists() else {"stages": {}}
    if dry_run:
        return {
            "recipe": str(recipe.path),
            "run_dir": str(run_dir),
            "stages": [
                {"name": s.stage.name, "run": s.stage.run, "command": s.command_line(), "output": str(s.output)}
                for s in steps
            ],
        }
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise BadInputError(f"{run_dir}: run directory already exists; pass --resume to continue it, or choose --out")
    # Created only now that every stage has been checked; a stage that fails at run time leaves its
    # failure recorded in run.json (and no output of its own).
    run_dir.mkdir(parents=True, exist_ok=True)
    return _run_steps(recipe, run_dir, steps, state, resume, hooks or {})


def _run_steps(recipe: Recipe, run_dir: Path, steps: list[PlannedStage], state: dict[str, Any],
               resume: bool, hooks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    state.update({"recipe": str(recipe.path.resolve()), "name": recipe.name})
    report: dict[str, Any] = {"recipe": str(recipe.path), "run_dir": str(run_dir), "stages": []}
    gate_failure: GateFailedError | None = None
    for step in steps:
        name = step.stage.name
        input_hashes = _hashes(step.inputs)
        entry = state["stages"].get(name)
        if resume and _is_complete(entry, step, input_hashes):
            progress.status(f"[{name}] up to date, skipped ({step.output})")
            report["stages"].append({**entry, "name": name, "skipped": True})
            continue
        progress.status(f"[{name}] {step.command_line()}")
        started = time.perf_counter()
        definition = stages.get(step.stage.run)
        stage_inputs = ([str(step.inputs[a]) for a in step.stage.artifacts] if definition.takes == "artifacts"
                        else [str(step.inputs[step.stage.source])])
        try:
            stage_report = definition.invoke(stage_inputs, step.output, step.config, force=True,
                                             allow_pickle=step.values.get("allow_pickle", False),
                                             **hooks.get(step.stage.run, {}))
        except GateFailedError as exc:
            stage_report, gate_failure = exc.report, exc
        except CompressError as exc:
            state["stages"][name] = {"status": "failed", "error": exc.message, "args": step.args}
            _save_state(run_dir, state)
            exc.message = f"stage {name!r} ({recipe.where(step.stage)}): {exc.message}"
            raise
        entry = {
            "status": "complete",
            "run": step.stage.run,
            "args": step.args,
            "cwd": os.getcwd(),
            "input_hashes": input_hashes,
            "output": str(step.output),
            "output_hash": hash_directory(step.output) if step.output.is_dir() else None,
            "wall_time_s": round(time.perf_counter() - started, 2),
            "report": stage_report,
        }
        state["stages"][name] = entry
        _save_state(run_dir, state)
        report["stages"].append({**entry, "name": name, "skipped": False})
    report["passed"] = gate_failure is None
    if gate_failure is not None:
        raise GateFailedError(gate_failure.message, report=report)
    return report
