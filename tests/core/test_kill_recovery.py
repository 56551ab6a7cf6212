"""SIGKILL at random (seeded) points, then a re-run that completes (issue #16).

A killed run runs no cleanup: whatever it had in progress stays on disk. What it may leave is its
hidden ``.NAME.tmp-PID-*`` siblings (the output being written, the scratch space) and distill's
``.NAME.checkpoints``; never a half-written output, never files in the system temp directory
(``TMPDIR`` points at a directory of the test). The re-run removes the stale siblings (saying so),
distill resumes from the checkpoint, and the output is complete.

The default suite kills each command once, as soon as it has something on disk; the full matrix
(``-m slow``, 21 kills, several minutes) kills at random points over a whole run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import compressor
from compressor.distill.trainer import STATE_FILE
from conftest import tree_hash

ROOT = Path(compressor.__file__).resolve().parents[1]
# What a stage could leave in the temp dir: its own dirs, onnxruntime quantizer's, tempfile's default names
# (onnxruntime's transformer optimizer), neural-compressor's default workspace.
LEAKS = ("compress-", "ort.quant.", "pre.quant.", "tmp", "nc_workspace")
RUN_TIMEOUT_S = 300


@dataclass
class Command:
    name: str  # the stage's name in compress.json
    args: list  # compress arguments, the output last but one before the options (``-o OUT``)
    source: Path
    weights: str  # a file every complete output has
    resumable: bool = False
    stats: dict = field(default_factory=lambda: {"kills": 0, "finished_first": 0})


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TMPDIR": str(tmp),
        "OMP_NUM_THREADS": "1",  # tiny models: threads only fight over the shared CPUs
        "TRANSFORMERS_VERBOSITY": "error",
    }


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _kinds(names: list[str]) -> str:
    """What a killed run left beside its output, for the record of where the kills landed."""
    kinds = {"scratch" if n.endswith(".scratch") else "staging" if ".tmp-" in n else "old" if ".old-" in n
             else "checkpoints" if n.endswith(".checkpoints") else n for n in names}
    return "+".join(sorted(kinds)) or "nothing"


def _leaks(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(LEAKS))


def _check_complete(out: Path, command: Command) -> None:
    from compressor.artifact import open_artifact

    artifact = open_artifact(out)
    assert artifact.stages and artifact.stages[-1].stage == command.name
    assert (out / command.weights).is_file() and (out / command.weights).stat().st_size > 0
    json.loads((out / "compress.json").read_text())


def _start(command: Command, out: Path, tmp: Path, log: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "compressor.cli", *map(str, command.args), "-o", str(out), "--force", *extra]
    with log.open("w") as handle:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=handle, env=_env(tmp))


def _wait_for(proc: subprocess.Popen, ready, timeout: float = RUN_TIMEOUT_S) -> float | None:
    """Seconds until ``ready()`` holds, or None when the process ended first."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if ready():
            return time.monotonic() - begin
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("timed out waiting for the run to write something")


def _rerun(command: Command, out: Path, tmp: Path, log: Path) -> str:
    """Run to completion; distill continues from its checkpoint when there is one."""
    extra = ["--resume"] if command.resumable else []
    done = subprocess.run(
        [sys.executable, "-m", "compressor.cli", *map(str, command.args), "-o", str(out), "--force", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(tmp), timeout=RUN_TIMEOUT_S,
    )
    if done.returncode == 2 and "--resume: no checkpoint" in done.stderr:  # killed before the first one
        assert not (out.parent / f".{out.name}.checkpoints" / "latest").exists()
        done = subprocess.run(
            [sys.executable, "-m", "compressor.cli", *map(str, command.args), "-o", str(out), "--force"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(tmp), timeout=RUN_TIMEOUT_S,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    log.write_text(done.stderr)
    return done.stderr


def kill_and_recover(command: Command, out: Path, tmp: Path, *, kills: int, seed: int, trigger, span: float) -> None:
    """``kills`` times: start the command, wait until ``trigger(out)`` holds, wait a further random
    0..``span`` seconds, SIGKILL it, check what it left, re-run it to completion and check again."""
    rng = random.Random(seed)
    logs = out.parent / "logs"
    logs.mkdir(exist_ok=True)
    source_hash = tree_hash(command.source)
    attempts = 0
    while command.stats["kills"] < kills:
        attempts += 1
        assert attempts <= 3 * kills, f"{command.name}: runs kept finishing before the kill ({command.stats})"
        delay = rng.uniform(0, span)
        proc = _start(command, out, tmp, logs / f"killed-{attempts}.log")
        waited = _wait_for(proc, lambda: trigger(out))
        if waited is not None:
            time.sleep(delay)
        if proc.poll() is not None:  # finished (or failed) before the kill
            assert proc.wait() == 0, (logs / f"killed-{attempts}.log").read_text()[-3000:]
            command.stats["finished_first"] += 1
            _check_complete(out, command)
            continue
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:  # it ended between the poll and the signal
            command.stats["finished_first"] += 1
            _check_complete(out, command)
            continue
        assert proc.returncode == -signal.SIGKILL
        command.stats["kills"] += 1

        # What the killed run left: hidden siblings only; the output is absent or whole, never partial.
        left = [name for name in _siblings(out) if name != f".{out.name}.checkpoints"]
        assert all(name.startswith((f".{out.name}.tmp-{proc.pid}-", f".{out.name}.old-{proc.pid}-")) for name in left)
        command.stats.setdefault("left", []).append(_kinds(_siblings(out)))
        if out.exists():
            _check_complete(out, command)  # the previous output, or the new one if the rename was done
        assert _leaks(tmp) == [], "a killed run left files in the system temp directory"

        err = _rerun(command, out, tmp, logs / f"rerun-{attempts}.log")
        for name in left:
            assert f"removed stale {name} left by a killed run (" in err
        assert _siblings(out) == [], "the re-run left hidden siblings"  # distill's checkpoints included
        assert _leaks(tmp) == []
        _check_complete(out, command)
        assert tree_hash(command.source) == source_hash, "an input was changed"


def _appeared(pattern: str):
    def ready(out: Path) -> bool:
        return any(out.parent.glob(pattern.format(name=out.name)))

    return ready


STAGING = ".{name}.tmp-*"
CHECKPOINT = ".{name}.checkpoints/latest/" + STATE_FILE


# ---------------------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module")
def onnx_model(tiny_bert_dir, work):
    from compressor.export import ExportConfig, export_onnx

    out = work / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig(optimize="O0"))
    return out


def export_command(tiny_bert_dir: Path) -> Command:
    return Command("export-onnx", ["export-onnx", tiny_bert_dir], tiny_bert_dir, "model.onnx")


def quantize_command(onnx_model: Path, sst_file: Path) -> Command:
    return Command("quantize", ["quantize", onnx_model, "--method", "int8-static", "--calib-data", sst_file,
                                "--calib-samples", "16"], onnx_model, "model.onnx")


def distill_command(tiny_bert_dir: Path, sst_file: Path) -> Command:
    return Command("distill", ["distill", tiny_bert_dir, "--data", sst_file, "--student-layers", "2",
                               "--max-steps", "60", "--batch-size", "8", "--checkpoint-steps", "5"],
                   tiny_bert_dir, "model.safetensors", resumable=True)


def prune_command(tiny_bert_dir: Path, sst_file: Path) -> Command:
    return Command("prune", ["prune", tiny_bert_dir, "--method", "heads=0.25", "--recover-from", tiny_bert_dir,
                             "--recover-data", sst_file, "--recover-steps", "4"], tiny_bert_dir, "model.safetensors")


def _output(work: Path, name: str) -> tuple[Path, Path]:
    base = work / name
    tmp = base / "tmp"
    tmp.mkdir(parents=True)
    return base / "out", tmp


# ------------------------------------------------------------------------ default: one kill each


def test_killed_export_then_rerun(tiny_bert_dir, work):
    out, tmp = _output(work, "export")
    kill_and_recover(export_command(tiny_bert_dir), out, tmp, kills=1, seed=1, trigger=_appeared(STAGING), span=0.5)


def test_killed_quantize_then_rerun(onnx_model, sst_file, work):
    out, tmp = _output(work, "quantize")
    kill_and_recover(quantize_command(onnx_model, sst_file), out, tmp, kills=1, seed=2,
                     trigger=_appeared(STAGING), span=0.5)


def test_killed_distill_resumes(tiny_bert_dir, sst_file, work):
    out, tmp = _output(work, "distill")
    command = distill_command(tiny_bert_dir, sst_file)
    kill_and_recover(command, out, tmp, kills=1, seed=3, trigger=_appeared(CHECKPOINT), span=0.2)
    assert "resuming from step" in (work / "distill" / "logs").joinpath("rerun-1.log").read_text()


def test_killed_prune_with_recovery_then_rerun(tiny_bert_dir, sst_file, work):
    out, tmp = _output(work, "prune")
    kill_and_recover(prune_command(tiny_bert_dir, sst_file), out, tmp, kills=1, seed=4,
                     trigger=_appeared(STAGING), span=1.0)


# ------------------------------------------------------------------ slow: the full kill matrix


def _timed_run(command: Command, out: Path, tmp: Path) -> float:
    """A complete first run; the seconds from its first write beside the output to the output's rename."""
    assert not out.exists()
    proc = _start(command, out, tmp, out.parent / "baseline.log")
    first = _wait_for(proc, lambda: bool(_siblings(out)))
    begin = time.monotonic()
    _wait_for(proc, out.exists)
    span = time.monotonic() - begin
    assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, (out.parent / "baseline.log").read_text()[-3000:]
    assert first is not None
    _check_complete(out, command)
    return span


@pytest.mark.slow
@pytest.mark.parametrize("which, kills", [("export", 6), ("quantize", 5), ("distill", 5), ("prune", 5)])
def test_kill_matrix(which, kills, tiny_bert_dir, sst_file, onnx_model, work):
    """Kills anywhere from a run's first write beside its output to just after the output's rename
    (across writing the staged output, quantize's calibration, distill's checkpoint swaps, prune's
    recovery and the --force swap), at seeded random delays."""
    command = {
        "export": lambda: export_command(tiny_bert_dir),
        "quantize": lambda: quantize_command(onnx_model, sst_file),
        "distill": lambda: distill_command(tiny_bert_dir, sst_file),
        "prune": lambda: prune_command(tiny_bert_dir, sst_file),
    }[which]()
    out, tmp = _output(work, f"matrix-{which}")
    span = _timed_run(command, out, tmp)
    # A little past the rename too: a kill after it must leave the new output whole.
    kill_and_recover(command, out, tmp, kills=kills, seed=len(which) * 7 + kills, trigger=lambda o: bool(_siblings(o)),
                     span=max(0.2, 1.1 * span))
    assert command.stats["kills"] == kills
    print(which, command.stats)  # what each kill left behind: shown with -s or -rA
