"""Every bad input issue 3 lists: exit 2, one line naming the value, and no output directory."""

from __future__ import annotations

import pytest
from quantize_models import one_torch_thread, write_table  # noqa: F401 (autouse fixture)

from compressor.export import ExportConfig, export_onnx
from compressor.quantize import QuantizeConfig, quantize


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qerr") / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig())
    return out


@pytest.fixture(scope="module")
def quantized_bert(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qerr") / "bert-int8"
    quantize(tiny_bert_dir, out, QuantizeConfig(method="int8-dynamic"))
    return out


def assert_refused(result, out, *needles):
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in line, line
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_unknown_method(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    assert_refused(run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int3"), out, "'int3'", "unknown method")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--method", "int8-static"], ["int8-static", "--calib-data"]),
        (["--method", "int4", "--algorithm", "gptq"], ["gptq", "--calib-data"]),
        (["--method", "int4", "--algorithm", "awq"], ["awq", "--calib-data"]),
        (["--method", "smoothquant"], ["smoothquant", "--calib-data"]),
    ],
)
def test_calibrated_methods_without_calibration_data(run_cli, tiny_bert_dir, tmp_path, args, needles):
    out = tmp_path / "out"
    assert_refused(run_cli("quantize", tiny_bert_dir, "-o", out, *args), out, *needles)


def test_calibration_data_with_the_wrong_columns(run_cli, bert_onnx, tmp_path):
    data = write_table(tmp_path / "calib.tsv", ["review_id", "stars"], [["1", "5"], ["2", "3"]])
    out = tmp_path / "out"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "int8-static", "--calib-data", data)
    assert_refused(result, out, "--calib-data", str(data), "no text column", "review_id, stars")


def test_calibration_text_column_that_does_not_exist(run_cli, tiny_bert_dir, sst_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "smoothquant", "--calib-data", sst_file,
                     "--text-column", "body")
    assert_refused(result, out, "--calib-data", "'body' not found")


def test_already_quantized_pytorch_artifact(run_cli, quantized_bert, tmp_path):
    out = tmp_path / "out"
    result = run_cli("quantize", quantized_bert, "-o", out, "--method", "int4")
    assert_refused(result, out, "already quantized", "--method int8-dynamic")


def test_already_quantized_onnx_artifact(run_cli, bert_onnx, tmp_path):
    first = tmp_path / "int8"
    assert run_cli("quantize", bert_onnx, "-o", first, "--method", "int8-dynamic").exit_code == 0
    out = tmp_path / "out"
    assert_refused(run_cli("quantize", first, "-o", out, "--method", "int4-weight"), out, "already quantized")


def test_onnx_graph_quantized_elsewhere_is_refused(run_cli, bert_onnx, tmp_path):
    """An ONNX directory without our manifest is recognised by its integer ops."""
    import shutil

    from onnxruntime.quantization import quantize_dynamic

    foreign = tmp_path / "foreign"
    shutil.copytree(bert_onnx, foreign)
    (foreign / "compress.json").unlink()
    quantize_dynamic(str(bert_onnx / "model.onnx"), str(foreign / "model.onnx"),
                     extra_options={"DefaultTensorType": 1})
    out = tmp_path / "out"
    assert_refused(run_cli("quantize", foreign, "-o", out, "--method", "int8-dynamic"), out,
                   "already quantized", "MatMulInteger")


@pytest.mark.parametrize(
    ("method", "applies"),
    [("int8-static", "--method smoothquant"), ("int4-weight", "--method int4"), ("fp16", "export-onnx --fp16")],
)
def test_onnx_only_method_on_a_pytorch_artifact_names_the_one_that_applies(run_cli, tiny_bert_dir, sst_file,
                                                                           tmp_path, method, applies):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", method, "--calib-data", sst_file)
    assert_refused(result, out, f"--method {method}: applies to onnx", applies)


@pytest.mark.parametrize(
    ("method", "applies"),
    [("int4", "--method int4-weight"), ("int8", "--method int8-dynamic"), ("smoothquant", "--method int8-static")],
)
def test_pytorch_only_method_on_an_onnx_artifact_names_the_one_that_applies(run_cli, bert_onnx, sst_file, tmp_path,
                                                                           method, applies):
    out = tmp_path / "out"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", method, "--calib-data", sst_file)
    assert_refused(result, out, f"--method {method}: applies to pytorch artifacts", applies)


def test_accuracy_budget_without_eval_data(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--max-accuracy-drop", "1")
    assert_refused(result, out, "--max-accuracy-drop", "--eval-data")


@pytest.mark.parametrize("flag", ["--max-accuracy-drop", "--max-perplexity-increase"])
def test_negative_budget(run_cli, tiny_bert_dir, sst_file, tmp_path, flag):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--eval-data", sst_file, flag, "-0.5")
    assert_refused(result, out, flag, "-0.5", "non-negative")


@pytest.mark.parametrize("flag", ["--max-accuracy-drop", "--max-perplexity-increase"])
def test_non_numeric_budget(run_cli, tiny_bert_dir, sst_file, tmp_path, flag):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--eval-data", sst_file, flag, "one")
    assert result.exit_code == 2
    assert flag in result.stderr and "'one' is not a valid float" in result.stderr
    assert not out.exists()


def test_budget_of_the_wrong_kind_for_the_task(run_cli, tiny_gpt2_dir, corpus_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_gpt2_dir, "-o", out, "--method", "int8-dynamic", "--eval-data", corpus_file,
                     "--max-accuracy-drop", "1")
    assert_refused(result, out, "--max-accuracy-drop 1", "causal LM", "--max-perplexity-increase")


def test_eval_data_without_labels_for_a_classifier(run_cli, tiny_bert_dir, tmp_path):
    data = write_table(tmp_path / "eval.tsv", ["sentence"], [["the film was good"], ["the plot was dull"]])
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--eval-data", data,
                     "--max-accuracy-drop", "1")
    assert_refused(result, out, "--eval-data", "label column 'label' not found")


def test_missing_source(run_cli, tmp_path):
    out = tmp_path / "out"
    assert_refused(run_cli("quantize", tmp_path / "nope", "-o", out, "--method", "int8-dynamic"), out, "no such file")


@pytest.mark.parametrize(
    ("source", "args", "needles"),
    [
        ("onnx", ["--method", "int4-weight", "--embeddings", "int4"], ["--embeddings int4", "not onnx int4-weight"]),
        ("pytorch", ["--method", "int8-dynamic", "--embeddings", "int4"], ["--embeddings int4", "not pytorch"]),
        ("onnx", ["--method", "int8-dynamic", "--embeddings", "int4", "--block-size", "64"],
         ["--block-size 64", "width 32 of embedding Gather", "block sizes that fit every embedding Gather: 16, 32"]),
        ("onnx", ["--method", "int8-dynamic", "--embeddings", "int4", "--block-size", "-1"],
         ["--block-size -1", "--embeddings int4"]),
        ("onnx", ["--method", "int8-dynamic", "--embeddings", "int2"], ["'int2'"]),
    ],
)
def test_int4_embedding_tables_refused(run_cli, bert_onnx, tiny_bert_dir, tmp_path, source, args, needles):
    out = tmp_path / "out"
    src = bert_onnx if source == "onnx" else tiny_bert_dir
    assert_refused(run_cli("quantize", src, "-o", out, *args), out, *needles)
