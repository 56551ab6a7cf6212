"""Temporary files that a killed run cannot leak for good.

A SIGKILL (the OOM killer, a CI timeout, ``kill -9``) runs no cleanup, so whatever a run had in
progress stays on disk. Every temporary path this tool makes therefore carries the PID of the
process that made it, and the next run that would make the same kind of path removes those whose
process is no longer alive on this host:

- next to a stage's output ``NAME``: ``.NAME.tmp-PID-xxxxxxxx`` (the output being written, see
  ``compressor.artifact.staged_output``), ``.NAME.tmp-PID-xxxxxxxx.scratch`` (that stage's scratch
  space, ``scratch_space``) and ``.NAME.old-PID-xxxxxxxx`` (a replaced output being deleted under
  ``--force``); removed by ``remove_stale_siblings(NAME)`` when a stage writing ``NAME`` starts.
- in the system temp directory: ``compress-KIND-PID-*`` (``temp_dir(KIND)``, e.g. bench's ONNX
  profiles); removed by the next ``temp_dir(KIND)``.

Distillation checkpoints (``.NAME.checkpoints``) are not temporary: they are kept for ``--resume``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compressor import progress

_SIBLING = re.compile(r"(?P<kind>tmp|old)-(?:(?P<pid>\d{1,10})-)?[0-9a-f]{8}(?:\.scratch)?")

# The system temp directory, remembered while ``scratch_space`` points ``tempfile`` elsewhere.
_system_temp: str | None = None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # alive under another user, or not a PID at all: not ours to remove
    return True


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _remove(entry: Path, where: str) -> bool:
    size = tree_size(entry)
    shutil.rmtree(entry, ignore_errors=True)
    if entry.exists():
        progress.status(f"could not remove stale {entry.name} left by a killed run in {where}")
        return False
    progress.status(f"removed stale {entry.name} left by a killed run ({size / 1e6:.1f} MB)")
    return True


def remove_stale_siblings(dst: Path) -> list[Path]:
    """Remove the hidden temporary siblings of the output ``dst`` whose process is dead; returns them."""
    dst = Path(dst)
    prefix = f".{dst.name}."
    try:
        entries = sorted(e for e in dst.parent.iterdir() if e.name.startswith(prefix))
    except OSError:  # no parent yet, or an unreadable one: nothing of ours there
        return []
    removed = []
    for entry in entries:
        match = _SIBLING.fullmatch(entry.name[len(prefix):])
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        pid = match.group("pid")
        if pid is None and match.group("kind") == "tmp":
            continue  # not a name this tool writes
        # An ``.old-`` without a PID is from a version that did not record it: always stale.
        if pid is not None and process_alive(int(pid)):
            continue  # a run writing the same output right now
        if _remove(entry, str(dst.parent)):
            removed.append(entry)
    return removed


def system_temp_dir() -> str:
    """The system temp directory ($TMPDIR, else /tmp), also while a ``scratch_space`` is active."""
    return _system_temp or tempfile.gettempdir()


def remove_stale_temp(kind: str) -> list[Path]:
    """Remove ``compress-KIND-PID-*`` directories of dead processes from the system temp directory."""
    pattern = re.compile(rf"compress-{re.escape(kind)}-(\d{{1,10}})-.+")
    root = Path(system_temp_dir())
    try:
        entries = sorted(e for e in root.iterdir() if e.name.startswith(f"compress-{kind}-"))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir() or process_alive(int(match.group(1))):
            continue
        if _remove(entry, str(root)):
            removed.append(entry)
    return removed


@contextmanager
def temp_dir(kind: str) -> Iterator[Path]:
    """A private directory ``compress-KIND-PID-*`` in the system temp directory, removed on exit;
    those left by killed runs are removed first."""
    remove_stale_temp(kind)
    with tempfile.TemporaryDirectory(prefix=f"compress-{kind}-{os.getpid()}-", dir=system_temp_dir()) as tmp:
        yield Path(tmp)


@contextmanager
def scratch_space(out: Path) -> Iterator[Path]:
    """Scratch space for a stage writing the staged output directory ``out``: the hidden sibling
    ``out.scratch`` (``.NAME.tmp-PID-xxxxxxxx.scratch``), removed on exit.

    While it is active, Python's ``tempfile`` (which libraries use for their own work files, e.g.
    onnxruntime's ``ort.quant.*`` calibration models) puts its files there too, so a killed run
    leaves everything where the next run writing the same output finds and removes it, and nothing
    in the system temp directory.
    """
    global _system_temp
    scratch = out.parent / f"{out.name}.scratch"
    scratch.mkdir()
    outer, outer_system = tempfile.tempdir, _system_temp
    _system_temp = system_temp_dir()
    tempfile.tempdir = str(scratch)
    try:
        yield scratch
    finally:
        tempfile.tempdir, _system_temp = outer, outer_system
        shutil.rmtree(scratch, ignore_errors=True)
