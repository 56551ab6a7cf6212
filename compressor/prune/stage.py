"""The prune stage: a PyTorch artifact in, a physically smaller (and/or sparse) artifact out.

Order of work: every input is judged (methods for this model, amounts against its sizes, data, the
recovery teacher) before the model is even loaded; structural pruning runs in memory (layers, then
heads and FFN neurons scored together on the shallower model); then, inside the staged output, the
optional recovery distillation, the sparsity masks (after recovery, because distillation trains dense
weights and would fill the zeros back in), the save, and a reload through ``from_pretrained`` whose
metric is the one reported as final.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from compressor import dtypes, finite, progress
from compressor.artifact import (
    PYTORCH,
    Artifact,
    StageTimer,
    _check_output_path,
    open_artifact,
    staged_output,
    write_manifest,
)
from compressor.devices import require_device
from compressor.errors import BadInputError
from compressor import tasks
from compressor.inference import TorchRunner
from compressor.tasks.base import Task
from compressor.loading import load_model, load_tokenizer
from compressor.prune import calibration, importance, sparsity, structural, vocab
from compressor.prune.config import FFN, HEADS, LAYERS, MAGNITUDE_LAYER, SEMI_2_4, STRUCTURAL, VOCAB, PruneConfig
from compressor.prune.recovery import check_recover_data, check_teacher, recover

PRUNED_DIR, RECOVERED_DIR = ".pruned", ".recovered"


def _check_plan(config: PruneConfig, source: Artifact) -> Any:
    """Judge the methods against this model's config alone; returns the structural adapter."""
    model_type = source.config.get("model_type")
    adapter = source.family.surgery(model_type)
    for method in config.methods:
        if method.name in STRUCTURAL and adapter is None:
            supported = ", ".join(source.family.structural_model_types)
            raise BadInputError(
                f"--method {method.spec}: structural pruning is not supported for model_type {model_type!r} "
                f"({source.family.name} family; supported: {supported}); use magnitude, magnitude-layer or 2:4"
            )
    if config.method(VOCAB):
        if not source.family.trims_vocab:
            source.family.vocab_embeddings(None)  # the family's one-line reason (exit 2)
        vocab.tokenizer_kind(source.path)  # a tokenizer type it cannot rewrite: exit 2 naming it
    if adapter is None:
        return None
    spec = ",".join(m.spec for m in config.methods)
    if hasattr(adapter, "check_config"):  # e.g. a RoPE scaling the surgery cannot carry through
        adapter.check_config(source.config, spec)
    heads = config.method(HEADS)
    if heads and hasattr(adapter, "check_heads"):  # grouped-query attention: one valid layout for all layers
        adapter.check_heads(source.config, heads.amount, config.head_unit, heads.spec)
    shape = adapter.shape
    n_layers = int(source.config[shape.layers])
    layers = config.method(LAYERS)
    if layers and layers.layers is not None:
        bad = [i for i in layers.layers if i >= n_layers]
        if bad:
            raise BadInputError(
                f"--method {layers.spec}: layer {bad[0]} does not exist; the model has layers 0..{n_layers - 1}"
            )
        if len(layers.layers) >= n_layers:
            raise BadInputError(f"--method {layers.spec}: removes every layer ({n_layers}); at least one must stay")
    elif layers:
        importance.layers_to_remove([0.0] * n_layers, layers.amount)  # raises when every layer would go
    ffn = config.method(FFN)
    width = adapter.ffn_width(source.config)
    if ffn:
        width = importance.ffn_keep_width(width, ffn.amount, config.ffn_multiple_of)
    if config.sparsity and config.sparsity.name == SEMI_2_4:
        for name, value in ((shape.hidden, int(source.config[shape.hidden])), ("FFN width", width)):
            if value % 4:
                raise BadInputError(
                    f"--method 2:4: {name} is {value}, not divisible by 4; 2:4 sparsity needs groups of 4 weights"
                )
    return adapter


def _score_points(adapter: Any, blocks: list[Any]) -> tuple[list, list]:
    heads = [(adapter.head_output(b), *adapter.heads(b)) for b in blocks]
    ffn = [(adapter.ffn_output(b), int(adapter.ffn_weights(b)[0].shape[0]), 1) for b in blocks]
    return heads, ffn


def _prune_structure(model: Any, adapter: Any, config: PruneConfig, task: Task, calib: list | None,
                     builtin: list, device: str) -> dict[str, Any]:
    """Layers, then heads and FFN neurons, in place; returns what was removed."""
    done: dict[str, Any] = {}
    loss = task.loss_fn(device) if calib else None
    layers = config.method(LAYERS)
    if layers:
        if layers.layers is not None:
            remove, scores = list(layers.layers), None
        else:
            batches = calib if calib else builtin
            blocks = list(adapter.blocks(model))
            progress.status(f"scoring {len(blocks)} layers by {config.layer_importance}")
            if config.layer_importance == "cosine":
                scores = importance.block_cosine_scores(blocks, calibration.forward_all(task, model, batches, device))
            else:
                layer_loss = loss if calib else calibration.self_kl_loss(task, model, builtin, device)
                scores = importance.layer_ablation_scores(model, blocks, batches, layer_loss)
            remove = importance.layers_to_remove(scores, layers.amount)
        structural.drop_layers(adapter, model, remove)
        done["layers_removed"] = remove
        done["layer_scores"] = scores
        if scores is not None:
            done["layer_importance"] = config.layer_importance
    heads, ffn = config.method(HEADS), config.method(FFN)
    if not (heads or ffn):
        return done
    blocks = list(adapter.blocks(model))
    head_points, ffn_points = _score_points(adapter, blocks)
    if config.use_gradients:
        progress.status(f"scoring heads and FFN neurons by gradients on {sum(len(b['input_ids']) for b in calib)} rows")
        totals = importance.gradient_scores(model, head_points + ffn_points, calib, loss)
        head_scores, ffn_scores = totals[: len(blocks)], totals[len(blocks) :]
    else:
        head_scores = [importance.head_magnitude(*adapter.head_weights(b), adapter.heads(b)[0]) for b in blocks]
        ffn_scores = [importance.neuron_magnitude(*adapter.ffn_weights(b)) for b in blocks]
    if heads and hasattr(adapter, "prune_heads"):  # the family's own cut (grouped-query attention)
        done["heads_kept"] = adapter.prune_heads(model, head_scores, heads.amount, config.head_unit, heads.spec)
    elif heads:
        remove = importance.select_heads(importance.normalize_per_layer(head_scores), heads.amount)
        done["heads_removed"] = {str(k): v for k, v in structural.prune_heads(adapter, model, remove).items()}
    if ffn:
        keep = importance.ffn_keep_width(ffn_points[0][1], ffn.amount, config.ffn_multiple_of)
        structural.prune_ffn(adapter, model, importance.select_neurons(ffn_scores, keep))
    return done


def _sparsify(model: Any, source: Artifact, config: PruneConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    method = config.sparsity
    weights = sparsity.target_weights(model, source.family.layers(model))
    if method.name == SEMI_2_4:
        masks = sparsity.semi_structured_masks(weights)
    else:
        masks = sparsity.magnitude_masks({n: w for n, (w, _) in weights.items()}, method.amount,
                                         per_layer=method.name == MAGNITUDE_LAYER)
    plain = {n: w for n, (w, _) in weights.items()}
    sparsity.apply_masks(plain, masks)
    pattern = method.name if method.name == SEMI_2_4 else f"{method.name} {method.amount:g}"
    return sparsity.summary(plain, masks, model_params=structural.num_params(model), pattern=pattern), masks


def _shape_report(adapter: Any, model: Any) -> dict[str, Any]:
    if adapter is None:
        return {}
    shape = {"layers": len(adapter.blocks(model)), "heads_per_layer": structural.heads_per_layer(adapter, model),
             "ffn_per_layer": structural.ffn_per_layer(adapter, model)}
    if hasattr(adapter, "kv_count"):
        shape["kv_heads_per_layer"] = [adapter.kv_count(block) for block in adapter.blocks(model)]
    return shape


def _save(model: Any, source: Artifact, directory: Path) -> None:
    from transformers import AutoTokenizer

    model.save_pretrained(directory, safe_serialization=True)
    # A fresh copy of the source's tokenizer: the loaded one had a pad token added for batching.
    AutoTokenizer.from_pretrained(source.path, local_files_only=True).save_pretrained(directory)


def prune(src: str | Path, dst: str | Path, config: PruneConfig, *, force: bool = False,
          allow_pickle: bool = False) -> dict[str, Any]:
    """Prune ``src`` into ``dst``; returns the stage report."""
    import torch

    source = open_artifact(src)
    if source.format != PYTORCH:
        raise BadInputError(f"{source.path}: is a {source.format} artifact; prune needs a PyTorch checkpoint")
    if any(s.stage == "quantize" for s in source.stages):
        raise BadInputError(f"{source.path}: is a quantized artifact; prune the float model, then quantize")
    require_device(config.device)
    _check_output_path(Path(dst), [source.path], force)  # now, not after the pruning work
    adapter = _check_plan(config, source)
    task, device = tasks.get(source.task), config.device
    tokenizer = load_tokenizer(source.path)
    max_length = source.family.clamp_length(source.config, config.max_length)
    calib, eval_batches, teacher = _inputs(config, source, task, tokenizer, max_length)
    kept, vocab_report = _vocab_plan(config, source, task, tokenizer)
    builtin = calibration.builtin_batches(task, tokenizer, max_length)
    timer = StageTimer()
    source_hash = source.content_hash()
    torch.manual_seed(config.seed)

    model = load_model(source, allow_pickle=allow_pickle).to(device)
    metric_name = task.metric
    metrics: dict[str, float] = {}

    def measure(label: str, current: Any, batches: list | None = None) -> None:
        batches = batches or eval_batches
        if batches and metric_name:
            runner = TorchRunner(current, device=device, task=task)
            result = task.evaluate(runner, batches, desc=f"evaluating ({label})")
            metrics[f"{metric_name}_{label}"] = result.metrics[metric_name]

    params_before = structural.num_params(model)
    shape_before = _shape_report(adapter, model)
    measure("before", model)
    removed = _prune_structure(model, adapter, config, task, calib, builtin, device) if adapter else {}
    if config.sparsity and config.sparsity.name == SEMI_2_4:
        # Exact check on the pruned shapes, still before any output exists.
        weights = sparsity.target_weights(model, source.family.layers(model))
        sparsity.check_2_4({n: (tuple(w.shape), axis) for n, (w, axis) in weights.items()})
    sparse_report, masks = None, None
    if config.sparsity and teacher is None:
        sparse_report, masks = _sparsify(model, source, config)

    recovery = None
    with staged_output(dst, sources=[source.path], force=force) as out:
        if teacher is not None:
            measure("pruned", model)
            _save(model, source, out / PRUNED_DIR)
            progress.status(f"recovering: {config.recover_steps} distillation steps from {teacher.path}")
            recovery = recover(teacher, out / PRUNED_DIR, out / RECOVERED_DIR, config, max_length)
            if isinstance(recovery.get("student"), dict):
                recovery["student"]["path"] = None  # a work directory inside this output, removed below
            model = load_model(open_artifact(out / RECOVERED_DIR)).to(device)
            measure("after_recovery", model)
            if config.sparsity:
                sparse_report, masks = _sparsify(model, source, config)
        if kept is not None:  # last: recovery distils with the teacher's own vocabulary
            vocab.trim_model(model, source.family, kept)
        model, dtype = _storage(model, config, source)
        _save(model, source, out)
        final_batches = None
        if kept is not None:
            vocab.rewrite_tokenizer(out, kept)
            vocab.check_tokenizer(out, tokenizer, vocab_report.pop("check_texts"), kept)
            if eval_batches:  # the final metric on text tokenised by the trimmed tokenizer, as a user would
                final_batches = _eval_batches(config, source, task, load_tokenizer(out), max_length)
        if masks is not None:
            sparsity.save_masks(out / sparsity.MASKS_FILE, masks)
        for name in (PRUNED_DIR, RECOVERED_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
        # The final numbers come from the saved files, loaded the way a user without this tool would.
        final = load_model(open_artifact(out)).to(device)
        measure("final", final, final_batches)
        report = _report(config, source, adapter, final, out, params_before=params_before, shape_before=shape_before,
                         removed=removed, sparse_report=sparse_report, metrics=metrics, recovery=recovery)
        report.update(dtype_before=dtypes.storage_dtype(source.path, source.config), dtype=dtype)
        if vocab_report is not None:
            report["vocab"] = vocab_report
        write_manifest(out, source=source, source_hash=source_hash, stage="prune", config=config.to_dict(),
                       report=report, timer=timer, fmt=PYTORCH, seed=config.seed)
    return report


def _inputs(config: PruneConfig, source: Artifact, task: Any, tokenizer: Any,
            max_length: int) -> tuple[list | None, list | None, Artifact | None]:
    """Calibration and evaluation batches and the recovery teacher, all judged before any work."""
    label2id = source.config.get("label2id") if task.uses_labels else None
    load = dict(label2id=label2id, max_length=max_length, batch_size=16, require_labels=True)
    # vocab alone reads --data only for its tokens (any text, labelled or not), never as calibration rows.
    scored = any(m.name != VOCAB for m in config.methods)
    calib = task.batches("--data", tokenizer, config.data, samples=config.calibration_samples,
                         **load) if config.data and scored else None
    if config.eval_data:
        eval_batches = task.batches("--eval-data", tokenizer, config.eval_data, samples=config.eval_samples, **load)
    else:
        eval_batches = calib
    teacher = None
    if config.recover_from:
        teacher = check_teacher(config, source, tokenizer)
        check_recover_data(config, source)
    return calib, eval_batches, teacher


def _eval_batches(config: PruneConfig, source: Artifact, task: Any, tokenizer: Any, max_length: int) -> list:
    label2id = source.config.get("label2id") if task.uses_labels else None
    spec, samples = (config.eval_data, config.eval_samples) if config.eval_data else (config.data, config.calibration_samples)
    return task.batches("--eval-data" if config.eval_data else "--data", tokenizer, spec, samples=samples,
                        label2id=label2id, max_length=max_length, batch_size=16, require_labels=True)


def _vocab_plan(config: PruneConfig, source: Artifact, task: Any,
                tokenizer: Any) -> tuple[vocab.KeptVocab | None, dict[str, Any] | None]:
    """The tokens --data uses (every row, through the task's text columns) plus the special tokens, and
    how many --eval-data rows hold a token outside them; judged before any work."""
    if not config.method(VOCAB):
        return None, None
    progress.status(f"reading the vocabulary of {config.data.path}")
    label2id = source.config.get("label2id") if task.uses_labels else None
    rows = vocab.data_rows(task, tokenizer, "--data", config.data, label2id)
    kept = vocab.keep(rows, tokenizer, source.config, size=config.method(VOCAB).size)
    report: dict[str, Any] = {"size_before": kept.size_before, "size": len(kept.ids), "special_kept": kept.special,
                              "characters_kept": kept.characters, "size_limit": config.method(VOCAB).size,
                              "data_tokens_limited": kept.limited,
                              "data_rows": kept.data_rows, "tokenizer": vocab.tokenizer_kind(source.path),
                              "check_texts": vocab.sample_texts(tokenizer, rows)}
    if config.eval_data:
        touched = vocab.dropped(vocab.data_rows(task, tokenizer, "--eval-data", config.eval_data, label2id), kept)
        report.update(eval_rows=touched["rows"], eval_rows_touched=touched["rows_touched"],
                      eval_tokens_dropped=touched["tokens_dropped"])
    return kept, report


def _storage(model: Any, config: PruneConfig, source: Artifact) -> tuple[Any, str]:
    """The model in the dtype it is written in, checked finite (never write a NaN model)."""
    finite.check_weights("prune", "pruned model", model)
    dtype = dtypes.resolve(config.dtype, source.path, source.config)
    if dtype != "float32":  # pruned (and recovered) in float32; only what is written takes the storage dtype
        model = dtypes.cast(model, dtype)
        finite.check_weights("prune", f"pruned model in {dtype}", model, "pass --dtype float32")
    return model, dtype


def _report(config: PruneConfig, source: Artifact, adapter: Any, model: Any, out: Path, *, params_before: int,
            shape_before: dict[str, Any], removed: dict[str, Any], sparse_report: dict[str, Any] | None,
            metrics: dict[str, float], recovery: dict[str, Any] | None) -> dict[str, Any]:
    params_after = structural.num_params(model)
    size_after = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    size_before = source.size_bytes()
    report: dict[str, Any] = {
        "methods": ",".join(m.spec for m in config.methods),
        "importance": "gradient" if config.use_gradients else "magnitude",
        "parameters_before": params_before,
        "parameters": params_after,
        "parameters_ratio": params_after / params_before,
        "size_bytes_before": size_before,
        "size_bytes": size_after,
        "size_ratio": size_after / size_before if size_before else None,
        "structure_before": shape_before,
        "structure": _shape_report(adapter, model),
        **removed,
        "pruned_heads": {str(k): sorted(v) for k, v in (model.config.pruned_heads or {}).items()},
        "sparsity": sparse_report,
        "metrics": metrics,
        "metrics_data": config.metric_data.path if config.metric_data else None,
    }
    if recovery is not None:
        report["recovery"] = {"teacher": str(Path(config.recover_from).resolve()), "steps": config.recover_steps,
                              "data": config.recover_data.path, "distill": recovery}
    return report
