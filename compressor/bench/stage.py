"""The bench stage: artifacts and a baseline in, reports out. It writes no artifact.

Everything a user can get wrong (paths, tasks, labels, data, device, gates, report paths) is checked
before the first model is timed. Each model is then loaded alone, scored, timed batch size by batch
size with fixed threads, profiled (ONNX), released, and its peak memory measured in a fresh process.
Gates run last; when any fails, the reports are still written and ``GateFailedError`` (exit 1)
carries the report.
"""

from __future__ import annotations

import gc
from importlib import import_module
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compressor import progress, tasks
from compressor.artifact import ONNX, OPENVINO, PYTORCH, Artifact, open_artifact
from compressor.bench import checks, gates, memory, reports
from compressor.bench.config import QUALITY_GATES, BenchConfig
from compressor.artifact import check_can_create, check_writable_dir
from compressor.bench.runner import OnnxBench, OpenVinoBench, TorchBench
from compressor.bench.timing import run_loop, summarize, throughput
from compressor.bench.weights import onnx_weight_stats, openvino_weight_stats, torch_weight_stats
from compressor.bench.workload import Workload
from compressor.devices import require_device
from compressor.errors import BadInputError, GateFailedError
from compressor.loading import check_weights, load_model, load_tokenizer, quantized_recipe
from compressor.manifest import library_versions, tool_version
from compressor.tasks.base import Task


@dataclass
class Subject:
    name: str
    role: str  # baseline | artifact | parent
    artifact: Artifact
    tokenizer: Any
    workload: Workload | None = None


# ------------------------------------------------------------------------------------ validation


def _open(path: str | Path, what: str) -> Artifact:
    try:
        return open_artifact(path)
    except BadInputError as exc:
        raise BadInputError(f"{what} {exc.message}") from exc


def _names(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _tokenizer(artifact: Artifact, fallback: Any) -> Any:
    """The artifact's own tokenizer; the baseline's when the artifact ships none (some engines save
    only the weights)."""
    try:
        return load_tokenizer(artifact.path)
    except BadInputError:
        if fallback is None:
            raise
        return fallback


def _check_loadable(artifact: Artifact, config: BenchConfig, tokenizer: Any) -> None:
    """Weights that will not load fail now, before any model has been timed."""
    if artifact.format == OPENVINO:
        import_module("compressor.formats.openvino").check_benchable(artifact, config.device, tokenizer)
    elif artifact.format == PYTORCH:
        if quantized_recipe(artifact) is None:  # quantized artifacts are rebuilt by their own loader
            check_weights(artifact.path, config.allow_pickle)
    elif artifact.format == ONNX:
        if not any(artifact.path.glob("*.onnx")):
            raise BadInputError(f"{artifact.path}: ONNX artifact without a .onnx file")
    else:
        raise BadInputError(f"{artifact.path}: unknown artifact format {artifact.format!r}")


def _check_paths(config: BenchConfig) -> None:
    if config.report_dir and Path(config.report_dir).exists() and not Path(config.report_dir).is_dir():
        raise BadInputError(f"--report-dir {config.report_dir}: exists and is not a directory")
    if config.junit and Path(config.junit).is_dir():
        raise BadInputError(f"--junit {config.junit}: is a directory; give a file path")
    # Writable now, before the first model is timed (reports are written last).
    if config.report_dir:
        check_writable_dir(Path(config.report_dir), "--report-dir")
    if config.junit:
        check_can_create(Path(config.junit), "--junit")


def _check_gates(config: BenchConfig, task: Task, baseline: Artifact) -> None:
    """A quality gate bounds one task's metric; on another task's model it cannot be evaluated."""
    own = (task.budget_option or "").replace("_", "-")
    owners = {(t.budget_option or "").replace("_", "-"): t for t in map(tasks.get, tasks.names())}
    for name in config.gates:
        if name in QUALITY_GATES and name != own:
            instead = f"use --{own}" if own else "it has no quality metric"
            owner = owners[name].plural if name in owners else "other tasks"
            raise BadInputError(f"--{name}: applies to {owner}; {baseline.path} is a {task.name} model ({instead})")


def _plan(paths: list[str | Path], config: BenchConfig) -> tuple[list[Subject], list[Subject], Any]:
    """Open and check everything; returns (baseline + artifacts, float parents to time, what the
    task's quality comparison needs, e.g. the labels)."""
    if not paths:
        raise BadInputError("no artifacts given; pass one or more artifact directories to bench")
    require_device(config.device)
    _check_paths(config)
    baseline = _open(config.baseline, "--baseline")
    artifacts = [_open(p, "artifact") for p in paths]
    task = tasks.get(baseline.task)
    if task.metric is None:
        raise BadInputError(f"--baseline {baseline.path}: task {task.name} has no quality metric to bench; "
                            "bench supports text-classification and causal-lm")
    for artifact in artifacts:
        if artifact.task != task.name:
            raise BadInputError(
                f"{artifact.path}: task {artifact.task} differs from the baseline's ({baseline.path}: {task.name}); "
                "bench compares artifacts of one task"
            )
    _check_gates(config, task, baseline)

    base_tok = load_tokenizer(baseline.path)
    names = _names([Path(config.baseline), *[Path(p) for p in paths]])
    subjects = [Subject(names[0], "baseline", baseline, base_tok)]
    subjects += [Subject(n, "artifact", a, _tokenizer(a, base_tok)) for n, a in zip(names[1:], artifacts)]
    parents = _parents(subjects, base_tok)
    for subject in subjects + parents:
        _check_loadable(subject.artifact, config, subject.tokenizer)

    context = task.bench_workloads(config, subjects + parents)
    return subjects, parents, context


def _parents(subjects: list[Subject], fallback_tokenizer: Any) -> list[Subject]:
    """Float parents of quantized artifacts that are not benched already and still exist on disk."""
    known = {s.artifact.path.resolve() for s in subjects}
    parents: list[Subject] = []
    for subject in subjects[1:]:
        origin = checks.quantized_from(subject.artifact)
        if origin is None or origin[0].resolve() in known or not origin[0].is_dir():
            continue
        try:
            artifact = open_artifact(origin[0])
        except BadInputError:
            continue  # moved or deleted parents are reported as not compared, not as bad input
        known.add(origin[0].resolve())
        parents.append(Subject(f"{origin[0].name} (float parent)", "parent", artifact,
                               _tokenizer(artifact, fallback_tokenizer)))
    return parents


# ----------------------------------------------------------------------------------- measurement


def _load(subject: Subject, config: BenchConfig) -> tuple[Any, dict[str, Any]]:
    artifact = subject.artifact
    if artifact.format == PYTORCH:
        model = load_model(artifact, allow_pickle=config.allow_pickle)
        return TorchBench(model, device=config.device, task=tasks.get(artifact.task)), torch_weight_stats(model)
    if artifact.format == ONNX:
        runner = OnnxBench(artifact.onnx_file, device=config.device, threads=config.resolved_threads)
        return runner, onnx_weight_stats(artifact.onnx_file)
    if artifact.format == OPENVINO:
        return OpenVinoBench(artifact.ir_file, threads=config.resolved_threads), openvino_weight_stats(artifact.ir_file)
    raise BadInputError(f"{artifact.path}: unknown artifact format {artifact.format!r}")


def _time_forward(runner: Any, batches: list[dict[str, np.ndarray]], config: BenchConfig) -> list[float]:
    """Samples over at least one full pass of ``batches``: a time budget alone lets a slow model see
    only the first rows and a fast one all of them, and rows differ in length, so their p50s would
    not compare the same inputs."""
    prepared = [runner.prepare(b) for b in batches]
    return run_loop(lambda i: runner.time_forward(prepared[i % len(prepared)]), warmup=config.warmup,
                    min_runs=max(config.min_runs, len(prepared)), min_seconds=config.min_seconds)


def _latency(
    runner: Any, subject: Subject, config: BenchConfig, task: Task, batch_sizes: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    workload = subject.workload
    latency: dict[str, Any] = {}
    decode: dict[str, Any] | None = None
    for size in batch_sizes:
        progress.status(f"  timing {subject.name} at batch {size}")
        if task.generates and runner.supports_decode():
            prompts = workload.prompts[size]
            prefills: list[float] = []
            steps: list[float] = []

            def generate(i: int) -> float:
                prefill, step = runner.generate(prompts[i % len(prompts)], config.decode_tokens)
                if i >= config.warmup:  # warm-up calls are not samples
                    prefills.append(prefill)
                    steps.extend(step)
                return prefill + sum(step)

            run_loop(generate, warmup=config.warmup, min_runs=config.min_runs, min_seconds=config.min_seconds)
            stats = summarize(prefills)
            stats["samples_per_s"] = throughput([size] * len(prefills), prefills)
            stats["tokens_per_s"] = throughput([size * workload.prompt_length] * len(prefills), prefills)
            stats["sequence_length"] = workload.prompt_length
            step_stats = summarize(steps)
            step_stats["tokens_per_s"] = throughput([size] * len(steps), steps)
            step_stats["new_tokens"] = config.decode_tokens
            step_stats["prompt_length"] = workload.prompt_length
            decode = decode or {}
            decode[str(size)] = step_stats
        else:
            samples = _time_forward(runner, workload.latency_batches[size], config)
            stats = summarize(samples)
            stats["samples_per_s"] = throughput([size] * len(samples), samples)
            if task.generates:
                stats["sequence_length"] = workload.prompt_length
                stats["tokens_per_s"] = throughput([size * workload.prompt_length] * len(samples), samples)
        latency[str(size)] = stats
    return latency, decode


def _memory(subject: Subject, config: BenchConfig, task: Task) -> dict[str, Any]:
    largest = max(config.batch_sizes)
    workload = subject.workload
    prompt = workload.prompts[largest][0] if task.generates else None
    progress.status(f"  peak memory of {subject.name} in a fresh process")
    return memory.measure(
        subject.artifact.path, device=config.device, threads=config.resolved_threads,
        batches=[workload.heaviest(largest)], prompt=prompt,
        decode_tokens=config.decode_tokens if prompt is not None else 0,
        allow_pickle=config.allow_pickle,
    )


def _measure(
    subject: Subject, config: BenchConfig, task: Task, *, full: bool
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One model's entry and raw scores; ``full=False`` (float parents) times the reference batch only."""
    artifact = subject.artifact
    precision = checks.precision(artifact)  # may read the ONNX graph: once
    progress.status(f"benching {subject.name} ({artifact.format}, {precision})")
    entry: dict[str, Any] = {
        "name": subject.name, "path": str(artifact.path), "role": subject.role, "format": artifact.format,
        "family": artifact.family.name, "task": artifact.task, "precision": precision,
        "lineage": [r.stage for r in artifact.stages],
        "size_bytes": artifact.size_bytes(), "size_mb": artifact.size_bytes() / 1e6,
    }
    runner, weight_stats = _load(subject, config)
    raw: dict[str, np.ndarray] = {}
    try:
        entry.update(weight_stats)
        if artifact.format in (ONNX, OPENVINO):  # the execution providers, or what OpenVINO compiled for
            entry["providers" if artifact.format == ONNX else "openvino"] = runner.properties
        if full:
            progress.status(f"  scoring {subject.name} on {len(subject.workload.quality_batches)} batches")
            raw = task.bench_scores(runner, subject.workload)
        sizes = config.batch_sizes if full else (config.reference_batch,)
        sample = checks.busy_cpus()  # other processes' load, sampled while this one sleeps
        entry["other_busy_cpus"] = round(sample[0], 2) if sample else None
        entry["latency"], entry["decode"] = _latency(runner, subject, config, task, sizes)
        if artifact.format == ONNX and config.profile_runs and full:
            batches = subject.workload.latency_batches[config.reference_batch]
            events = runner.profile([runner.prepare(b) for b in batches[: config.profile_runs]], config.profile_runs)
            entry["provider_coverage"] = checks.provider_coverage(events)
    finally:
        runner.close()
        del runner
        gc.collect()
    entry["memory"] = _memory(subject, config, task) if config.measure_memory and full else None
    return entry, raw


# ---------------------------------------------------------------------------------- comparisons


def _compare(entry: dict[str, Any], raw: dict[str, np.ndarray], base: dict[str, Any], base_raw: dict[str, np.ndarray],
             context: Any, task: Task, config: BenchConfig) -> None:
    ref = str(config.reference_batch)
    entry["speedup"] = base["latency"][ref]["p50_ms"] / entry["latency"][ref]["p50_ms"]
    if task.generates:
        base_decode, decode = (base.get("decode") or {}).get(ref), (entry.get("decode") or {}).get(ref)
        entry["decode_speedup"] = base_decode["p50_ms"] / decode["p50_ms"] if base_decode and decode else None
    entry["quality"] = task.bench_quality(raw, base_raw, context, vs_baseline=entry["role"] != "baseline",
                                          config=config)


def _parent_warnings(subjects: list[Subject], entries: list[dict[str, Any]], parent_entries: list[dict[str, Any]],
                     config: BenchConfig) -> list[dict[str, str]]:
    ref = str(config.reference_batch)
    by_path = {Path(e["path"]).resolve(): e for e in [*entries, *parent_entries]}
    found = []
    for subject, entry in zip(subjects[1:], entries[1:]):
        origin = checks.quantized_from(subject.artifact)
        if origin is None:
            continue
        parent = by_path.get(origin[0].resolve())
        entry["float_parent"] = {"path": str(origin[0]), "compared": parent is not None}
        if parent is None:
            continue
        entry["float_parent"]["p50_ms"] = parent["latency"][ref]["p50_ms"]
        note = checks.slower_than_parent(entry["name"], entry["latency"][ref]["p50_ms"], parent["name"],
                                         parent["latency"][ref]["p50_ms"], config.reference_batch)
        if note:
            found.append(note)
    return found


# -------------------------------------------------------------------------------------- the stage


def bench(artifacts: list[str | Path], config: BenchConfig) -> dict[str, Any]:
    """Measure ``artifacts`` against ``config.baseline``; returns the report (schema in reports.py).

    Raises ``BadInputError`` (exit 2) before measuring anything, and ``GateFailedError`` (exit 1,
    with the report) after writing the reports when a gate fails.
    """
    subjects, parents, context = _plan(list(artifacts), config)
    task = tasks.get(subjects[0].artifact.task)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    restore = _fix_threads(config.resolved_threads, any(s.artifact.format == PYTORCH for s in subjects + parents))
    try:
        measured = [_measure(s, config, task, full=True) for s in subjects]
        parent_entries = [_measure(p, config, task, full=False)[0] for p in parents]
    finally:
        restore()
    entries = [entry for entry, _ in measured]
    base_entry, base_raw = measured[0]
    for entry, raw in measured:
        _compare(entry, raw, base_entry, base_raw, context, task, config)

    warnings = task.bench_warnings(subjects) + _parent_warnings(subjects, entries, parent_entries, config)
    busy = [e["other_busy_cpus"] for e in entries + parent_entries if e.get("other_busy_cpus") is not None]
    note = checks.machine_busy_warning(max(busy), checks.cpu_count(), config.resolved_threads) if busy else None
    warnings += [note] if note else []
    for entry in entries:
        if entry["format"] == ONNX:
            warnings += checks.provider_warnings(entry["name"], config.device, entry.get("providers", []),
                                                 entry.get("provider_coverage"))
        if entry["format"] == OPENVINO:
            warnings += checks.openvino_warnings(entry["name"], entry.get("openvino", {}), config.resolved_threads)
    results = [r for entry in entries[1:] for r in gates.evaluate(entry, config.gates, config.reference_batch)]
    warnings += checks.ci_warnings(results)
    report = {
        "schema_version": reports.SCHEMA_VERSION,
        "tool": {"name": "compress bench", "version": tool_version()},
        "created_at": created,
        "passed": all(r.passed for r in results),
        "task": task.name,
        "environment": {
            "device": config.device,
            "threads": config.resolved_threads,
            "reference_batch": config.reference_batch,
            "cpus": checks.cpu_count(),
            "max_other_busy_cpus": max(busy) if busy else None,
            "versions": library_versions(),
        },
        "config": config.to_dict(),
        "baseline": entries[0],
        "artifacts": entries[1:],
        "parents": parent_entries,
        "gates": [r.to_dict() for r in results],
        "warnings": warnings,
    }
    for note in warnings:
        progress.status(f"warning: {note['message']}")
    report["reports"] = reports.write_reports(report, config.report_dir, config.junit)
    failed = [r for r in results if not r.passed]
    if failed:
        raise GateFailedError(
            f"{len(failed)} of {len(results)} gates failed: "
            + "; ".join(f"{r.artifact} {r.gate} ({r.detail})" for r in failed),
            report=report,
        )
    return report


def _fix_threads(threads: int, uses_torch: bool) -> Any:
    """Pin torch's intra-op pool (onnxruntime sessions get ``threads`` directly); returns the undo."""
    if not uses_torch:
        return lambda: None
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return lambda: torch.set_num_threads(previous)
