"""The OpenVINO export stage: a PyTorch checkpoint or an ONNX artifact in, an OpenVINO IR out, refused
when parity fails.

A PyTorch source goes through the ONNX exporter first (optimum, no onnxruntime fusions, into scratch
space), then ``openvino.convert_model`` on that graph: one export path per task, so the task's own
graph additions (a sentence-embedding model's pooling, a head-pruned LM's per-layer KV cache) reach
OpenVINO exactly as they reach onnxruntime. An ONNX artifact of this tool converts directly
(OpenVINO's ONNX frontend reads onnxruntime's fused contrib ops). Causal LMs with a KV cache become
stateful (the cache lives in the infer request), as OpenVINO's own LM pipelines expect.

Parity is checked on real inputs against the source's own runtime (PyTorch, or onnxruntime for an
ONNX source) with the OpenVINO CPU plugin at f32: whole sequences, and for LMs 8 greedy steps
through the cache. Beyond ``--atol`` nothing is written and the exit code is 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor import progress, tasks
from compressor.artifact import (
    ONNX,
    OPENVINO,
    PYTORCH,
    StageTimer,
    _check_output_path,
    copy_support_files,
    open_artifact,
    staged_output,
    write_manifest,
)
from compressor.errors import BadInputError
from compressor.export.stage import require_parity
from compressor.export_openvino.config import OpenVinoExportConfig
from compressor.formats import openvino as ovf
from compressor.inference import OnnxRunner, OpenVinoRunner, TorchRunner
from compressor.loading import load_model, load_tokenizer
from compressor.scratch import scratch_space


def _onnx_of_pytorch(source: Any, task: Any, tokenizer: Any, config: OpenVinoExportConfig, work: Path,
                     allow_pickle: bool) -> tuple[Path, Any]:
    """The source exported to plain ONNX (no onnxruntime fusions) in ``work``; returns (graph, model)."""
    from compressor.export.config import ExportConfig
    from compressor.export.stage import _export_graph

    model = load_model(source, allow_pickle=allow_pickle)
    export_task = task.export_task_for(source.config)
    progress.status(f"exporting {source.path} ({source.family.name}, {source.task}) through ONNX")
    _export_graph(model, work, export_task, tokenizer, ExportConfig(opset=config.opset, optimize="O0"), source, task)
    return work / "model.onnx", model


def export_openvino(src: str | Path, dst: str | Path, config: OpenVinoExportConfig, *, force: bool = False,
                    allow_pickle: bool = False) -> dict[str, Any]:
    """Convert ``src`` to an OpenVINO IR in ``dst``; returns the stage report. Exit-3 error on failed parity."""
    source = open_artifact(src)
    ovf.require("export-openvino")
    if source.format not in (PYTORCH, ONNX):
        raise BadInputError(f"{source.path}: is already an {source.format} artifact; export-openvino needs a "
                            "PyTorch checkpoint or an ONNX artifact")
    if source.format == PYTORCH and any(s.stage == "quantize" for s in source.stages):
        raise BadInputError(f"{source.path}: is a quantized PyTorch artifact; export the float model, then "
                            "quantize the OpenVINO IR (--method int8-nncf)")
    task = tasks.get(source.task)
    _check_output_path(Path(dst), [source.path], force)  # now, not after loading and converting the model
    tokenizer = load_tokenizer(source.path)
    max_length = source.family.clamp_length(source.config, config.max_length)
    # Read parity data before any work so a bad file fails fast with nothing written.
    batches = task.parity_batches(tokenizer, config.parity_data, label2id=source.config.get("label2id"),
                                  samples=config.parity_samples, max_length=max_length)
    timer = StageTimer()
    source_hash = source.content_hash()

    with staged_output(dst, sources=[source.path], force=force) as out, scratch_space(out) as tmp:
        work = Path(tmp) / "onnx"
        work.mkdir()
        if source.format == PYTORCH:
            onnx_file, model = _onnx_of_pytorch(source, task, tokenizer, config, work, allow_pickle)
            reference: Any = TorchRunner(model, task=task)
            support = work
        else:
            onnx_file, reference, support = source.onnx_file, OnnxRunner(source.onnx_file), source.path
        progress.status(f"converting {onnx_file.name} with openvino.convert_model")
        ov_model = ovf.convert(onnx_file, f"{source.path}")
        stateful = ovf.has_past(ov_model)
        if stateful:
            ovf.make_stateful(ov_model)
        ovf.check_inputs(ov_model, list(tokenizer.model_input_names), source.path)
        xml = ovf.save(ov_model, out, fp16=config.fp16)
        copy_support_files(support, out)
        del ov_model

        progress.status(f"checking parity on {sum(len(b['input_ids']) for b in batches)} inputs")
        candidate = OpenVinoRunner(xml)
        parity = task.compare(reference, candidate, batches)
        if stateful:  # the cache path too: greedy steps through the state
            prompt = batches[0]["input_ids"][:2, : max(1, min(16, max_length - 8))]  # room for 8 steps
            parity["decode"] = task.compare_decoding(reference, candidate, prompt, steps=8)
        parity["atol"] = config.tolerance
        parity["inputs"] = config.parity_data.path if config.parity_data else "built-in sentences"
        parity["runtime"] = candidate.properties
        report: dict[str, Any] = {
            "ir_file": xml.name,
            "source_format": source.format,
            "stateful": stateful,
            "fp16_weights": config.fp16,
            "inputs": list(candidate.inputs),
            "ops": ovf.op_counts(ovf.read_ir(xml)),
            "size_bytes": sum(p.stat().st_size for p in (xml, xml.with_suffix(".bin"))),
            "parity": parity,
            "versions": {"openvino": ovf.require("export-openvino").get_version()},
        }
        del candidate
        require_parity(parity, config.tolerance, task.output_name, dst, report)
        write_manifest(out, source=source, source_hash=source_hash, stage="export-openvino",
                       config=config.to_dict(), report=report, timer=timer, fmt=OPENVINO)
    return report
