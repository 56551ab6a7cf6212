"""Pure pieces of the quantize stage on plain values and tensors: config validation, the method table,
SmoothQuant math, the sensitivity/fallback decision, the reduce_range rule, module surgery."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from quantize_models import one_torch_thread  # noqa: F401 (autouse fixture)

from compressor.data import DataSpec
from compressor.errors import BadInputError
from compressor.evaluation import kl_divergence
from compressor.quantize.config import QuantizeConfig, method_for
from compressor.quantize.isa import detect
from compressor.quantize.sensitivity import Budget, Unit, fall_back, float_reasons, measure
from compressor.quantize.smoothquant import SmoothQuantLinear, smooth_linear, smoothing_scales
from compressor.families.gpt2 import conv1d_to_linear
from compressor.quantize.torch_modules import swapped, tied_output_linear

DATA = DataSpec("data.tsv")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "int3"}, "--method 'int3': unknown method"),
        ({"method": "int8-static"}, "--method int8-static needs calibration data"),
        ({"method": "smoothquant"}, "--method smoothquant needs calibration data"),
        ({"method": "int4", "algorithm": "gptq"}, "--algorithm gptq needs calibration data"),
        ({"method": "int4", "algorithm": "awq"}, "--algorithm awq needs calibration data"),
        ({"method": "int4", "algorithm": "hqq"}, "--algorithm 'hqq': unknown algorithm"),
        ({"method": "fp16", "algorithm": "rtn"}, "--algorithm rtn: applies to --method int4 or int8"),
        ({"method": "int8-dynamic", "max_accuracy_drop": 1.0}, "--max-accuracy-drop needs evaluation data"),
        ({"method": "int8-dynamic", "eval_data": DATA, "max_accuracy_drop": -1.0}, "--max-accuracy-drop -1.0: must be a non-negative"),
        ({"method": "int8-dynamic", "eval_data": DATA, "max_perplexity_increase": float("nan")}, "--max-perplexity-increase nan"),
        ({"method": "int8-dynamic", "eval_data": DATA, "max_accuracy_drop": "1"}, "--max-accuracy-drop '1': not a number"),
        ({"method": "int8-dynamic", "eval_data": DATA, "max_accuracy_drop": 1.0, "max_perplexity_increase": 1.0},
         "--max-accuracy-drop and --max-perplexity-increase: give one budget"),
        ({"method": "int8-static", "calib_data": DATA, "calib_method": "kl"}, "--calib-method 'kl': unknown"),
        ({"method": "int4-weight", "block_size": 48}, "--block-size 48: must be a power of two"),
        ({"method": "int4-weight", "accuracy_level": 7}, "--accuracy-level 7"),
        ({"method": "smoothquant", "calib_data": DATA, "alpha": 1.5}, "--alpha 1.5"),
    ],
)
def test_config_refuses_bad_values_naming_them(kwargs, message):
    with pytest.raises(BadInputError, match="^" + re.escape(message)):
        QuantizeConfig(**kwargs)


def test_config_defaults_resolve_algorithm_and_serialise():
    config = QuantizeConfig(method="int4", calib_data=DATA)
    assert config.resolved_algorithm == "rtn"
    assert config.to_dict()["algorithm"] == "rtn"
    assert config.to_dict()["calib_data"] == {"path": "data.tsv"}
    assert QuantizeConfig(method="int8-dynamic").resolved_algorithm is None


@pytest.mark.parametrize(
    ("method", "fmt", "names"),
    [
        ("int8-static", "pytorch", "smoothquant"),
        ("int4-weight", "pytorch", "--method int4"),
        ("fp16", "pytorch", "export-onnx --fp16"),
        ("int4", "onnx", "--method int4-weight"),
        ("int8", "onnx", "--method int8-dynamic"),
        ("smoothquant", "onnx", "--method int8-static"),
    ],
)
def test_a_method_for_the_other_format_names_the_one_that_applies(method, fmt, names):
    with pytest.raises(BadInputError) as info:
        method_for(method, fmt)
    assert f"--method {method}: applies to" in info.value.message and names in info.value.message


def test_int8_dynamic_exists_for_both_formats():
    assert method_for("int8-dynamic", "onnx").engine == "onnxruntime"
    assert method_for("int8-dynamic", "pytorch").engine == "torch.ao"


# -- SmoothQuant math -------------------------------------------------------------------------------
def test_smoothing_scales_follow_the_formula():
    act = torch.tensor([8.0, 1.0, 0.5])
    weight = torch.tensor([[2.0, 1.0, 4.0], [-1.0, 0.5, 1.0]])  # (out, in): column max 2, 1, 4
    scales = smoothing_scales(act, weight, alpha=0.5)
    expected = torch.tensor([math.sqrt(8) / math.sqrt(2), 1.0, math.sqrt(0.5) / math.sqrt(4)])
    torch.testing.assert_close(scales, expected)
    # alpha 1 moves all of the activation range into the weights
    torch.testing.assert_close(smoothing_scales(act, weight, alpha=1.0), act)


def test_smoothed_linear_computes_the_same_function_with_flatter_inputs():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    x[:, 3] *= 50  # an outlier channel
    smoothed = smooth_linear(linear, x.abs().amax(0), alpha=0.5)
    assert isinstance(smoothed, SmoothQuantLinear)
    torch.testing.assert_close(smoothed(x), linear(x), rtol=1e-5, atol=1e-4)
    flattened = (x * smoothed.input_scale).abs().amax(0)
    assert flattened.max() / flattened.min() < x.abs().amax(0).max() / x.abs().amax(0).min()


# -- sensitivity and fallback -----------------------------------------------------------------------
UNITS = [Unit("a", "MatMul"), Unit("b", "MatMul"), Unit("c", "Attention"), Unit("d", "MatMul")]
COST = {"a": 0.2, "b": 3.0, "c": 1.0, "d": 0.0}  # accuracy points each unit costs when quantized


def _accuracy_without(floats):
    return {"accuracy": 0.9 - sum(COST[u] for u in COST if u not in {f.name for f in floats}) / 100}


def test_sensitivity_is_measured_per_unit_and_ranked_most_sensitive_first():
    budget = Budget("accuracy", 1.0)
    ranked = measure(UNITS, lambda u: ({"accuracy": 0.9 - COST[u.name] / 100}, COST[u.name] / 10), budget,
                     {"accuracy": 0.9})
    assert [s.unit.name for s in ranked] == ["b", "c", "a", "d"]
    assert ranked[0].loss == pytest.approx(3.0)


def test_fallback_keeps_the_shortest_prefix_of_the_ranking_that_meets_the_budget():
    budget = Budget("accuracy", 1.0)
    before = {"accuracy": 0.9}
    ranked = measure(UNITS, lambda u: (_accuracy_without([x for x in UNITS if x.name != u.name]), 0.0), budget, before)
    start = _accuracy_without([])
    result = fall_back(ranked, _accuracy_without, budget, before, last=(start, budget.loss(before, start)))
    assert result.within_budget
    # 4.2 pt quantized; b in float leaves 1.2 pt (over 1.0), b and c leave 0.2 pt
    assert [u.name for u in result.float_units] == ["b", "c"]
    assert [round(a["loss"], 6) for a in result.attempts] == [1.2, 0.2]
    reasons = float_reasons(ranked, result.float_units, budget)
    assert reasons[0]["layer"] == "b" and "rank 1 of 4" in reasons[0]["reason"]


def test_fallback_fails_when_even_one_quantized_layer_is_over_budget():
    budget = Budget("accuracy", 0.0)
    before = {"accuracy": 0.9}
    ranked = measure(UNITS, lambda u: (_accuracy_without([x for x in UNITS if x.name != u.name]), 0.0), budget, before)
    # d costs nothing alone, so with a zero budget b, c and a go back to float and d stays quantized
    result = fall_back(ranked, _accuracy_without, budget, before, last=(_accuracy_without([]), 4.2))
    assert result.within_budget and [u.name for u in result.float_units] == ["b", "c", "a"]
    costly = {**COST, "d": 0.5}
    ranked = measure(UNITS, lambda u: ({"accuracy": 0.9 - costly[u.name] / 100}, 0.0), budget, before)

    def without(floats):
        return {"accuracy": 0.9 - sum(costly[u] for u in costly if u not in {f.name for f in floats}) / 100}

    result = fall_back(ranked, without, budget, before, last=(without([]), 4.7))
    assert not result.within_budget
    assert len(result.float_units) == 3 and len(result.attempts) == 3  # one layer always stays quantized


def test_budget_losses_are_points_and_percent():
    assert Budget("accuracy", 1).loss({"accuracy": 0.90}, {"accuracy": 0.885}) == pytest.approx(1.5)
    assert Budget("perplexity", 1).loss({"perplexity": 100.0}, {"perplexity": 102.0}) == pytest.approx(2.0)
    assert Budget.for_task("causal-lm", max_perplexity_increase=2.0) == Budget("perplexity", 2.0, "max_perplexity_increase")
    assert Budget.for_task("text-classification", max_accuracy_drop=0.5) == Budget("accuracy", 0.5, "max_accuracy_drop")
    # every higher-is-better metric (entity F1, Spearman) is a drop in points on the 0..100 scale
    assert Budget("f1", 1).loss({"f1": 0.90}, {"f1": 0.89}) == pytest.approx(1.0)
    assert Budget.for_task("token-classification", max_f1_drop=0.5).flag == "--max-f1-drop"
    assert Budget.for_task("sentence-embedding", max_score_drop=0.5).flag == "--max-score-drop"
    assert Budget.for_task("text-classification", max_f1_drop=0.5) is None


def test_kl_divergence_is_zero_for_identical_predictions_and_positive_otherwise():
    p = np.log(np.array([[0.9, 0.1], [0.2, 0.8]]))
    q = np.log(np.array([[0.6, 0.4], [0.2, 0.8]]))
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence(p, q) == pytest.approx((0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)) / 2)


# -- reduce_range -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "machine", "reduce_range"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", False),
        ({"avx2", "avx_vnni"}, "x86_64", False),
        ({"avx2", "avx512f"}, "x86_64", True),
        ({"avx2"}, "x86_64", True),
        (set(), "aarch64", False),
    ],
)
def test_reduce_range_follows_the_instruction_set(flags, machine, reduce_range):
    isa = detect(flags, machine)
    assert isa.reduce_range is reduce_range
    assert isa.reason


# -- module surgery ---------------------------------------------------------------------------------
def test_conv1d_to_linear_is_exact_and_swaps_restore(tiny_gpt2_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    ids = torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        before = model(ids).logits
        assert conv1d_to_linear(model) == 16
        after = model(ids).logits
    assert torch.equal(before, after)
    assert tied_output_linear(model) == "lm_head"
    original = model.transformer.h[0].mlp.c_fc
    with swapped(model, {"transformer.h.0.mlp.c_fc": torch.nn.Identity()}):
        assert isinstance(model.transformer.h[0].mlp.c_fc, torch.nn.Identity)
    assert model.transformer.h[0].mlp.c_fc is original
