"""``compress distill`` end to end on tiny models, and every bad input the issue lists (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest



def no_output(tmp_path: Path, name: str = "out") -> bool:
    """Neither the output nor any hidden temp/checkpoint sibling of it was created."""
    return not (tmp_path / name).exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}.")]


def test_distill_bert_writes_a_loadable_student_with_its_lineage(run_cli, tiny_bert_dir, sst_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli("distill", tiny_bert_dir, "-o", out, "--data", sst_file, "--eval-data", sst_file,
                     "--student-layers", "2", "--layer-map", "0,2", "--epochs", "2", "--batch-size", "16",
                     "--alpha-ce", "0.5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    assert AutoTokenizer.from_pretrained(out)("the film was good")["input_ids"]
    manifest = json.loads((out / "compress.json").read_text())
    record = manifest["stages"][-1]
    assert record["stage"] == "distill" and record["seed"] == 0
    assert record["report"]["teacher"]["path"] == str(tiny_bert_dir.resolve())
    assert record["report"]["layer_map"] == [0, 2]
    assert record["report"]["losses"]["ce"]["weight"] == 0.5
    assert record["report"]["data"]["train_hash"].startswith("sha256:")
    # Evaluated at the end of each of the two epochs (4 steps each), and the teacher once.
    assert [p["step"] for p in report["eval_curve"]] == [4, 8]
    assert 0 <= report["metrics"]["accuracy"] <= 1 and "teacher_accuracy" in report["metrics"]
    assert report["training"]["teacher_cache"]["batch_hits"] == 4  # epoch 2 served from the cache
    assert report["student"]["parameters"] < report["teacher"]["parameters"]


def test_a_classifier_distils_on_unlabelled_text_when_no_loss_reads_labels(run_cli, tiny_bert_dir, sst_file,
                                                                           tmp_path):
    """A transfer set: a table with only a sentence column trains the student on the teacher's logits."""
    transfer = tmp_path / "transfer.tsv"
    transfer.write_text("sentence\n" + "".join(f"a film that was {w}\n" for w in ("good", "bad", "long", "dull") * 8))
    out = tmp_path / "out"
    result = run_cli("distill", tiny_bert_dir, "-o", out, "--data", transfer, "--eval-data", sst_file,
                     "--student-layers", "2", "--max-steps", "3", "--batch-size", "8", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data"]["train_rows"] == 32 and report["losses"]["ce"]["weight"] == 0.0
    assert 0 <= report["metrics"]["accuracy"] <= 1  # evaluation still reads --eval-data's labels
    labelled_eval = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out2", "--data", sst_file,
                            "--eval-data", transfer, "--max-steps", "1")
    assert labelled_eval.exit_code == 2 and "--eval-data" in labelled_eval.stderr
    assert "no label column 'label'" in labelled_eval.stderr
    assert not (tmp_path / "out2").exists()


def test_distill_gpt2_reports_perplexity(run_cli, tiny_gpt2_dir, corpus_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli("distill", tiny_gpt2_dir, "-o", out, "--data", corpus_file, "--eval-data", corpus_file,
                     "--max-length", "32", "--max-steps", "6", "--batch-size", "8", "--alpha-ce", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["eval_metric"] == "perplexity" and report["metrics"]["perplexity"] > 1
    assert report["training"]["teacher_cache"] is None  # under one epoch: nothing would be reused
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).config.n_layer == 2


def write_labels(path: Path, labels: list[str]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"the film was good\t{label}\n" for label in labels))
    return path


@pytest.mark.parametrize("case", [
    "classifier_with_lm_text", "lm_with_classification_data", "label_not_in_teacher", "student_layers_zero",
    "student_layers_too_many", "layer_map_out_of_range", "layer_map_repeated", "config_other_family",
    "config_other_vocab", "resume_without_checkpoint", "empty_data", "empty_text",
])
def test_bad_inputs_exit_2_with_a_clear_line_and_no_output(case, run_cli, tiny_bert_dir, tiny_gpt2_dir, sst_file,
                                                           corpus_file, tmp_path):
    teacher, data, extra = tiny_bert_dir, sst_file, []
    if case == "classifier_with_lm_text":
        data, extra, expect = corpus_file, ["--alpha-ce", "1"], "needs labels (accuracy, --alpha-ce), but it has no label column 'label'"
    elif case == "lm_with_classification_data":
        teacher, expect = tiny_gpt2_dir, "labelled sentences (classification data)"
    elif case == "label_not_in_teacher":
        data, expect = write_labels(tmp_path / "bad.tsv", ["0", "1", "positive"]), "label 'positive' is not in"
    elif case == "student_layers_zero":
        extra, expect = ["--student-layers", "0"], "--student-layers 0"
    elif case == "student_layers_too_many":
        extra, expect = ["--student-layers", "4"], "--student-layers 4: must be fewer than the teacher's 4"
    elif case == "layer_map_out_of_range":
        extra, expect = ["--layer-map", "0,4"], "--layer-map 0,4: index 4 is out of range"
    elif case == "layer_map_repeated":
        extra, expect = ["--layer-map", "2,2"], "--layer-map 2,2: repeated"
    elif case == "config_other_family":
        cfg = json.loads((tiny_gpt2_dir / "config.json").read_text())
        (tmp_path / "gpt2.json").write_text(json.dumps(cfg))
        extra, expect = ["--student-config", tmp_path / "gpt2.json"], "model_type 'gpt2' is of the gpt2 family"
    elif case == "config_other_vocab":
        cfg = dict(json.loads((tiny_bert_dir / "config.json").read_text()), vocab_size=999, num_hidden_layers=1)
        (tmp_path / "vocab.json").write_text(json.dumps(cfg))
        extra, expect = ["--student-config", tmp_path / "vocab.json"], "vocab_size 999 differs"
    elif case == "resume_without_checkpoint":
        extra, expect = ["--resume"], "--resume: no checkpoint"
    elif case == "empty_data":
        (tmp_path / "empty.tsv").write_text("")
        data, expect = tmp_path / "empty.tsv", "empty"
    else:
        (tmp_path / "empty.txt").write_text("\n\n  \n")
        teacher, data, expect = tiny_gpt2_dir, tmp_path / "empty.txt", "empty"
    result = run_cli("distill", teacher, "-o", tmp_path / "out", "--data", data, "--max-steps", "2", *extra)
    assert result.exit_code == 2, result.output
    assert expect in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert no_output(tmp_path)


def test_existing_output_is_refused_before_training(run_cli, tiny_bert_dir, sst_file, tmp_path):
    (tmp_path / "out").mkdir()
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file)
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_layer_map_must_be_integers(run_cli, tiny_bert_dir, sst_file, tmp_path):
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--layer-map", "0,x")
    assert result.exit_code == 2 and "'0,x'" in result.output


def test_a_pruned_checkpoint_and_a_narrow_config_train_with_hidden_and_attention_losses(
        run_cli, tiny_bert_dir, sst_file, tmp_path):
    from test_distill_student import pruned_student

    pruned = pruned_student(tmp_path / "pruned")
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "a", "--data", sst_file, "--student", pruned,
                     "--alpha-hidden", "1", "--alpha-attn", "1", "--max-steps", "3", "--batch-size", "16", "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["pruned_heads"] == {"0": [0, 1], "1": [3]} and saved["intermediate_size"] == 48
    assert json.loads(result.stdout)["training"]["teacher_cache"] is None  # internals need the live teacher

    cfg = dict(json.loads((tiny_bert_dir / "config.json").read_text()), num_hidden_layers=2, hidden_size=16,
               num_attention_heads=2, intermediate_size=32)
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "b", "--data", sst_file, "--student-config",
                     tmp_path / "small.json", "--alpha-hidden", "1", "--hidden-loss", "cosine", "--alpha-attn", "1",
                     "--max-steps", "3", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "config.json").read_text())["hidden_size"] == 16


def test_options_from_a_config_file(run_cli, tiny_bert_dir, sst_file, tmp_path):
    (tmp_path / "distill.yaml").write_text("layer-map: [0, 3]\nmax-steps: 2\nbatch-size: 16\nalpha-ce: 1.0\n")
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file,
                     "--config", tmp_path / "distill.yaml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layer_map"] == [0, 3] and report["training"]["steps"] == 2
    assert report["losses"]["ce"]["weight"] == 1.0
