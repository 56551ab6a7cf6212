"""export-onnx on CPU splits onnxruntime's fused SkipLayerNormalization into Sum + LayerNormalization:
same numbers, and no plain onnxruntime session fuses it back (the reason the split uses Sum)."""

import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from compressor.export.layernorm_split import split_skip_layernorm

H = 16


def _graph(op: str, *, bias: bool, beta: bool, read_sum: bool, read_mean: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor("gamma", TensorProto.FLOAT, [H], rng.standard_normal(H).astype(np.float32))]
    if op == "SkipLayerNormalization":
        names = ["x", "skip", "gamma", "beta" if beta else "", "bias" if bias else ""]
        if beta:
            inits.append(helper.make_tensor("beta", TensorProto.FLOAT, [H], rng.standard_normal(H).astype(np.float32)))
    else:
        names = ["x", "skip", "gamma", "bias" if bias else ""]
    if bias:
        inits.append(helper.make_tensor("bias", TensorProto.FLOAT, [H], rng.standard_normal(H).astype(np.float32)))
    while names and not names[-1]:
        names.pop()
    outputs = ["y", "mean" if read_mean else "", "", "sum" if read_sum else ""]
    while outputs and not outputs[-1]:
        outputs.pop()
    nodes = [helper.make_node(op, names, outputs, domain="com.microsoft", epsilon=1e-5, name="fused")]
    shape = ["batch", "sequence", H]
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    if read_sum:  # a pre-LN model's residual stream reads the sum
        nodes.append(helper.make_node("Relu", ["sum"], ["residual"]))
        graph_outputs.append(helper.make_tensor_value_info("residual", TensorProto.FLOAT, shape))
    if read_mean:
        graph_outputs.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "skip")],
                              graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, feeds, optimized=None):
    options = ort.SessionOptions()
    if optimized:
        options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("op,bias,beta,read_sum", [
    ("SkipLayerNormalization", True, True, False),
    ("SkipLayerNormalization", False, True, True),
    ("SkipLayerNormalization", True, False, True),
    ("SkipSimplifiedLayerNormalization", True, False, False),
    ("SkipSimplifiedLayerNormalization", False, False, True),
])
def test_split_computes_the_fused_op_and_is_not_fused_back(op, bias, beta, read_sum, tmp_path):
    fused = _graph(op, bias=bias, beta=beta, read_sum=read_sum)
    rng = np.random.default_rng(1)
    feeds = {n: rng.standard_normal((2, 7, H)).astype(np.float32) for n in ("x", "skip")}
    expected = _run(fused, feeds)

    split = onnx.ModelProto()
    split.CopyFrom(fused)
    assert split_skip_layernorm(split) == 1
    norm = "LayerNormalization" if op == "SkipLayerNormalization" else "SimplifiedLayerNormalization"
    if norm == "LayerNormalization":  # SimplifiedLayerNormalization is onnxruntime's, unknown to onnx's checker
        onnx.checker.check_model(split)
    assert Counter(n.op_type for n in split.graph.node) == Counter({"Sum": 1, norm: 1, **({"Relu": 1} if read_sum else {})})
    summed = next(n for n in split.graph.node if n.op_type == "Sum")
    assert len(summed.input) == (3 if bias else 2)
    got = _run(split, feeds, optimized=tmp_path / "session.onnx")
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    # What onnxruntime runs after its own load-time fusions: still Sum + the norm.
    loaded = Counter(n.op_type for n in onnx.load(str(tmp_path / "session.onnx")).graph.node)
    assert op not in loaded and loaded["Sum"] == 1


def test_a_node_whose_statistics_are_read_stays_fused():
    model = _graph("SkipLayerNormalization", bias=True, beta=True, read_sum=False, read_mean=True)
    assert split_skip_layernorm(model) == 0
    assert [n.op_type for n in model.graph.node] == ["SkipLayerNormalization"]


def _exported_ops(out) -> tuple[dict, Counter]:
    report = json.loads((out / "compress.json").read_text())["stages"][-1]["report"]
    return report, Counter(n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node)


def test_cpu_export_splits_and_quantized_sessions_keep_it_split(run_cli, tiny_bert_dir, sst_file, tmp_path):
    out = tmp_path / "onnx"
    result = run_cli("export-onnx", tiny_bert_dir, "--parity-data", sst_file, "--parity-samples", "16", "-o", out)
    assert result.exit_code == 0, result.output
    report, ops = _exported_ops(out)
    layers = json.loads((tiny_bert_dir / "config.json").read_text())["num_hidden_layers"]
    assert report["skip_layernorm"] == {"mode": "auto", "split": 2 * layers}
    assert "SkipLayerNormalization" not in ops and ops["Sum"] == 2 * layers
    assert ops["Attention"] == layers  # the other fusions stay
    assert report["parity"]["max_abs_diff"] <= report["parity"]["atol"]

    quantized = tmp_path / "int8"
    result = run_cli("quantize", out, "-o", quantized, "--method", "int8-dynamic")
    assert result.exit_code == 0, result.output
    options = ort.SessionOptions()  # a plain session, as a user of the artifact would open it
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    ort.InferenceSession(str(quantized / "model.onnx"), options, providers=["CPUExecutionProvider"])
    loaded = Counter(n.op_type for n in onnx.load(str(tmp_path / "loaded.onnx")).graph.node)
    assert "SkipLayerNormalization" not in loaded and loaded["Sum"] == 2 * layers


def test_fused_keeps_onnxruntimes_graph(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "onnx"
    result = run_cli("export-onnx", tiny_bert_dir, "--parity-samples", "4", "--skip-layernorm", "fused", "-o", out)
    assert result.exit_code == 0, result.output
    report, ops = _exported_ops(out)
    layers = json.loads((tiny_bert_dir / "config.json").read_text())["num_hidden_layers"]
    assert report["skip_layernorm"] == {"mode": "fused", "split": 0}
    assert ops["SkipLayerNormalization"] == 2 * layers and "Sum" not in ops


def test_unknown_mode_is_exit_2(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "onnx"
    result = run_cli("export-onnx", tiny_bert_dir, "--skip-layernorm", "sometimes", "-o", out)
    assert result.exit_code == 2
    assert "--skip-layernorm" in result.output and "sometimes" in result.output
    assert not out.exists()
