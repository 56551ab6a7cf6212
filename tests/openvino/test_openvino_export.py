"""`compress export-openvino`, `quantize` on OpenVINO IRs and `bench` of IRs, end to end on tiny models.

Needs the openvino extra (scripts/setup.sh installs it, so these run in CI)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import factories  # noqa: E402
from compressor.artifact import open_artifact  # noqa: E402
from conftest import tree_hash  # noqa: E402


def _cli(*args: str):
    from click.testing import CliRunner

    from compressor.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def bert_ov(tiny_bert_dir, sst_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "bert-ov"
    before = tree_hash(tiny_bert_dir)
    result = _cli("export-openvino", tiny_bert_dir, "-o", out, "--parity-data", sst_file, "--json")
    assert result.exit_code == 0, result.output
    assert tree_hash(tiny_bert_dir) == before  # the input is never modified
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "bert-onnx"
    assert _cli("export-onnx", tiny_bert_dir, "-o", out, "--parity-samples", "4").exit_code == 0
    return out


@pytest.fixture(scope="module")
def gpt2_ov(tiny_gpt2_dir, corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "gpt2-ov"
    result = _cli("export-openvino", tiny_gpt2_dir, "-o", out, "--parity-data", corpus_file, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_classifier_ir_loads_with_plain_openvino_and_matches(bert_ov, tiny_bert_dir):
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, report = bert_ov
    assert (out / "openvino_model.xml").exists() and (out / "openvino_model.bin").exists()
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()
    assert report["parity"]["samples"] == 64 and report["parity"]["max_abs_diff"] < 1e-3
    assert report["parity"]["top1_agreement"] == 1.0
    assert report["parity"]["runtime"]["inference_precision_hint"] == "f32"
    artifact = open_artifact(out)
    assert artifact.format == "openvino" and artifact.task == "text-classification"
    assert [s.stage for s in artifact.stages] == ["export-openvino"]

    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer(["a fine film", "dull and long"], ["yes", "no"], padding=True, return_tensors="np")
    compiled = ov.Core().compile_model(str(out / "openvino_model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({k: v.astype(np.int64) for k, v in enc.items()})[0]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
    assert np.abs(got - want).max() < 1e-4  # sentence pairs (token_type_ids) too


def test_onnx_artifact_converts(bert_onnx, sst_file, tmp_path):
    onnx_dir = bert_onnx
    out = tmp_path / "ov"
    result = _cli("export-openvino", onnx_dir, "-o", out, "--parity-data", sst_file, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source_format"] == "onnx" and report["parity"]["max_abs_diff"] < 1e-3
    assert [s.stage for s in open_artifact(out).stages] == ["export-onnx", "export-openvino"]


def test_causal_lm_is_stateful_and_decodes_through_the_cache(gpt2_ov):
    out, report = gpt2_ov
    assert report["stateful"] is True
    assert set(report["inputs"]) <= {"input_ids", "attention_mask", "position_ids", "beam_idx"}
    decode = report["parity"]["decode"]
    assert decode["steps"] == 8 and decode["max_abs_diff"] < 1e-3 and decode["next_token_agreement"] == 1.0


@pytest.mark.parametrize("kind", ["tagger", "embedding"])
def test_token_classification_and_sentence_embedding_export(kind, tmp_path):
    if kind == "tagger":
        src = factories.tiny_bert_tagger(tmp_path / "src", layers=2)
        data = factories.write_conll(tmp_path / "data.txt", rows=16)
    else:
        src = factories.tiny_sentence_transformer(tmp_path / "src", layers=2)
        data = factories.write_sts(tmp_path / "sts.tsv", rows=16)
    result = _cli("export-openvino", src, "-o", tmp_path / "ov", "--parity-data", data, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity"]["max_abs_diff"] < 1e-3
    if kind == "embedding":
        assert report["parity"]["min_cosine"] > 0.9999
        assert (tmp_path / "ov" / "modules.json").exists()  # the sentence-transformers files travel along


def test_parity_failure_exits_3_and_writes_nothing(tiny_bert_dir, tmp_path):
    out = tmp_path / "ov"
    result = _cli("export-openvino", tiny_bert_dir, "-o", out, "--fp16", "--atol", "1e-12")
    assert result.exit_code == 3
    assert "parity check failed" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".ov*"))


def test_int8_nncf_and_accuracy_control(bert_ov, sst_file, tmp_path):
    src, _ = bert_ov
    before = tree_hash(src)
    result = _cli("quantize", src, "-o", tmp_path / "int8", "--method", "int8-nncf", "--calib-data", sst_file,
                  "--calib-samples", "8", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["engine"] == "nncf" and report["ops"]["by_op_type"]["MatMul"]["quantized"] > 0
    assert open_artifact(tmp_path / "int8").format == "openvino"
    # with a budget, NNCF's accuracy control decides and the report says which layers stayed float
    result = _cli("quantize", src, "-o", tmp_path / "ac", "--method", "int8-nncf", "--calib-data", sst_file,
                  "--calib-samples", "8", "--eval-data", sst_file, "--eval-samples", "16", "--max-accuracy-drop", "1",
                  "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["fallback"]["accuracy_control"]["engine"] == "nncf.quantize_with_accuracy_control"
    assert isinstance(report["fallback"]["kept_float"], list) and report["budget"]["met"]
    assert tree_hash(src) == before
    # already quantized: refused
    again = _cli("quantize", tmp_path / "int8", "-o", tmp_path / "again", "--method", "int8-nncf",
                 "--calib-data", sst_file)
    assert again.exit_code == 2 and "already quantized" in again.stderr


@pytest.mark.parametrize("method", ["int4-weight", "int8-weight"])
def test_weight_compression_of_a_causal_lm(gpt2_ov, corpus_file, tmp_path, method):
    src, _ = gpt2_ov
    result = _cli("quantize", src, "-o", tmp_path / "q", "--method", method, "--eval-data", corpus_file,
                  "--eval-samples", "4", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ops"]["by_op_type"]["MatMul"]["quantized"] > 0
    assert report["size_bytes_after"] < report["size_bytes_before"]
    assert report["metrics"]["perplexity_increase_pct"] < 50


def test_bench_runs_openvino_beside_pytorch_and_onnx(bert_ov, bert_onnx, tiny_bert_dir, sst_file, tmp_path):
    onnx_dir = bert_onnx
    out, _ = bert_ov
    result = _cli("bench", onnx_dir, out, "--baseline", tiny_bert_dir, "--data", sst_file, "--threads", "2",
                  "--min-seconds", "0", "--min-runs", "2", "--warmup", "1", "--max-samples", "16", "--no-memory",
                  "--profile-runs", "0", "--batch-sizes", "1", "--bootstrap", "100", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ov_entry = next(a for a in report["artifacts"] if a["format"] == "openvino")
    props = ov_entry["openvino"]
    assert props["execution_devices"] == ["CPU"] and props["inference_num_threads"] == 2
    assert props["num_streams"] == 1 and props["performance_hint"] == "LATENCY"
    assert ov_entry["quality"]["accuracy"] == report["baseline"]["quality"]["accuracy"]
    assert ov_entry["parameters"] > 0
    assert not [w for w in report["warnings"] if w["kind"] in ("execution-device-mismatch", "openvino-setting-differs")]


def test_bench_decodes_a_stateful_lm(gpt2_ov, tiny_gpt2_dir, corpus_file):
    out, _ = gpt2_ov
    result = _cli("bench", out, "--baseline", tiny_gpt2_dir, "--data", corpus_file, "--threads", "2",
                  "--min-seconds", "0", "--min-runs", "2", "--warmup", "1", "--max-samples", "4", "--no-memory",
                  "--decode-tokens", "4", "--max-length", "32", "--batch-sizes", "1", "--bootstrap", "100", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["artifacts"][0]
    assert entry["decode"]["1"]["new_tokens"] == 4
    assert abs(entry["quality"]["perplexity"] / json.loads(result.stdout)["baseline"]["quality"]["perplexity"] - 1) < 1e-3


def test_lm_budget_needs_eval_data(gpt2_ov, tmp_path):
    src, _ = gpt2_ov
    result = _cli("quantize", src, "-o", tmp_path / "q", "--method", "int4-weight", "--max-perplexity-increase", "5")
    assert result.exit_code == 2 and "--eval-data" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "q").exists()
