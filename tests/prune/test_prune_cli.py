"""``compress prune`` end to end on tiny checkpoints, and every bad input the issue lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tree_hash
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import factories


def report_of(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_bert_heads_and_ffn_with_calibration(run_cli, tiny_bert_dir, sst_file, tmp_path):
    before = tree_hash(tiny_bert_dir)
    out = tmp_path / "pruned"
    report = report_of(run_cli("prune", tiny_bert_dir, "-o", out, "--method", "heads=0.25,ffn=0.3",
                               "--data", sst_file, "--json"))
    assert tree_hash(tiny_bert_dir) == before  # the input is never touched
    assert report["importance"] == "gradient"
    assert report["structure_before"] == {"layers": 4, "heads_per_layer": [4] * 4, "ffn_per_layer": [128] * 4}
    assert sum(report["structure"]["heads_per_layer"]) == 12  # 4 of 16 heads removed
    assert min(report["structure"]["heads_per_layer"]) >= 1
    assert report["structure"]["ffn_per_layer"] == [88] * 4  # 128 * 0.7 = 89.6 -> 90 -> multiple of 8
    assert report["parameters"] < report["parameters_before"] and report["size_bytes"] < report["size_bytes_before"]
    assert set(report["metrics"]) == {"accuracy_before", "accuracy_final"}
    assert report["sparsity"] is None
    # A standard checkpoint: plain transformers loads it, and it matches the report.
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.intermediate_size == 88
    assert sum(p.numel() for p in model.parameters()) == report["parameters"]
    manifest = json.loads((out / "compress.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["prune"]
    assert manifest["stages"][0]["config"]["method_spec"] == "heads=0.25,ffn=0.3"


def test_gpt2_ffn_and_layers_without_data_and_inspect(run_cli, tiny_gpt2_dir, tmp_path):
    out = tmp_path / "pruned"
    report = report_of(run_cli("prune", tiny_gpt2_dir, "-o", out, "--method", "ffn,layers", "--amount", "0.25",
                               "--json"))
    assert report["importance"] == "magnitude"
    assert report["structure"] == {"layers": 3, "heads_per_layer": [4] * 3, "ffn_per_layer": [96] * 3}
    assert len(report["layers_removed"]) == 1 and len(report["layer_scores"]) == 4
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.n_layer == 3 and model.config.n_inner == 96
    inspected = run_cli("inspect", out)
    assert inspected.exit_code == 0 and "prune from" in inspected.stdout


def test_layers_scored_on_calibration_data_with_a_config_file(run_cli, tiny_bert_dir, sst_file, tmp_path):
    config = tmp_path / "prune.yaml"
    config.write_text(f"method: layers=0.5,magnitude-layer=0.4\ndata: {sst_file}\n")
    report = report_of(run_cli("prune", tiny_bert_dir, "-o", tmp_path / "out", "--config", config, "--json"))
    assert report["importance"] == "gradient" and len(report["layer_scores"]) == 4
    # The two least important layers by measured loss increase are the ones removed.
    scores = report["layer_scores"]
    assert report["layers_removed"] == sorted(sorted(range(4), key=lambda i: (scores[i], i))[:2])
    assert report["structure"]["layers"] == 2
    assert report["sparsity"]["sparsity_of_targeted"] == pytest.approx(0.4, abs=0.01)


def test_sparsity_records_masks_and_says_no_speedup(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "sparse"
    result = run_cli("prune", tiny_bert_dir, "-o", out, "--method", "2:4", "--json")
    report = report_of(result)
    sparse = report["sparsity"]
    assert sparse["pattern"] == "2:4" and sparse["sparsity_of_targeted"] == 0.5
    assert sparse["compressible_bytes"] < sparse["dense_bytes"] and sparse["speedup_on_dense_runtimes"] == 1.0
    assert "no speed-up on dense runtimes" in result.stderr
    model = AutoModelForSequenceClassification.from_pretrained(out)
    weight = model.bert.encoder.layer[0].intermediate.dense.weight
    assert ((weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1) <= 2).all()
    from compressor.prune.sparsity import load_masks

    masks = load_masks(out / "sparsity_masks.npz")
    assert torch.equal(masks["bert.encoder.layer.0.intermediate.dense.weight"], weight != 0)


def test_force_and_existing_output(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "o"
    assert run_cli("prune", tiny_bert_dir, "-o", out, "--method", "ffn=0.5").exit_code == 0
    again = run_cli("prune", tiny_bert_dir, "-o", out, "--method", "ffn=0.5")
    assert again.exit_code == 2 and "--force" in again.stderr
    assert run_cli("prune", tiny_bert_dir, "-o", out, "--method", "ffn=0.5", "--force").exit_code == 0


# --- bad inputs: exit 2, one line naming the value, no output -------------------------------------


@pytest.fixture(scope="module")
def odd_bert(tmp_path_factory) -> Path:
    """Hidden size 30: not divisible by 4."""
    return factories.tiny_bert(tmp_path_factory.mktemp("odd") / "bert", hidden=30, heads=3)


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory) -> Path:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    directory = tmp_path_factory.mktemp("distil") / "distilbert"
    tokenizer = factories.bert_tokenizer(directory)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                              max_position_embeddings=64, id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1})
    DistilBertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def other_vocab_bert(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vocab") / "bert"
    factories.tiny_bert(directory)
    vocab = (directory / "vocab.txt").read_text().splitlines() + ["extra", "words"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer.json").unlink()
    config = json.loads((directory / "config.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    model.resize_token_embeddings(config["vocab_size"] + 2)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rte") / "rte.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\tthe film was good\tit was good\tentailment\n"
                    "1\tthe plot was dull\tit was fun\tnot_entailment\n")
    return path


BAD = [
    ("amount zero", ["--method", "heads", "--amount", "0"], "--amount 0"),
    ("amount one", ["--method", "ffn", "--amount", "1"], "--amount 1"),
    ("amount above one", ["--method", "ffn=1.5"], "ffn=1.5"),
    ("negative amount", ["--method", "heads=-0.2"], "heads=-0.2"),
    ("unknown method", ["--method", "channels=0.3"], "'channels'"),
    ("every layer by list", ["--method", "layers=[0,1,2,3]"], "removes every layer"),
    ("every layer by amount", ["--method", "layers=0.9"], "would remove all 4 layers"),
    ("layer out of range", ["--method", "layers=[7]"], "layer 7 does not exist"),
    ("gradient without data", ["--method", "heads=0.25", "--importance", "gradient"], "needs calibration data"),
]


@pytest.mark.parametrize("name, args, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(run_cli, tiny_bert_dir, tmp_path, name, args, fragment):
    out = tmp_path / "out"
    result = run_cli("prune", tiny_bert_dir, "-o", out, *args)
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_structural_method_unknown_for_the_model_type(run_cli, distilbert_dir, tmp_path):
    result = run_cli("prune", distilbert_dir, "-o", tmp_path / "out", "--method", "heads=0.25")
    assert result.exit_code == 2
    assert "'distilbert'" in result.stderr and "heads=0.25" in result.stderr
    assert not (tmp_path / "out").exists()


def test_2_4_on_a_dimension_not_divisible_by_4(run_cli, odd_bert, tmp_path):
    result = run_cli("prune", odd_bert, "-o", tmp_path / "out", "--method", "2:4")
    assert result.exit_code == 2 and "hidden_size is 30, not divisible by 4" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_2_4_after_ffn_pruning_to_an_odd_width(run_cli, tiny_bert_dir, tmp_path):
    result = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "out", "--method", "ffn=0.3,2:4",
                     "--ffn-multiple-of", "1")
    assert result.exit_code == 2 and "FFN width is 90, not divisible by 4" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which, fragment", [
    ("corpus", "label column 'label' not found"),
    ("pairs", "label 'entailment' is not in the model's label set"),
])
def test_calibration_data_of_the_wrong_task(run_cli, tiny_bert_dir, corpus_file, pairs_file, tmp_path, which, fragment):
    data = corpus_file if which == "corpus" else pairs_file
    result = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "out", "--method", "heads=0.25", "--data", data)
    assert result.exit_code == 2
    assert result.stderr.startswith("compress: error: --data: ") and fragment in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("teacher, fragment", [
    ("tiny_gpt2_dir", "is a gpt2 model (gpt2); the model being pruned is bert (bert)"),
    ("other_vocab_bert", "vocab_size 56 differs from the pruned model's 54"),
])
def test_recover_from_another_family_or_vocabulary(request, run_cli, tiny_bert_dir, sst_file, tmp_path, teacher,
                                                   fragment):
    teacher_dir = request.getfixturevalue(teacher)
    result = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "out", "--method", "heads=0.25",
                     "--recover-from", teacher_dir, "--recover-data", sst_file, "--recover-steps", "2")
    assert result.exit_code == 2, result.stderr
    assert f"--recover-from {teacher_dir}" in result.stderr and fragment in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_recover_from_a_tokenizer_with_another_vocabulary(run_cli, tiny_bert_dir, sst_file, tmp_path):
    teacher = Path(shutil.copytree(tiny_bert_dir, tmp_path / "teacher"))
    vocab = (teacher / "vocab.txt").read_text().splitlines()
    vocab[-1], vocab[-2] = vocab[-2], vocab[-1]  # same size, different ids
    (teacher / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (teacher / "tokenizer.json").unlink()
    result = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "out", "--method", "ffn=0.5",
                     "--recover-from", teacher, "--recover-data", sst_file, "--recover-steps", "2")
    assert result.exit_code == 2 and "different vocabulary" in result.stderr
    assert not (tmp_path / "out").exists()


def test_lm_calibration_data_without_text(run_cli, tiny_gpt2_dir, tmp_path):
    data = tmp_path / "labels.csv"
    data.write_text("id,label\n1,0\n2,1\n")
    result = run_cli("prune", tiny_gpt2_dir, "-o", tmp_path / "out", "--method", "ffn=0.3", "--data", data)
    assert result.exit_code == 2 and "--data: " in result.stderr and "no text column" in result.stderr
    assert not (tmp_path / "out").exists()
