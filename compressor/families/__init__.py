"""Model families the tool supports, detected from a checkpoint's ``config.json``.

A family knows its model types, the tasks it serves, its layers, its pruning surgery and its quirks;
stages ask the family instead of branching on ``model_type`` or a family name (see ``base.Family``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError
from compressor.families.base import Family
from compressor.families.bert import BERT
from compressor.families.gpt2 import GPT2_FAMILY
from compressor.families.llama import LLAMA

# The registry: a new family is one module plus its entry here.
FAMILIES: tuple[Family, ...] = (BERT, GPT2_FAMILY, LLAMA)

__all__ = [
    "FAMILIES",
    "Family",
    "by_model_type",
    "family_by_name",
    "read_config",
    "detect",
]


def supported_model_types() -> list[str]:
    return sorted(t for family in FAMILIES for t in family.model_types)


def read_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with errors that name the file."""
    path = directory / "config.json"
    if not path.is_file():
        raise BadInputError(f"{directory}: no config.json; not a Hugging Face checkpoint or compress artifact")
    return read_json_object(path)


def read_json_object(path: Path, label: str = "") -> dict[str, Any]:
    """A JSON file that must hold an object; errors name ``label`` (an option) and the file."""
    where = f"{label} {path}" if label else str(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a JSON object, found {type(data).__name__}")
    return data


def family_by_name(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise BadInputError(f"unknown model family {name!r}; supported: {', '.join(f.name for f in FAMILIES)}")


def by_model_type(model_type: str) -> Family:
    """The family of a ``model_type`` (e.g. of an in-memory model's ``config.model_type``)."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise BadInputError(
        f"model_type {model_type!r} is not supported; supported model types: {', '.join(supported_model_types())}"
    )


def detect(config: dict[str, Any], source: Path | str = "config.json") -> tuple[Family, str]:
    """The family and task of a checkpoint config; exit-2 error for anything unsupported."""
    model_type = config.get("model_type")
    if not model_type:
        raise BadInputError(f"{source}: config.json has no 'model_type' field")
    for family in FAMILIES:
        if model_type in family.model_types:
            return family, family.detect_task(config, source)
    raise BadInputError(
        f"{source}: model_type {model_type!r} is not supported; supported model types: "
        + ", ".join(supported_model_types())
    )
