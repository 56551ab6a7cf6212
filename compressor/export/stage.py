"""The export stage: PyTorch artifact in, ONNX artifact out, refused when parity fails."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from compressor import progress
from compressor.artifact import ONNX, PYTORCH, StageTimer, open_artifact, staged_output, write_manifest
from compressor.artifact import _check_output_path
from compressor.devices import require_device
from compressor.errors import BadInputError, RuntimeFailureError
from compressor import tasks
from compressor.export.config import ExportConfig
from compressor.inference import OnnxRunner, TorchRunner
from compressor.loading import load_model, load_tokenizer
from compressor.scratch import scratch_space


def require_parity(parity: dict[str, Any], tolerance: float, output_name: str, dst: Path,
                   report: dict[str, Any]) -> None:
    """Exit 3 (nothing written) when the converted model's outputs, or its decode steps, differ from
    the source's by more than ``tolerance``."""
    worst = max(parity["max_abs_diff"], parity.get("decode", {}).get("max_abs_diff", 0.0))
    if worst > tolerance:
        raise RuntimeFailureError(
            f"parity check failed: max |{output_name} diff| {worst:.3g} exceeds --atol "
            f"{tolerance:g} on {parity['inputs']}; nothing written to {dst}",
            report=report,
        )


def _optimize(onnx_dir: Path, config: ExportConfig, fuse_as: str | None = None) -> None:
    """Rewrite ``onnx_dir/model.onnx`` in place with onnxruntime's transformer fusions."""
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    # optimum's levels: O1 basic, O2 + extended and transformer fusions, O3 + tanh GELU.
    # fp16 conversion is done by the optimizer, so O0 + --fp16 still runs its basic level.
    level = "O1" if config.optimize == "O0" else config.optimize
    optimization = AutoOptimizationConfig.with_optimization_level(
        level, for_gpu=config.device == "cuda", fp16=config.fp16
    )
    optimizer = ORTOptimizer.from_pretrained(onnx_dir, file_names=["model.onnx"])
    if fuse_as and fuse_as != optimizer.model_type:  # the family's stand-in for a type optimum lacks
        optimizer.model_type = optimizer.config.model_type = fuse_as
    heads, hidden = optimizer.normalized_config.num_attention_heads, optimizer.normalized_config.hidden_size
    if heads and hidden % heads:
        # A head-pruned Llama keeps head_dim explicit (6 heads of 8 in a 64-wide model): onnxruntime's
        # fusions assert hidden % heads == 0, and with 0/0 they read the sizes from the graph instead.
        from types import SimpleNamespace

        optimizer.normalized_config = SimpleNamespace(num_attention_heads=0, hidden_size=0)
    optimized_dir = onnx_dir / "_optimized"
    optimizer.optimize(optimization, save_dir=optimized_dir, file_suffix=None)
    for item in optimized_dir.iterdir():
        if item.suffix in {".onnx", ".onnx_data"} or item.name.endswith(".onnx_data"):
            os.replace(item, onnx_dir / item.name)
    shutil.rmtree(optimized_dir)


def graph_summary(onnx_file: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    return {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "nodes": sum(ops.values()),
        "op_types": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
    }


def _export_graph(model: Any, out: Path, export_task: str, tokenizer: Any, config: ExportConfig, source: Any,
                  task: Any) -> int:
    """optimum's export into ``out``, then onnxruntime's fusions (on CPU with the fused
    SkipLayerNormalizations split again); returns how many were split. A model whose KV cache differs
    per layer (head-pruned) exports with a per-layer cache, as its family says how
    (``Family.past_export``)."""
    from optimum.exporters.onnx import onnx_export_from_model

    custom, context = source.family.past_export(model, export_task, [tokenizer])
    try:
        with context:
            onnx_export_from_model(task.export_model(model), out, task=export_task, opset=config.opset,
                                   device=config.device,
                                   preprocessors=[tokenizer], do_validation=False, custom_onnx_configs=custom)
    except (ValueError, RuntimeError, OSError) as exc:
        raise RuntimeFailureError(f"{source.path}: ONNX export failed ({str(exc).splitlines()[0]})") from exc
    split = 0
    if config.optimize != "O0" or config.fp16:  # only onnxruntime's optimizer makes fused nodes to split
        progress.status(f"optimising the graph ({config.optimize}{', fp16' if config.fp16 else ''})")
        _optimize(out, config, source.family.ort_optimizer_type(source.config.get("model_type", "")))
        if config.split_skip_layernorm:
            split = _split_skip_layernorm(out / "model.onnx")
    task.finish_export(model, out)
    return split


def _split_skip_layernorm(onnx_file: Path) -> int:
    """Sum + LayerNormalization in place of each fused SkipLayerNormalization (faster on CPU); the
    weights stay where they are (external data included), only the nodes change."""
    import onnx

    from compressor.export.layernorm_split import split_skip_layernorm

    model = onnx.load(str(onnx_file), load_external_data=False)
    split = split_skip_layernorm(model)
    if split:
        progress.status(f"split {split} SkipLayerNormalization nodes into Sum + LayerNormalization (CPU)")
        onnx.save(model, str(onnx_file))
    return split


def export_onnx(src: str | Path, dst: str | Path, config: ExportConfig, *, force: bool = False, allow_pickle: bool = False) -> dict[str, Any]:
    """Export ``src`` to ONNX in ``dst``; returns the stage report. Exit-3 error on failed parity."""
    source = open_artifact(src)
    if source.format != PYTORCH:
        raise BadInputError(f"{source.path}: is already a {source.format} artifact; export-onnx needs a PyTorch checkpoint")
    if source.stages and any(s.stage == "quantize" for s in source.stages):
        raise BadInputError(f"{source.path}: is a quantized PyTorch artifact; export the float model, then quantize the ONNX")
    require_device(config.device)
    task = tasks.get(source.task)
    export_task = task.export_task_for(source.config)
    _check_output_path(Path(dst), [source.path], force)  # now, not after loading and exporting the model
    tokenizer = load_tokenizer(source.path)
    label2id = source.config.get("label2id")
    # Read parity data before any work so a bad file fails fast with nothing written.
    max_length = source.family.clamp_length(source.config, config.max_length)
    batches = task.parity_batches(tokenizer, config.parity_data, label2id=label2id, samples=config.parity_samples,
                                  max_length=max_length)
    timer = StageTimer()
    source_hash = source.content_hash()

    model = load_model(source, allow_pickle=allow_pickle)
    heads = source.family.kv_heads_per_layer(model) if task.generates else None
    # The scratch space takes onnxruntime's optimizer's temporary copy of the model (a killed run's is removed).
    with staged_output(dst, sources=[source.path], force=force) as out, scratch_space(out):
        progress.status(f"exporting {source.path} ({source.family.name}, {source.task}) to ONNX")
        split = _export_graph(model, out, export_task, tokenizer, config, source, task)
        onnx_file = out / "model.onnx"

        progress.status(f"checking parity on {sum(len(b['input_ids']) for b in batches)} inputs")
        reference = TorchRunner(model, device=config.device, task=task)
        candidate = OnnxRunner(onnx_file, device=config.device)
        parity = task.compare(reference, candidate, batches)
        if export_task.endswith("-with-past"):  # the cache path too: greedy steps fed back
            prompt = batches[0]["input_ids"][:2, : max(1, min(16, max_length - 8))]  # room for 8 steps
            parity["decode"] = task.compare_decoding(reference, candidate, prompt, steps=8)
        parity["atol"] = config.tolerance
        parity["inputs"] = config.parity_data.path if config.parity_data else "built-in sentences"
        report: dict[str, Any] = {
            "onnx_file": "model.onnx",
            "export_task": export_task,
            "with_past": export_task.endswith("-with-past"),
            "past_heads_per_layer": heads,
            "graph": graph_summary(onnx_file),
            "skip_layernorm": {"mode": config.skip_layernorm, "split": split},
            "size_bytes": sum(p.stat().st_size for p in out.glob("*.onnx*")),
            "parity": parity,
        }
        require_parity(parity, config.tolerance, task.output_name, dst, report)
        write_manifest(
            out,
            source=source,
            source_hash=source_hash,
            stage="export-onnx",
            config=config.to_dict(),
            report=report,
            timer=timer,
            fmt=ONNX,
        )
    return report
