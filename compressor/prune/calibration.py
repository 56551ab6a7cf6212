"""The losses pruning importance is measured with, and the built-in batches for data-free scoring.

Batches come from ``compressor.evaluation.task_batches``: classifiers need labelled rows in the
model's label set (the gradient of the task loss is what importance measures); causal LMs take any
text, cut into blocks of ``max_length`` tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.families.base import CAUSAL_LM

Batch = dict[str, np.ndarray]


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
