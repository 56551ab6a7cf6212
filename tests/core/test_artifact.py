"""The artifact contract: atomic output, refusal to overwrite, lineage in compress.json."""

from __future__ import annotations

import json

import pytest

from compressor.artifact import PYTORCH, StageTimer, open_artifact, staged_output, write_manifest
from compressor.errors import BadInputError
from compressor.manifest import SCHEMA_VERSION, Manifest


def test_staged_output_renames_only_on_success(tmp_path):
    dst = tmp_path / "out"
    with staged_output(dst, sources=[]) as tmp:
        (tmp / "file").write_text("x")
        assert not dst.exists() and tmp.name.startswith(".out.tmp-")
    assert (dst / "file").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_output_removes_everything_on_failure(tmp_path):
    dst = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_output(dst, sources=[]) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_refused_without_force(tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep").write_text("old")
    with pytest.raises(BadInputError, match="already exists; pass --force"):
        with staged_output(dst, sources=[]):
            pass
    assert (dst / "keep").read_text() == "old"
    with staged_output(dst, sources=[], force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in dst.iterdir()) == ["new"]


def test_output_inside_input_refused(tiny_bert_dir):
    with pytest.raises(BadInputError, match="overlaps the input"):
        with staged_output(tiny_bert_dir / "sub", sources=[tiny_bert_dir]):
            pass


def test_manifest_lineage_appends(tiny_bert_dir, tmp_path):
    source = open_artifact(tiny_bert_dir)
    first = tmp_path / "a"
    with staged_output(first, sources=[source.path]) as out:
        (out / "config.json").write_text((tiny_bert_dir / "config.json").read_text())
        (out / "model.safetensors").write_bytes((tiny_bert_dir / "model.safetensors").read_bytes())
        write_manifest(out, source=source, source_hash=source.content_hash(), stage="s1", config={"k": 1},
                       report={"r": 2}, timer=StageTimer(), fmt=PYTORCH, seed=7)
    a = open_artifact(first)
    second = tmp_path / "b"
    with staged_output(second, sources=[a.path]) as out:
        write_manifest(out, source=a, source_hash=a.content_hash(), stage="s2", config={}, report={},
                       timer=StageTimer(), fmt=PYTORCH)
    manifest = Manifest.read(second)
    assert manifest.schema_version == SCHEMA_VERSION
    assert [s.stage for s in manifest.stages] == ["s1", "s2"]
    assert manifest.stages[0].seed == 7 and manifest.stages[0].config == {"k": 1}
    assert manifest.stages[1].source_hash == a.content_hash()
    assert manifest.stages[0].source_hash == source.content_hash()
    assert "torch" in manifest.stages[0].versions and "compress" in manifest.stages[0].versions


def test_content_hash_ignores_manifest_but_not_weights(bert_copy):
    art = open_artifact(bert_copy)
    before = art.content_hash()
    (bert_copy / "compress.json").write_text("{}")
    assert art.content_hash() == before
    (bert_copy / "vocab.txt").write_text("changed")
    assert art.content_hash() != before


def test_malformed_manifest(bert_copy):
    (bert_copy / "compress.json").write_text("{not json")
    with pytest.raises(BadInputError, match="compress.json: not valid JSON"):
        open_artifact(bert_copy)


def test_stage_timer_records_cpu_seconds_and_old_manifests_still_load(tiny_bert_dir, tmp_path):
    timer = StageTimer()
    sum(i * i for i in range(300_000))  # burn some CPU
    assert timer.cpu_s > 0
    source = open_artifact(tiny_bert_dir)
    with staged_output(tmp_path / "a", sources=[source.path]) as out:
        write_manifest(out, source=source, source_hash=source.content_hash(), stage="s1", config={},
                       report={}, timer=timer, fmt=PYTORCH)
    data = json.loads((tmp_path / "a" / "compress.json").read_text())
    assert data["stages"][-1]["cpu_time_s"] > 0
    del data["stages"][-1]["cpu_time_s"]  # as written before CPU time was recorded
    (tmp_path / "a" / "compress.json").write_text(json.dumps(data))
    assert Manifest.read(tmp_path / "a").stages[-1].cpu_time_s is None
