"""The OpenVINO IR artifact: its files, the one place openvino and nncf are imported, and the
runtime settings every OpenVINO measurement uses.

openvino and nncf are an optional extra (``pip install "compress[openvino]"``). Every user of them
goes through ``require`` so a machine without the extra gets one exit-2 line naming it, never an
ImportError traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import BadInputError, RuntimeFailureError

IR_XML = "openvino_model.xml"  # optimum-intel's name, so OVModelFor* classes find it too
IR_BIN = "openvino_model.bin"
EXTRA = 'pip install "compress[openvino]"'

# Inputs the runners fill from a tokenizer's batch (or derive from it); an IR asking for anything
# else was not made for a text model this tool tokenises.
FEEDABLE = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "beam_idx")

# Runtime settings of every compiled model (export parity, quantization, evaluation, bench):
# one stream, the latency hint, f32 inference precision. OpenVINO's CPU plugin otherwise picks bf16
# on CPUs with AVX512-BF16/AMX, which moves logits by ~1e-2 and makes an FP32 parity check fail.
DEFAULT_PRECISION = "f32"


def require(what: str, module: str = "openvino") -> Any:
    """Import ``module`` (openvino or nncf); exit-2 error naming the extra when it is missing."""
    try:
        if module == "nncf":
            return _import_nncf()
        import openvino

        return openvino
    except ImportError as exc:
        raise BadInputError(f"{what}: needs the openvino extra ({module} is not installed); install it with "
                            f"{EXTRA}") from exc


def _import_nncf() -> Any:
    """nncf, logging to stderr (stdout is for --json) at the level the CLI chose before the import
    (nncf's import resets its logger to INFO on a stdout handler)."""
    import logging
    import sys

    logger = logging.getLogger("nncf")
    level = logger.level
    import nncf

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)
    if level:
        logger.setLevel(level)
    return nncf


def ir_file(directory: Path) -> Path | None:
    """The IR's .xml in ``directory`` (the tool's name first), or None."""
    preferred = directory / IR_XML
    if preferred.exists():
        return preferred
    found = sorted(p for p in directory.glob("*.xml") if p.with_suffix(".bin").exists())
    return found[0] if found else None


def read_ir(xml: Path, what: str = "") -> Any:
    """The ``ov.Model`` of an IR; a missing, truncated or corrupt .xml/.bin is an exit-2 error."""
    ov = require(what or str(xml))
    binary = xml.with_suffix(".bin")
    if not binary.exists():
        raise BadInputError(f"{xml}: OpenVINO IR without its weights file {binary.name}")
    try:
        return ov.Core().read_model(str(xml), str(binary))
    except RuntimeError as exc:
        raise BadInputError(f"{xml}: corrupt or truncated OpenVINO IR ({_first_line(exc)})") from exc


def check_inputs(model: Any, tokenizer_inputs: list[str], where: Path) -> None:
    """Exit-2 error when the IR's inputs are not what a batch of this tokenizer feeds."""
    names = [port.get_any_name() for port in model.inputs]
    unknown = [n for n in names if n not in FEEDABLE]
    if "input_ids" not in names or unknown:
        raise BadInputError(
            f"{where}: the IR's inputs ({', '.join(names)}) do not match the tokenizer's "
            f"({', '.join(tokenizer_inputs)})" + (f"; cannot feed {', '.join(unknown)}" if unknown else "")
        )


def check_artifact(artifact: Any, tokenizer: Any) -> Any:
    """Read an OpenVINO artifact's IR and check its inputs against ``tokenizer``; returns the model."""
    model = read_ir(artifact.ir_file)
    check_inputs(model, list(getattr(tokenizer, "model_input_names", ["input_ids"])), artifact.ir_file)
    return model


def check_benchable(artifact: Any, device: str, tokenizer: Any) -> None:
    """Exit-2 checks before bench times anything: the extra, the device, a readable IR fed by ``tokenizer``."""
    require(f"{artifact.path} (an OpenVINO artifact)")
    if device != "cpu":
        raise BadInputError(f"{artifact.path}: OpenVINO artifacts run on the OpenVINO CPU plugin here; bench them "
                            "with --device cpu")
    check_artifact(artifact, tokenizer)


def compile_config(threads: int | None, precision: str = DEFAULT_PRECISION) -> dict[str, Any]:
    """CPU plugin properties: latency hint, one stream, fixed threads and precision (reported by bench)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                              "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def compiled_properties(compiled: Any) -> dict[str, Any]:
    """What the plugin actually runs with (bench's honesty check reads these, not what was asked)."""
    props: dict[str, Any] = {}
    for key in ("EXECUTION_DEVICES", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS",
                "INFERENCE_PRECISION_HINT"):
        try:
            value = compiled.get_property(key)
        except RuntimeError:
            continue
        if hasattr(value, "get_type_name"):  # an element type: f32, bf16
            value = value.get_type_name()
        elif isinstance(value, (list, tuple)):
            value = [str(v) for v in value]
        elif not isinstance(value, int):
            value = getattr(value, "name", str(value))  # PerformanceMode.LATENCY -> LATENCY
        props[key.lower()] = value
    return props


def has_past(model: Any) -> bool:
    return any(port.get_any_name().startswith("past_key_values") for port in model.inputs)


def make_stateful(model: Any) -> int:
    """Turn a KV-cache graph (``past_key_values.*`` in, ``present.*`` out) into OpenVINO's stateful form:
    the cache lives in the infer request, and ``reset_state`` starts a new sequence. Returns the number
    of cache tensors made state. The initial (empty) state takes its batch from ``input_ids``, as
    optimum-intel's stateful export does; beam reordering is not added (this tool decodes greedily)."""
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    import numpy as np

    pairs = {port.get_any_name(): "present" + port.get_any_name()[len("past_key_values"):]
             for port in model.inputs if port.get_any_name().startswith("past_key_values")}
    apply_make_stateful_transformation(model, pairs)
    batch = ops.gather(ops.shape_of(model.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":
            dims = [dim.min_length for dim in list(op.get_output_partial_shape(0))]
            dims[0] = batch
            dims = [ops.constant(np.array([d], dtype=np.int64)) if isinstance(d, int) else d for d in dims]
            zero = ops.constant(0.0, dtype=op.get_output_element_type(0))
            op.set_arguments([ops.broadcast(zero, ops.concat(dims, axis=0))])
    model.validate_nodes_and_infer_types()
    return len(pairs)


def is_stateful(model: Any) -> bool:
    return any(op.get_type_name() == "ReadValue" for op in model.get_ops())


def op_counts(model: Any) -> dict[str, int]:
    from collections import Counter

    ops = Counter(op.get_type_name() for op in model.get_ops())
    ops.pop("Constant", None)
    ops.pop("Parameter", None)
    ops.pop("Result", None)
    return dict(sorted(ops.items(), key=lambda kv: -kv[1]))


def convert(source: Path | Any, what: str, **kwargs: Any) -> Any:
    """``openvino.convert_model`` with its failures as exit-3 errors naming ``what``."""
    ov = require(what)
    try:
        return ov.convert_model(source, **kwargs)
    except Exception as exc:  # the frontends raise several types (OpConversionFailure, RuntimeError, ...)
        raise RuntimeFailureError(f"{what}: OpenVINO conversion failed ({_first_line(exc)})") from exc


def save(model: Any, out_dir: Path, *, fp16: bool = False) -> Path:
    ov = require(str(out_dir))
    xml = out_dir / IR_XML
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
    return xml


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
