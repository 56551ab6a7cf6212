"""Bad encoder-task inputs: each exits 2 with one line naming what is wrong, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import factories


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Path:
    return factories.tiny_bert_tagger(tmp_path_factory.mktemp("tiny") / "tagger", layers=2)


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory) -> Path:
    return factories.tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st", layers=2)


def nothing_written(tmp_path: Path) -> bool:
    return not [p for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))]


def check(result, tmp_path: Path, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in line, line
    assert nothing_written(tmp_path)


def test_conll_line_with_wrong_columns_names_file_and_line(run_cli, tagger, tmp_path):
    data = tmp_path / "bad.conll"
    data.write_text("anna NNP B-PER\nbob NNP I-PER\n\nparis B-LOC\n")
    result = run_cli("distill", tagger, "-o", tmp_path / "out", "--data", data, "--max-steps", "1")
    check(result, tmp_path, str(data), "line 4 has 2 columns, expected 3")


def test_tags_outside_the_label_set_are_named(run_cli, tagger, tmp_path):
    data = tmp_path / "bad.conll"
    data.write_text("anna B-PERSON\nbob I-PERSON\nin O\nparis B-GPE\n")
    result = run_cli("distill", tagger, "-o", tmp_path / "out", "--data", data, "--max-steps", "1")
    check(result, tmp_path, "B-GPE, B-PERSON, I-PERSON", "not in the model's label set")


def test_sentence_level_labels_given_to_a_token_classifier(run_cli, tagger, sst_file, tmp_path):
    result = run_cli("distill", tagger, "-o", tmp_path / "out", "--data", sst_file, "--max-steps", "1")
    check(result, tmp_path, str(sst_file), "sentence-level labels", "tag per token")


@pytest.mark.parametrize("score,what", [("high", "is not a number"), ("5.5", "outside 0-5"), ("-1", "outside 0-5")])
def test_sts_scores_must_be_numbers_in_0_to_5(run_cli, st_dir, corpus_file, tmp_path, score, what):
    data = tmp_path / "sts.tsv"
    data.write_text(f"sentence1\tsentence2\tscore\na film\tthe film\t4.0\na show\tthe meal\t{score}\n")
    result = run_cli("distill", st_dir, "-o", tmp_path / "out", "--data", corpus_file, "--eval-data", data,
                     "--max-steps", "1")
    check(result, tmp_path, str(data), "row 2", repr(score), what)


def test_missing_pooling_config_is_named(run_cli, st_dir, tmp_path):
    broken = Path(shutil.copytree(st_dir, tmp_path / "st"))
    shutil.rmtree(broken / "1_Pooling")
    result = run_cli("export-onnx", broken, "-o", tmp_path / "out")
    check(result, tmp_path, str(broken / "1_Pooling" / "config.json"), "missing")


def test_conll_data_given_to_an_embedding_model(run_cli, st_dir, tmp_path):
    data = factories.write_conll(tmp_path / "train.txt", rows=8)
    result = run_cli("distill", st_dir, "-o", tmp_path / "out", "--data", data, "--max-steps", "1")
    check(result, tmp_path, str(data), "CoNLL")


def test_a_budget_of_another_task_is_refused(run_cli, tagger, tmp_path):
    data = factories.write_conll(tmp_path / "dev.conll", rows=8)
    result = run_cli("quantize", tagger, "-o", tmp_path / "out", "--method", "int8-dynamic", "--eval-data", data,
                     "--max-accuracy-drop", "1")
    check(result, tmp_path, "--max-accuracy-drop", "use --max-f1-drop")
