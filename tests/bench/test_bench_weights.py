"""Parameter counts and sparsity read from real weights: float, torch int8, ONNX int8 and int4 layouts."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.bench.weights import onnx_weight_stats, torch_weight_stats


def _torch_model():
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].weight[:3] = 0.0  # 12 of 24 zero
        model[3].weight[0, :3] = 0.0  # 3 of 12 zero
        model[0].weight[:] = 0.0  # embeddings are excluded from sparsity
    return model


def test_torch_float_counts_and_sparsity():
    stats = torch_weight_stats(_torch_model())
    assert stats["parameters"] == 40 + 24 + 6 + 12 + 2
    assert stats["weight_matrices"] == 2 and stats["weight_elements"] == 36
    assert stats["zero_weights"] == 15
    assert stats["sparsity"] == pytest.approx(15 / 36)


def test_torch_dynamic_int8_counts_packed_weights():
    import torch

    quantized = torch.ao.quantization.quantize_dynamic(_torch_model(), {torch.nn.Linear}, dtype=torch.qint8)
    assert sum(p.numel() for p in quantized.parameters()) == 40  # the int8 weights are invisible to parameters()
    stats = torch_weight_stats(quantized)
    assert stats["parameters"] == 40 + 24 + 6 + 12 + 2
    assert stats["weight_elements"] == 36
    assert stats["zero_weights"] >= 15  # symmetric int8 keeps exact zeros (and may round tiny weights to 0)


def _save(tmp_path, nodes, initializers, inputs, outputs):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_onnx_float_and_int8_with_zero_point(tmp_path):
    from onnx import helper, numpy_helper

    w = np.ones((4, 3), np.float32)
    w[0] = 0.0  # 3 zeros
    q = np.full((3, 2), 5, np.int8)
    q[:, 0] = 2  # equal to the zero point: 3 zeros after dequantization
    table = np.zeros((10, 4), np.float32)  # an embedding table: excluded from sparsity
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.zeros(3, np.float32), "bias"),
        numpy_helper.from_array(q, "Wq"),
        numpy_helper.from_array(np.array(0.1, np.float32), "Wq_scale"),
        numpy_helper.from_array(np.array(2, np.int8), "Wq_zero_point"),
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["h2"]),
        helper.make_node("DequantizeLinear", ["Wq", "Wq_scale", "Wq_zero_point"], ["Wd"]),
        helper.make_node("MatMul", ["h2", "Wd"], ["Y"]),
        helper.make_node("Gather", ["table", "ids"], ["E"]),
    ]
    path = _save(tmp_path, nodes, inits, [("X", [1, 4]), ("ids", [1])], ["Y", "E"])
    stats = onnx_weight_stats(path)
    assert stats["parameters"] == 12 + 3 + 6 + 40  # scales, zero points and int64 shapes are not parameters
    assert stats["weight_matrices"] == 2 and stats["weight_elements"] == 18
    assert stats["zero_weights"] == 6


def test_onnx_matmulnbits_int4(tmp_path):
    from onnx import helper, numpy_helper

    n, k, block = 2, 32, 16
    values = np.full((n, k), 3, np.uint8)
    values[0, :5] = 8  # default zero point for 4 bits: these dequantize to exactly 0
    values[1, 20] = 8
    packed = (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8).reshape(n, k // block, block // 2)
    inits = [
        numpy_helper.from_array(packed, "B"),
        numpy_helper.from_array(np.ones((n * k // block,), np.float32), "scales"),
    ]
    node = helper.make_node("MatMulNBits", ["X", "B", "scales"], ["Y"], domain="com.microsoft", K=k, N=n, bits=4,
                            block_size=block)
    path = _save(tmp_path, [node], inits, [("X", [1, k])], ["Y"])
    stats = onnx_weight_stats(path)
    assert stats["parameters"] == n * k
    assert stats["weight_elements"] == n * k and stats["zero_weights"] == 6


def test_onnx_tied_weight_stored_twice_counts_once(tmp_path):
    from onnx import helper, numpy_helper

    table = np.arange(40, dtype=np.float32).reshape(10, 4)  # embeddings, also the LM head (transposed)
    inits = [numpy_helper.from_array(table.T.copy(), "head"), numpy_helper.from_array(table, "wte")]
    nodes = [helper.make_node("Gather", ["wte", "ids"], ["E"]), helper.make_node("MatMul", ["E", "head"], ["Y"])]
    path = _save(tmp_path, nodes, inits, [("ids", [1])], ["Y"])
    stats = onnx_weight_stats(path)
    assert stats["parameters"] == 40
    assert stats["weight_matrices"] == 0  # the head is the embedding table: excluded like in PyTorch
