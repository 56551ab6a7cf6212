"""Exit codes CI can trust: 1 only for a failed gate; any crash is 3 with one line; Ctrl-C is 130 and
SIGTERM 143, with nothing left at the output path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compressor.cli.main import main


@pytest.mark.parametrize("error", [RuntimeError("boom in the engine"), MemoryError("out of memory")])
def test_an_unexpected_exception_in_a_stage_exits_3_with_one_line(run_cli, tiny_bert_dir, tmp_path, monkeypatch,
                                                                 error):
    import compressor.export.stage as export_stage

    def crash(*args, **kwargs):
        raise error

    monkeypatch.setattr(export_stage, "export_onnx", crash)
    result = run_cli("export-onnx", tiny_bert_dir, "-o", tmp_path / "out")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines == [f"compress: internal error: {type(error).__name__}: {error} (run with -v for the traceback)"]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_verbose_shows_the_traceback_of_a_crash(run_cli, tiny_bert_dir, tmp_path, monkeypatch):
    import compressor.export.stage as export_stage

    monkeypatch.setattr(export_stage, "export_onnx", lambda *a, **k: 1 / 0)
    result = run_cli("-v", "export-onnx", tiny_bert_dir, "-o", tmp_path / "out")
    assert result.exit_code == 3
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


def test_bench_of_an_onnx_artifact_with_a_garbage_graph_exits_2_or_3_without_traceback(
        run_cli, tiny_bert_dir, tmp_path, sst_file):
    import shutil

    fake = tmp_path / "garbage-onnx"
    shutil.copytree(tiny_bert_dir, fake)
    for weights in fake.glob("*.safetensors"):
        weights.unlink()
    (fake / "model.onnx").write_bytes(b"this is not a protobuf" * 100)
    result = run_cli("bench", fake, "--baseline", tiny_bert_dir, "--data", sst_file, "--no-memory",
                     "--min-runs", "1", "--min-seconds", "0", "--warmup", "0", "--batch-sizes", "1")
    assert result.exit_code in (2, 3), result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) >= 1
    assert result.stderr.strip().splitlines()[-1].startswith("compress: ")


def test_keyboard_interrupt_exits_130_and_says_nothing_was_left(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    import compressor.export.stage as export_stage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_stage, "export_onnx", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["export-onnx", str(tiny_bert_dir), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 130
    assert "interrupted; no output was left behind" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_usage_errors_through_main_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def _hidden_siblings(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_distillation_exits_with_its_code_and_leaves_nothing(tiny_bert_dir, sst_file, tmp_path,
                                                                             sig, code):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(
        [sys.executable, "-m", "compressor.cli", "distill", str(tiny_bert_dir), "-o", str(tmp_path / "out"),
         "--data", str(sst_file), "--max-steps", "100000", "--batch-size", "4"],
        stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        # A shell starts background jobs with SIGINT ignored, and a child inherits that (a CLI started
        # so is right to keep ignoring it): give the child the default disposition an interactive
        # Ctrl-C meets, whatever started this test run.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)  # past start-up, into training
    assert process.poll() is None, process.stderr.read()
    os.killpg(process.pid, sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
    assert _hidden_siblings(tmp_path) == []
