"""ONNX methods through onnxruntime on tiny exported checkpoints: the graphs they produce, what the
report counts, and that the artifacts run with onnxruntime and load with optimum."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from quantize_models import one_torch_thread, report_of, write_table  # noqa: F401 (autouse fixture)

from compressor.data import DataSpec
from compressor.evaluation import evaluate, task_batches
from compressor.export import ExportConfig, export_onnx
from compressor.inference import OnnxRunner
from compressor.loading import load_tokenizer
from compressor.quantize import QuantizeConfig
from compressor.quantize.isa import detect
from compressor.quantize.onnx_ort import OnnxEngine


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qonnx") / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig())  # O2: fused Attention / SkipLayerNormalization graph
    return out


@pytest.fixture(scope="module")
def gpt2_onnx(tiny_gpt2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qonnx") / "gpt2-onnx"
    export_onnx(tiny_gpt2_dir, out, ExportConfig())  # with the KV cache
    return out


def ops(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path / "model.onnx")).graph.node)


def test_int8_dynamic_fused_bert(run_cli, bert_onnx, sst_file, tmp_path):
    out = tmp_path / "int8"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "int8-dynamic", "--eval-data", sst_file, "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    counts = report["ops"]["by_op_type"]
    assert counts["MatMul"] == {"quantized": 12, "float": 0}
    assert counts["Attention"] == {"quantized": 4, "float": 0}
    assert counts["Gather"] == {"quantized": 3, "float": 0}  # word, position, token-type tables
    assert counts["Gemm"] == {"quantized": 2, "float": 0}  # pooler and classifier, as MatMul + Add
    graph = ops(out)
    assert graph["QAttention"] == 4 and graph["MatMulInteger"] == 14 and graph["MatMul"] == graph["Gemm"] == 0
    settings = report["settings"]
    assert settings["reduce_range"] is detect().reduce_range and settings["cpu"]["reason"]
    assert settings["per_channel"] is True and settings["shape_inference"].startswith("symbolic")
    assert report["size_bytes_after"] < report["size_bytes_before"] / 2  # tiny: biases and norms stay float
    assert abs(report["metrics"]["accuracy_drop_points"]) <= 5.0
    assert "reload" not in report
    manifest = json.loads((out / "compress.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["export-onnx", "quantize"]
    assert (out / "tokenizer.json").exists() and (out / "config.json").exists()


@pytest.mark.parametrize("calib_method", ["minmax", "entropy", "percentile"])
def test_int8_static_qdq_with_calibration(run_cli, bert_onnx, tmp_path, calib_method):
    # Rows of different lengths: histogram calibrators (entropy, percentile) need them padded alike.
    words = ["the", "film", "was", "really", "good", "and", "the", "cast", "was", "very", "clever", "but", "the", "plot", "was", "dull"]
    calib = write_table(tmp_path / "calib.tsv", ["sentence"], [[" ".join(words[: 3 + i % 12])] for i in range(16)])
    out = tmp_path / "static"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "int8-static", "--calib-data", calib,
                     "--calib-method", calib_method, "--per-tensor", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["calibration"] == {"data": str(calib), "method": calib_method, "batches": 16, "rows": 16}
    assert report["settings"]["format"] == "QDQ" and report["settings"]["activation_type"] == "uint8"
    assert report["settings"]["per_channel"] is False
    assert report["ops"]["by_op_type"]["MatMul"] == {"quantized": 12, "float": 0}
    assert report["ops"]["by_op_type"]["Attention"] == {"quantized": 4, "float": 0}
    # Embedding tables are INT8 too (weight-only, as int8-dynamic): a float table would keep most bytes.
    assert report["ops"]["by_op_type"]["Gather"] == {"quantized": 3, "float": 0}
    assert report["size_bytes_after"] < report["size_bytes_before"] / 2, report["compression_ratio"]
    graph = ops(out)
    assert graph["QuantizeLinear"] > 0 and graph["DequantizeLinear"] > graph["QuantizeLinear"]
    assert graph["QAttention"] == 4 and graph["Attention"] == 0  # QDQ has no fused-Attention kernel


@pytest.mark.parametrize("method", ["int8-dynamic", "int8-static"])
def test_int4_embedding_tables(run_cli, bert_onnx, sst_file, tmp_path, method):
    """--embeddings int4: the vocabulary table becomes GatherBlockQuantized (INT4 in --block-size blocks
    along each row, one float scale per block) after the INT8 pass; the position and token-type tables
    stay INT8 (small, and a GatherBlockQuantized lookup is the slower one); the rest of the graph is the
    INT8 one, and the predictions stay those of the INT8 tables on the tiny model."""
    calib = ["--calib-data", str(sst_file)] if method == "int8-static" else []
    outs = {}
    for tables in ("int8", "int4"):
        outs[tables] = tmp_path / tables
        result = run_cli("quantize", bert_onnx, "-o", outs[tables], "--method", method, *calib, "--embeddings", tables,
                         "--block-size", "16", "--json")
        assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["ops"]["by_op_type"]["Gather"] == {"quantized": 3, "float": 0}
    assert report["settings"]["embeddings"] == {**report["settings"]["embeddings"], "tables": "int4",
                                                "operator": "GatherBlockQuantized", "block_size": 16, "symmetric": True}
    model = onnx.load(str(outs["int4"] / "model.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    blocks = [n for n in model.graph.node if n.op_type == "GatherBlockQuantized"]
    assert len(blocks) == 1 and [a.i for a in blocks[0].attribute if a.name == "block_size"] == [16]
    word, scales = inits[blocks[0].input[0]], inits[blocks[0].input[2]]
    assert word.data_type == onnx.TensorProto.INT4 and word.dims[0] == max(
        i.dims[0] for i in onnx.load(str(bert_onnx / "model.onnx")).graph.initializer if len(i.dims) == 2)
    assert list(scales.dims) == [word.dims[0], word.dims[1] // 16]  # one scale per 16 values of a row
    small = [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits
             and inits[n.input[0]].data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]
    assert len(small) == 2  # position and token-type tables: INT8 lookups
    same = Counter(op for op in ops(outs["int4"]).elements() if op != "GatherBlockQuantized")
    int8_graph = ops(outs["int8"])
    assert same["MatMulInteger"] == int8_graph["MatMulInteger"] and same["QAttention"] == int8_graph["QAttention"]
    assert (outs["int4"] / "model.onnx").stat().st_size < (outs["int8"] / "model.onnx").stat().st_size
    batches = task_batches("--eval-data", "text-classification", load_tokenizer(bert_onnx), DataSpec(str(sst_file)),
                           label2id={"0": 0, "1": 1}, samples=64, max_length=32, batch_size=16, require_labels=True)
    logits = {t: np.concatenate([OnnxRunner(outs[t] / "model.onnx").logits({k: v for k, v in b.items() if k != "labels"})
                                 for b in batches]) for t in outs}
    assert len(logits["int4"]) == 64 and not np.array_equal(logits["int4"], logits["int8"])  # other tables
    assert (logits["int4"].argmax(-1) == logits["int8"].argmax(-1)).mean() >= 0.9


def test_int4_weight_matmulnbits(run_cli, bert_onnx, tmp_path):
    out = tmp_path / "int4"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "int4-weight", "--block-size", "16",
                     "--asymmetric", "--accuracy-level", "4", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["settings"] == {**report["settings"], "operator": "MatMulNBits", "bits": 4, "block_size": 16,
                                  "symmetric": False, "accuracy_level": 4}
    nodes = [n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 12
    assert {a.i for n in nodes for a in n.attribute if a.name == "block_size"} == {16}


def test_fp16_keeps_float32_inputs_and_outputs(run_cli, bert_onnx, sst_file, tmp_path):
    out = tmp_path / "fp16"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "fp16", "--eval-data", sst_file, "--json")
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out / "model.onnx"))
    dtypes = Counter(init.data_type for init in model.graph.initializer)
    assert dtypes[onnx.TensorProto.FLOAT16] > dtypes[onnx.TensorProto.FLOAT]
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    report = report_of(result)
    assert report["ops"]["by_op_type"]["MatMul"] == {"quantized": 12, "float": 0}
    assert report["metrics"]["accuracy_after"] == pytest.approx(report["metrics"]["accuracy_before"], abs=0.05)


@pytest.mark.parametrize("method", ["int8-dynamic", "int4-weight"])
def test_gpt2_with_kv_cache_quantizes_and_generates(run_cli, gpt2_onnx, corpus_file, tmp_path, method):
    out = tmp_path / method
    result = run_cli("quantize", gpt2_onnx, "-o", out, "--method", method, "--eval-data", corpus_file,
                     "--eval-samples", "4", "--max-length", "32", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["metrics"]["perplexity_after"] > 0
    from optimum.onnxruntime import ORTModelForCausalLM

    model = ORTModelForCausalLM.from_pretrained(out)
    tokenizer = load_tokenizer(out)
    generated = model.generate(**tokenizer(["the film"], return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > 2


def test_engine_keeps_any_node_set_in_float(bert_onnx, sst_file, tmp_path):
    """What the accuracy budget relies on: excluded nodes stay float, ``only`` quantizes one node."""
    engine = OnnxEngine(bert_onnx / "model.onnx", "int8-dynamic", QuantizeConfig(method="int8-dynamic"), detect(), tmp_path)
    units = engine.units()
    matmul = next(u.name for u in units if u.op_type == "MatMul")
    kept = engine.build([matmul])
    assert engine.op_counts(kept, [matmul])["by_op_type"]["MatMul"] == {"quantized": 11, "float": 1}
    assert matmul in {n.name for n in onnx.load(str(kept)).graph.node}
    single = engine.only(matmul)
    counts = engine.op_counts(single, [u.name for u in units if u.name != matmul])["by_op_type"]
    assert counts["MatMul"] == {"quantized": 1, "float": 11} and counts["Attention"]["quantized"] == 0
    # The float-everything candidate computes what the original graph computes.
    batches = task_batches("--eval-data", "text-classification", load_tokenizer(bert_onnx), DataSpec(str(sst_file)),
                           label2id={"0": 0, "1": 1}, samples=16, max_length=32, batch_size=8, require_labels=True)
    none = engine.build([u.name for u in units])
    reference, candidate = OnnxRunner(bert_onnx / "model.onnx"), OnnxRunner(none)
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        np.testing.assert_allclose(candidate.logits(inputs), reference.logits(inputs), atol=1e-5)
    assert evaluate(candidate, "text-classification", batches)["samples"] == 16
