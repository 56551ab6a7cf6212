"""Sentence-pair classifiers through every stage, and headerless tables named by column index."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

import factories


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """RTE layout: index, sentence1, sentence2, label."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["index", "sentence1", "sentence2", "label"])
        for i in range(48):
            a, b = rng.randint(0, 1), rng.randint(0, 1)
            writer.writerow([i, factories.sentence(rng, a), factories.sentence(rng, b), int(a == b)])
    return path


@pytest.fixture(scope="module")
def headerless(tmp_path_factory) -> Path:
    """CoLA layout: source, label, original mark, sentence; no header line."""
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("data") / "cola.tsv"
    path.write_text("".join(f"src\t{i % 2}\t\t{factories.sentence(rng, i % 2)}\n" for i in range(40)))
    return path


def test_pair_classifier_through_every_stage(run_cli, tiny_bert_dir, pairs, tmp_path):
    student, onnx, int8 = tmp_path / "student", tmp_path / "onnx", tmp_path / "int8"
    result = run_cli("distill", tiny_bert_dir, "-o", student, "--data", pairs, "--eval-data", pairs,
                     "--student-layers", "2", "--max-steps", "4", "--batch-size", "16", "--json")
    assert result.exit_code == 0, result.output
    result = run_cli("export-onnx", student, "-o", onnx, "--parity-data", pairs, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parity"]["top1_agreement"] == 1.0
    result = run_cli("quantize", onnx, "-o", int8, "--method", "int8-dynamic", "--eval-data", pairs,
                     "--max-accuracy-drop", "100")
    assert result.exit_code == 0, result.output
    result = run_cli("bench", onnx, int8, "--baseline", student, "--data", pairs, "--batch-sizes", "1",
                     "--no-memory", "--json")
    assert result.exit_code == 0, result.output
    from transformers import AutoTokenizer

    # the pair is encoded as one sequence with two segments
    from compressor.data import DataSpec, load_classification

    data = load_classification(DataSpec(str(pairs)), label2id={"0": 0, "1": 1}, require_labels=True)
    assert data.pairs and len(data.pairs) == 48
    assert 1 in AutoTokenizer.from_pretrained(student)(data.texts[0], data.pairs[0])["token_type_ids"]


def test_headerless_table_by_column_index(run_cli, tiny_bert_dir, headerless, tmp_path):
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "student", "--data", headerless, "--no-header",
                     "--text-column", "3", "--label-column", "1", "--max-steps", "2", "--batch-size", "16",
                     "--student-layers", "2")
    assert result.exit_code == 0, result.output
    result = run_cli("bench", tmp_path / "student", "--baseline", tiny_bert_dir, "--data", headerless, "--no-header",
                     "--text-column", "3", "--label-column", "1", "--batch-sizes", "1", "--no-memory", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout).get("entries") or json.loads(result.stdout).get("artifacts")
    assert entries[0]["quality"]["samples"] == 40  # the first line is data, not a header


def test_headerless_reader_names_columns_by_index(tmp_path):
    from compressor.data.tables import read_table

    path = tmp_path / "x.csv"
    path.write_text("a,1\nb,0\n")
    columns, rows = read_table(path, no_header=True)
    assert columns == ["0", "1"] and rows == [{"0": "a", "1": "1"}, {"0": "b", "1": "0"}]
    columns, rows = read_table(path)
    assert columns == ["a", "1"] and len(rows) == 1
