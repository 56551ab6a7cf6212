"""PyTorch methods: torch.ao INT8 dynamic and SmoothQuant W8A8 here, neural-compressor weight-only in
``torch_inc``. Every engine quantizes the whole model once (``calibrate``); candidates that keep some
layers in float, or quantize only one, are made by swapping modules between the float and the
quantized model, so measuring per-layer sensitivity costs one evaluation per layer, not one
quantization per layer. Each quantized module is self-contained (scales live inside it), which is
what makes a swap exact.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor import families, finite, tasks
from compressor.errors import RuntimeFailureError
from compressor.inference import TorchRunner
from compressor.formats import torch_quantized as torch_format
from compressor.quantize.config import QuantizeConfig
from compressor.quantize.engine import Engine
from compressor.quantize.sensitivity import Unit
from compressor.quantize.smoothquant import SmoothQuantLinear, activation_absmax, smooth_linear
from compressor.quantize.torch_modules import (
    Candidate,
    count_module_types,
    forward_batches,
    get_module,
    linear_names,
    set_module,
    tied_output_linear,
)


class TorchEngine(Engine):
    @classmethod
    def from_artifact(cls, source: Any, method: str, config: QuantizeConfig, workdir: Path,
                      allow_pickle: bool) -> TorchEngine:
        from compressor.loading import load_model

        torch.manual_seed(config.seed)
        return cls(load_model(source, allow_pickle=allow_pickle), method, config, source.task)

    def __init__(self, model: nn.Module, method: str, config: QuantizeConfig, task: str) -> None:
        self.method = method
        self.config = config
        self.task = tasks.get(task)
        self.task_kwargs = dict(self.task.model_kwargs)
        # Quantizers handle nn.Linear: the family converts its own projection layers (GPT-2's Conv1D).
        self.converted_conv1d = families.by_model_type(model.config.model_type).to_linear(model) > 0
        self.float_model = model.eval()
        self.quantized: nn.Module | None = None
        self.quantized_names: list[str] = []
        # Layers left in float by design (not by the budget), with the reason.
        self.default_float: list[dict[str, str]] = []
        tied = tied_output_linear(model)
        if tied:
            self.default_float.append({
                "layer": tied,
                "reason": "tied to the input embedding: a quantized copy would be stored beside the float table",
            })

    def candidates_for_quantization(self) -> list[str]:
        skip = {entry["layer"] for entry in self.default_float}
        return [name for name in linear_names(self.float_model) if name not in skip]

    def units(self) -> list[Unit]:
        return [Unit(name, "Linear") for name in self.quantized_names]

    def settings(self) -> dict[str, Any]:
        return {"conv1d_to_linear": self.converted_conv1d}

    def _run(self, batches: list[dict[str, Any]], desc: str = "calibrating"):
        return lambda model: forward_batches(model, batches, self.task_kwargs, desc)

    # Candidates are module swaps; ``discard`` undoes one.
    def build(self, float_units: list[str]) -> Candidate:
        assert self.quantized is not None
        return Candidate(self.quantized, {name: get_module(self.float_model, name) for name in float_units})

    def only(self, unit: str) -> Candidate:
        assert self.quantized is not None
        return Candidate(self.float_model, {unit: get_module(self.quantized, unit)})

    def discard(self, candidate: Candidate) -> None:
        candidate.restore()

    def runner(self, candidate: Candidate | None) -> TorchRunner:
        # torch.ao's quantized kernels and neural-compressor's weight-only layers run on the CPU.
        return TorchRunner(self.float_model if candidate is None else candidate.model, device="cpu", task=self.task)

    def op_counts(self, candidate: Candidate, float_units: list[str]) -> dict[str, Any]:
        quantized = set(self.quantized_names) - set(float_units)
        return {"by_op_type": count_module_types(candidate.model, quantized)}

    def save(self, candidate: Candidate, out_dir: Path) -> tuple[list[str], dict[str, Any]]:
        recipe = torch_format.save(candidate.model, out_dir, converted_conv1d=self.converted_conv1d)
        return [recipe["weights"]], recipe


def check_quantized(model: nn.Module, names: list[str], method: str) -> None:
    """Raise when a quantized layer holds a NaN/inf scale or float tensor (torch.ao keeps its scales
    inside the packed weight; neural-compressor's and SmoothQuant's are buffers)."""
    for name in names:
        module = get_module(model, name)
        tensors = list(module.state_dict().items())
        for sub, child in module.named_modules():
            if hasattr(child, "_packed_params") and callable(getattr(child, "weight", None)):
                weight = child.weight()
                per_channel = weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
                scales = weight.q_per_channel_scales() if per_channel else torch.tensor([weight.q_scale()])
                tensors.append((f"{sub}.weight_scales" if sub else "weight_scales", scales))
        found = finite.first_nonfinite(tensors)
        if found is not None:
            raise RuntimeFailureError(f"quantize {method}: layer {name} has {found[1]} quantization values "
                                      f"({found[0]}); nothing written")


def _dynamic_qconfig(per_channel: bool) -> Any:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig


def quantize_linear_dynamic(linear: nn.Linear, per_channel: bool) -> nn.Module:
    """torch.ao's dynamic INT8 Linear for one float Linear (weights int8, activations int8 at run time).

    Not torchao's ``Int8DynamicActivationInt8WeightConfig``, its named successor: measured on the SST-2
    MiniLM teacher (torch 2.13, torchao 0.18, 2 threads, eager, same process, a busy machine) torchao ran
    a sentence in 358 ms against torch.ao's 18 ms and FP32's 78 ms, about 20x slower than torch.ao; its
    CPU path needs torch.compile to be fast, which a saved artifact cannot assume. torch.ao's fbgemm kernels stay until torchao's eager CPU path is
    competitive; the artifact format uses only public torch API.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice in favour of torchao (see above)
        return quantize_dynamic(nn.Sequential(copy.deepcopy(linear)), {nn.Linear: _dynamic_qconfig(per_channel)},
                                dtype=torch.qint8)[0]


class DynamicEngine(TorchEngine):
    """``int8-dynamic``: torch.ao dynamic INT8 on every nn.Linear; ``smoothquant``: the same after
    SmoothQuant smoothing measured on calibration data."""

    def settings(self) -> dict[str, Any]:
        base = {"engine": "torch.ao.quantization.quantize_dynamic", **super().settings(),
                "weight_type": "int8", "activation_type": "int8 (dynamic, per tensor)",
                "per_channel": self.config.per_channel,
                "kernel": torch.backends.quantized.engine}
        if self.method == "smoothquant":
            base.update(alpha=self.config.alpha, smoothing="per-channel input multiply (exact; not folded)",
                        note="neural-compressor's SmoothQuantConfig needs intel-extension-for-pytorch, "
                             "unavailable for this torch; same transform implemented in compressor.quantize.smoothquant")
        return base

    def calibrate(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        names = self.candidates_for_quantization()
        info: dict[str, Any] = {}
        stats: dict[str, torch.Tensor] = {}
        if self.method == "smoothquant":
            stats = activation_absmax(self.float_model, names, self._run(batches))
            info = {"batches": len(batches), "rows": int(sum(len(b["input_ids"]) for b in batches))}
        quantized = copy.deepcopy(self.float_model)
        for name in names:
            linear = get_module(self.float_model, name)
            if name in stats:
                smoothed = smooth_linear(linear, stats[name], self.config.alpha)
                module: nn.Module = SmoothQuantLinear(
                    quantize_linear_dynamic(smoothed.linear, self.config.per_channel), smoothed.input_scale
                )
            else:
                module = quantize_linear_dynamic(linear, self.config.per_channel)
            set_module(quantized, name, module)
        check_quantized(quantized, names, self.method)
        self.quantized = quantized.eval()
        self.quantized_names = names
        return info
