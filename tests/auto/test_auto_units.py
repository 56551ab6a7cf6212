"""compress auto's pure parts: the front, durations, the backend registry, content-named stages."""

from __future__ import annotations

import pytest

from compressor.auto import pareto
from compressor.auto.config import parse_duration
from compressor.auto.space import BACKENDS, Backend, Context, Point, content_named, stages_for
from compressor.errors import BadInputError


def test_front_keeps_only_undominated_rows():
    rows = [{"trial": 0, "cost": 0.5, "objective_value": 2.0}, {"trial": 1, "cost": 1.5, "objective_value": 1.0},
            {"trial": 2, "cost": 1.0, "objective_value": 3.0}, {"trial": 3, "cost": None, "objective_value": None}]
    assert [r["trial"] for r in pareto.front(rows)] == [1, 0]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("60m", 3600), ("1.5h", 5400), ("120", 120)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_names_the_flag():
    with pytest.raises(BadInputError, match="--time-budget 'soon'"):
        parse_duration("soon")


def test_a_backend_whose_stage_method_or_extra_is_missing_is_left_out():
    from importlib.util import find_spec

    assert BACKENDS["onnx"].available() and BACKENDS["pytorch"].available()
    assert not Backend("tflite", "tflite", "export-tflite", ("int8-dynamic",)).available()  # no such stage
    assert not Backend("onnx", "onnx", "export-onnx", ("int3-magic",)).available()  # no such method
    assert not Backend("onnx", "onnx", "export-onnx", ("int8-dynamic",), requires=("no_such_extra_xyz",)).available()
    installed = find_spec("openvino") is not None and find_spec("nncf") is not None
    assert BACKENDS["openvino"].available() == installed


def _point(**kw):
    base = dict(student_layers=2, distill_steps=8, alpha_hidden=0.0, alpha_attn=0.0, prune_heads=0.25,
                prune_ffn=0.0, prune_layers=0.0, vocab=False, backend="onnx", quantize="int8-dynamic")
    return Point(**{**base, **kw})


def test_trials_sharing_a_distillation_share_its_stage_name():
    ctx = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                  seed=0)
    a = content_named(stages_for(_point(), ctx, 4))
    b = content_named(stages_for(_point(prune_heads=0.5), ctx, 4))
    assert [s["run"] for s in a] == ["distill", "prune", "export-onnx", "quantize"]
    assert a[0]["name"] == b[0]["name"] and a[1]["name"] != b[1]["name"]
    assert b[2]["from"] == b[1]["name"]


def test_a_given_student_starts_at_pruning_and_vocab_trim_is_a_prune_stage():
    ctx = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                  seed=0)
    stages = stages_for(_point(student="/s", distill_steps=0, vocab=True, recover_steps=0), ctx, 4)
    assert [s["run"] for s in stages] == ["prune", "prune", "export-onnx", "quantize"]
    assert stages[0]["from"] == "student" and "recover-from" not in stages[0]["with"]
    assert stages[1]["with"]["method"] == "vocab"
