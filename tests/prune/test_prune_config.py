"""Method-spec parsing and config validation: every bad value is a BadInputError naming it."""

from __future__ import annotations

import pytest

from compressor.data import DataSpec
from compressor.errors import BadInputError
from compressor.prune.config import Method, PruneConfig, parse_methods


def test_combined_spec_is_parsed_and_ordered_layers_heads_ffn_sparsity():
    methods = parse_methods("magnitude=0.5,ffn=0.3,heads=0.25,layers=[1,3]")
    assert [m.name for m in methods] == ["layers", "heads", "ffn", "magnitude"]
    assert methods[0].layers == (1, 3) and methods[0].amount is None
    assert methods[1].amount == 0.25 and methods[2].amount == 0.3 and methods[3].amount == 0.5


def test_amount_flag_fills_methods_without_their_own():
    assert parse_methods("heads", 0.25) == (Method("heads", 0.25),)
    assert parse_methods("heads,ffn=0.5", 0.25) == (Method("heads", 0.25), Method("ffn", 0.5))


def test_2_4_has_fixed_amount():
    assert parse_methods("2:4") == (Method("2:4", 0.5),)
    assert parse_methods("ffn=0.3,2:4")[-1] == Method("2:4", 0.5)


@pytest.mark.parametrize("spec, amount, fragment", [
    ("heads", 0.0, "--amount 0"),
    ("heads", 1.0, "--amount 1"),
    ("heads", -0.5, "--amount -0.5"),
    ("heads=1", None, "heads=1"),
    ("ffn=0", None, "ffn=0"),
    ("ffn=1.5", None, "ffn=1.5"),
    ("ffn=abc", None, "'abc'"),
    ("channels=0.3", None, "'channels'"),
    ("heads", None, "needs an amount"),
    ("heads=0.2,heads=0.3", None, "given twice"),
    ("magnitude=0.5,2:4", None, "one sparsity pattern"),
    ("2:4=0.5", None, "takes no amount"),
    ("layers=[1,x]", None, "layers=[1,3]"),
    ("layers=[1,1]", None, "listed twice"),
    ("heads=0.2,", None, "empty method"),
    ("heads=0.2,ffn=0.3", 0.5, "--amount 0.5"),
])
def test_bad_specs_name_the_value(spec, amount, fragment):
    with pytest.raises(BadInputError, match=None) as info:
        parse_methods(spec, amount)
    assert fragment in info.value.message


def test_config_validation():
    methods = parse_methods("heads=0.25")
    with pytest.raises(BadInputError, match="--importance gradient: needs calibration data"):
        PruneConfig(methods=methods, importance="gradient")
    with pytest.raises(BadInputError, match="--importance 'weird'"):
        PruneConfig(methods=methods, importance="weird")
    with pytest.raises(BadInputError, match="--recover-data: recovery needs --recover-from"):
        PruneConfig(methods=methods, recover_data=DataSpec("x.tsv"))
    with pytest.raises(BadInputError, match="needs --recover-data"):
        PruneConfig(methods=methods, recover_from="teacher")
    with pytest.raises(BadInputError, match="--recover-steps None"):
        PruneConfig(methods=methods, recover_from="teacher", recover_data=DataSpec("x.tsv"))
    with pytest.raises(BadInputError, match="--device 'tpu'"):
        PruneConfig(methods=methods, device="tpu")
    config = PruneConfig(methods=methods, data=DataSpec("cal.tsv"))
    assert config.use_gradients and config.metric_data == DataSpec("cal.tsv")
    assert config.to_dict()["method_spec"] == "heads=0.25"
    assert not PruneConfig(methods=methods).use_gradients
    assert PruneConfig(methods="ffn=0.3,heads=0.25").methods == parse_methods("heads=0.25,ffn=0.3")
