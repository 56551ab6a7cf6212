"""Artifacts: a model directory plus its ``compress.json``; opened, validated and written atomically.

A stage writes into a hidden sibling directory and renames it onto the output path only once
everything, manifest included, is on disk: an interrupted run never leaves a directory that looks
finished, and an input is never touched.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compressor import families
from compressor.errors import BadInputError
from compressor.families.base import Family
from compressor.manifest import Manifest, StageRecord, hash_directory
from compressor.scratch import remove_stale_siblings

PYTORCH = "pytorch"
ONNX = "onnx"
OPENVINO = "openvino"  # an OpenVINO IR (.xml + .bin); see compressor.formats.openvino

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class Artifact:
    path: Path
    format: str
    family: Family
    task: str
    config: dict[str, Any]
    manifest: Manifest | None

    @property
    def stages(self) -> list[StageRecord]:
        return list(self.manifest.stages) if self.manifest else []

    @property
    def onnx_file(self) -> Path:
        if self.format != ONNX:
            raise BadInputError(f"{self.path}: is a {self.format} artifact, not ONNX")
        preferred = self.path / "model.onnx"
        if preferred.exists():
            return preferred
        return sorted(self.path.glob("*.onnx"))[0]

    @property
    def ir_file(self) -> Path:
        from compressor.formats.openvino import ir_file

        found = ir_file(self.path) if self.format == OPENVINO else None
        if found is None:
            raise BadInputError(f"{self.path}: is a {self.format} artifact, not an OpenVINO IR (.xml + .bin)")
        return found

    def content_hash(self) -> str:
        return hash_directory(self.path)

    def size_bytes(self) -> int:
        """Bytes of model weights/graphs on disk (tokenizer and metadata excluded)."""
        suffixes = {".safetensors", ".bin", ".onnx", ".onnx_data", ".data", ".pt", ".xml"}
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and p.suffix in suffixes)


def open_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Open a checkpoint or artifact directory; raises ``BadInputError`` naming what is wrong."""
    directory = Path(path)
    if not directory.exists():
        raise BadInputError(f"{directory}: no such file or directory")
    if not directory.is_dir():
        raise BadInputError(f"{directory}: not a directory; expected a checkpoint or artifact directory")
    config = families.read_config(directory)
    family, task = families.detect(config, directory / "config.json")
    from compressor import tasks

    declared = tasks.from_files(directory)
    if declared and declared in family.tasks:
        task = declared
    manifest = Manifest.read(directory)
    if manifest is not None:
        fmt, task = manifest.format, manifest.task
    elif any(directory.glob("*.onnx")):
        fmt = ONNX
    elif any(p.with_suffix(".bin").exists() for p in directory.glob("*.xml")):
        fmt = OPENVINO
    elif any((directory / name).exists() for name in WEIGHT_FILES):
        fmt = PYTORCH
    else:
        raise BadInputError(
            f"{directory}: no model weights found (expected one of {', '.join(WEIGHT_FILES)}, a *.onnx file or an "
            "OpenVINO *.xml + *.bin)"
        )
    tasks.get(task).check_directory(directory)
    return Artifact(path=directory, format=fmt, family=family, task=task, config=config, manifest=manifest)


# Files that are model weights or graphs (re-written by a stage, never copied from its source).
MODEL_SUFFIXES = {".onnx", ".onnx_data", ".data", ".safetensors", ".bin", ".pt", ".pth", ".xml"}


def copy_support_files(source: Path, out: Path) -> None:
    """Config, tokenizer and generation files travel with the model; weights and the manifest do not."""
    from compressor.manifest import MANIFEST_NAME

    for item in source.iterdir():
        if item.is_file() and item.name != MANIFEST_NAME and item.suffix not in MODEL_SUFFIXES \
                and item.name not in WEIGHT_FILES:
            shutil.copyfile(item, out / item.name)
        elif item.is_dir() and not item.name.startswith(".") and not any(
                p.suffix in MODEL_SUFFIXES or p.name in WEIGHT_FILES for p in item.rglob("*")):
            shutil.copytree(item, out / item.name)  # sentence-transformers' 1_Pooling/, 2_Normalize/


def _check_output_path(dst: Path, sources: list[Path], force: bool) -> None:
    resolved = dst.resolve()
    for source in sources:
        src = source.resolve()
        if resolved == src or src in resolved.parents or resolved in src.parents:
            raise BadInputError(f"{dst}: output overlaps the input {source}; choose another output directory")
    if dst.exists() and not force:
        raise BadInputError(f"{dst}: output already exists; pass --force to replace it")
    if dst.exists() and not dst.is_dir():
        raise BadInputError(f"{dst}: exists and is not a directory")
    check_can_create(dst)
    remove_stale_siblings(dst)  # what a killed run of this output left behind


def _writable_problem(directory: Path) -> str | None:
    """Why entries cannot be created in ``directory`` (or in the directories ``mkdir -p`` would make
    under its nearest existing ancestor); None when they can."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing}: is not a directory"
    # Checked explicitly, before any work: not an OSError (a traceback) after a long training run.
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing}: directory is not writable"
    return None


def check_can_create(path: Path, label: str = "") -> None:
    """Exit-2 error naming the directory when ``path`` could not be created in it (its parent, or
    the parent's nearest existing ancestor, is a file or not writable)."""
    problem = _writable_problem(path.parent)
    if problem:
        raise BadInputError(f"{label + ' ' if label else ''}{problem}; cannot create {path}")


def check_writable_dir(path: Path, label: str = "") -> None:
    """Exit-2 error when files could not be written into the directory ``path``, existing or not."""
    problem = _writable_problem(path)
    if problem:
        raise BadInputError(f"{label + ' ' if label else ''}{problem}; cannot write into {path}")


# Staged outputs this process has open, for ``abandon_staged_outputs``.
_STAGING: set[Path] = set()


def abandon_staged_outputs() -> None:
    """Remove every staged output this process has open, and its scratch siblings.

    Called by the CLI's SIGTERM handler just before it ends the process: an exception raised from a
    signal handler can be swallowed inside a C extension (a SystemExit during torch's ONNX tracing was
    seen to vanish and the export to finish), so a terminated run cleans up here, whatever it was
    doing, instead of relying on the exception unwinding through ``staged_output``.
    """
    for tmp in list(_STAGING):
        for path in tmp.parent.glob(tmp.name + "*"):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def staged_output(dst: str | os.PathLike[str], *, sources: list[Path], force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``dst`` only if the block completes.

    The temporary directory is a hidden sibling of ``dst`` (same filesystem, so the final rename is
    atomic). On any exception, including KeyboardInterrupt and the SystemExit the CLI raises on
    SIGTERM, it is removed; after a SIGKILL only the hidden ``.NAME.tmp-PID-*`` directory remains,
    and the next run writing ``dst`` removes it (``compressor.scratch.remove_stale_siblings``).
    """
    dst = Path(dst)
    _check_output_path(dst, sources, force)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    _STAGING.add(tmp)
    old: Path | None = None
    try:
        yield tmp
        if dst.exists():  # --force: move the old output away first so the swap is quick
            old = dst.parent / f".{dst.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            dst.rename(old)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dst.exists():
            old.rename(dst)  # the swap failed: the previous output stays
        raise
    finally:
        _STAGING.discard(tmp)
    if old is not None:  # deleted after the swap, so the output is missing only between two renames
        shutil.rmtree(old, ignore_errors=True)


class StageTimer:
    """Records when a stage started and how long it ran, for its manifest record."""

    def __init__(self) -> None:
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()

    @property
    def elapsed_s(self) -> float:
        return round(time.perf_counter() - self._t0, 3)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of this process (all threads) since the stage started: on a shared CI runner
        the wall time depends on the neighbours, this does much less."""
        return round(time.process_time() - self._cpu0, 3)


def write_manifest(
    out_dir: Path,
    *,
    source: Artifact,
    source_hash: str,
    stage: str,
    config: dict[str, Any],
    report: dict[str, Any],
    timer: StageTimer,
    fmt: str,
    task: str | None = None,
    seed: int | None = None,
) -> Manifest:
    """Append this stage to the source's lineage and write ``compress.json`` into ``out_dir``."""
    record = StageRecord(
        stage=stage,
        source_path=str(source.path.resolve()),
        source_hash=source_hash,
        config=config,
        report=report,
        seed=seed,
        wall_time_s=timer.elapsed_s,
        started_at=timer.started_at,
        cpu_time_s=timer.cpu_s,
    )
    manifest = Manifest(
        format=fmt,
        family=source.family.name,
        task=task or source.task,
        stages=source.stages + [record],
    )
    manifest.write(out_dir)
    return manifest
