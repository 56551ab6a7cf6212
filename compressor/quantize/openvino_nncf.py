"""OpenVINO IR methods through NNCF: ``int8-nncf`` (nncf.quantize, transformer preset, calibrated),
``int8-weight`` and ``int4-weight`` (nncf.compress_weights; for LMs).

A layer (``Unit``) is a MatMul of the IR, named as the IR names it; keeping one in float is an NNCF
ignored scope. With an accuracy budget, ``int8-nncf`` lets NNCF's own accuracy control decide
(``nncf.quantize_with_accuracy_control``, which ranks quantizers by how far they move each
evaluation item's outputs and returns them to float until the drop is within ``max_drop``); the
layers it kept in float are read back from the graph (MatMuls quantized in the plain INT8 model but
not in the controlled one) and reported. The weight-only methods fall back through the stage's own
measured sensitivity, like every other engine.

NNCF works on ``ov.Model`` objects in memory; candidates are models, saved with ``openvino.save_model``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from compressor.errors import RuntimeFailureError
from compressor.formats import openvino as ovf
from compressor.quantize.engine import Engine
from compressor.quantize.sensitivity import Unit
from compressor.tasks.base import model_inputs

# Ops a quantized weight or activation passes through on its way into a MatMul.
_PASS_THROUGH = {"Convert", "Reshape", "Transpose", "Multiply", "Subtract", "Unsqueeze", "Squeeze"}
_LOW_PRECISION = {"u8", "i8", "u4", "i4", "nf4", "f4e2m1", "u2", "i2"}


def _quantized_input(node: Any, depth: int = 6) -> bool:
    """Whether a FakeQuantize or a low-precision weight constant feeds ``node`` (through pass-through ops)."""
    for value in node.input_values():
        source = value.get_node()
        kind = source.get_type_name()
        if kind == "FakeQuantize":
            return True
        if kind == "Constant" and source.get_output_element_type(0).get_type_name() in _LOW_PRECISION:
            return True
        if kind in _PASS_THROUGH and depth > 0 and _quantized_input(source, depth - 1):
            return True
    return False


def quantized_matmuls(model: Any) -> set[str]:
    return {op.get_friendly_name() for op in model.get_ops()
            if op.get_type_name() == "MatMul" and _quantized_input(op)}


class _Recorder:
    """A runner that keeps every output it returns (NNCF's accuracy control ranks by them)."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.outputs = runner, []

    def logits(self, batch: dict[str, Any]) -> Any:
        out = self.runner.logits(batch)
        self.outputs.append([out])
        return out


class NncfEngine(Engine):
    @classmethod
    def check_source(cls, source: Any, tokenizer: Any, method: str) -> None:
        ovf.require(f"--method {method}", "nncf")
        ovf.check_artifact(source, tokenizer)

    @classmethod
    def from_artifact(cls, source: Any, method: str, config: Any, workdir: Path, allow_pickle: bool) -> NncfEngine:
        return cls(ovf.read_ir(source.ir_file), method, config, source.ir_file)

    def __init__(self, model: Any, method: str, config: Any, where: Path) -> None:
        self.nncf = ovf.require(f"--method {method}", "nncf")
        self.model, self.method, self.config, self.where = model, method, config, where
        self.calibration: Any = None
        self.full: Any = None
        self._units = [Unit(op.get_friendly_name(), "MatMul") for op in model.get_ops()
                       if op.get_type_name() == "MatMul"]
        self.default_float = []

    # -- datasets -----------------------------------------------------------------------------------
    def _feeds(self) -> Any:
        from compressor.inference import OpenVinoRunner

        probe = OpenVinoRunner(self.model)
        return lambda batch: probe.feeds(model_inputs(batch))

    def calibrate(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        if self.method == "int8-nncf":
            self.calibration = self.nncf.Dataset(batches, self._feeds())
            self._calib_rows = len(batches)
        self.full = self._build([])
        return {"samples": len(batches), "subset_size": len(batches)} if self.method == "int8-nncf" else {}

    # -- building -----------------------------------------------------------------------------------
    def _ignored(self, names: list[str]) -> Any:
        return self.nncf.IgnoredScope(names=list(names), validate=False) if names else None

    def _build(self, float_units: list[str]) -> Any:
        nncf = self.nncf
        try:
            if self.method == "int8-nncf":
                return nncf.quantize(self.model, self.calibration, model_type=nncf.ModelType.TRANSFORMER,
                                     subset_size=max(1, self._calib_rows), ignored_scope=self._ignored(float_units))
            mode = {("int8-weight", True): "INT8_SYM", ("int8-weight", False): "INT8_ASYM",
                    ("int4-weight", True): "INT4_SYM", ("int4-weight", False): "INT4_ASYM"}[
                (self.method, self.config.symmetric)]
            kwargs: dict[str, Any] = {"mode": getattr(nncf.CompressWeightsMode, mode)}
            if self.method == "int4-weight":
                kwargs["group_size"] = self.config.block_size
            return nncf.compress_weights(self.model.clone(), ignored_scope=self._ignored(float_units), **kwargs)
        except (RuntimeError, ValueError, TypeError, nncf.ValidationError) as exc:
            raise RuntimeFailureError(f"{self.where}: nncf {self.method} failed ({ovf._first_line(exc)})") from exc

    def build(self, float_units: list[str]) -> Any:
        if not float_units and self.full is not None:
            return self.full
        return self._build(sorted(float_units))

    def only(self, unit: str) -> Any:
        return self._build([u.name for u in self._units if u.name != unit])

    def discard(self, candidate: Any) -> None:
        """Candidates are models in memory; dropping the reference frees them."""

    def units(self) -> list[Unit]:
        return list(self._units)

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"nncf": self.nncf.__version__}
        if self.method == "int8-nncf":
            settings.update(model_type="TRANSFORMER", preset="performance (symmetric)")
        else:
            settings.update(symmetric=self.config.symmetric,
                            group_size=self.config.block_size if self.method == "int4-weight" else -1)
        return settings

    def runner(self, candidate: Any | None) -> Any:
        from compressor.inference import OpenVinoRunner

        return OpenVinoRunner(self.model if candidate is None else candidate)

    # -- the accuracy budget ------------------------------------------------------------------------
    def fit_budget(self, budget: Any, task: Any, batches: list[dict[str, Any]]) -> tuple[Any, list[str], dict] | None:
        """int8-nncf: ``nncf.quantize_with_accuracy_control`` meets the budget. Its metric must grow with
        quality, so a perplexity budget of P% is a bound of log(1 + P/100) on the mean NLL."""
        if self.method != "int8-nncf":
            return None
        from compressor.inference import OpenVinoRunner

        nncf = self.nncf
        points = task.higher_is_better

        def metric(compiled: Any, items: Any) -> tuple[float, list[list[Any]]]:
            items = list(items)
            recorder = _Recorder(OpenVinoRunner(compiled))
            if len(items) != len(batches):  # NNCF probing one item for its mode: outputs only
                for item in items:
                    recorder.logits(model_inputs(item))
                return 0.0, recorder.outputs
            # the stage's own batches, not NNCF's list of them: sentence embeddings pair rows across batches
            value = task.evaluate(recorder, batches, desc="nncf accuracy control").metrics[task.metric]
            return (value * 100.0 if points else -math.log(value)), recorder.outputs

        validation = nncf.Dataset(batches, self._feeds())
        max_drop = budget.limit if points else math.log1p(budget.limit / 100.0)
        try:
            controlled = nncf.quantize_with_accuracy_control(
                self.model, self.calibration, validation, validation_fn=metric, max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE, subset_size=max(1, self._calib_rows),
                model_type=nncf.ModelType.TRANSFORMER)
        except (RuntimeError, ValueError, TypeError, nncf.ValidationError) as exc:
            raise RuntimeFailureError(f"{self.where}: nncf accuracy control failed ({ovf._first_line(exc)})") from exc
        kept = sorted(quantized_matmuls(self.full) - quantized_matmuls(controlled))
        decisions = {
            "accuracy_control": {"engine": "nncf.quantize_with_accuracy_control", "max_drop": max_drop,
                                 "drop_type": "ABSOLUTE",
                                 "metric": f"{task.metric} x100" if points else "-log(perplexity)"},
            "kept_float": [{"layer": name, "reason": "returned to float by NNCF accuracy control"} for name in kept],
        }
        return controlled, kept, decisions

    # -- reporting and saving -----------------------------------------------------------------------
    def op_counts(self, candidate: Any, float_units: list[str]) -> dict[str, Any]:
        quantized = quantized_matmuls(candidate)
        ops = ovf.op_counts(candidate)
        return {"by_op_type": {"MatMul": {"quantized": len(quantized), "float": len(self._units) - len(quantized)}},
                "fake_quantize": ops.get("FakeQuantize", 0), "float_layers": sorted(float_units)}

    def save(self, candidate: Any, out_dir: Path) -> tuple[list[str], dict[str, Any] | None]:
        xml = ovf.save(candidate, out_dir)
        return [xml.name, xml.with_suffix(".bin").name], None


def already_quantized(xml: Path) -> set[str]:
    """What in an IR is already quantized (FakeQuantize ops, low-precision weights); empty when float."""
    model = ovf.read_ir(xml)
    found = {op.get_type_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"}
    if any(op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in _LOW_PRECISION
           for op in model.get_ops()):
        found.add("low-precision weights")
    return found
