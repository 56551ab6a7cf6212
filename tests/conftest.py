"""Shared fixtures: tiny checkpoints built once per session; tests copy them when they mutate."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import factories  # noqa: E402

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.tiny_llama(tmp_path_factory.mktemp("tiny") / "qwen2", model_type="qwen2", layers=3)


@pytest.fixture(scope="session")
def tiny_mistral_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.tiny_llama(tmp_path_factory.mktemp("tiny") / "mistral", model_type="mistral", layers=3,
                                sliding_window=16)


@pytest.fixture(scope="session")
def sst_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.write_sst(tmp_path_factory.mktemp("data") / "sst.tsv", rows=64)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.write_corpus(tmp_path_factory.mktemp("data") / "corpus.txt", documents=40)


@pytest.fixture
def bert_copy(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """A private copy for tests that corrupt or modify the checkpoint."""
    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "bert"))


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def run_cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from compressor.cli.main import cli

    def invoke(*args: str):
        runner = CliRunner()
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke
