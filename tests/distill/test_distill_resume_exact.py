"""``--resume`` reaches bit-identical weights, also when the interrupted epoch is served from the
teacher cache (a row's cached targets were computed in the batch the row was first seen in)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.data import DataSpec
from compressor.distill import DistillConfig, distill
from compressor.distill.trainer import Distiller
from conftest import ASSETS
from factories import WORDS


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def write_varied_sst(path: Path, rows: int) -> Path:
    """Labelled rows of 2 to 20 words, so batches need different padding."""
    rng = random.Random(1)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 20))) + f"\t{i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


def batch_sensitive_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the teacher's logits depend on the batch they are computed in, as real ones do in their last
    bits (padding width, kernel blocking), but large enough for a tiny model to show it."""
    original = Distiller.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)

        def hook(module, args, kwargs, output):
            tilt = torch.linspace(0, 1, output.logits.shape[-1])  # not a constant: softmax ignores those
            output.logits = output.logits + 1e-4 * kwargs["input_ids"].float().mean() * tilt
            return output

        self.teacher.register_forward_hook(hook, with_kwargs=True)

    monkeypatch.setattr(Distiller, "__init__", init)


def interrupted_then_resumed(teacher: Path, out: Path, config: DistillConfig, stop_at: int,
                             monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run until the checkpoint at ``stop_at``, die there (KeyboardInterrupt, as on Ctrl-C), then
    ``--resume`` in the same process with the same settings."""
    original = Distiller.save_checkpoint

    def save_then_die(self):
        original(self)
        if self.state.step == stop_at:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Distiller, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            distill(teacher, out, config)
    assert not out.exists()
    return distill(teacher, out, dataclasses.replace(config, resume=True))


CASES = {
    # 64 rows / 8 = 8 steps per epoch: the interruption at step 10 is inside epoch 2, served by the cache.
    "bert": dict(student_layers=2, batch_size=8, max_steps=11, checkpoint_steps=5, alpha_ce=0.5),
    # 73 blocks of 32 tokens / 8 = 10 steps per epoch; the top-k cache serves epoch 2.
    "gpt2": dict(student_layers=2, batch_size=8, max_steps=13, checkpoint_steps=4, max_length=32, top_k=8,
                 alpha_ce=0.5),
}


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_resume_inside_a_cached_epoch_is_bit_identical(family, tiny_bert_dir, tiny_gpt2_dir, corpus_file, tmp_path,
                                                       monkeypatch):
    teacher = tiny_bert_dir if family == "bert" else tiny_gpt2_dir
    data = write_varied_sst(tmp_path / "sst.tsv", 64) if family == "bert" else corpus_file
    config = DistillConfig(data=DataSpec(str(data)), **CASES[family])
    stop_at = 12 if family == "gpt2" else 10
    batch_sensitive_teacher(monkeypatch)

    full = distill(teacher, tmp_path / "full", config)
    resumed = interrupted_then_resumed(teacher, tmp_path / "out", config, stop_at, monkeypatch)

    assert stop_at > full["training"]["steps_per_epoch"]  # the resumed epoch is one the cache serves
    assert resumed["training"]["steps"] == full["training"]["steps"]
    assert differing(weights(tmp_path / "full"), weights(tmp_path / "out")) == []
    # The rebuilt cache is the uninterrupted run's: same rows, same hits and misses.
    assert resumed["training"]["teacher_cache"] == full["training"]["teacher_cache"]
    assert full["training"]["teacher_cache"]["batch_hits"] > 0
    assert not (tmp_path / ".out.checkpoints").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (ASSETS / "teachers").exists(), reason="../shared/assets is not beside this checkout")
def test_real_minilm_resume_is_bit_identical(tmp_path, monkeypatch):
    """The case of issue #16 (max |diff| 4.9e-06 before): MiniLM-L6 SST-2 into 3 layers, resumed in epoch 2."""
    lines = (ASSETS / "glue/SST-2/train.tsv").read_text().splitlines()
    rows = random.Random(0).sample(lines[1:], 96)
    data = tmp_path / "sst96.tsv"
    data.write_text("\n".join([lines[0], *rows]) + "\n")
    config = DistillConfig(data=DataSpec(str(data)), student_layers=3, max_steps=20, batch_size=8, max_length=64,
                           alpha_ce=0.5, checkpoint_steps=3)
    teacher = ASSETS / "teachers/minilm-l6-sst2"
    distill(teacher, tmp_path / "full", config)
    interrupted_then_resumed(teacher, tmp_path / "out", config, 15, monkeypatch)
    assert differing(weights(tmp_path / "full"), weights(tmp_path / "out")) == []
