"""The training loop: repeatable under a seed, resumable, keeps the best student, data parallel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.data import DataSpec
from compressor.distill import DistillConfig, distill
from compressor.distill.trainer import Distiller


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def bert_config(sst_file: Path, **fields) -> DistillConfig:
    base = dict(data=DataSpec(str(sst_file)), student_layers=2, max_steps=6, batch_size=16, alpha_ce=0.5)
    return DistillConfig(**{**base, **fields})


def test_a_seeded_cpu_run_is_repeatable(tiny_bert_dir, sst_file, tmp_path):
    distill(tiny_bert_dir, tmp_path / "a", bert_config(sst_file, seed=7))
    distill(tiny_bert_dir, tmp_path / "b", bert_config(sst_file, seed=7))
    distill(tiny_bert_dir, tmp_path / "c", bert_config(sst_file, seed=8))
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same(weights(tmp_path / "a"), weights(tmp_path / "c"))


def test_resume_continues_an_interrupted_run_to_the_same_weights(tiny_bert_dir, sst_file, tmp_path, monkeypatch):
    full = bert_config(sst_file, max_steps=7, checkpoint_steps=2)
    distill(tiny_bert_dir, tmp_path / "full", full)

    original = Distiller.save_checkpoint

    def save_then_die(self):  # the machine goes down after the step-6 checkpoint, mid-way through epoch 2
        original(self)
        if self.state.step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(Distiller, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_bert_dir, tmp_path / "out", full)
    monkeypatch.setattr(Distiller, "save_checkpoint", original)
    checkpoint = tmp_path / ".out.checkpoints" / "latest"
    assert json.loads((checkpoint / "trainer.json").read_text())["step"] == 6
    assert not (tmp_path / "out").exists()

    report = distill(tiny_bert_dir, tmp_path / "out", bert_config(sst_file, max_steps=7, checkpoint_steps=2, resume=True))
    assert report["training"]["steps"] == 7
    assert same(weights(tmp_path / "out"), weights(tmp_path / "full"))
    assert not (tmp_path / ".out.checkpoints").exists()  # cleaned up once the output is in place


def test_resume_refuses_a_checkpoint_made_with_other_settings(tiny_bert_dir, sst_file, tmp_path, monkeypatch):
    original = Distiller.save_checkpoint

    def save_then_die(self):
        original(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Distiller, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_bert_dir, tmp_path / "out", bert_config(sst_file, checkpoint_steps=2))
    from compressor.errors import BadInputError

    with pytest.raises(BadInputError, match=r"different settings \(lr 0.0001 -> 0.0005\)"):
        distill(tiny_bert_dir, tmp_path / "out", bert_config(sst_file, checkpoint_steps=2, resume=True, lr=5e-4))
    assert not (tmp_path / "out").exists()


def test_the_best_student_by_the_eval_metric_is_the_one_saved(tiny_gpt2_dir, corpus_file, tmp_path):
    config = DistillConfig(data=DataSpec(str(corpus_file)), eval_data=DataSpec(str(corpus_file)), max_length=32,
                           max_steps=8, eval_steps=2, batch_size=8, lr=3e-2, alpha_ce=1.0)
    report = distill(tiny_gpt2_dir, tmp_path / "out", config)
    curve = [p["perplexity"] for p in report["eval_curve"]]
    assert len(curve) == 4
    assert report["metrics"]["perplexity"] == min(curve)
    # Re-score the saved student: it is the best one, not the last one.
    from compressor.artifact import open_artifact
    from compressor.data.batching import lm_blocks
    from compressor.data import load_texts
    from compressor.inference import TorchRunner
    from compressor.loading import load_model, load_tokenizer
    from compressor import metrics

    student = open_artifact(tmp_path / "out")
    blocks = lm_blocks(load_tokenizer(student.path), load_texts(DataSpec(str(corpus_file))), block_size=32)
    runner = TorchRunner(load_model(student))
    nll = [metrics.next_token_nll(runner.logits({"input_ids": blocks[i : i + 16]}), blocks[i : i + 16])
           for i in range(0, len(blocks), 16)]
    import numpy as np

    assert metrics.perplexity(np.concatenate(nll)) == pytest.approx(min(curve), rel=1e-4)


def test_gradient_accumulation_counts_optimizer_steps(tiny_bert_dir, sst_file, tmp_path):
    report = distill(tiny_bert_dir, tmp_path / "out", bert_config(sst_file, max_steps=None, epochs=1, grad_accum=2))
    assert report["training"]["steps"] == 2 and report["training"]["steps_per_epoch"] == 2  # 4 batches / 2


def test_lm_top_k_cache_serves_later_epochs(tiny_gpt2_dir, corpus_file, tmp_path):
    config = DistillConfig(data=DataSpec(str(corpus_file)), max_length=32, epochs=2, batch_size=16, top_k=8)
    cache = distill(tiny_gpt2_dir, tmp_path / "out", config)["training"]["teacher_cache"]
    assert cache["batch_hits"] == cache["batch_misses"] > 0
    assert cache["bytes"] == cache["rows"] * 32 * 8 * (2 + 4)  # fp16 values + int32 ids per position


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_launch_two_processes_writes_one_valid_student(tiny_bert_dir, sst_file, tmp_path):
    """Data parallel with no code change. ``--cpu`` alone makes accelerate start one process unless
    MPI is set up, so two CPU processes are launched the torchrun way (``--multi_gpu`` on a machine
    without GPUs: gloo on the CPU)."""
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "compressor.cli", "distill", str(tiny_bert_dir),
               "-o", str(out), "--data", str(sst_file), "--eval-data", str(sst_file), "--max-steps", "4",
               "--batch-size", "8", "--checkpoint-steps", "2", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])  # one report: rank 0 only
    assert report["training"]["processes"] == 2
    assert report["training"]["samples"] == 4 * 8 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no stray temp or checkpoint dirs
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_hidden_layers == 2
    assert json.loads((out / "compress.json").read_text())["stages"][-1]["report"]["training"]["processes"] == 2
