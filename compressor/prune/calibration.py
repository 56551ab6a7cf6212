"""Calibration and evaluation data for pruning: batches, the loss importance is measured on, metrics.

Classifiers need labelled rows in the model's label set (the gradient of the task loss is what
importance measures); a file without labels or with another task's labels is refused. Causal LMs
take any text, cut into blocks of ``max_length`` tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics
from compressor.data import DataSpec, load_classification, load_texts
from compressor.data.batching import classification_batches, lm_blocks
from compressor.errors import BadInputError
from compressor.families.base import CAUSAL_LM

Batch = dict[str, np.ndarray]


def load_batches(
    flag: str,
    task: str,
    tokenizer: Any,
    spec: DataSpec,
    *,
    label2id: dict[str, int] | None,
    samples: int | None,
    max_length: int,
    batch_size: int = 16,
) -> list[Batch]:
    """Batches of model inputs (classification batches carry ``labels``); errors name ``flag``."""
    try:
        if task == CAUSAL_LM:
            blocks = lm_blocks(tokenizer, load_texts(spec), block_size=max_length, max_blocks=samples)
            return [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]
        data = load_classification(spec, label2id=label2id, require_labels=True)
    except BadInputError as exc:
        raise BadInputError(f"{flag}: {exc.message}") from exc
    if samples:
        data.texts, data.labels = data.texts[:samples], data.labels[:samples]  # type: ignore[index]
        data.pairs = data.pairs[:samples] if data.pairs else None
    batches = list(classification_batches(tokenizer, data, batch_size=batch_size, max_length=max_length))
    start = 0
    for batch in batches:
        n = len(batch["input_ids"])
        batch["labels"] = np.array(data.labels[start : start + n], dtype=np.int64)  # type: ignore[index]
        start += n
    return batches


def builtin_batches(task: str, tokenizer: Any, max_length: int) -> list[Batch]:
    """Unlabelled built-in sentences (the export parity set), for data-free layer scoring."""
    from compressor.export.parity import parity_batches

    return parity_batches(task, tokenizer, None, label2id=None, samples=64, max_length=min(max_length, 32))


def _inputs(batch: Batch, device: str) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(v).to(device) for k, v in batch.items() if k != "labels"}


def task_loss(task: str, device: str = "cpu"):
    """(model, batch) -> the task loss: cross-entropy on labels, or next-token cross-entropy."""
    import torch.nn.functional as F

    def loss(model: Any, batch: Batch) -> Any:
        inputs = _inputs(batch, device)
        if task == CAUSAL_LM:
            logits = model(**inputs, use_cache=False).logits[:, :-1]
            targets = inputs["input_ids"][:, 1:]
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        import torch

        return F.cross_entropy(model(**inputs).logits, torch.from_numpy(batch["labels"]).to(device))

    return loss


def self_kl_loss(task: str, model: Any, batches: list[Batch], device: str = "cpu"):
    """(model, batch) -> KL from the unpruned model's own predictions (no labels needed)."""
    import torch
    import torch.nn.functional as F

    extra = {"use_cache": False} if task == CAUSAL_LM else {}
    with torch.no_grad():
        reference = {id(b): F.log_softmax(model(**_inputs(b, device), **extra).logits.float(), -1) for b in batches}

    def loss(current: Any, batch: Batch) -> Any:
        logp = F.log_softmax(current(**_inputs(batch, device), **extra).logits.float(), -1)
        ref = reference[id(batch)]
        return F.kl_div(logp.reshape(-1, logp.shape[-1]), ref.reshape(-1, ref.shape[-1]), log_target=True,
                        reduction="batchmean")

    return loss


def evaluate(model: Any, task: str, batches: list[Batch], device: str = "cpu") -> dict[str, float]:
    """Accuracy of a classifier, or perplexity of a causal LM, on prepared batches."""
    from compressor.inference import TorchRunner

    runner = TorchRunner(model, device=device)
    if task == CAUSAL_LM:
        nll = [metrics.next_token_nll(runner.logits(b), b["input_ids"]) for b in batches]
        return {"perplexity": metrics.perplexity(np.concatenate(nll))}
    predictions = [runner.logits({k: v for k, v in b.items() if k != "labels"}).argmax(-1) for b in batches]
    labels = np.concatenate([b["labels"] for b in batches])
    return {"accuracy": metrics.accuracy(np.concatenate(predictions), labels)}
