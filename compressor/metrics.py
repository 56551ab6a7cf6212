"""Quality metrics as pure functions on numpy arrays (testable without a model)."""

from __future__ import annotations

import numpy as np


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of positions where two argmax predictions agree."""
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def macro_f1(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> float:
    scores = []
    for cls in range(num_labels):
        tp = np.sum((predictions == cls) & (labels == cls))
        fp = np.sum((predictions == cls) & (labels != cls))
        fn = np.sum((predictions != cls) & (labels == cls))
        denom = 2 * tp + fp + fn
        scores.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(scores))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def next_token_nll(logits: np.ndarray, input_ids: np.ndarray) -> np.ndarray:
    """Per-token negative log-likelihood of ``input_ids[:, 1:]`` under ``logits[:, :-1]``, flattened."""
    logp = log_softmax(logits[:, :-1].astype(np.float64))
    targets = input_ids[:, 1:]
    return -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0].reshape(-1)


def perplexity(nll: np.ndarray) -> float:
    return float(np.exp(np.mean(nll)))
