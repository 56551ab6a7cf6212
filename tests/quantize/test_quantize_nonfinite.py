"""Non-finite calibration ranges or scales stop quantize with exit 3 and nothing written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from quantize_models import one_torch_thread  # noqa: F401 (autouse fixture)

from compressor.export import ExportConfig, export_onnx


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("nonfinite") / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig())
    return out


def test_nan_static_calibration_range_fails_with_exit_3(run_cli, bert_onnx, sst_file, tmp_path, monkeypatch):
    from onnxruntime.quantization.calibrate import MinMaxCalibrater, TensorData

    original = MinMaxCalibrater.compute_data
    poisoned: list[str] = []

    def nan_range(self):
        ranges = original(self)
        name = sorted(ranges.keys())[0]
        ranges.data[name] = TensorData(lowest=np.array(np.nan, dtype=np.float32), highest=ranges[name].highest)
        poisoned.append(name)
        return ranges

    monkeypatch.setattr(MinMaxCalibrater, "compute_data", nan_range)
    out = tmp_path / "out"
    result = run_cli("quantize", bert_onnx, "-o", out, "--method", "int8-static", "--calib-data", sst_file,
                     "--calib-samples", "4", "--calib-method", "minmax")
    assert result.exit_code == 3, result.output
    assert f"int8-static calibration range of tensor {poisoned[0]!r} is not finite ([nan] .. " in result.stderr
    assert result.stderr.rstrip().endswith("nothing written")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_nan_scale_of_torch_int8_dynamic_fails_with_exit_3(run_cli, tiny_bert_dir, tmp_path, monkeypatch):
    from compressor.quantize import torch_engine

    original = torch_engine.quantize_linear_dynamic

    def nan_scale(linear, per_channel):
        module = original(linear, per_channel)
        weight = module.weight()
        module.set_weight_bias(torch._make_per_tensor_quantized_tensor(weight.int_repr(), float("nan"), 0),
                               module.bias())
        return module

    monkeypatch.setattr(torch_engine, "quantize_linear_dynamic", nan_scale)
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic")
    assert result.exit_code == 3, result.output
    assert ("quantize int8-dynamic: layer bert.encoder.layer.0.attention.self.query has nan quantization values "
            "(weight_scales); nothing written") in result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_int4_of_a_model_with_a_nan_weight_fails_with_exit_3(run_cli, tiny_gpt2_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    src = tmp_path / "src"
    shutil.copytree(tiny_gpt2_dir, src)
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.transformer.h[1].mlp.c_fc.weight[3, 5] = float("nan")
    model.save_pretrained(src)
    out = tmp_path / "out"
    result = run_cli("quantize", src, "-o", out, "--method", "int4", "--block-size", "32")
    assert result.exit_code == 3, result.output
    assert "quantize int4: layer transformer.h.1.mlp.c_fc has nan quantization values" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]
