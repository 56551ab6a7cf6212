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


def entity_counts(gold: list[list[str]], predicted: list[list[str]]) -> np.ndarray:
    """Per sentence: [true-positive entities, predicted entities, gold entities] (exact span + type,
    seqeval's default mode, which reads an I-X after O as an entity start like conlleval)."""
    from seqeval.metrics.sequence_labeling import get_entities

    counts = np.zeros((len(gold), 3), dtype=np.float64)
    for i, (g, p) in enumerate(zip(gold, predicted)):
        true, pred = set(get_entities(list(g))), set(get_entities(list(p)))
        counts[i] = (len(true & pred), len(pred), len(true))
    return counts


def _f1(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed counts; ``counts`` [..., 3]."""
    tp, pred, gold = counts[..., 0], counts[..., 1], counts[..., 2]
    return np.where(pred + gold > 0, 2 * tp / np.maximum(pred + gold, 1e-12), 1.0)


def token_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
    """Entity-level micro F1, precision and recall (seqeval, IOB2 tags) and token accuracy."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    flat_gold = [t for s in gold for t in s]
    flat_pred = [t for s in predicted for t in s]
    return {
        "sentences": len(gold),
        "tokens": len(flat_gold),
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "token_accuracy": float(np.mean([a == b for a, b in zip(flat_gold, flat_pred)])) if flat_gold else 0.0,
    }


def token_vs_baseline(gold: list[list[str]], predicted: list[list[str]], baseline: list[list[str]], *,
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Entity F1 difference in points with a paired bootstrap over sentences, and tag agreement."""
    mine, base = entity_counts(gold, predicted), entity_counts(gold, baseline)
    idx = metrics.bootstrap_indices(len(gold), resamples, seed)
    diff = (_f1(mine[idx].sum(axis=1)) - _f1(base[idx].sum(axis=1))) * 100
    point = float((_f1(mine.sum(0)) - _f1(base.sum(0))) * 100)
    low, high = metrics.confidence_interval(diff)
    flat_p = [t for s in predicted for t in s]
    flat_b = [t for s in baseline for t in s]
    return {
        "f1_diff_points": point,
        "f1_diff_ci95": [low, high],
        "f1_drop_points": 0.0 - point,
        "f1_drop_ci95": [0.0 - high, 0.0 - low],
        "agreement": float(np.mean([a == b for a, b in zip(flat_p, flat_b)])) if flat_p else 1.0,
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def sts_scores(similarities: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """Spearman of cosine similarities against gold scores (a fraction; STS tables print it x100)."""
    return {"pairs": int(len(gold)), "spearman": spearman(similarities, gold)}


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1)).clip(1e-12)


def sts_vs_baseline(similarities: np.ndarray, baseline_similarities: np.ndarray, gold: np.ndarray, *,
                    resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Spearman difference in points (x100) with a paired bootstrap over pairs, and how close the
    artifact's similarities are to the baseline's."""
    sim, base, y = (np.asarray(a, dtype=np.float64) for a in (similarities, baseline_similarities, gold))
    idx = metrics.bootstrap_indices(len(y), resamples, seed)
    # Gold ties are common (scores in steps of 0.2), so gold is ranked with averaged ties per resample.
    from scipy.stats import rankdata

    gold_ranks = rankdata(y[idx], axis=-1)
    diff = (_pearson_rows(rankdata(sim[idx], axis=-1), gold_ranks)
            - _pearson_rows(rankdata(base[idx], axis=-1), gold_ranks)) * 100
    point = (spearman(sim, y) - spearman(base, y)) * 100
    low, high = metrics.confidence_interval(diff)
    return {
        "score_diff_points": point,
        "score_diff_ci95": [low, high],
        "score_drop_points": 0.0 - point,
        "score_drop_ci95": [0.0 - high, 0.0 - low],
        "similarity_max_abs_diff": float(np.abs(sim - base).max()),
    }
