"""The CLI contract: fast start-up, registered commands, global flags, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from compressor.cli.main import COMMANDS


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from compressor.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r2 = CliRunner().invoke(cli, ['--version'])\n"
        "assert 'compress' in r2.output and r2.exit_code == 0\n"
        "for cmd in sys.argv[1:]:\n"
        "    r3 = CliRunner().invoke(cli, [cmd, '--help'])\n"
        "    assert r3.exit_code == 0, (cmd, r3.output)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'onnxruntime', 'optimum', 'neural_compressor') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *COMMANDS], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "compressor.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("compress, version ")


def test_every_registered_command_has_a_working_help(run_cli):
    listed = run_cli("--help").output
    for name in COMMANDS:
        assert name in listed
        result = run_cli(name, "--help")
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_unknown_command_is_usage_error(run_cli):
    result = run_cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def test_expected_error_is_one_line_without_traceback(run_cli, tmp_path):
    result = run_cli("inspect", tmp_path / "missing")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"compress: error: {tmp_path / 'missing'}: no such file or directory"]
    assert "Traceback" not in result.output


def test_verbose_shows_traceback_with_same_exit_code(run_cli, tmp_path):
    result = run_cli("-v", "inspect", tmp_path / "missing")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_inspect_plain_checkpoint_json(run_cli, tiny_bert_dir):
    result = run_cli("inspect", tiny_bert_dir, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["family"] == "bert" and report["task"] == "text-classification"
    assert report["format"] == "pytorch" and report["stages"] == []
