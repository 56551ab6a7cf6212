"""Bad inputs of the OpenVINO backend: exit 2, one line naming the fault, nothing written."""

from __future__ import annotations

import shutil
import sys

import pytest

from conftest import tree_hash


def _cli(*args: str):
    from click.testing import CliRunner

    from compressor.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _assert_bad(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, line


@pytest.fixture(scope="module")
def ov_dir(tiny_bert_dir, tmp_path_factory):
    pytest.importorskip("openvino")
    out = tmp_path_factory.mktemp("ovbad") / "bert-ov"
    result = _cli("export-openvino", tiny_bert_dir, "-o", out, "--parity-samples", "4")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def without_openvino(monkeypatch):
    """The extra not installed: importing openvino or nncf fails."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("openvino", "nncf"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "nncf", None)


def test_export_without_the_extra_names_it(without_openvino, tiny_bert_dir, tmp_path):
    result = _cli("export-openvino", tiny_bert_dir, "-o", tmp_path / "out")
    _assert_bad(result, 'pip install "compress[openvino]"')
    assert not (tmp_path / "out").exists()


def test_openvino_artifact_without_the_extra_names_it(ov_dir, tiny_bert_dir, sst_file, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] in ("openvino", "nncf"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "nncf", None)
    _assert_bad(_cli("bench", ov_dir, "--baseline", tiny_bert_dir, "--data", sst_file, "--no-memory"),
                'pip install "compress[openvino]"')
    _assert_bad(_cli("quantize", ov_dir, "-o", tmp_path / "q", "--method", "int8-nncf", "--calib-data", sst_file),
                'pip install "compress[openvino]"')
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("damage", ["xml", "bin"])
def test_corrupt_ir_is_refused(ov_dir, sst_file, tiny_bert_dir, tmp_path, damage):
    broken = shutil.copytree(ov_dir, tmp_path / "broken")
    target = broken / f"openvino_model.{damage}"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])  # truncated, as by an interrupted copy
    before = tree_hash(broken)
    _assert_bad(_cli("quantize", broken, "-o", tmp_path / "q", "--method", "int8-nncf", "--calib-data", sst_file),
                "openvino_model.xml")
    _assert_bad(_cli("bench", broken, "--baseline", tiny_bert_dir, "--data", sst_file, "--no-memory"),
                "openvino_model.xml")
    assert not (tmp_path / "q").exists() and tree_hash(broken) == before


def test_ir_whose_inputs_do_not_match_the_tokenizer(ov_dir, sst_file, tmp_path):
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    odd = shutil.copytree(ov_dir, tmp_path / "odd")
    pixels = ops.parameter([1, 3, 8, 8], np.float32, name="pixel_values")
    pixels.output(0).set_names({"pixel_values"})
    weight = ops.constant(np.ones((192, 2), dtype=np.float32))
    logits = ops.matmul(ops.reshape(pixels, ops.constant(np.array([1, 192])), False), weight, False, False)
    ov.save_model(ov.Model([logits], [pixels], "odd"), str(odd / "openvino_model.xml"))
    _assert_bad(_cli("quantize", odd, "-o", tmp_path / "q", "--method", "int8-nncf", "--calib-data", sst_file),
                "pixel_values", "tokenizer")
    assert not (tmp_path / "q").exists()


def test_int8_nncf_needs_calibration_data(ov_dir, tmp_path):
    _assert_bad(_cli("quantize", ov_dir, "-o", tmp_path / "q", "--method", "int8-nncf"), "--calib-data")
    assert not (tmp_path / "q").exists()


def test_openvino_methods_on_other_formats_say_what_to_do(tiny_bert_dir, sst_file, tmp_path):
    _assert_bad(_cli("quantize", tiny_bert_dir, "-o", tmp_path / "q", "--method", "int8-nncf", "--calib-data",
                     sst_file), "export-openvino")
