"""distill --teacher-cache (and prune --recover-teacher-cache): teacher outputs kept across runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.data import DataSpec
from compressor.distill import DistillConfig, distill
from compressor.distill.teacher_cache import TeacherCache, cache_file
from compressor.errors import BadInputError


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def config(sst_file: Path, **fields) -> DistillConfig:
    base = dict(data=DataSpec(str(sst_file)), student_layers=2, max_steps=4, batch_size=16)
    return DistillConfig(**{**base, **fields})


def test_a_second_run_reads_every_batch_from_the_file_and_trains_the_same_weights(tiny_bert_dir, sst_file, tmp_path):
    cache_dir = tmp_path / "cache"
    live = distill(tiny_bert_dir, tmp_path / "live", config(sst_file))
    first = distill(tiny_bert_dir, tmp_path / "first", config(sst_file, teacher_cache=str(cache_dir)))
    files = list(cache_dir.glob("teacher-*.pt"))
    assert len(files) == 1
    assert first["training"]["teacher_cache"]["rows_loaded"] == 0
    assert first["training"]["teacher_cache"]["batch_hits"] == 0
    second = distill(tiny_bert_dir, tmp_path / "second", config(sst_file, teacher_cache=str(cache_dir)))
    stats = second["training"]["teacher_cache"]
    assert stats["rows_loaded"] == first["training"]["teacher_cache"]["rows"] > 0
    assert stats["batch_misses"] == 0 and stats["batch_hits"] == 4  # the teacher never ran
    a, b, c = weights(tmp_path / "live"), weights(tmp_path / "first"), weights(tmp_path / "second")
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) and torch.equal(b[k], c[k]) for k in a)
    assert live["training"]["teacher_cache"]["rows_loaded"] == 0


def test_a_longer_run_extends_the_file_and_other_batching_gets_its_own(tiny_bert_dir, sst_file, tmp_path):
    cache_dir = tmp_path / "cache"
    distill(tiny_bert_dir, tmp_path / "short", config(sst_file, max_steps=2, teacher_cache=str(cache_dir)))
    longer = distill(tiny_bert_dir, tmp_path / "long", config(sst_file, max_steps=4, teacher_cache=str(cache_dir)))
    stats = longer["training"]["teacher_cache"]
    assert stats["rows_loaded"] == 32 and stats["batch_hits"] == 2 and stats["batch_misses"] == 2
    stored = torch.load(next(cache_dir.glob("teacher-*.pt")), weights_only=True)
    assert stored["indices"].numel() == stats["rows"] == 64
    assert stored["targets"]["logits"].shape == (64, 2)
    other = distill(tiny_bert_dir, tmp_path / "seed", config(sst_file, seed=3, teacher_cache=str(cache_dir)))
    assert other["training"]["teacher_cache"]["rows_loaded"] == 0  # other batches: other last bits
    assert len(list(cache_dir.glob("teacher-*.pt"))) == 2


def test_rows_of_different_lengths_round_trip(tmp_path):
    cache = TeacherCache()
    cache.put([4, 9], {"topk_values": torch.ones(2, 3, 2)})
    cache.put([1], {"topk_values": torch.full((1, 5, 2), 2.0)})
    path = cache_file(tmp_path, {"k": 1})
    cache.save(path)
    again = TeacherCache()
    assert again.load(path) == 3 and again.stats()["rows_loaded"] == 3
    assert again.get([1], "cpu")["topk_values"].shape == (1, 5, 2)
    assert torch.equal(again.get([4, 9], "cpu")["topk_values"], torch.ones(2, 3, 2))


def test_an_unreadable_file_is_a_miss_not_a_failure(tmp_path):
    path = tmp_path / "teacher-0.pt"
    path.write_bytes(b"not a torch file")
    cache = TeacherCache()
    assert cache.load(path) == 0 and len(cache) == 0


@pytest.mark.parametrize("fields, message", [
    ({"cache_teacher": False}, "--no-cache-teacher"),
    ({"alpha_hidden": 1.0}, "need the live teacher"),
])
def test_bad_combinations_exit_2(sst_file, tmp_path, fields, message):
    with pytest.raises(BadInputError, match=message):
        config(sst_file, teacher_cache=str(tmp_path), **fields)


def test_cli_flag_and_unwritable_directory(tiny_bert_dir, sst_file, tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--student-layers", "1",
                     "--max-steps", "1", "--teacher-cache", blocker / "sub")
    assert result.exit_code == 2 and "--teacher-cache" in result.output
    assert not (tmp_path / "out").exists()
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--student-layers", "1",
                     "--max-steps", "2", "--teacher-cache", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 1


def test_prune_recovery_shares_the_cache(tiny_bert_dir, sst_file, tmp_path, run_cli):
    args = ["--method", "ffn=0.5", "--data", sst_file, "--recover-from", tiny_bert_dir, "--recover-data", sst_file,
            "--recover-steps", "2", "--recover-teacher-cache", tmp_path / "cache"]
    first = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "a", *args)
    assert first.exit_code == 0, first.output
    second = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "b", *args)
    assert second.exit_code == 0, second.output
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    report = json.loads((tmp_path / "b" / "compress.json").read_text())["stages"][-1]["report"]
    stats = report["recovery"]["distill"]["training"]
    assert stats["teacher_cache"]["batch_misses"] == 0 and stats["teacher_cache"]["rows_loaded"] == 64
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 1
    result = run_cli("prune", tiny_bert_dir, "-o", tmp_path / "c", "--method", "ffn=0.5",
                     "--recover-teacher-cache", tmp_path / "cache")
    assert result.exit_code == 2 and "--recover-from" in result.output
