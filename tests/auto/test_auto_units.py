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
    assert stages[1]["with"]["method"] == "vocab" and stages[1]["with"]["data"] == "/d"
    limited = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                      seed=0, vocab_data="/text", vocab_size=15000, recover_data="/unlabelled")
    stages = stages_for(_point(student="/s", distill_steps=0, vocab=True, recover_steps=0), limited, 4)
    assert stages[1]["with"]["method"] == "vocab=15000" and stages[1]["with"]["data"] == "/text"
    recovered = stages_for(_point(student="/s", distill_steps=0, recover_steps=40), limited, 4)[0]["with"]
    assert (recovered["recover-data"], recovered["data"], recovered["recover-steps"]) == ("/unlabelled", "/d", 40)
    assert stages_for(_point(student="/s", distill_steps=0, recover_steps=40), ctx, 4)[0]["with"]["recover-data"] == "/d"


def test_every_distillation_of_a_run_shares_its_teacher_cache_unless_it_needs_the_live_teacher():
    ctx = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                  seed=0, teacher_cache="/run/teacher-cache")
    distill, prune = stages_for(_point(recover_steps=40), ctx, 4)[:2]
    assert distill["with"]["teacher-cache"] == prune["with"]["recover-teacher-cache"] == "/run/teacher-cache"
    live = stages_for(_point(alpha_hidden=0.5, recover_steps=40), ctx, 4)
    assert "teacher-cache" not in live[0]["with"] and live[1]["with"]["recover-teacher-cache"] == "/run/teacher-cache"
    assert "recover-teacher-cache" not in stages_for(_point(recover_steps=0), ctx, 4)[1]["with"]
    none = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                   seed=0)  # a task whose teacher outputs are not cached (token classification)
    assert not any("teacher-cache" in str(s["with"]) for s in stages_for(_point(recover_steps=40), none, 4))


@pytest.mark.parametrize("method", ["int8-dynamic", "int8-static"])
def test_int4_embedding_tables_reach_the_onnx_int8_trials(method):
    ctx = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                  seed=0, embeddings="int4", embedding_block=64)
    quantize = stages_for(_point(quantize=method), ctx, 4)[-1]
    assert quantize["run"] == "quantize" and quantize["with"]["method"] == method
    assert (quantize["with"]["embeddings"], quantize["with"]["block-size"]) == ("int4", 64)
    assert ("calib-data" in quantize["with"]) == (method == "int8-static")
    plain = Context(teacher="/t", data="/d", eval_data="/e", teacher_layers=4, max_length=32, batch_size=8, lr=1e-4,
                    seed=0)
    assert "embeddings" not in stages_for(_point(quantize=method), plain, 4)[-1]["with"]
    assert "embeddings" not in stages_for(_point(backend="pytorch", quantize="int8-dynamic"), ctx, 4)[-1]["with"]


# -- choosing the winner: held-out confirmation rows, finalists re-timed -------------------------------

def test_the_confirmation_split_is_seeded_disjoint_and_keeps_the_order():
    from compressor.auto.holdout import split_rows

    rows = [f"row {i}" for i in range(100)]
    search, confirm = split_rows(rows, 0.3, seed=0)
    assert len(confirm) == 30 and len(search) == 70 and not set(search) & set(confirm)
    assert sorted(search + confirm) == sorted(rows)
    assert search == sorted(search, key=rows.index) and confirm == sorted(confirm, key=rows.index)
    assert split_rows(rows, 0.3, seed=0) == (search, confirm) and split_rows(rows, 0.3, seed=1)[1] != confirm


def test_formats_that_cannot_split_and_small_data_confirm_on_nothing_and_say_why(tmp_path):
    from compressor.auto.holdout import prepare

    text = tmp_path / "dev.txt"
    text.write_text("one document\n\nanother\n")
    held = prepare(str(text), None, 0.3, 0, tmp_path / "data")
    assert held.confirm is None and held.search == str(text) and "--confirm-data" in held.note
    small = tmp_path / "small.tsv"
    small.write_text("sentence\tlabel\n" + "a film\t1\n" * 30)
    held = prepare(str(small), None, 0.3, 0, tmp_path / "data")
    assert held.confirm is None and "9 confirmation rows" in held.note
    assert not (tmp_path / "data").exists()  # nothing written when nothing is split
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("sentence,label\n" + '"a film\nin two lines",1\n' * 100)
    held = prepare(str(quoted), None, 0.3, 0, tmp_path / "data")
    assert held.confirm is None and "span several lines" in held.note
    given = prepare(str(small), str(text), 0.3, 0, tmp_path / "data")
    assert (given.search, given.confirm) == (str(small), str(text))


def _row(trial, objective):
    return {"trial": trial, "configuration": f"t{trial}", "cost": 0.5, "objective_value": objective,
            "artifact": f"/a/{trial}"}


@pytest.mark.parametrize("confirmed, winner, groups", [
    ({0, 1, 2, 3}, 0, 1),  # the fastest re-timed finalist that confirms
    ({1, 2}, 2, 1),  # re-timing reorders the group: trial 2 measured faster than trial 1
    ({4}, 4, 2),  # nothing in the first group confirms: the next group is measured
    (set(), None, 2),  # nothing confirms: no winner
])
def test_the_winner_is_the_fastest_finalist_within_budget_on_the_confirmation_rows(monkeypatch, tmp_path,
                                                                                   confirmed, winner, groups):
    from compressor.auto import finalists

    retimed = {0: 0.7, 1: 0.9, 2: 0.8, 3: 2.0, 4: 3.0}  # trial -> best of the side-by-side rounds
    calls = []

    def measure(rows, **kwargs):
        calls.append([r["trial"] for r in rows])
        return [{"trial": r["trial"], "configuration": r["configuration"], "confirm_cost": 0.0 if r["trial"] in
                 confirmed else 2.0, "confirmed": r["trial"] in confirmed, "objective": retimed[r["trial"]]}
                for r in rows]

    monkeypatch.setattr(finalists, "measure", measure)
    rows = [_row(4, 0.5), _row(0, 0.1), _row(3, 0.4), _row(1, 0.2), _row(2, 0.3)]
    chosen, measured = finalists.choose(rows, teacher="/t", data="/d", config=None, size=4, rounds=3,
                                        report_dir=tmp_path)
    assert calls[0] == [0, 1, 2, 3] and len(calls) == groups  # fastest on the search rows first
    assert (chosen["trial"] if chosen else None) == winner
    assert [m["trial"] for m in measured] == [t for group in calls for t in group]


@pytest.mark.parametrize("depth, layers_pruned", [(3, 0.34), (2, 0.0)])
def test_a_given_student_of_three_or_more_layers_can_lose_one(depth, layers_pruned):
    import optuna

    from compressor.auto.space import Space, sample, warm_start

    space = Space(student_layers=(2,), distill_steps=(), backends=("onnx",), vocab=(False,), students=("/s",),
                  student_depths=(depth,), recover_steps=(100,))
    params = {"student": "/s", "backend": "onnx", "recover_steps": 100, "prune_heads": 0.0, "prune_ffn": 0.3,
              "prune_layers": 0.34, "vocab": False, "quantize_onnx": "int8-dynamic"}
    point = sample(optuna.trial.FixedTrial(params), space)
    assert point.student == "/s" and point.prune_layers == layers_pruned
    assert point.prune_method() == ("ffn=0.3,layers=0.34" if depth == 3 else "ffn=0.3")
    assert ("prune_layers" in warm_start(space)) == (depth >= 3)


def test_trials_that_built_the_same_artifact_take_one_finalist_slot(monkeypatch, tmp_path):
    from compressor.auto import finalists

    calls = []

    def measure(rows, **kwargs):
        calls.append([r["trial"] for r in rows])
        return [{"trial": r["trial"], "configuration": "", "confirm_cost": 0.0, "confirmed": True,
                 "objective": 1.0 + r["trial"], "size_mb": 1.0} for r in rows]

    monkeypatch.setattr(finalists, "measure", measure)
    rows = [_row(t, 0.1 * t) for t in range(5)]
    for row in rows[1:3]:  # trials 1 and 2 repeat trial 0's configuration: the same artifact
        row["artifact"] = "/a/0"
    chosen, measured = finalists.choose(rows, teacher="/t", data="/d", config=None, size=3, rounds=1,
                                        report_dir=tmp_path)
    assert calls == [[0, 3, 4]] and chosen["trial"] == 0


def test_past_the_deadline_no_further_finalists_are_measured(monkeypatch, tmp_path):
    from compressor.auto import finalists

    calls = []

    def measure(rows, **kwargs):
        calls.append([r["trial"] for r in rows])
        return [{"trial": r["trial"], "configuration": "", "confirm_cost": 2.0, "confirmed": False, "objective": 1.0}
                for r in rows]

    monkeypatch.setattr(finalists, "measure", measure)
    rows = [_row(t, 0.1 * t) for t in range(6)]
    chosen, measured = finalists.choose(rows, teacher="/t", data="/d", config=None, size=2, rounds=1,
                                        report_dir=tmp_path, deadline=0.0)  # long past
    assert chosen is None and calls == [[0, 1]] and len(measured) == 2


@pytest.mark.parametrize("tie, winner, tied_with", [
    (0.0, 1, None),  # no tolerance: the fastest
    (0.05, 2, [1]),  # trial 2 is 4% slower and smaller on disk: tied, the smaller wins
    (0.10, 2, [1, 3]),  # trial 3 (9% slower) is tied too but larger than trial 2
])
def test_finalists_tied_on_timing_go_to_the_smallest(tie, winner, tied_with):
    from compressor.auto.finalists import pick

    def record(trial, objective, size_mb, confirmed=True):
        return {"trial": trial, "objective": objective, "size_mb": size_mb, "confirmed": confirmed}

    records = [record(1, 1.00, 16.6), record(2, 1.04, 9.2), record(3, 1.09, 12.0), record(4, 0.90, 5.0, False)]
    chosen = pick(records, tie)
    assert chosen["trial"] == winner and chosen.get("tied_with") == tied_with
    assert pick([record(4, 0.9, 5.0, False)], tie) is None  # nothing confirmed: no winner


def test_prune_ranges_narrow_the_space_and_the_first_trial_stays_inside_it():
    from types import SimpleNamespace

    from compressor.auto.config import share_list
    from compressor.auto.space import back_off, build_space, warm_start

    assert share_list("0.5, 0.25,0.5", "--prune-heads") == (0.25, 0.5)
    for bad, message in (("0.5,1", r"in \[0, 1\)"), ("a", "comma-separated shares"), (",", "at least one")):
        with pytest.raises(BadInputError, match=message):
            share_list(bad, "--prune-ffn")
    config = SimpleNamespace(student_layers=(3,), vocab="off", distill_steps=(10,), students=(), backends=("onnx",),
                             recover_steps=(40,), prune_heads=(0.5, 0.75), prune_ffn=(0.5,), prune_layers=(0.0,))
    space = build_space(config, 6)
    assert (space.prune_heads, space.prune_ffn, space.prune_layers) == ((0.5, 0.75), (0.5,), (0.0,))
    first = warm_start(space)
    assert (first["prune_heads"], first["prune_ffn"], first["prune_layers"]) == (0.5, 0.5, 0.0)
    assert back_off(space) is None  # no unpruned point to back off to
    default = build_space(SimpleNamespace(**{**vars(config), "prune_heads": None, "prune_ffn": None,
                                             "prune_layers": None}), 6)
    assert (default.prune_heads, default.prune_ffn, default.prune_layers) == ((0.0, 0.25, 0.5), (0.0, 0.3, 0.5),
                                                                             (0.0, 0.34))
    assert back_off(default)["prune_heads"] == back_off(default)["prune_ffn"] == 0.0


def test_an_already_measured_point_is_found_and_a_run_of_them_stops_the_search():
    import optuna

    from compressor.auto.search import EXHAUSTED_AFTER, _Search, duplicate_of

    study = optuna.create_study()
    point = {"prune_heads": 0.5, "prune_ffn": 0.5, "quantize": "int8-static", "extra": {}}
    study.add_trial(optuna.trial.create_trial(value=0.7, user_attrs={"point": point}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"point": {**point, "quantize": "none"}}))
    assert duplicate_of(study, dict(point)) == 0
    assert duplicate_of(study, {**point, "quantize": "none"}) is None  # only a completed trial measured it
    stops = []
    study.stop = lambda: stops.append(True)
    search = _Search.__new__(_Search)
    for n in range(EXHAUSTED_AFTER):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                                  user_attrs={"point": point, "duplicate_of": 0}))
        search.stop_when_exhausted(study, None)
        assert bool(stops) == (n == EXHAUSTED_AFTER - 1)


def test_a_trial_sampling_a_measured_configuration_is_skipped_before_anything_runs(tmp_path):
    import dataclasses
    from types import SimpleNamespace

    import optuna

    from compressor.auto.search import _Search
    from compressor.auto.space import Space, sample

    space = Space(student_layers=(2,), distill_steps=(), backends=("onnx",), vocab=(True,), students=("/s",),
                  student_depths=(3,), recover_steps=(40,), prune_heads=(0.5,), prune_ffn=(0.5,), prune_layers=(0.0,))
    params = {"student": "/s", "backend": "onnx", "recover_steps": 40, "prune_heads": 0.5, "prune_ffn": 0.5,
              "prune_layers": 0.0, "vocab": True, "quantize_onnx": "int8-static"}
    point = dataclasses.asdict(sample(optuna.trial.FixedTrial(params), space))
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params=params, value=0.5, user_attrs={"point": point},
                                              distributions={k: optuna.distributions.CategoricalDistribution([v])
                                                             for k, v in params.items()}))
    inputs = SimpleNamespace(space=space, run_dir=tmp_path, task=None, context=None)  # nothing past the check runs
    search = _Search(SimpleNamespace(time_budget_s=60.0), inputs, deadline=1e12)
    study.enqueue_trial(params)
    study.optimize(search.objective, n_trials=1)
    skipped = study.trials[-1]
    assert skipped.state == optuna.trial.TrialState.PRUNED and skipped.user_attrs["duplicate_of"] == 0
    assert "already measured" in skipped.user_attrs["reason"] and not (tmp_path / "trials").exists()
