"""distill and prune write the source's storage dtype by default (``--dtype auto``), train and prune in
float32 whatever it is, and report sizes with their dtypes."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.data import DataSpec
from compressor.distill import DistillConfig, distill
from compressor.dtypes import storage_dtype
from compressor.prune import PruneConfig, prune


def file_dtypes(directory: Path) -> Counter:
    with (directory / "model.safetensors").open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return Counter(v["dtype"] for k, v in header.items() if k != "__metadata__")


@pytest.fixture(scope="module")
def fp16_bert(tiny_bert_dir, tmp_path_factory) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("fp16") / "bert"
    AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).half().save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


def test_storage_dtype_reads_the_weights_then_the_config(fp16_bert, tiny_bert_dir, tmp_path):
    assert storage_dtype(fp16_bert, {}) == "float16"  # from the safetensors header
    assert storage_dtype(tiny_bert_dir, {"dtype": "float16"}) == "float32"  # the stored weights win
    assert storage_dtype(tmp_path, {"torch_dtype": "bfloat16"}) == "bfloat16"  # no safetensors: config.json
    assert storage_dtype(tmp_path, {}) == "float32"


def test_distill_keeps_an_fp16_teachers_dtype_and_trains_in_float32(fp16_bert, sst_file, tmp_path):
    base = dict(data=DataSpec(str(sst_file)), student_layers=2, max_steps=3, batch_size=16)
    report = distill(fp16_bert, tmp_path / "auto", DistillConfig(**base))
    assert set(file_dtypes(tmp_path / "auto")) == {"F16"}
    assert json.loads((tmp_path / "auto/config.json").read_text())["dtype"] == "float16"
    assert report["dtype"] == "float16" and report["teacher"]["dtype"] == "float16"
    assert report["size_bytes"] < report["teacher"]["size_bytes"]  # 2 of 4 layers, like for like
    distill(fp16_bert, tmp_path / "f32", DistillConfig(**base, dtype="float32"))
    assert set(file_dtypes(tmp_path / "f32")) == {"F32"}
    # The same float32 training either way: the fp16 student is the fp32 one rounded at save.
    f16, f32 = load_file(str(tmp_path / "auto/model.safetensors")), load_file(str(tmp_path / "f32/model.safetensors"))
    assert all(torch.equal(f16[k], f32[k].half()) for k in f32)


def test_distill_dtype_option_on_the_command_line(run_cli, tiny_bert_dir, sst_file, tmp_path):
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "bf16", "--data", sst_file, "--max-steps", "2",
                     "--batch-size", "16", "--dtype", "bfloat16", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dtype"] == "bfloat16" and report["teacher"]["dtype"] == "float32"
    assert set(file_dtypes(tmp_path / "bf16")) == {"BF16"}
    assert "MB bfloat16 (teacher" in result.stderr
    bad = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "x", "--data", sst_file, "--dtype", "float8")
    assert bad.exit_code == 2 and "--dtype 'float8': choose one of auto, float32, float16, bfloat16" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_prune_keeps_the_sources_dtype_and_reports_sizes_like_for_like(run_cli, fp16_bert, tmp_path):
    result = run_cli("prune", fp16_bert, "-o", tmp_path / "p16", "--method", "ffn=0.5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dtype"] == report["dtype_before"] == "float16"
    assert set(file_dtypes(tmp_path / "p16")) == {"F16"}
    assert report["size_bytes"] < report["size_bytes_before"]
    assert "MB float16 (was" in result.stderr
    report32 = prune(fp16_bert, tmp_path / "p32", PruneConfig(methods="ffn=0.5", dtype="float32"))
    assert report32["dtype"] == "float32" and set(file_dtypes(tmp_path / "p32")) == {"F32"}
    p16, p32 = load_file(str(tmp_path / "p16/model.safetensors")), load_file(str(tmp_path / "p32/model.safetensors"))
    assert all(torch.equal(p16[k], p32[k].half()) for k in p32)


def test_prune_recovery_from_an_fp16_teacher_writes_fp16(fp16_bert, sst_file, tmp_path):
    config = PruneConfig(methods="ffn=0.5", recover_from=str(fp16_bert), recover_data=DataSpec(str(sst_file)),
                         recover_steps=2, recover_batch_size=16)
    report = prune(fp16_bert, tmp_path / "out", config)
    assert report["dtype"] == "float16" and set(file_dtypes(tmp_path / "out")) == {"F16"}
    assert report["recovery"]["distill"]["dtype"] == "float32"  # the intermediate stays exact
