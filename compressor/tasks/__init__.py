"""Tasks the tool supports, by name (the name ``compress.json`` records and families map to).

A new task is one module defining a ``compressor.tasks.base.Task`` subclass plus its entry in
``_REGISTRY`` below; no stage changes.
"""

from __future__ import annotations

from importlib import import_module

from compressor.errors import BadInputError
from compressor.tasks.base import Task

# Task names, for code and tests that name a task (stages never branch on them).
CLASSIFICATION = "text-classification"
CAUSAL_LM = "causal-lm"
ENCODER = "feature-extraction"
TOKEN_CLASSIFICATION = "token-classification"
SENTENCE_EMBEDDING = "sentence-embedding"

# name -> "module:attribute"; modules are imported on first use so ``compress --help`` stays fast.
_REGISTRY = {
    CLASSIFICATION: "compressor.tasks.text_classification:TextClassification",
    CAUSAL_LM: "compressor.tasks.causal_lm:CausalLM",
    ENCODER: "compressor.tasks.feature_extraction:FeatureExtraction",
    TOKEN_CLASSIFICATION: "compressor.tasks.token_classification:TokenClassification",
    SENTENCE_EMBEDDING: "compressor.tasks.sentence_embedding:SentenceEmbedding",
}
_LOADED: dict[str, Task] = {}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Task:
    """The task called ``name``; exit-2 error naming the known ones otherwise."""
    task = _LOADED.get(name)
    if task is None:
        target = _REGISTRY.get(name)
        if target is None:
            raise BadInputError(f"unknown task {name!r}; supported tasks: {', '.join(_REGISTRY)}")
        module, _, attr = target.partition(":")
        task = _LOADED[name] = getattr(import_module(module), attr)()
    return task


def from_files(directory: object) -> str | None:
    """The task a checkpoint directory declares by a marker file (``Task.marker_file``), or None."""
    from pathlib import Path

    for name in _REGISTRY:
        marker = get(name).marker_file
        if marker and (Path(str(directory)) / marker).is_file():
            return name
    return None


def of_model(model: object) -> Task:
    """The task of an in-memory transformers model, from its class (not its forward signature, which
    wrappers hide)."""
    for name in _REGISTRY:
        if get(name).owns_model(model):
            return get(name)
    return get(ENCODER)


__all__ = ["CAUSAL_LM", "CLASSIFICATION", "ENCODER", "SENTENCE_EMBEDDING", "TOKEN_CLASSIFICATION", "Task",
           "from_files", "get", "names", "of_model"]
