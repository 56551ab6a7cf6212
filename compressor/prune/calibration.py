"""The losses pruning importance is measured with, and the built-in batches for data-free scoring.

Batches come from the task: classifiers need labelled rows in the model's label set (the gradient of
the task loss is what importance measures); causal LMs take any text, cut into blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.tasks.base import Task, model_inputs

Batch = dict[str, np.ndarray]


def builtin_batches(task: Task, tokenizer: Any, max_length: int) -> list[Batch]:
    """Unlabelled built-in sentences (the export parity set), for data-free layer scoring."""
    return task.builtin_batches(tokenizer, samples=64, max_length=min(max_length, 32))


def self_kl_loss(task: Task, model: Any, batches: list[Batch], device: str = "cpu"):
    """(model, batch) -> KL from the unpruned model's own predictions (no labels needed)."""
    import torch
    import torch.nn.functional as F

    def run(current: Any, batch: Batch) -> Any:
        inputs = {k: torch.from_numpy(v).to(device) for k, v in model_inputs(batch).items()}
        return F.log_softmax(current(**inputs, **task.model_kwargs).logits.float(), -1)

    with torch.no_grad():
        reference = {id(b): run(model, b) for b in batches}

    def loss(current: Any, batch: Batch) -> Any:
        logp, ref = run(current, batch), reference[id(batch)]
        return F.kl_div(logp.reshape(-1, logp.shape[-1]), ref.reshape(-1, ref.shape[-1]), log_target=True,
                        reduction="batchmean")

    return loss


def forward_all(task: Task, model: Any, batches: list[Batch], device: str = "cpu"):
    """A callable running ``model`` over ``batches`` (outputs discarded), for hooks that observe it."""
    import torch

    def run() -> None:
        for batch in batches:
            inputs = {k: torch.from_numpy(v).to(device) for k, v in model_inputs(batch).items()}
            model(**inputs, **task.model_kwargs)

    return run
