"""The ``compress.json`` manifest: what an artifact is and the whole history that produced it.

Each stage appends one ``StageRecord`` to the lineage copied from its source, so any artifact tells
how it was made from the original checkpoint (``compress inspect DIR``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

SCHEMA_VERSION = 1
MANIFEST_NAME = "compress.json"

# Libraries whose versions decide an artifact's numbers; recorded in every stage.
_TRACKED_LIBRARIES = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "neural-compressor",
    "accelerate",
)


def tool_version() -> str:
    try:
        return metadata.version("compress")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform(), "compress": tool_version()}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hash_directory(path: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order; the manifest is excluded
    so that an artifact's hash is the hash of what its stage consumed."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel == MANIFEST_NAME:
            continue
        digest.update(rel.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


@dataclass
class StageRecord:
    stage: str
    source_path: str
    source_hash: str
    config: dict[str, Any]
    report: dict[str, Any]
    seed: int | None
    wall_time_s: float
    started_at: str
    cpu_time_s: float | None = None  # absent in manifests written before it was recorded
    versions: dict[str, str] = field(default_factory=library_versions)


@dataclass
class Manifest:
    format: str  # "pytorch" or "onnx"
    family: str
    task: str
    stages: list[StageRecord] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False, default=_json_default)
        (directory / MANIFEST_NAME).write_text(text + "\n")

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        """The manifest of ``directory``, or None for a checkpoint this tool did not write."""
        path = directory / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{path}: not valid JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from exc
        try:
            version = data["schema_version"]
            if version > SCHEMA_VERSION:
                raise BadInputError(
                    f"{path}: schema_version {version} is newer than this tool understands ({SCHEMA_VERSION})"
                )
            stages = [StageRecord(**record) for record in data.get("stages", [])]
            return cls(
                format=data["format"],
                family=data["family"],
                task=data["task"],
                stages=stages,
                schema_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise BadInputError(f"{path}: malformed manifest ({exc})") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
