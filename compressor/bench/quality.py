"""Task quality and its difference from the baseline, with paired-bootstrap 95% intervals.

Pure numpy on predictions and per-block losses, so every number in a report can be checked on
arrays by hand. Differences are artifact minus baseline; "drop" and "increase" are the signs gates use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics


def classification_scores(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, Any]:
    return {
        "samples": int(len(labels)),
        "accuracy": metrics.accuracy(predictions, labels),
        "macro_f1": metrics.macro_f1(np.asarray(predictions), np.asarray(labels), num_labels),
    }


def classification_vs_baseline(
    predictions: np.ndarray,
    baseline_predictions: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy and macro-F1 differences in points (0..100 scale) with 95% intervals, and agreement."""
    pred, base, y = np.asarray(predictions), np.asarray(baseline_predictions), np.asarray(labels)
    idx = metrics.bootstrap_indices(len(y), resamples, seed)
    correct, base_correct = (pred == y).astype(np.float64), (base == y).astype(np.float64)
    acc_diff = (correct[idx].mean(axis=1) - base_correct[idx].mean(axis=1)) * 100
    f1_diff = (metrics.macro_f1_rows(pred[idx], y[idx], num_labels)
               - metrics.macro_f1_rows(base[idx], y[idx], num_labels)) * 100
    accuracy_diff = (metrics.accuracy(pred, y) - metrics.accuracy(base, y)) * 100
    f1 = (metrics.macro_f1(pred, y, num_labels) - metrics.macro_f1(base, y, num_labels)) * 100
    low, high = metrics.confidence_interval(acc_diff)
    return {
        "accuracy_diff_points": accuracy_diff,
        "accuracy_diff_ci95": [low, high],
        "accuracy_drop_points": 0.0 - accuracy_diff,  # 0.0 - x: no "-0" in reports
        "accuracy_drop_ci95": [0.0 - high, 0.0 - low],
        "macro_f1_diff_points": f1,
        "macro_f1_diff_ci95": list(metrics.confidence_interval(f1_diff)),
        "agreement": metrics.agreement(pred, base),
    }


def lm_scores(block_nll: np.ndarray, tokens_per_block: int) -> dict[str, Any]:
    """``block_nll``: mean next-token NLL of each (equal-length) block."""
    nll = np.asarray(block_nll, dtype=np.float64)
    return {
        "blocks": int(nll.size),
        "tokens": int(nll.size * tokens_per_block),
        "perplexity": float(np.exp(nll.mean())),
    }


def lm_vs_baseline(
    block_nll: np.ndarray,
    baseline_block_nll: np.ndarray,
    *,
    agreement: float,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Perplexity increase in percent, bootstrapped over blocks (the unit text is independent in)."""
    nll, base = np.asarray(block_nll, dtype=np.float64), np.asarray(baseline_block_nll, dtype=np.float64)
    idx = metrics.bootstrap_indices(nll.size, resamples, seed)
    # exp(a)/exp(b) - 1 computed as expm1(a - b): exact for the tiny differences quantization makes.
    increase = np.expm1(nll[idx].mean(axis=1) - base[idx].mean(axis=1)) * 100
    return {
        "perplexity_increase_pct": float(np.expm1(nll.mean() - base.mean()) * 100),
        "perplexity_increase_ci95": list(metrics.confidence_interval(increase)),
        "agreement": float(agreement),
    }
