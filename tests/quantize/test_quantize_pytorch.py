"""PyTorch methods end to end on tiny checkpoints: what is quantized, what the report says, and that
the saved artifact reloads (through ``load_model``) to exactly the outputs the model had before saving."""

from __future__ import annotations

import json

import pytest
import torch
from quantize_models import one_torch_thread, report_of  # noqa: F401 (autouse fixture)
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from compressor.artifact import open_artifact
from compressor.data import DataSpec
from compressor.evaluation import task_batches
from compressor.tasks import CAUSAL_LM
from compressor.loading import load_model, load_tokenizer
from compressor.formats import torch_quantized as torch_format
from compressor.quantize import QuantizeConfig
from compressor.quantize.torch_engine import DynamicEngine
from compressor.quantize.torch_inc import WeightOnlyEngine


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(5, vocab, (3, 16), generator=torch.Generator().manual_seed(1))


def _assert_reload_matches_pre_save(engine, tmp_path, auto, src, ids):
    """Quantize in memory, record outputs, save, rebuild from config with the recipe: same outputs."""
    candidate = engine.build([])
    with torch.no_grad():
        before = candidate.model(ids).logits
    out = tmp_path / "saved"
    out.mkdir()
    files, recipe = engine.save(candidate, out)
    assert files == ["quantized.safetensors"]
    fresh = auto.from_config(auto.from_pretrained(src).config).eval()
    reloaded = torch_format.load(fresh, out, json.loads(json.dumps(recipe)))  # the recipe survives JSON
    with torch.no_grad():
        after = reloaded(ids).logits
    assert torch.equal(before, after)
    return recipe


def test_int8_dynamic_bert_cli_report_and_reload(run_cli, tiny_bert_dir, sst_file, tmp_path):
    out = tmp_path / "int8"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--eval-data", sst_file, "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["method"] == "int8-dynamic" and report["format"] == "pytorch"
    assert report["ops"]["by_op_type"]["Linear"] == {"quantized": 26, "float": 0}  # 4 x 6 + pooler + classifier
    assert report["size_bytes_after"] < report["size_bytes_before"]
    assert report["metrics"]["accuracy_before"] == pytest.approx(report["metrics"]["accuracy_after"], abs=0.05)
    assert report["eval"]["samples"] == 64
    assert report["reload_check"]["max_abs_diff"] == 0.0
    assert report["wall_time_s"] > 0
    manifest = json.loads((out / "compress.json").read_text())
    assert manifest["stages"][-1]["stage"] == "quantize" and manifest["stages"][-1]["report"]["reload"]["modules"]
    reloaded = load_model(open_artifact(out))
    ids = _ids(40)
    with torch.no_grad():
        assert reloaded(ids).logits.shape == (3, 2)
    assert type(reloaded.bert.encoder.layer[0].attention.self.query).__module__.startswith("torch.ao.nn.quantized")
    # transformers alone refuses it clearly instead of loading random float weights.
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForSequenceClassification.from_pretrained(out)


def test_int8_dynamic_equals_torch_ao_applied_directly(tiny_bert_dir, tmp_path):
    from compressor.quantize import quantize

    quantize(tiny_bert_dir, tmp_path / "q", QuantizeConfig(method="int8-dynamic", per_channel=False))
    reloaded = load_model(open_artifact(tmp_path / "q"))
    reference = torch.ao.quantization.quantize_dynamic(
        AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    ids = _ids(40)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, reference(ids).logits)


@pytest.mark.parametrize("method", ["int8-dynamic", "smoothquant"])
def test_dynamic_and_smoothquant_reload_exactly(tiny_bert_dir, sst_file, tmp_path, method):
    config = QuantizeConfig(method=method, calib_data=DataSpec(str(sst_file)), calib_samples=8)
    engine = DynamicEngine(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir), method, config,
                           "text-classification")
    batches = task_batches("--calib-data", "text-classification", load_tokenizer(tiny_bert_dir), config.calib_data,
                           label2id={"0": 0, "1": 1}, samples=8, max_length=32, batch_size=1, require_labels=False)
    info = engine.calibrate(batches)
    recipe = _assert_reload_matches_pre_save(engine, tmp_path, AutoModelForSequenceClassification, tiny_bert_dir, _ids(40))
    kinds = {entry["kind"] for entry in recipe["modules"].values()}
    if method == "smoothquant":
        assert info["rows"] == 8
        assert kinds == {"smoothquant-wrapper", "int8-dynamic-linear"}
        scale = engine.quantized.bert.encoder.layer[0].attention.self.query.input_scale
        assert not torch.allclose(scale, torch.ones_like(scale))  # smoothing actually applied
    else:
        assert kinds == {"int8-dynamic-linear"}


@pytest.mark.parametrize(("method", "algorithm"), [("int4", "rtn"), ("int8", "rtn"), ("int4", "gptq"), ("int4", "awq")])
def test_weight_only_gpt2_reloads_exactly(tiny_gpt2_dir, corpus_file, tmp_path, method, algorithm):
    config = QuantizeConfig(method=method, algorithm=algorithm, calib_data=DataSpec(str(corpus_file)), calib_samples=4)
    engine = WeightOnlyEngine(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), method, config, CAUSAL_LM)
    batches = task_batches("--calib-data", CAUSAL_LM, load_tokenizer(tiny_gpt2_dir), config.calib_data,
                           label2id=None, samples=4, max_length=32, batch_size=2, require_labels=False)
    engine.calibrate(batches)
    assert len(engine.quantized_names) == 16  # every block projection; the tied lm_head stays float
    assert engine.default_float[0]["layer"] == "lm_head" and "tied" in engine.default_float[0]["reason"]
    assert engine.float_state_changed() == []  # scales live inside the quantized layers
    recipe = _assert_reload_matches_pre_save(engine, tmp_path, AutoModelForCausalLM, tiny_gpt2_dir, _ids(300))
    assert recipe["conv1d_to_linear"] is True
    assert recipe["aliases"] == {"lm_head.weight": "transformer.wte.weight"}
    woq = [e["init"] for e in recipe["modules"].values() if e["kind"] == "inc-weight-only-linear"]
    assert {init["bits"] for init in woq} == {4 if method == "int4" else 8}


def test_int4_gptq_cli_on_gpt2(run_cli, tiny_gpt2_dir, corpus_file, tmp_path):
    out = tmp_path / "int4"
    result = run_cli("quantize", tiny_gpt2_dir, "-o", out, "--method", "int4", "--algorithm", "gptq",
                     "--calib-data", corpus_file, "--calib-samples", "4", "--eval-data", corpus_file,
                     "--eval-samples", "4", "--max-length", "32", "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    assert report["algorithm"] == "gptq" and report["settings"]["bits"] == 4 and report["settings"]["group_size"] == 32
    assert report["calibration"]["rows"] == 4
    assert report["ops"]["by_op_type"]["Linear"] == {"quantized": 16, "float": 1}
    assert report["metrics"]["perplexity_increase_pct"] == pytest.approx(
        (report["metrics"]["perplexity_after"] / report["metrics"]["perplexity_before"] - 1) * 100)
    assert report["fallback"]["default_float"][0]["layer"] == "lm_head"
    assert report["reload_check"]["max_abs_diff"] == 0.0
    model = load_model(open_artifact(out))
    assert model.lm_head.weight is model.transformer.wte.weight  # tying restored on reload
    assert report["size_bytes_after"] < report["size_bytes_before"]


def test_pytorch_quantization_refuses_cuda_device(run_cli, tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic", "--device", "cuda")
    assert result.exit_code == 2
    assert "--device cuda" in result.stderr
    assert not out.exists()
