"""The bad-input matrix, by construction: every option of every stage gets its bad values from its
own declaration (type, range, choices, finiteness), run through the CLI in-process. A new option is
covered the day it is declared. Each case asserts exit 2, one line naming the option, no traceback,
nothing written and the inputs unchanged."""

from __future__ import annotations

import pytest
from conftest import tree_hash

from compressor.stages import STAGES


def _bad_values(option):
    if option.kind == "int":
        yield "abc"
        yield "1.5"
        if option.min is not None:
            yield str(int(option.min) - 1 if not option.min_open else int(option.min))
        if option.max is not None:
            yield str(int(option.max) + 1)
    elif option.kind == "float":
        yield "abc"
        yield "nan"
        yield "inf"
        yield "-inf"
        if option.min is not None:
            yield str(option.min if option.min_open else option.min - 1)
        if option.max is not None:
            yield str(option.max * 2 + 1)
    elif option.kind == "choice":
        yield "no-such-choice"


CASES = [
    pytest.param(stage.name, option, value, id=f"{stage.name}--{option.name}={value}")
    for stage in STAGES.values()
    for option in stage.options()
    for value in _bad_values(option)
]


def _required(stage_name, tmp_path, teacher, data):
    """Good values for everything a command needs, so only the option under test is wrong."""
    if stage_name == "bench":
        return [str(teacher), "--baseline", str(teacher), "--data", str(data)]
    args = [str(teacher), "-o", str(tmp_path / "out")]
    if stage_name == "distill":
        args += ["--data", str(data)]
    if stage_name in ("prune",):
        args += ["--method", "ffn=0.25"]
    if stage_name == "quantize":
        args += ["--method", "int8-dynamic"]
    return args


@pytest.mark.parametrize("stage_name, option, value", CASES)
def test_every_bad_option_value_exits_2_naming_the_option(run_cli, tmp_path, tiny_bert_dir, sst_file, stage_name,
                                                          option, value):
    before = tree_hash(tiny_bert_dir)
    args = _required(stage_name, tmp_path, tiny_bert_dir, sst_file)
    flag_args = [option.flag, value]
    result = run_cli(stage_name, *args, *flag_args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("compress: error: "), result.stderr
    assert option.flag in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert tree_hash(tiny_bert_dir) == before


def test_the_matrix_covers_every_numeric_and_choice_option():
    covered = {(stage, option.name) for stage, option, _ in (c.values for c in CASES)}
    expected = {(s.name, o.name) for s in STAGES.values() for o in s.options() if o.kind in ("int", "float", "choice")}
    assert covered == expected
    assert len(CASES) > 150
