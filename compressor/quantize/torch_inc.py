"""Weight-only INT4/INT8 through neural-compressor 3.x's torch API (RTN, GPTQ, AWQ).

``prepare`` -> calibration forward passes (GPTQ, AWQ) -> ``convert``, as the 3.x API intends. Layers
become ``INCWeightOnlyLinear`` (packed integer weights, fp16 scales); AWQ's activation-aware input
scales stay inside each layer (``MulLinear``, folding off), so every quantized layer is
self-contained and the artifact reloads without re-running AWQ.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from compressor.quantize.torch_engine import TorchEngine, check_quantized
from compressor.formats.torch_quantized import prepare_inc_import


def _inc_config(algorithm: str, bits: int, group_size: int, symmetric: bool) -> Any:
    prepare_inc_import()
    from neural_compressor.torch.quantization import AWQConfig, GPTQConfig, RTNConfig

    common = {"bits": bits, "group_size": group_size, "use_sym": symmetric}
    if algorithm == "rtn":
        # use_layer_wise re-reads weights from the checkpoint on disk, which would ignore the
        # in-memory model (Conv1D already converted, or pruned by an earlier stage).
        return RTNConfig(**common, use_layer_wise=False)
    if algorithm == "gptq":
        return GPTQConfig(**common, use_layer_wise=False)
    return AWQConfig(**common, folding=False)


class WeightOnlyEngine(TorchEngine):
    @property
    def bits(self) -> int:
        return 4 if self.method == "int4" else 8

    def settings(self) -> dict[str, Any]:
        return {
            "engine": "neural_compressor.torch.quantization (prepare/convert)",
            **super().settings(),
            "algorithm": self.config.resolved_algorithm,
            "bits": self.bits,
            "group_size": self.config.block_size,
            "symmetric": self.config.symmetric,
            "weight_format": "INCWeightOnlyLinear (packed int32, fp16 scales; GPTQ/optimum layout)",
            "compute": "weights dequantized to fp32 on first use (CPU)",
        }

    def calibrate(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        prepare_inc_import()
        from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear, MulLinear
        from neural_compressor.torch.quantization import convert, prepare

        algorithm = self.config.resolved_algorithm or "rtn"
        config = _inc_config(algorithm, self.bits, self.config.block_size, self.config.symmetric)
        for entry in self.default_float:
            config.set_local(entry["layer"], type(config)(dtype="fp32"))
        model = copy.deepcopy(self.float_model)
        kwargs: dict[str, Any] = {}
        if algorithm == "awq":
            kwargs["example_inputs"] = torch.from_numpy(batches[0]["input_ids"][:1])
        prepared = prepare(model, config, **kwargs)
        info: dict[str, Any] = {}
        if algorithm in ("gptq", "awq"):
            self._run(batches)(prepared)
            info = {"batches": len(batches), "rows": int(sum(len(b["input_ids"]) for b in batches))}
        quantized = convert(prepared).eval()
        names = []
        for name, module in quantized.named_modules():
            parent = quantized.get_submodule(name.rsplit(".", 1)[0]) if "." in name else quantized
            if isinstance(module, MulLinear) or (isinstance(module, INCWeightOnlyLinear)
                                                 and not isinstance(parent, MulLinear)):
                names.append(name)
        check_quantized(quantized, names, self.method)
        self.quantized = quantized
        self.quantized_names = names
        skipped = [n for n in self.candidates_for_quantization() if n not in set(names)]
        for name in skipped:
            self.default_float.append({"layer": name, "reason": f"left in float by neural-compressor {algorithm} "
                                                               "(it skips the output head and, for GPTQ/AWQ, layers "
                                                               "outside the transformer blocks)"})
        return info

    def float_state_changed(self) -> list[str]:
        """Float tensors the algorithm changed outside the quantized layers (should be none)."""
        assert self.quantized is not None
        reference = self.float_model.state_dict()
        changed = []
        for key, value in self.quantized.state_dict().items():
            if (key in reference and isinstance(value, torch.Tensor) and value.dtype.is_floating_point
                    and value.shape == reference[key].shape and not torch.equal(value, reference[key])):
                changed.append(key)
        return changed

