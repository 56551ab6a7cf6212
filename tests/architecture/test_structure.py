"""The structure's own test: tasks and families are plug-ins, the library sits below the CLI, and
adding a task, family or method is one module plus a registry line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compressor import families, stages, tasks
from compressor.quantize.config import METHODS
from compressor.quantize.engine import Engine, engine_class

PACKAGE = Path(__file__).resolve().parents[2] / "compressor"
BRANCH = re.compile(r'CAUSAL_LM|CLASSIFICATION\b|== *"gpt2"|== *"bert"')


def _library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_task_or_family_branches_outside_their_packages():
    offenders = []
    for path in _library_files():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("tasks/", "families/")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if BRANCH.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_the_library_never_imports_the_cli():
    imports_cli = re.compile(r"^\s*(from\s+compressor\.cli\b|import\s+compressor\.cli\b|from\s+compressor\s+import\s+cli\b)",
                             re.MULTILINE)
    offenders = [p.relative_to(PACKAGE).as_posix() for p in _library_files()
                 if not p.relative_to(PACKAGE).as_posix().startswith("cli/") and p.name != "__main__.py"
                 and imports_cli.search(p.read_text())]
    assert offenders == []


def test_no_library_file_over_400_lines():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in _library_files()
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_every_registered_task_loads_and_declares_its_classes():
    for name in tasks.names():
        task = tasks.get(name)
        assert task.name == name
        assert task.auto_model_class().__name__ == task.auto_model
        assert task.export_task
    with pytest.raises(Exception, match="unknown task 'nope'"):
        tasks.get("nope")


def test_every_family_maps_its_architectures_to_registered_tasks():
    for family in families.FAMILIES:
        assert family.tasks and all(t in tasks.names() for t in family.tasks)
        assert family.default_task in family.tasks


def test_every_method_names_an_engine_implementing_the_interface():
    for (name, fmt), method in METHODS.items():
        cls = engine_class(method.engine_class)
        assert issubclass(cls, Engine), (name, fmt)
        assert not getattr(cls, "__abstractmethods__", None), (name, fmt, cls.__abstractmethods__)


def test_every_stage_declares_options_with_unique_flags_and_a_config_builder():
    for stage in stages.STAGES.values():
        names = [o.name for o in stage.options()]
        assert len(names) == len(set(names)), stage.name
        values = {o.key: "x" for o in stage.options() if o.required}
        with pytest.raises(Exception):  # required data given as "x" is fine; bad types fail in parse
            stage.parse({**values, names[0]: {"a": 1}})


def test_task_of_an_in_memory_model_comes_from_its_class(tiny_bert_dir, tiny_gpt2_dir):
    from compressor.artifact import open_artifact
    from compressor.loading import load_model

    assert tasks.of_model(load_model(open_artifact(tiny_bert_dir))).name == "text-classification"
    assert tasks.of_model(load_model(open_artifact(tiny_gpt2_dir))).name == "causal-lm"
