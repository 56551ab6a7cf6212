"""``compress auto``: search the compression space for the fastest (or smallest) model within a quality
budget, with optuna, each trial a recipe run through the stage library.

The study minimises the objective (p50 latency at batch 1, size, or minus throughput) under the
constraint "quality cost <= budget" (TPE with ``constraints_func``); the cost is the measure of the
teacher's task's own budget option (accuracy drop in points, perplexity increase in %, ...), read
from each trial's bench gate on the dev data. A successive-halving pruner watches each trial's
distillation (dev metric at every evaluation) and stops the unpromising ones early. The study lives
in RUN_DIR/study.db (sqlite), so ``--resume`` continues it; RUN_DIR/auto.json records the teacher's
identity, and a resume with another teacher is refused.

Before the search a seeded share of --eval-data is held out (``holdout``); after it, the fastest
feasible trials are benched together on those confirmation rows, several rounds side by side, and the
winner is the best of them still within budget there (``finalists``).

After the search: the Pareto front (pareto.json/.md/.png), the winner's artifact (RUN_DIR/winner),
recipe.yaml reproducing it with ``compress run``, and the winner's bench report against the teacher
on --test-data (else dev) in RUN_DIR/baseline, the CI baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from compressor import progress, stages
from compressor.auto import finalists, holdout, pareto, recipe_writer
from compressor.auto.config import AutoConfig, format_duration
from compressor.auto.inputs import STATE_FILE, Inputs, check_inputs
from compressor.auto.space import Point, back_off, content_named, recipe_inputs, sample, stages_for, warm_start
from compressor.errors import CompressError, GateFailedError

STUDY_FILE = "study.db"
STUDY_NAME = "compress-auto"
EXHAUSTED_AFTER = 20  # consecutive already-measured samples that end the search


class _Search:
    def __init__(self, config: AutoConfig, inputs: Inputs, deadline: float) -> None:
        self.config, self.inputs, self.deadline = config, inputs, deadline
        self.run_dir = inputs.run_dir
        self.task = inputs.task
        # Time kept back for the winner's final measurement.
        self.reserve = max(20.0, 0.1 * config.time_budget_s)
        self.started = time.monotonic()

    # -- one trial ---------------------------------------------------------------------------------
    def trial_stages(self, point: Point) -> list[dict[str, Any]]:
        return stages_for(point, self.inputs.context, self.inputs.space.eval_steps)

    def bench(self, final: str, data: str, *, memory: bool) -> dict[str, Any]:
        config = self.config
        batches = f"1,{config.throughput_batch}" if (config.objective == "throughput" or memory) else "1"
        return recipe_writer.bench_stage(final, data, budget_gate=config.budget.gate, budget=config.budget.value,
                                         batch_sizes=batches, threads=config.threads,
                                         min_seconds=config.bench_seconds, memory=memory)

    def objective(self, trial: Any) -> float:
        import optuna

        from compressor.pipeline import load_recipe
        from compressor.pipeline.runner import run_recipe

        point = sample(trial, self.inputs.space)
        trial.set_user_attr("configuration", point.describe())
        measured = asdict(point)
        trial.set_user_attr("point", measured)
        same = duplicate_of(trial.study, measured)
        if same is not None:
            # TPE keeps proposing the best point of a small space; measuring it again costs a trial and
            # tells the sampler nothing (the finalists re-time it anyway), so it is skipped, and the
            # sampler, seeing no result there, moves on to points not yet measured.
            reason = f"the same configuration as trial {same}, already measured"
            trial.set_user_attr("duplicate_of", same)
            trial.set_user_attr("reason", reason)
            progress.status(f"[trial {trial.number}] skipped: {reason}")
            raise optuna.TrialPruned(reason)
        remaining = self.deadline - self.reserve - time.monotonic()
        progress.status(f"[trial {trial.number}] {point.describe()} ({format_duration(round(max(0.0, remaining)))} "
                        "of search time left)")
        trials_dir = self.run_dir / "trials"
        trials_dir.mkdir(exist_ok=True)
        stage_list = content_named(self.trial_stages(point))
        final = stage_list[-1]["name"] if stage_list else "student"  # else: the given student as it is
        distill_key = stage_list[0]["name"] if stage_list and stage_list[0]["run"] == "distill" else None
        trial.set_user_attr("distill_key", distill_key)
        earlier = [] if distill_key is None else [t for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
                   if t.user_attrs.get("distill_key") == distill_key and t.user_attrs.get("pruned_in") == "distill"]
        if earlier:  # the same seeded distillation would be stopped at the same point again
            reason = f"the same distillation as trial {earlier[0].number}, which was stopped early"
            progress.status(f"[trial {trial.number}] pruned: {reason}")
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        stage_list.append({**self.bench(final, self.inputs.context.eval_data, memory=False),
                           "name": f"bench-trial-{trial.number}"})
        recipe_path = trials_dir / f"{trial.number:04d}.yaml"
        recipe_writer.write(recipe_path, recipe_writer.recipe_text(
            f"auto-trial-{trial.number}", recipe_inputs(point, self.inputs.context.teacher), stage_list,
            seed=self.config.seed))
        # Every trial runs in the same directory, resumed: a stage another trial already ran with the
        # same source and options (content_named) is skipped, its output reused.
        out = self.run_dir / "stages"
        sign = -1.0 if self.task.higher_is_better else 1.0

        def on_eval(step: int, value: float) -> None:
            trial.report(sign * value, step)
            # Projected end of this distillation at the pace so far: a trial that cannot finish in time
            # stops now rather than at the deadline.
            finish = started + (time.monotonic() - started) * point.distill_steps / max(step, 1)
            if finish > self.deadline - self.reserve:
                trial.set_user_attr("pruned_in", "time")
                raise optuna.TrialPruned(f"distillation would not finish in the search time (step {step} of "
                                         f"{point.distill_steps} after {time.monotonic() - started:.0f}s)")
            if trial.should_prune():
                trial.set_user_attr("pruned_in", "distill")
                raise optuna.TrialPruned(f"dev {self.task.metric} {value:.4g} at step {step}: behind the other trials")

        started = time.monotonic()
        try:
            try:
                report = run_recipe(load_recipe(recipe_path), out, resume=True,
                                    hooks={"distill": {"on_eval": on_eval}})
            except GateFailedError as exc:  # over the quality budget: a measured, infeasible point
                report = exc.report or {}
        except optuna.TrialPruned as exc:
            progress.status(f"[trial {trial.number}] pruned: {exc}")
            trial.set_user_attr("reason", str(exc))
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, CompressError) else f"{type(exc).__name__}: {exc}"
            progress.status(f"[trial {trial.number}] failed: {message}")
            trial.set_user_attr("reason", message)
            raise
        artifact = out / final if stage_list else Path(point.student or "")
        return self._record(trial, report, artifact, time.monotonic() - started)

    def _record(self, trial: Any, report: dict[str, Any], artifact: Path, seconds: float) -> float:
        bench = next(s["report"] for s in report["stages"] if s.get("run") == "bench")
        skipped = [s["name"] for s in report["stages"] if s.get("skipped")]
        trial.set_user_attr("reused", skipped)
        entry, baseline = bench["artifacts"][0], bench["baseline"]
        gate = self.config.budget_gate(entry)
        metric = self.task.metric
        latency = entry.get("latency") or {}
        p50 = (latency.get("1") or {}).get("p50_ms")
        throughput = (latency.get(str(self.config.throughput_batch)) or {}).get("samples_per_s")
        attrs = {
            "cost": gate.value, "feasible": bool(gate.passed), "quality": (entry.get("quality") or {}).get(metric),
            "teacher_quality": (baseline.get("quality") or {}).get(metric), "p50_ms": p50,
            "size_mb": entry.get("size_mb"), "samples_per_s": throughput,
            "teacher_p50_ms": ((baseline.get("latency") or {}).get("1") or {}).get("p50_ms"),
            "artifact": str(artifact), "seconds": round(seconds, 1),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        value = self.config.objective_value(entry)
        if value is None:
            raise CompressError(f"trial {trial.number}: the bench report has no {self.config.objective} measurement")
        verdict = "within budget" if gate.passed else "over budget"
        progress.status(f"[trial {trial.number}] dev {metric} {attrs['quality']:.4g}, cost {gate.value:.3g} "
                        f"({verdict}), p50 {p50:.3g} ms, {attrs['size_mb']:.3g} MB, {seconds:.0f}s")
        return float(value)

    def back_off_when_over_budget(self, study: Any, trial: Any = None) -> None:
        """While no trial is within budget, try the first trial's point without pruning next: the
        search backs off towards quality before exploring further (enqueued once)."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete or any(t.user_attrs.get("cost", 1e9) <= self.config.budget.value for t in complete):
            return
        params = back_off(self.inputs.space)
        if params is not None:
            study.enqueue_trial(params, skip_if_exists=True)

    # -- stopping ----------------------------------------------------------------------------------
    def stop_when_exhausted(self, study: Any, trial: Any) -> None:
        """Stop once the last ``EXHAUSTED_AFTER`` sampled points had all been measured already: the
        space is (nearly) covered, and further trials would only skip."""
        recent = study.get_trials(deepcopy=False)[-EXHAUSTED_AFTER:]
        if len(recent) == EXHAUSTED_AFTER and all("duplicate_of" in t.user_attrs for t in recent):
            progress.status(f"search stops: the last {EXHAUSTED_AFTER} configurations sampled had all been measured "
                            "(the space looks exhausted)")
            study.stop()

    def stop_when_out_of_time(self, study: Any, trial: Any) -> None:
        import optuna

        durations = [t.user_attrs["seconds"] for t in study.trials
                     if t.state == optuna.trial.TrialState.COMPLETE and "seconds" in t.user_attrs]
        expected = statistics.median(durations) if durations else 0.0
        left = self.deadline - self.reserve - time.monotonic()
        if left <= 0 or left < 0.8 * expected:
            progress.status(f"search stops: {format_duration(round(max(0.0, left)))} left, a trial takes about "
                            f"{format_duration(round(expected))}")
            study.stop()


def duplicate_of(study: Any, point: dict[str, Any]) -> int | None:
    """The number of a completed trial that measured exactly ``point`` (None: a new point)."""
    import optuna

    return next((t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                 if t.user_attrs.get("point") == point), None)


def _constraints(trial: Any) -> list[float]:
    """optuna's constraint: cost - budget <= 0 is feasible (the budget is stored on the study)."""
    cost, budget = trial.user_attrs.get("cost"), trial.user_attrs.get("budget")
    if cost is None or budget is None:
        return [1e9]
    return [float(cost) - float(budget)]


def _study(config: AutoConfig, inputs: Inputs) -> Any:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(inputs.run_dir / STUDY_FILE).resolve()}")
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=3, multivariate=True, group=True,
                                         constraints_func=_constraints)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=inputs.space.eval_steps, reduction_factor=3)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner,
                                direction="minimize", load_if_exists=config.resume)
    # A trial left RUNNING by a killed run will never finish: close it so the sampler ignores it.
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    if not study.trials:
        study.enqueue_trial(warm_start(inputs.space), skip_if_exists=True)
    return study


def _rows(study: Any, budget: float) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        attrs = t.user_attrs
        cost = attrs.get("cost")
        rows.append({
            "trial": t.number, "state": t.state.name.lower(), "configuration": attrs.get("configuration"),
            "params": t.params, "quality": attrs.get("quality"), "teacher_quality": attrs.get("teacher_quality"),
            "cost": cost, "feasible": cost is not None and cost <= budget,
            "objective_value": t.value if t.state.name == "COMPLETE" else None,
            "p50_ms": attrs.get("p50_ms"), "size_mb": attrs.get("size_mb"), "samples_per_s": attrs.get("samples_per_s"),
            "seconds": attrs.get("seconds"), "artifact": attrs.get("artifact"), "reason": attrs.get("reason"),
        })
    return rows


def run_auto(config: AutoConfig) -> dict[str, Any]:
    """Search, then write the front, the winner, its recipe and its baseline; returns the report."""
    start = time.monotonic()
    inputs = check_inputs(config)
    run_dir = inputs.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    held = holdout.prepare(inputs.context.eval_data, config.confirm_data and str(Path(config.confirm_data).resolve()),
                           config.confirm_fraction, config.seed, run_dir / "data")
    inputs.context = replace(inputs.context, eval_data=held.search)  # trials never see the confirmation rows
    state_file = run_dir / STATE_FILE
    state = json.loads(state_file.read_text()) if config.resume else {
        "schema_version": 1, "teacher": {"path": inputs.context.teacher, "hash": inputs.teacher_hash},
        "task": inputs.task.name, "config": config.to_dict(), "space": inputs.space.to_dict(), "invocations": []}
    state["holdout"] = asdict(held)
    state["invocations"].append({"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "time_budget_s": config.time_budget_s, "resume": config.resume})
    _save(state_file, state)
    search = _Search(config, inputs, deadline=start + config.time_budget_s)
    study = _study(config, inputs)
    study.set_user_attr("budget", config.budget.value)
    done_before = sum(t.state.is_finished() for t in study.trials)
    progress.status(f"compress auto: {inputs.task.name} teacher {config.teacher}, objective {config.objective}, "
                    f"{config.budget.flag} {config.budget.value:g}, {format_duration(config.time_budget_s)}; "
                    f"{done_before} trials so far in {run_dir / STUDY_FILE}")

    def objective(trial: Any) -> float:
        trial.set_user_attr("budget", config.budget.value)
        return search.objective(trial)

    search.back_off_when_over_budget(study)
    study.optimize(objective, n_trials=config.trials,
                   callbacks=[search.back_off_when_over_budget, search.stop_when_out_of_time,
                              search.stop_when_exhausted],
                   catch=(Exception,), gc_after_trial=True)
    rows = _rows(study, config.budget.value)
    feasible = [r for r in rows if r["feasible"] and r["objective_value"] is not None
                and r["artifact"] and Path(r["artifact"]).is_dir()]
    winner, measured = finalists.choose(
        feasible, teacher=inputs.context.teacher, data=held.confirm or held.search, config=config,
        size=config.finalists, rounds=config.finalist_rounds, report_dir=run_dir / "finalists",
        deadline=search.deadline - 60.0, tie=config.objective_tie)
    metric = inputs.task.metric
    table = pareto.write(run_dir, rows, metric=metric, budget_flag=config.budget.flag, budget=config.budget.value,
                         objective=config.objective, winner=winner["trial"] if winner else None)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "objective": config.objective,
        "budget": {"option": config.budget.flag, "value": config.budget.value},
        "trials": {"total": len(rows), "this_run": sum(r["state"] != "waiting" for r in rows) - done_before,
                   **{s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}},
        "front": table["front"], "pareto": str(run_dir / "pareto.json"),
        "holdout": asdict(held), "finalists": measured,
    }
    if winner is None:
        state["result"] = summary
        _save(state_file, state)
        if measured:  # feasible on the search rows, none within budget on the confirmation rows
            best = min(measured, key=lambda r: r["confirm_cost"])
            raise GateFailedError(
                f"no trial met {config.budget.flag} {config.budget.value:g} on the confirmation rows "
                f"({held.confirm}): {len(measured)} trials within budget on the search rows were confirmed, the "
                f"lowest cost was {best['confirm_cost']:.3g} (trial {best['trial']}: {best['configuration']})",
                report=summary)
        completed = [r for r in rows if r["cost"] is not None]
        best = min(completed, key=lambda r: r["cost"]) if completed else None
        detail = (f"; the lowest cost was {best['cost']:.3g} (trial {best['trial']}: {best['configuration']})"
                  if best else f"; no trial completed ({summary['trials']})")
        raise GateFailedError(f"no trial met {config.budget.flag} {config.budget.value:g} on --eval-data{detail}",
                              report=summary)
    summary["winner"] = _finish(search, study, winner, next(r for r in measured if r["trial"] == winner["trial"]))
    state["result"] = summary
    _save(state_file, state)
    return summary


def _finish(search: _Search, study: Any, winner: dict[str, Any], confirmed: dict[str, Any]) -> dict[str, Any]:
    """Copy the winner, write its recipe (validated by planning it) and measure its CI baseline."""
    from compressor.pipeline import load_recipe
    from compressor.pipeline.runner import run_recipe

    config, inputs, run_dir = search.config, search.inputs, search.run_dir
    trial = study.trials[winner["trial"]]
    point = Point(**trial.user_attrs["point"])
    progress.status(f"winner: trial {winner['trial']} ({point.describe()}): p50 {winner['p50_ms']:.3g} ms, "
                    f"dev cost {winner['cost']:.3g}")
    target = run_dir / "winner"
    staging = run_dir / ".winner.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(winner["artifact"], staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)

    final_data = str(Path(config.test_data or config.eval_data).resolve())
    stage_list = search.trial_stages(point)
    final = stage_list[-1]["name"] if stage_list else "student"
    stage_list.append(search.bench(final, final_data, memory=True))
    header = (f"Written by `compress auto` ({run_dir}): trial {winner['trial']}, {point.describe()}.\n"
              f"Reproduce the winner and gate it in CI: compress run recipe.yaml --out runs/auto-winner\n"
              f"Its bench compares with the teacher on {'--test-data' if config.test_data else '--eval-data'} "
              f"and fails (exit 1) beyond {config.budget.flag} {config.budget.value:g}.")
    recipe_path = recipe_writer.write(run_dir / "recipe.yaml", recipe_writer.recipe_text(
        "auto-winner", recipe_inputs(point, inputs.context.teacher), stage_list, seed=config.seed, header=header))
    run_recipe(load_recipe(recipe_path), run_dir / ".recipe-check", dry_run=True)  # exit 2 if it does not validate

    progress.status(f"measuring the winner against the teacher on {final_data} (the CI baseline)")
    bench = stages.get("bench")
    given = {"baseline": inputs.context.teacher, "data": final_data, "batch-sizes": f"1,{config.throughput_batch}",
             "min-seconds": max(config.bench_seconds, 0.0), "report-dir": str(run_dir / "baseline"),
             "max-samples": 10**7,  # every row of the held-out data, not bench's default 1,000
             config.budget.gate: config.budget.value, **({"threads": config.threads} if config.threads else {})}
    _, bench_config = bench.parse(given, "compress auto baseline")
    try:
        report = bench.invoke([str(target)], None, bench_config)
        passed = True
    except GateFailedError as exc:
        report, passed = exc.report or {}, False

    entry, baseline = report["artifacts"][0], report["baseline"]
    gate = config.budget_gate(entry)
    metric = inputs.task.metric
    teacher_p50 = baseline["latency"]["1"]["p50_ms"]
    p50 = entry["latency"]["1"]["p50_ms"]
    final_quality = {
        "data": final_data, "split": "test" if config.test_data else "dev (no --test-data: the search selected on it)",
        metric: (entry.get("quality") or {}).get(metric), "teacher_" + metric: (baseline.get("quality") or {}).get(metric),
        "cost": gate.value, "within_budget": passed, "p50_ms": p50, "teacher_p50_ms": teacher_p50,
        "speedup_vs_teacher": teacher_p50 / p50 if p50 else None, "size_mb": entry.get("size_mb"),
        "teacher_size_mb": baseline.get("size_mb"),
    }
    if not passed:
        progress.status(f"warning: the winner's cost on {final_quality['split']} is {gate.value:.3g}, beyond "
                        f"{config.budget.flag} {config.budget.value:g} (dev said {winner['cost']:.3g})")
    return {"trial": winner["trial"], "configuration": point.describe(), "point": asdict(point),
            "dev": {metric: winner["quality"], "cost": winner["cost"], "p50_ms": winner["p50_ms"],
                    "size_mb": winner["size_mb"]},
            "confirmation": confirmed,
            "final": final_quality, "artifact": str(target), "recipe": str(recipe_path),
            "baseline_report": str(run_dir / "baseline" / "report.json")}


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str) + "\n")
    os.replace(tmp, path)
