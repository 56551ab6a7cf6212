"""Parameter count and sparsity of a model, read from its weights rather than from its config.

Sparsity is the fraction of exact zeros in the weight matrices (2-D or more, embeddings excluded,
because pruning never touches them and their size would drown the figure). A quantized weight is
zero where its integer equals its zero point: that is the value the dequantized matrix holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _result(parameters: int, elements: int, zeros: int, matrices: int) -> dict[str, Any]:
    return {
        "parameters": int(parameters),
        "weight_matrices": int(matrices),
        "weight_elements": int(elements),
        "zero_weights": int(zeros),
        "sparsity": float(zeros / elements) if elements else 0.0,
    }


# ---------------------------------------------------------------------------------------- PyTorch


def _float_weight(module: Any) -> tuple[Any, bool] | None:
    """(float weight, is_a_parameter) of a module, dequantizing packed/quantized weights."""
    import torch

    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        if weight.is_quantized:
            return weight.dequantize(), False
        return weight, isinstance(weight, torch.nn.Parameter)
    if callable(weight):  # torch.ao dynamic/static quantized Linear: weight() unpacks the int8 matrix
        try:
            value = weight()
        except (RuntimeError, TypeError):
            return None
        if isinstance(value, torch.Tensor):
            return (value.dequantize() if value.is_quantized else value), False
    if hasattr(module, "recover") and hasattr(module, "in_features"):  # neural-compressor weight-only
        try:
            return module.recover(), False
        except (RuntimeError, TypeError, AttributeError):
            return None
    return None


def _bias_elements(module: Any, parameter_ids: set[int]) -> int:
    """Bias elements a packed module hides from ``parameters()`` (torch.ao returns a Parameter that
    is not registered; neural-compressor keeps a buffer)."""
    import torch

    bias = getattr(module, "bias", None)
    if callable(bias) and not isinstance(bias, torch.Tensor):
        try:
            bias = bias()
        except (RuntimeError, TypeError):
            return 0
    return int(bias.numel()) if isinstance(bias, torch.Tensor) and id(bias) not in parameter_ids else 0


def is_parameter_seen(module: Any, seen: set[int]) -> bool:
    """A float weight already counted (tied or shared between modules)."""
    return id(getattr(module, "weight", None)) in seen and getattr(module, "weight", None) is not None


def torch_weight_stats(model: Any) -> dict[str, Any]:
    import torch

    parameters = sum(p.numel() for p in model.parameters())
    parameter_ids = {id(p) for p in model.parameters()}
    seen: set[int] = set()
    elements = zeros = matrices = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            if isinstance(module.weight, torch.Tensor):
                seen.add(id(module.weight))  # a tied LM head is the embedding: excluded with it
            continue
        # Not only leaves: a quantized Linear keeps its packed weight in a child without a ``weight``.
        if is_parameter_seen(module, seen):
            continue
        found = _float_weight(module)
        if found is None:
            continue
        weight, is_parameter = found
        if not is_parameter:  # packed weights are buffers or C++ objects, invisible to parameters()
            parameters += weight.numel() + _bias_elements(module, parameter_ids)
        if weight.dim() < 2:
            continue
        if is_parameter:
            seen.add(id(module.weight))
        matrices += 1
        elements += weight.numel()
        zeros += int((weight == 0).sum())
    return _result(parameters, elements, zeros, matrices)


# ------------------------------------------------------------------------------------------- ONNX

# For quantizing ops: input index of each weight -> input index of its zero point, and the inputs that
# are quantization parameters (scales, zero points), which are not model parameters.
_WEIGHT_ZERO_POINT = {
    "DequantizeLinear": {0: 2},
    "MatMulInteger": {1: 3},
    "DynamicQuantizeMatMul": {1: 3},
    "QLinearMatMul": {3: 5},
    "MatMulNBits": {1: 3},
}
_QUANT_PARAM_INPUTS = {
    "DequantizeLinear": {1, 2},
    "QuantizeLinear": {1, 2},
    "MatMulInteger": {2, 3},
    "DynamicQuantizeMatMul": {2, 3},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "MatMulNBits": {2, 3, 4},
    "QAttention": {3, 4, 6, 7},
    "QGemm": {1, 2, 4, 5, 7, 8},
}


def _unpack_nibbles(packed: np.ndarray, rows: int) -> np.ndarray:
    """4-bit values, low nibble first (MatMulNBits' packing), one row per output channel."""
    flat = packed.reshape(rows, -1)
    return np.stack([flat & 0x0F, flat >> 4], axis=-1).reshape(rows, -1)


def _matmul_nbits_zeros(node: Any, packed: np.ndarray, zero_point: np.ndarray | None) -> tuple[int, int] | None:
    """(elements, zeros) of a MatMulNBits weight ([N, blocks, blob] uint8); None for layouts not read."""
    attrs = {a.name: a.i for a in node.attribute}
    n, k, bits, block = attrs.get("N"), attrs.get("K"), attrs.get("bits", 4), attrs.get("block_size")
    if not (n and k and block) or bits != 4:
        return None
    blocks = -(-k // block)
    values = _unpack_nibbles(packed, n)[:, : blocks * block].reshape(n, blocks, block)
    if zero_point is None:
        zp = np.full((n, blocks, 1), 1 << (bits - 1), dtype=np.uint8)  # the op's default: 8 for 4 bits
    elif zero_point.dtype == np.uint8:
        zp = _unpack_nibbles(zero_point, n)[:, :blocks, None]
    else:
        return None  # float zero points: rare; not counted rather than guessed
    zeros = int((values == zp).reshape(n, -1)[:, :k].sum())
    return n * k, zeros


def onnx_weight_stats(onnx_file: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file), load_external_data=True)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in inits:
                consumers.setdefault(name, []).append((node, index))

    quant_params = {
        node.input[i]
        for node in graph.node
        for i in _QUANT_PARAM_INPUTS.get(node.op_type, ())
        if i < len(node.input)
    }
    parameters = elements = zeros = matrices = 0
    stored: set[str] = set()
    # Embedding tables first, so a tied LM head stored again is the duplicate (excluded, as in PyTorch).
    gathered = {n for n, uses in consumers.items() if any(node.op_type == "Gather" for node, _ in uses)}
    for name, init in sorted(inits.items(), key=lambda item: item[0] not in gathered):
        if name in quant_params or init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            continue
        dims = list(init.dims)
        if not dims:
            continue  # scalar constants of the graph, not parameters
        uses = consumers.get(name, [])
        nbits = next(((node, i) for node, i in uses if node.op_type == "MatMulNBits" and i == 1), None)
        array = numpy_helper.to_array(init)
        if nbits is not None:
            node = nbits[0]
            zp_name = node.input[3] if len(node.input) > 3 and node.input[3] else None
            zp = numpy_helper.to_array(inits[zp_name]) if zp_name in inits else None
            counted = _matmul_nbits_zeros(node, array, zp)
            attrs = {a.name: a.i for a in node.attribute}
            parameters += attrs.get("N", 0) * attrs.get("K", 0)
            if counted:
                matrices += 1
                elements += counted[0]
                zeros += counted[1]
            continue
        if array.ndim == 2 and _is_duplicate(array, stored):
            continue  # a tied weight the exporter stored twice (GPT-2's LM head = its embeddings, transposed)
        parameters += array.size
        if array.ndim < 2 or any(node.op_type == "Gather" for node, _ in uses):
            continue  # biases, norms; embeddings (Gather tables) are excluded like in PyTorch
        zero_value: Any = 0
        for node, index in uses:
            zp_index = _WEIGHT_ZERO_POINT.get(node.op_type, {}).get(index)
            if zp_index is not None and zp_index < len(node.input) and node.input[zp_index] in inits:
                zp_array = numpy_helper.to_array(inits[node.input[zp_index]])
                zero_value = zp_array.reshape(-1)[0] if zp_array.size == 1 else _broadcast_zp(zp_array, array)
                break
        matrices += 1
        elements += array.size
        zeros += int(np.sum(array == zero_value))
    return _result(parameters, elements, zeros, matrices)


def _is_duplicate(array: np.ndarray, stored: set[str]) -> bool:
    """Whether this matrix, or its transpose, was already seen; records it otherwise."""
    import hashlib

    def digest(a: np.ndarray) -> str:
        return hashlib.sha1(str(a.shape).encode() + np.ascontiguousarray(a).tobytes()).hexdigest()

    mine, transposed = digest(array), digest(array.T)
    if mine in stored or transposed in stored:
        return True
    stored.add(mine)
    return False


def _broadcast_zp(zp: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-channel zero points: along the axis whose length matches (output channels)."""
    for axis, length in enumerate(weight.shape):
        if length == zp.size:
            shape = [1] * weight.ndim
            shape[axis] = length
            return zp.reshape(shape)
    return zp.reshape(-1)[:1]


# --------------------------------------------------------------------------------------- OpenVINO


def openvino_weight_stats(xml: Path) -> dict[str, Any]:
    """Parameters of an OpenVINO IR: elements of its weight constants (float or low-precision, rank >= 1,
    not integer shape/index constants, not quantization scales/zero points, which are rank-2 with a
    dimension of 1 per row: counted only when larger than one element per output row); sparsity over
    the float weight matrices (quantized ones are stored in integer form and counted as non-zero)."""
    from compressor.formats import openvino as ovf

    model = ovf.read_ir(xml)
    parameters = elements = zeros = matrices = 0
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        kind = op.get_output_element_type(0).get_type_name()
        shape = list(op.get_output_shape(0))
        if kind in ("i64", "i32", "boolean") or not shape or int(np.prod(shape)) <= max(shape[0], 1):
            continue  # shapes, indices, scalars, per-channel scales and zero points
        size = int(np.prod(shape))
        parameters += size
        if len(shape) == 2 and kind in ("f32", "f16", "bf16"):
            data = op.get_data()
            matrices += 1
            elements += size
            zeros += int(np.sum(data == 0))
    return _result(parameters, elements, zeros, matrices)
