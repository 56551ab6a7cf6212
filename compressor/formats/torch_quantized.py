"""Saving and reloading quantized PyTorch models: safetensors plus a recipe in the manifest.

torch.ao's quantized Linear keeps its weight in a packed, pickled object, and neural-compressor's
weight-only layers are its own module classes; neither is a transformers checkpoint format. So the
artifact holds every tensor in ``quantized.safetensors`` (INT8 weights as their integer values,
scales and zero points; INT4 weights packed as neural-compressor packs them) and the manifest records
which module is which kind. Reloading builds the float architecture from ``config.json``, repeats
the Conv1D -> Linear conversion, puts empty quantized modules where the recipe says and loads the
tensors into them: bit-identical to what was saved.

The file is deliberately not named ``model.safetensors``: ``AutoModel.from_pretrained`` would then
"load" it with random float weights in place of the quantized ones and only warn. Instead it fails
("no file named ... model.safetensors ..."), ``README.txt`` in the artifact says why and how to load
it, and ``compressor.loading.load_model`` is the way in (``LOADER``, also recorded in compress.json).

No transformers-native format can hold these layers for a CPU with this project's pins
(transformers < 4.58, no extra packages): GPTQ needs gptqmodel or auto-gptq, AWQ autoawq,
compressed-tensors its own package, and torchao (installed with neural-compressor) is saved to
safetensors by transformers 4.57 only for its float8 configs; the rest is pickled (refused here).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor import families, finite
from compressor.errors import BadInputError
from compressor.modules import set_module, swapped
from compressor.scratch import system_temp_dir

FORMAT = "compress-torch-quantized"
VERSION = 1
WEIGHTS = "quantized.safetensors"
NOTE = "README.txt"
LOADER = "compressor.loading.load_model"

DYNAMIC = "int8-dynamic-linear"
SMOOTH = "smoothquant-wrapper"
WOQ = "inc-weight-only-linear"
MUL = "inc-mul-linear"

_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)



class SmoothQuantLinear(nn.Module):
    """``linear(x * input_scale)`` where ``input_scale = 1/s`` and ``linear`` holds ``W diag(s)``."""

    def __init__(self, linear: nn.Module, input_scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("input_scale", input_scale.detach().clone().float())
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.input_scale.to(x.dtype))


def _dynamic_linear_class() -> type:
    from torch.ao.nn.quantized.dynamic import Linear

    return Linear


def prepare_inc_import() -> None:
    """Point neural-compressor's workspace at the temp directory before its torch package is first
    imported: at import it creates ``./nc_workspace/<timestamp>/`` in the current directory, which
    would litter wherever the user runs ``compress``."""
    if "neural_compressor.torch" in sys.modules:
        return
    from neural_compressor.common import set_workspace

    # The system temp directory even inside a stage's scratch space, which is gone after the stage.
    set_workspace(str(Path(system_temp_dir()) / "compress-neural-compressor"))


def _inc_classes() -> tuple[type, type]:
    prepare_inc_import()
    from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear, MulLinear

    return INCWeightOnlyLinear, MulLinear


def _woq_init(module: nn.Module) -> dict[str, Any]:
    """Constructor arguments that rebuild an empty INCWeightOnlyLinear of the same layout."""
    buffers = {name for name, value in module.named_buffers(recurse=False) if value is not None}
    return {
        "in_features": module.in_features,
        "out_features": module.out_features,
        "dtype": module.dtype,
        "bits": module.bits,
        "group_size": module.group_size,
        "zp": "qzeros" in buffers,
        "bias": "bias" in buffers,
        "g_idx": "g_idx" in buffers,
        "use_optimum_format": module.use_optimum_format,
        "compression_dim": getattr(module, "compression_dim", 1),
    }


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, _dynamic_linear_class()):
        return DYNAMIC
    if isinstance(module, SmoothQuantLinear):
        return SMOOTH
    if "neural_compressor.torch" not in sys.modules:  # then no module can be one of its layers
        return None
    try:
        woq, mul = _inc_classes()
    except ImportError:
        return None
    if isinstance(module, woq):
        return WOQ
    if isinstance(module, mul):
        return MUL
    return None


def _dynamic_tensors(name: str, module: nn.Module) -> dict[str, torch.Tensor]:
    weight, bias = module.weight(), module.bias()
    tensors = {f"{name}.weight_int8": weight.int_repr().contiguous()}
    if weight.qscheme() in _PER_CHANNEL:
        tensors[f"{name}.weight_scales"] = weight.q_per_channel_scales().contiguous()
        tensors[f"{name}.weight_zero_points"] = weight.q_per_channel_zero_points().contiguous()
    else:
        tensors[f"{name}.weight_scales"] = torch.tensor([weight.q_scale()], dtype=torch.float64)
        tensors[f"{name}.weight_zero_points"] = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
    if bias is not None:
        tensors[f"{name}.bias"] = bias.detach().contiguous()
    return tensors


def save(model: nn.Module, out_dir: Path, *, converted_conv1d: bool) -> dict[str, Any]:
    """Write ``quantized.safetensors``; return the recipe ``load`` needs (stored in the manifest)."""
    from safetensors.torch import save_file

    modules: dict[str, dict[str, Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    dynamic_prefixes: list[str] = []
    for name, module in model.named_modules():
        kind = _module_kind(module)
        if kind is None:
            continue
        entry: dict[str, Any] = {"kind": kind}
        if kind == DYNAMIC:
            weight = module.weight()
            entry.update(in_features=module.in_features, out_features=module.out_features,
                         bias=module.bias() is not None,
                         per_channel=weight.qscheme() in _PER_CHANNEL,
                         axis=int(weight.q_per_channel_axis()) if weight.qscheme() in _PER_CHANNEL else None)
            tensors.update(_dynamic_tensors(name, module))
            dynamic_prefixes.append(name + ".")
        elif kind == WOQ:
            entry["init"] = _woq_init(module)
        modules[name] = entry

    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for key, value in model.state_dict(keep_vars=False).items():
        if any(key.startswith(prefix) for prefix in dynamic_prefixes):
            continue  # torch.ao's packed params: saved above as plain tensors
        if not isinstance(value, torch.Tensor):
            continue
        identity = (value.data_ptr(), value.storage_offset(), tuple(value.shape))
        if value.numel() and identity in seen:
            aliases[key] = seen[identity]  # tied weights (GPT-2 lm_head = wte): stored once
            continue
        seen[identity] = key
        tensors[key] = value.detach().contiguous()
    finite.check_weights("quantize", "quantized model", tensors)  # never write NaN/inf weights or scales
    save_file(tensors, str(out_dir / WEIGHTS), metadata={"format": FORMAT, "version": str(VERSION)})
    return {
        "format": FORMAT,
        "version": VERSION,
        "loader": LOADER,
        "weights": WEIGHTS,
        "conv1d_to_linear": converted_conv1d,
        "modules": modules,
        "aliases": aliases,
    }


def write_note(out_dir: Path, recipe: dict[str, Any], method: str) -> None:
    """``README.txt``: what the artifact holds and how to load it (plain transformers cannot)."""
    kinds = ", ".join(sorted({entry["kind"] for entry in recipe["modules"].values()}))
    module, function = LOADER.rsplit(".", 1)
    (out_dir / NOTE).write_text(f"""\
Quantized PyTorch model written by `compress quantize --method {method}` ({FORMAT} v{VERSION}).

This is NOT a plain transformers checkpoint. The quantized layers ({kinds}) are torch.ao /
neural-compressor modules, which no transformers quantization format loads on a CPU without extra
packages. {WEIGHTS} holds every tensor (integer weights, scales, zero points, float layers);
compress.json (stages[-1].report.reload) records which layer is which kind.

AutoModel*.from_pretrained(this directory) fails on purpose ("no file named ... model.safetensors"),
instead of building the model with random weights. Load it with the compress package:

    from compressor.artifact import open_artifact
    from {module} import {function}

    model = {function}(open_artifact("path/to/this/directory"))  # eval mode, on the CPU

config.json and the tokenizer files are the source model's; AutoTokenizer loads the tokenizer as usual.
""")


def _empty_module(entry: dict[str, Any], current: nn.Module) -> nn.Module:
    kind = entry["kind"]
    if kind == DYNAMIC:
        return _dynamic_linear_class()(entry["in_features"], entry["out_features"], bias_=entry["bias"],
                                       dtype=torch.qint8)
    if kind == SMOOTH:
        return SmoothQuantLinear(current, torch.ones(current.in_features))
    woq, mul = _inc_classes()
    if kind == WOQ:
        return woq(**entry["init"], device="cpu")
    if kind == MUL:
        return mul(current, torch.ones(current.in_features))
    raise BadInputError(f"unknown quantized module kind {kind!r} in the manifest")


def _requantize_per_channel(int8: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor,
                            axis: int) -> torch.Tensor:
    """The saved int8 values as a per-channel quantized tensor, through public torch API: dequantized in
    float64 and quantized again with the same scales, which returns exactly the saved integers
    (each value is an integer multiple of its scale)."""
    shape = [1] * int8.dim()
    shape[axis] = -1
    values = (int8.double() - zero_points.double().reshape(shape)) * scales.double().reshape(shape)
    return torch.quantize_per_channel(values.float(), scales.double(), zero_points.long(), axis, torch.qint8)


def load(model: nn.Module, directory: Path, recipe: dict[str, Any]) -> nn.Module:
    """Turn a float ``model`` built from the artifact's config into the saved quantized model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if recipe.get("format") != FORMAT or recipe.get("version", 0) > VERSION:
        raise BadInputError(f"{directory}: quantized weights in format {recipe.get('format')!r} "
                            f"v{recipe.get('version')}; this tool reads {FORMAT} v{VERSION}")
    path = directory / recipe.get("weights", WEIGHTS)
    if not path.exists():
        raise BadInputError(f"{path}: missing; the manifest says the quantized weights are here")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise BadInputError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc
    if recipe.get("conv1d_to_linear"):
        families.by_model_type(model.config.model_type).to_linear(model)
    modules: dict[str, dict[str, Any]] = recipe["modules"]
    # Parents (wrappers) before children: a wrapper is built around the float Linear, then its
    # ``.linear`` child is replaced by the quantized module.
    for name in sorted(modules, key=lambda n: n.count(".")):
        set_module(model, name, _empty_module(modules[name], model.get_submodule(name)))
    for name, entry in modules.items():
        if entry["kind"] != DYNAMIC:
            continue
        module = model.get_submodule(name)
        int8 = tensors.pop(f"{name}.weight_int8")
        scales = tensors.pop(f"{name}.weight_scales")
        zero_points = tensors.pop(f"{name}.weight_zero_points")
        if entry["per_channel"]:
            weight = _requantize_per_channel(int8, scales, zero_points, entry["axis"])
        else:
            scale, zero = float(scales[0]), int(zero_points[0])
            weight = torch.quantize_per_tensor(((int8.double() - zero) * scale).float(), scale, zero, torch.qint8)
        module.set_weight_bias(weight, tensors.pop(f"{name}.bias", None))
    for alias, target in recipe.get("aliases", {}).items():
        tensors.setdefault(alias, tensors[target])
    # assign=True keeps the saved dtypes (neural-compressor turns a layer's fp16 bias into fp32 on
    # its first forward; copying into the fresh fp16 buffer would round it and change the outputs).
    # torch.ao modules are complete now; empty placeholders keep load_state_dict away from their
    # packed-parameter loader while every other tensor is loaded.
    dynamic = {name: nn.Module() for name, entry in modules.items() if entry["kind"] == DYNAMIC}
    with swapped(model, dynamic):
        missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if missing or unexpected:
        raise BadInputError(
            f"{path}: does not match the recipe (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if recipe.get("aliases") and hasattr(model, "tie_weights"):
        model.tie_weights()
    model.eval()
    return model


def load_artifact(artifact: Any, recipe: dict[str, Any], *, task: str, trust_remote_code: bool = False) -> nn.Module:
    """The quantized model of a PyTorch artifact written by the quantize stage."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(artifact.path, local_files_only=True, trust_remote_code=trust_remote_code)
        model = artifact.family.auto_class(task).from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{artifact.path}: could not build the model ({str(exc).splitlines()[0]})") from exc
    return load(model.eval(), artifact.path, recipe)
