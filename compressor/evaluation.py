"""Evaluating any runner (PyTorch or ONNX) on task data: accuracy for classifiers, perplexity for LMs.

Shared by stages that gate on quality (quantize's accuracy budget) and by benchmarks. Runners are the
ones in ``compressor.inference``, so an artifact is scored by the same code whatever its format.
Batches are numpy dicts; classification batches carry ``labels`` (not a model input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor import metrics, progress
from compressor.data import DataSpec, load_classification, load_texts
from compressor.data.batching import classification_batches, lm_blocks
from compressor.errors import BadInputError
from compressor.families.base import CAUSAL_LM

Batch = dict[str, np.ndarray]


def task_batches(
    flag: str,
    task: str,
    tokenizer: Any,
    spec: DataSpec,
    *,
    label2id: dict[str, int] | None,
    samples: int | None,
    max_length: int,
    batch_size: int,
    require_labels: bool,
) -> list[Batch]:
    """Model-input batches from a data file; errors name ``flag`` so the user knows which file is wrong.

    Causal LMs get non-overlapping blocks of ``max_length`` tokens (``samples`` = blocks); classifiers
    get dynamically padded rows (``samples`` = rows), with ``labels`` when the file has them.
    """
    try:
        if task == CAUSAL_LM:
            blocks = lm_blocks(tokenizer, load_texts(spec), block_size=max_length, max_blocks=samples)
            return [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]
        data = load_classification(spec, label2id=label2id, require_labels=require_labels)
    except BadInputError as exc:
        raise BadInputError(f"{flag}: {exc.message}") from exc
    if samples:
        data.texts = data.texts[:samples]
        data.pairs = data.pairs[:samples] if data.pairs else None
        data.labels = data.labels[:samples] if data.labels else None
    batches = list(classification_batches(tokenizer, data, batch_size=batch_size, max_length=max_length))
    if data.labels is not None:
        start = 0
        for batch in batches:
            n = len(batch["input_ids"])
            batch["labels"] = np.array(data.labels[start : start + n], dtype=np.int64)
            start += n
    return batches


def model_inputs(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if k != "labels"}


@dataclass
class EvalResult:
    """Metrics plus what sensitivity analysis compares against: per-row log-probabilities of a
    classifier (small: rows x labels), or per-block mean NLL of a language model."""

    metrics: dict[str, Any]
    log_probs: np.ndarray | None = None
    block_nll: np.ndarray | None = field(default=None, repr=False)


def run_eval(runner: Any, task: str, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
    if task == CAUSAL_LM:
        block_nll, tokens = [], 0
        for batch in progress.bar(batches, desc=desc, total=len(batches)):
            ids = batch["input_ids"]
            nll = metrics.next_token_nll(runner.logits(model_inputs(batch)), ids).reshape(len(ids), -1)
            block_nll.append(nll.mean(axis=1))
            tokens += nll.size
        per_block = np.concatenate(block_nll)
        return EvalResult(
            metrics={"perplexity": float(np.exp(per_block.mean())), "blocks": int(per_block.size), "tokens": tokens},
            block_nll=per_block,
        )
    log_probs, labels = [], []
    for batch in progress.bar(batches, desc=desc, total=len(batches)):
        log_probs.append(metrics.log_softmax(runner.logits(model_inputs(batch)).astype(np.float64)))
        if "labels" in batch:
            labels.append(batch["labels"])
    lp = np.concatenate(log_probs)
    result: dict[str, Any] = {"samples": len(lp)}
    if labels:
        result["accuracy"] = metrics.accuracy(lp.argmax(-1), np.concatenate(labels))
    return EvalResult(metrics=result, log_probs=lp)


def evaluate(runner: Any, task: str, batches: list[Batch], *, desc: str = "evaluating") -> dict[str, Any]:
    """``{"accuracy", "samples"}`` for a classifier (accuracy only when batches carry labels), or
    ``{"perplexity", "blocks", "tokens"}`` for a causal LM."""
    return run_eval(runner, task, batches, desc=desc).metrics


def kl_divergence(reference_log_probs: np.ndarray, log_probs: np.ndarray) -> float:
    """Mean KL(reference || candidate) over rows: how far a candidate's predictions moved, a
    continuous signal where accuracy on a small set moves in whole rows."""
    p = np.exp(reference_log_probs)
    return float(np.mean(np.sum(p * (reference_log_probs - log_probs), axis=-1)))
