"""A diverged run stops with exit 3 naming the step and writes nothing; a NaN model is never saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressor.data import DataSpec
from compressor.distill import DistillConfig, distill
from compressor.distill.trainer import Distiller
from compressor.errors import RuntimeFailureError


def only(directory: Path, *names: str) -> bool:
    return sorted(p.name for p in directory.iterdir()) == sorted(names)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_absurd_lr_stops_at_the_step_the_loss_diverged(family, tiny_bert_dir, tiny_gpt2_dir, sst_file, corpus_file,
                                                       tmp_path):
    # The CLI refuses --lr 1e30 before any work (its declared range); the library API does not, and the
    # run itself must then stop at the step it diverged.
    teacher, data = (tiny_bert_dir, sst_file) if family == "bert" else (tiny_gpt2_dir, corpus_file)
    config = DistillConfig(data=DataSpec(str(data)), lr=1e30, max_steps=6, batch_size=8, max_length=32,
                           checkpoint_steps=1)
    with pytest.raises(RuntimeFailureError) as error:
        distill(teacher, tmp_path / "out", config)
    assert "distill: loss became nan at step 2 (kd nan; lr " in error.value.message
    assert error.value.message.endswith("nothing written")
    assert error.value.exit_code == 3
    assert list(tmp_path.iterdir()) == []  # no output, no temp sibling, no checkpoints


def test_the_cli_refuses_an_absurd_lr_before_any_work(run_cli, tiny_bert_dir, sst_file, tmp_path):
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--lr", "1e30")
    assert result.exit_code == 2
    assert "--lr 1e+30: out of range" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_prune_recovery_that_diverges_writes_nothing(tiny_bert_dir, sst_file, tmp_path):
    from compressor.prune import PruneConfig, parse_methods, prune

    config = PruneConfig(methods=parse_methods("ffn=0.5", None), recover_from=str(tiny_bert_dir),
                         recover_data=DataSpec(str(sst_file)), recover_steps=4, recover_lr=1e30, recover_batch_size=8)
    with pytest.raises(RuntimeFailureError, match="distill: loss became nan at step"):
        prune(tiny_bert_dir, tmp_path / "out", config)
    assert list(tmp_path.iterdir()) == []


def test_a_student_with_nan_weights_is_never_saved(tiny_bert_dir, sst_file, tmp_path, monkeypatch):
    """The loss is checked every step; weights at evaluation and before saving (an inf weight can leave
    the loss finite)."""
    original = Distiller.run

    def run_then_corrupt(self):
        report = original(self)
        with torch.no_grad():
            self.acc.unwrap_model(self.module).student.classifier.weight[0, 0] = float("inf")
        return report

    monkeypatch.setattr(Distiller, "run", run_then_corrupt)
    config = DistillConfig(data=DataSpec(str(sst_file)), student_layers=2, max_steps=2, batch_size=16)
    with pytest.raises(RuntimeFailureError, match=r"distill: the student at step 2 has inf weights "
                                                  r"\(classifier.weight; lower --lr\); nothing written"):
        distill(tiny_bert_dir, tmp_path / "out", config)
    assert list(tmp_path.iterdir()) == []


def test_prune_never_saves_a_nan_model(tiny_gpt2_dir, tmp_path, monkeypatch):
    from compressor.prune import PruneConfig, stage

    original = stage._prune_structure

    def prune_then_corrupt(model, *args, **kwargs):
        done = original(model, *args, **kwargs)
        with torch.no_grad():
            model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
        return done

    monkeypatch.setattr(stage, "_prune_structure", prune_then_corrupt)
    with pytest.raises(RuntimeFailureError, match=r"prune: the pruned model has nan weights "
                                                  r"\(transformer.h.0.mlp.c_fc.weight\); nothing written"):
        stage.prune(tiny_gpt2_dir, tmp_path / "out", PruneConfig(methods="ffn=0.5"))
    assert list(tmp_path.iterdir()) == []
