"""sentence-embedding: sentence-transformers checkpoints through distill, prune, export, quantize, bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import factories

SENTENCES = ["the film was really good", "that meal was quite awful and boring", "a show"]
CPU = {"provider": "CPUExecutionProvider"}


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory) -> Path:
    return factories.tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture(scope="module")
def sts(tmp_path_factory) -> Path:
    return factories.write_sts(tmp_path_factory.mktemp("data") / "sts.tsv", rows=48)


def test_modules_json_makes_it_a_sentence_embedding_model(st_dir):
    from compressor.artifact import open_artifact

    assert open_artifact(st_dir).task == "sentence-embedding"


def test_embedding_chain_loads_with_sentence_transformers_and_onnxruntime(run_cli, st_dir, sts, corpus_file,
                                                                          tmp_path):
    from sentence_transformers import SentenceTransformer

    student, pruned, onnx, int8 = (tmp_path / n for n in ("student", "pruned", "onnx", "int8"))
    result = run_cli("distill", st_dir, "-o", student, "--data", corpus_file, "--eval-data", sts,
                     "--student-layers", "2", "--max-steps", "6", "--batch-size", "16", "--json")
    assert result.exit_code == 0, result.output
    assert -1 <= json.loads(result.stdout)["metrics"]["spearman"] <= 1
    result = run_cli("prune", student, "-o", pruned, "--method", "heads=0.25,ffn=0.3", "--eval-data", sts)
    assert result.exit_code == 0, result.output
    result = run_cli("export-onnx", pruned, "-o", onnx, "--parity-data", sts, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parity"]["min_cosine"] > 0.9999
    result = run_cli("quantize", onnx, "-o", int8, "--method", "int8-dynamic", "--eval-data", sts,
                     "--max-score-drop", "100")
    assert result.exit_code == 0, result.output

    reference = SentenceTransformer(str(pruned), device="cpu").encode(SENTENCES)
    assert reference.shape == (3, 32)
    from_onnx = SentenceTransformer(str(onnx), backend="onnx", model_kwargs=CPU).encode(SENTENCES)
    assert np.abs(from_onnx - reference).max() < 1e-4
    assert SentenceTransformer(str(int8), backend="onnx", model_kwargs=CPU).encode(SENTENCES).shape == (3, 32)
    import onnxruntime as ort
    from transformers import AutoTokenizer

    session = ort.InferenceSession(str(onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    encoded = AutoTokenizer.from_pretrained(onnx)(SENTENCES, padding=True, return_tensors="np")
    feeds = {i.name: encoded[i.name] for i in session.get_inputs()}
    plain = session.run(["sentence_embedding"], feeds)[0]
    assert np.abs(plain - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-5)

    result = run_cli("bench", student, onnx, int8, "--baseline", st_dir, "--data", sts, "--batch-sizes", "1",
                     "--max-score-drop", "100", "--no-memory", "--json")
    assert result.exit_code == 0, result.output
    bench = json.loads(result.stdout)
    entries = bench.get("entries") or bench.get("artifacts")
    vs = entries[-1]["quality"]["vs_baseline"]
    assert vs["score_drop_ci95"][0] <= vs["score_drop_points"] <= vs["score_drop_ci95"][1]


def test_spearman_bootstrap_is_paired_and_zero_for_identical_models():
    from compressor.bench.quality import sts_vs_baseline

    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 200)
    sims = gold + rng.normal(0, 1, 200)
    same = sts_vs_baseline(sims, sims, gold, resamples=100)
    assert same["score_drop_points"] == 0 and same["score_drop_ci95"] == [0.0, 0.0]
    worse = sts_vs_baseline(sims + rng.normal(0, 3, 200), sims, gold, resamples=100)
    assert worse["score_drop_points"] > 0


def test_both_pooling_config_layouts_read_alike():
    from compressor.tasks.st_model import legacy_pooling, pooling_mode

    new = legacy_pooling({"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": True})
    assert pooling_mode(new) == "mean" and new["word_embedding_dimension"] == 384
    assert pooling_mode(legacy_pooling({"pooling_mode_cls_token": True})) == "cls"
