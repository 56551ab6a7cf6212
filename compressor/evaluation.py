"""Scoring any runner (PyTorch or ONNX) on task data, for code that holds a task name.

The work is the task's (``compressor.tasks``): these functions look the task up and ask it, so an
artifact is scored by the same code whatever its format or the stage asking.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import tasks
from compressor.tasks.base import Batch, EvalResult, Task, model_inputs

__all__ = ["Batch", "EvalResult", "evaluate", "kl_divergence", "model_inputs", "run_eval", "task_batches"]


def _task(task: str | Task) -> Task:
    return task if isinstance(task, Task) else tasks.get(task)


def task_batches(flag: str, task: str | Task, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                 samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
    """Model-input batches of ``task`` from a data file; errors name ``flag``."""
    return _task(task).batches(flag, tokenizer, spec, label2id=label2id, samples=samples, max_length=max_length,
                               batch_size=batch_size, require_labels=require_labels)


def run_eval(runner: Any, task: str | Task, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
    return _task(task).evaluate(runner, batches, desc=desc)


def evaluate(runner: Any, task: str | Task, batches: list[Batch], *, desc: str = "evaluating") -> dict[str, Any]:
    """The task's metrics: ``{"accuracy", "samples"}`` for a classifier (accuracy only when batches
    carry labels), ``{"perplexity", "blocks", "tokens"}`` for a causal LM."""
    return run_eval(runner, task, batches, desc=desc).metrics


def kl_divergence(reference_log_probs: np.ndarray, log_probs: np.ndarray) -> float:
    """Mean KL(reference || candidate) over rows: how far a candidate's predictions moved, a
    continuous signal where accuracy on a small set moves in whole rows."""
    p = np.exp(reference_log_probs)
    return float(np.mean(np.sum(p * (reference_log_probs - log_probs), axis=-1)))
