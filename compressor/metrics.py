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


# Paired bootstrap: an artifact and its baseline are scored on the same resampled rows, so the
# interval is for the *difference*, not for each score on its own.


def bootstrap_indices(n: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``resamples`` rows of ``n`` indices drawn with replacement (one row per bootstrap sample)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def confidence_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples``."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


def macro_f1_rows(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """``macro_f1`` of each row of 2-D prediction/label arrays (vectorised over bootstrap samples)."""
    predictions, labels = np.atleast_2d(predictions), np.atleast_2d(labels)
    scores = np.zeros(predictions.shape[0])
    for cls in range(num_labels):
        pred_c, true_c = predictions == cls, labels == cls
        tp = np.sum(pred_c & true_c, axis=1)
        denom = 2 * tp + np.sum(pred_c & ~true_c, axis=1) + np.sum(~pred_c & true_c, axis=1)
        scores += np.where(denom == 0, 0.0, 2 * tp / np.maximum(denom, 1))
    return scores / num_labels
