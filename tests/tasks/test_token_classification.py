"""token-classification: CoNLL/JSONL reading, tag alignment, and the whole chain on a tiny tagger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import factories
from compressor.data import DataSpec
from compressor.data.conll import count_iob1_starts, load_tagged, read_conll


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Path:
    return factories.tiny_bert_tagger(tmp_path_factory.mktemp("tiny") / "tagger")


@pytest.fixture(scope="module")
def conll(tmp_path_factory) -> Path:
    return factories.write_conll(tmp_path_factory.mktemp("data") / "train.conll", rows=96)


LABELS = {t: i for i, t in enumerate(factories.TAGS)}


def test_conll_reader_skips_docstart_and_takes_the_last_column(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nanna NNP B-NP B-PER\nbob NNP I-NP I-PER\nwas VBD B-VP O\n\n"
                    "paris NNP B-NP B-LOC\n")
    words, tags = read_conll(path)
    assert words == [["anna", "bob", "was"], ["paris"]]
    assert tags == [["B-PER", "I-PER", "O"], ["B-LOC"]]


def test_jsonl_tags_as_names_or_ids_read_the_same(tmp_path):
    names = load_tagged(DataSpec(str(factories.write_tagged_jsonl(tmp_path / "a.jsonl", 10))), label2id=LABELS,
                        require_tags=True)
    ids = load_tagged(DataSpec(str(factories.write_tagged_jsonl(tmp_path / "b.jsonl", 10, ids=True))),
                      label2id=LABELS, require_tags=True)
    assert names.tags == ids.tags and names.words == ids.words


def test_first_sub_token_carries_the_tag(tagger):
    from compressor.data.conll import TaggedData
    from compressor.tasks.token_classification import encode_tagged
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tagger)
    data = TaggedData(words=[["annas", "was", "paris"]], tags=[[1, 0, 3]], source="x")
    rows, labels = encode_tagged(tokenizer, data, 32)
    tokens = tokenizer.convert_ids_to_tokens(rows[0]["input_ids"])
    assert tokens == ["[CLS]", "anna", "##s", "was", "paris", "[SEP]"]
    assert labels[0] == [-100, 1, -100, 0, 3, -100]


def test_iob1_starts_are_counted():
    assert count_iob1_starts([["O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-PER"]]) == 2


def test_token_classifier_chain_distill_export_quantize_bench(run_cli, tagger, conll, tmp_path):
    student, onnx, int8 = tmp_path / "student", tmp_path / "onnx", tmp_path / "int8"
    result = run_cli("distill", tagger, "-o", student, "--data", conll, "--eval-data", conll, "--student-layers", "2",
                     "--max-steps", "6", "--batch-size", "16", "--alpha-ce", "0.5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0 <= report["metrics"]["f1"] <= 1 and "teacher_f1" in report["metrics"]
    from transformers import AutoModelForTokenClassification

    assert AutoModelForTokenClassification.from_pretrained(student).config.num_hidden_layers == 2
    result = run_cli("export-onnx", student, "-o", onnx, "--parity-data", conll, "--json")
    assert result.exit_code == 0, result.output
    parity = json.loads(result.stdout)["parity"]
    assert parity["max_abs_diff"] < 1e-3 and parity["token_agreement"] == 1.0
    from optimum.onnxruntime import ORTModelForTokenClassification

    assert ORTModelForTokenClassification.from_pretrained(onnx).config.id2label[1] == "B-PER"
    result = run_cli("quantize", onnx, "-o", int8, "--method", "int8-dynamic", "--eval-data", conll,
                     "--max-f1-drop", "100", "--json")
    assert result.exit_code == 0, result.output
    result = run_cli("bench", student, onnx, int8, "--baseline", tagger, "--data", conll, "--batch-sizes", "1",
                     "--max-samples", "32", "--max-f1-drop", "100", "--no-memory", "--json")
    assert result.exit_code == 0, result.output
    bench = json.loads(result.stdout)
    entries = bench.get("entries") or bench.get("artifacts")
    quality = entries[-1]["quality"]
    assert {"f1", "precision", "recall", "token_accuracy"} <= set(quality)
    low, high = quality["vs_baseline"]["f1_drop_ci95"]
    assert low <= quality["vs_baseline"]["f1_drop_points"] <= high
    # Same predictions as seqeval computes directly from the float student
    onnx_entry = next(e for e in entries if e["name"] == "onnx")
    assert onnx_entry["quality"]["f1"] == pytest.approx(entries[1]["quality"]["f1"])


def test_iob1_input_is_reported_not_fatal(run_cli, tagger, tmp_path):
    data = tmp_path / "iob1.conll"
    data.write_text("the O\nanna I-PER\nbob I-PER\n\nparis I-LOC\nwas O\n")
    result = run_cli("quantize", _onnx(run_cli, tagger, tmp_path), "-o", tmp_path / "q", "--method", "int8-dynamic",
                     "--eval-data", data, "--json")
    assert result.exit_code == 0, result.output
    assert "2 I- tag(s) open an entity" in result.stderr
    assert "f1_before" in json.loads(result.stdout)["metrics"]


def _onnx(run_cli, tagger: Path, tmp_path: Path) -> Path:
    out = tmp_path / "tagger-onnx"
    if not out.exists():
        assert run_cli("export-onnx", tagger, "-o", out).exit_code == 0
    return out


def test_seqeval_scores_entities_exactly():
    from compressor.bench.quality import token_scores, token_vs_baseline

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["O", "B-LOC"]]
    scores = token_scores(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    vs = token_vs_baseline(gold, pred, gold, resamples=50)
    assert vs["f1_drop_points"] == pytest.approx(100 / 3) and vs["agreement"] == pytest.approx(5 / 6)
    assert np.isfinite(vs["f1_drop_ci95"]).all()
