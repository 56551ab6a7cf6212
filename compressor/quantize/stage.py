"""The quantize stage: a PyTorch or ONNX artifact in, a quantized artifact out, within an accuracy budget.

Order of work: validate everything (method vs format, data files and their columns, budgets) before
any output exists; calibrate and quantize; measure quality before and after on the evaluation data;
when over budget, measure every layer's sensitivity and return the most sensitive layers to float
until the budget is met (or fail with exit 1 and the report, writing nothing, when even a single
quantized layer is over budget). PyTorch artifacts are reloaded and compared before they count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from compressor import progress
from compressor.artifact import (
    _check_output_path,
    ONNX,
    OPENVINO,
    PYTORCH,
    Artifact,
    copy_support_files,
    StageTimer,
    open_artifact,
    staged_output,
    write_manifest,
)
from compressor import tasks
from compressor.devices import require_device
from compressor.errors import BadInputError, GateFailedError, RuntimeFailureError
from compressor.loading import load_tokenizer
from compressor.quantize.config import Method, QuantizeConfig, method_for
from compressor.quantize.engine import Engine, engine_class
from compressor.quantize.sensitivity import BUDGET_OPTIONS, Budget, Unit, fall_back, float_reasons, measure
from compressor.tasks.base import EvalResult, Task
from compressor.scratch import scratch_space

# Reloaded PyTorch artifacts rebuild the very same tensors, so outputs must match to float noise.
RELOAD_ATOL = 1e-5


def _quantized_already(source: Artifact) -> str | None:
    """Why ``source`` is already quantized, or None."""
    for record in source.stages:
        if record.stage == "quantize":
            return f"it was written by `compress quantize --method {record.config.get('method')}`"
    if source.format == PYTORCH and source.config.get("quantization_config"):
        method = source.config["quantization_config"].get("quant_method", "unknown")
        return f"its config.json has a quantization_config (quant_method {method!r})"
    if source.format == ONNX:
        from compressor.quantize.onnx_ort import quantized_op_types

        found = quantized_op_types(source.onnx_file)
        if found:
            return f"its graph already holds {', '.join(sorted(found))}"
    if source.format == OPENVINO:
        from compressor.quantize.openvino_nncf import already_quantized

        found = already_quantized(source.ir_file)
        if found:
            return f"its IR already holds {', '.join(sorted(found))}"
    return None


def _budget(task: Task, config: QuantizeConfig) -> Budget | None:
    """The budget on the task's own metric; a budget on another metric is a usage error."""
    for option, (flag, _) in BUDGET_OPTIONS.items():
        value = getattr(config, option)
        if value is not None and option != task.budget_option:
            instead = f"use {BUDGET_OPTIONS[task.budget_option][0]}" if task.budget_option else "it has no quality metric"
            raise BadInputError(f"{flag} {value:g}: SRC is a {task.noun}, scored by {task.metric or 'nothing'}; "
                                f"{instead}")
    return Budget.for_task(task.name, **{option: getattr(config, option) for option in BUDGET_OPTIONS})


def _common_width(batches: list[dict[str, Any]], pad_id: int) -> list[dict[str, Any]]:
    """Pad every row to the longest calibration row: onnxruntime's histogram calibrators (entropy,
    percentile) stack each tensor across runs and fail on differing sequence lengths. Padded
    positions are masked in attention; their few extra activations barely move a histogram."""
    width = max(b["input_ids"].shape[1] for b in batches)
    padded = []
    for batch in batches:
        extra = width - batch["input_ids"].shape[1]
        padded.append({k: np.pad(v, ((0, 0), (0, extra)), constant_values=pad_id if k == "input_ids" else 0)
                       for k, v in batch.items() if k != "labels"})
    return padded


def _engine(source: Artifact, method: Method, config: QuantizeConfig, workdir: Path, allow_pickle: bool) -> Engine:
    return engine_class(method.engine_class).from_artifact(source, method.name, config, workdir, allow_pickle)


@contextlib.contextmanager
def _library_log_level() -> Any:
    """Keep neural-compressor at the log level the caller chose (the CLI sets ERROR unless -v).

    Its logger resets itself to ``$LOGLEVEL`` (default INFO) when first imported, which can happen
    inside an unrelated import; passing the chosen level through ``LOGLEVEL`` covers that.
    """
    import logging
    import os

    logger = logging.getLogger("neural_compressor")
    level = logger.level
    previous = os.environ.get("LOGLEVEL")
    if level and previous is None:
        os.environ["LOGLEVEL"] = logging.getLevelName(level)
    try:
        yield
    finally:
        if level and previous is None:
            os.environ.pop("LOGLEVEL", None)
            logger.setLevel(level)


def _check_reload(source: Artifact, out: Path, recipe: dict[str, Any], model: Any, tokenizer: Any,
                  max_length: int) -> dict[str, Any]:
    """Reload the written artifact the way ``load_model`` will and compare it with the in-memory
    model on the built-in sentences: a format bug fails here, not in a user's pipeline."""
    import torch

    from compressor.formats import torch_quantized as torch_format

    task = tasks.get(source.task)
    reloaded = torch_format.load_artifact(dataclasses.replace(source, path=out), recipe, task=source.task)
    batches = task.builtin_batches(tokenizer, samples=16, max_length=min(max_length, 32))

    def outputs(m: Any, batch: dict[str, Any]) -> Any:
        with torch.inference_mode():
            out = m(**{k: torch.from_numpy(v) for k, v in batch.items()}, **task.model_kwargs)
        return (out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state).float()

    diff = max(float((outputs(model, b) - outputs(reloaded, b)).abs().max()) for b in batches)
    if diff > RELOAD_ATOL:
        raise RuntimeFailureError(f"{out}: the saved model reloads with different outputs (max |logit diff| "
                                  f"{diff:.3g} > {RELOAD_ATOL:g}); nothing written")
    return {"max_abs_diff": diff, "inputs": "built-in sentences", "rows": int(sum(len(b["input_ids"]) for b in batches))}


def _fall_back(engine: Engine, candidate: Any, units: list[Unit], budget: Budget, before: EvalResult,
               last: tuple[dict[str, Any], float], task: Task, batches: list[dict[str, Any]]) -> tuple:
    """Measure every layer's sensitivity, then return layers to float until within budget.

    Returns the chosen candidate, its float layer names, its metrics and loss, and the decisions for
    the report (sensitivity ranking, kept-float layers with reasons, every attempt).
    """
    progress.status(f"{budget.metric} loss {last[1]:.3g}{budget.unit} is over {budget.flag} {budget.limit:g}; "
                    f"measuring the sensitivity of {len(units)} layers")

    def only(unit: Unit) -> tuple[dict[str, Any], float]:
        trial = engine.only(unit.name)
        try:
            result = task.evaluate(engine.runner(trial), batches, desc=f"only {unit.name}")
        finally:
            engine.discard(trial)
        return result.metrics, task.divergence(before, result)

    ranked = measure(units, only, budget, before.metrics)
    current = {"candidate": candidate}

    def without(floats: list[Unit]) -> dict[str, Any]:
        engine.discard(current["candidate"])  # one candidate at a time (torch candidates are module swaps)
        current["candidate"] = engine.build([u.name for u in floats])
        return task.evaluate(engine.runner(current["candidate"]), batches, desc=f"{len(floats)} layer(s) float").metrics

    result = fall_back(ranked, without, budget, before.metrics, last=last)
    decisions = {
        "sensitivity": [s.to_dict() for s in ranked],
        "kept_float": float_reasons(ranked, result.float_units, budget),
        "attempts": result.attempts,
    }
    return current["candidate"], [u.name for u in result.float_units], result.metrics, result.loss, decisions


def _loss_key(task: Task) -> str:
    return f"{task.metric}_{'drop_points' if task.higher_is_better else 'increase_pct'}"


def _validate(source: Artifact, config: QuantizeConfig) -> tuple[Method, Task, Budget | None]:
    """Everything that can be judged before any data is read."""
    method = method_for(config.method, source.format)
    reason = _quantized_already(source)
    if reason:
        raise BadInputError(f"{source.path}: already quantized ({reason}); quantize the float artifact instead")
    require_device(config.device)
    if source.format == PYTORCH and config.device != "cpu":
        raise BadInputError(f"--device {config.device}: PyTorch quantized layers (torch.ao INT8, neural-compressor "
                            "weight-only) run on the CPU; use --device cpu, or export-onnx and quantize the ONNX model")
    if method.name == "int4-weight" and method.format == ONNX and config.block_size == -1:
        raise BadInputError("--block-size -1: int4-weight (MatMulNBits) needs a block size, e.g. 32 or 128")
    if config.embeddings != "int8" and not (method.format == ONNX and method.name in ("int8-dynamic", "int8-static")):
        raise BadInputError(f"--embeddings {config.embeddings}: applies to ONNX int8-dynamic and int8-static (which "
                            f"quantize embedding tables), not {method.format} {method.name}")
    if config.embeddings == "int4" and config.block_size == -1:
        raise BadInputError("--block-size -1: --embeddings int4 needs a block size along each row, e.g. 32 or 128")
    task = tasks.get(source.task)
    if task.metric is None and config.eval_data is not None:
        raise BadInputError(f"--eval-data: {source.path} is a {task.name} model (no task head to score); "
                            "quality can be measured for classifiers and causal LMs")
    budget = _budget(task, config)
    if config.calib_data is not None and not (method.needs_calibration or config.resolved_algorithm in ("gptq", "awq")):
        progress.status(f"note: --method {method.name}" + (f"/{config.resolved_algorithm}" if config.resolved_algorithm
                        else "") + " does not calibrate; --calib-data is only validated")
    return method, task, budget


def _data(source: Artifact, task: Task, method: Method, config: QuantizeConfig, tokenizer: Any,
          max_length: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Calibration and evaluation batches, read (and validated) before any output exists."""
    label2id = source.config.get("label2id")
    calib: list[dict[str, Any]] = []
    if config.calib_data is not None:
        # One row per batch for classifiers: padding would pollute activation ranges and statistics.
        calib = task.batches("--calib-data", tokenizer, config.calib_data, label2id=label2id,
                             samples=config.calib_samples, max_length=max_length,
                             batch_size=4 if task.generates else 1, require_labels=False)
        if method.name == "int8-static" and config.calib_method != "minmax" and not task.generates:
            calib = _common_width(calib, tokenizer.pad_token_id or 0)
    evaluation = None
    if config.eval_data is not None:
        evaluation = task.batches("--eval-data", tokenizer, config.eval_data, label2id=label2id,
                                  samples=config.eval_samples, max_length=max_length,
                                  batch_size=8 if task.generates else 32, require_labels=task.uses_labels)
    return calib, evaluation


def _measure_quality(engine: Engine, candidate: Any, units: list[Unit], task: Task, budget: Budget | None,
                     eval_batches: list[dict[str, Any]], config: QuantizeConfig, report: dict[str, Any],
                     fallback: dict[str, Any]) -> tuple[Any, list[str]]:
    """Quality before and after; over budget, layers go back to float. Fills ``report``."""
    metric, loss_key = task.metric, _loss_key(task)
    before = task.evaluate(engine.runner(None), eval_batches, desc="evaluating float")
    fitted = engine.fit_budget(budget, task, eval_batches) if budget is not None else None
    float_names: list[str] = []
    if fitted is not None:  # the engine's library chose the float layers itself
        candidate, float_names, decisions = fitted
        fallback.update(decisions)
    after = task.evaluate(engine.runner(candidate), eval_batches, desc="evaluating quantized")
    loss = Budget(metric, 0.0).loss(before.metrics, after.metrics)
    final_metrics = after.metrics
    if budget is not None and not budget.within(loss) and fitted is None:
        candidate, float_names, final_metrics, loss, decisions = _fall_back(
            engine, candidate, units, budget, before, (after.metrics, loss), task, eval_batches
        )
        fallback.update(decisions)
    report["eval"] = {"data": config.eval_data.path, **{k: v for k, v in before.metrics.items() if k != metric}}
    report["metrics"] = {f"{metric}_before": before.metrics[metric], f"{metric}_after": final_metrics[metric],
                         loss_key: loss}
    if budget is not None:
        report["budget"] = {"flag": budget.flag, "limit": budget.limit, "loss": loss, "unit": budget.unit,
                            "met": budget.within(loss)}
    return candidate, float_names


def quantize(
    src: str | Path, dst: str | Path, config: QuantizeConfig, *, force: bool = False, allow_pickle: bool = False
) -> dict[str, Any]:
    """Quantize ``src`` into ``dst``; returns the stage report.

    Raises ``BadInputError`` (exit 2) for bad inputs before writing anything, and ``GateFailedError``
    (exit 1, with the report; nothing written) when the budget is not met even with every layer but
    the least sensitive one back in float.
    """
    source = open_artifact(src)
    method, task, budget = _validate(source, config)
    _check_output_path(Path(dst), [source.path], force)  # now, not after calibration and evaluation
    tokenizer = load_tokenizer(source.path)
    engine_class(method.engine_class).check_source(source, tokenizer, method.name)
    max_length = source.family.clamp_length(source.config, config.max_length)
    calib_batches, eval_batches = _data(source, task, method, config, tokenizer, max_length)

    timer = StageTimer()
    source_hash = source.content_hash()
    size_before = source.size_bytes()
    # Libraries print to stdout (neural-compressor's "Building WOQ model"); stdout is for --json.
    with contextlib.redirect_stdout(sys.stderr), _library_log_level(), \
            staged_output(dst, sources=[source.path], force=force) as out, scratch_space(out) as tmp:
        progress.status(f"quantizing {source.path} ({source.format}, {source.family.name}, {source.task}) "
                        f"with {method.name}" + (f"/{config.resolved_algorithm}" if config.resolved_algorithm else ""))
        engine = _engine(source, method, config, Path(tmp), allow_pickle)
        calibration = engine.calibrate(calib_batches)
        units = engine.units()
        if not units:
            raise BadInputError(f"{source.path}: no layers that {method.name} can quantize")
        candidate = engine.build([])
        float_names: list[str] = []
        report: dict[str, Any] = {
            "method": method.name,
            "algorithm": config.resolved_algorithm,
            "format": source.format,
            "engine": method.engine,
            "settings": engine.settings(),
            "size_bytes_before": size_before,
        }
        if calibration:
            report["calibration"] = {"data": config.calib_data.path if config.calib_data else None,
                                     "method": config.calib_method if method.name == "int8-static" else None,
                                     **calibration}
        fallback: dict[str, Any] = {"default_float": list(engine.default_float)}
        if eval_batches is not None:
            candidate, float_names = _measure_quality(engine, candidate, units, task, budget, eval_batches, config,
                                                      report, fallback)
        report["ops"] = engine.op_counts(candidate, float_names)
        report["fallback"] = fallback
        if budget is not None and not report["budget"]["met"]:
            report["wall_time_s"] = timer.elapsed_s
            raise GateFailedError(
                f"{task.metric} loss {report['budget']['loss']:.3g}{budget.unit} exceeds {budget.flag} "
                f"{budget.limit:g} with {len(float_names)} of {len(units)} quantizable layers kept in float; "
                f"nothing written to {dst}",
                report=report,
            )
        _save(engine, candidate, source, out, report, tokenizer, max_length, size_before, method.name)
        report["wall_time_s"] = timer.elapsed_s
        write_manifest(out, source=source, source_hash=source_hash, stage="quantize", config=config.to_dict(),
                       report=report, timer=timer, fmt=source.format, seed=config.seed)
    return report


def _save(engine: Engine, candidate: Any, source: Artifact, out: Path, report: dict[str, Any], tokenizer: Any,
          max_length: int, size_before: int, method: str) -> None:
    files, recipe = engine.save(candidate, out)
    copy_support_files(source.path, out)
    size_after = dataclasses.replace(source, path=out).size_bytes()
    report.update(files=files, size_bytes=size_after, size_bytes_after=size_after,
                  compression_ratio=round(size_before / max(size_after, 1), 3))
    if recipe is not None:
        from compressor.formats.torch_quantized import write_note

        write_note(out, recipe, method)  # after the support files: it describes this artifact
        report["reload"] = recipe
        report["reload_check"] = _check_reload(source, out, recipe, candidate.model, tokenizer, max_length)
