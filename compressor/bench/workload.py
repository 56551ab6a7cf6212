"""The inputs bench feeds every model: real rows of --data, tokenised by each model's own tokenizer.

Quality is scored on the first ``max_samples`` rows (or LM blocks). Latency is timed on the same
rows cut into batches of each requested size, in data order, so every artifact sees identical text;
sequences are padded only to their batch's longest row, as a serving system would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.data import ClassificationData
from compressor.data.batching import classification_batches, lm_blocks


@dataclass
class Workload:
    quality_batches: list[dict[str, np.ndarray]]
    latency_batches: dict[int, list[dict[str, np.ndarray]]]
    blocks: np.ndarray | None = None  # LM: token blocks scored for perplexity
    prompts: dict[int, list[np.ndarray]] = field(default_factory=dict)  # LM: decode prompts per batch size
    prompt_length: int = 0
    longest: int = 0  # LM: the most tokens one sequence reaches (a scored block, or prompt + decoded tokens)

    def heaviest(self, batch_size: int) -> dict[str, np.ndarray]:
        """The latency batch with the most tokens: the one that sets peak memory."""
        return max(self.latency_batches[batch_size], key=lambda b: b["input_ids"].size)


def _cycled(data: ClassificationData, rows: int) -> ClassificationData:
    """At least ``rows`` rows, repeating the data when it has fewer (tiny eval files, big batches)."""
    if len(data) >= rows:
        return data
    repeat = -(-rows // len(data))
    return ClassificationData(
        texts=(data.texts * repeat)[:rows],
        pairs=(data.pairs * repeat)[:rows] if data.pairs else None,
        labels=None,
        source=data.source,
    )


def classification_workload(
    tokenizer: Any, data: ClassificationData, *, batch_sizes: tuple[int, ...], max_length: int, quality_batch_size: int
) -> Workload:
    quality = list(classification_batches(tokenizer, data, batch_size=quality_batch_size, max_length=max_length))
    latency = {}
    for size in batch_sizes:
        batches = list(classification_batches(tokenizer, _cycled(data, size), batch_size=size, max_length=max_length))
        full = [b for b in batches if len(b["input_ids"]) == size]
        latency[size] = full  # a short last batch would be timed as if it were full
    return Workload(quality_batches=quality, latency_batches=latency)


def _rows(blocks: np.ndarray, count: int) -> np.ndarray:
    return blocks if len(blocks) >= count else np.resize(blocks, (count, blocks.shape[1]))


def lm_workload(
    tokenizer: Any,
    texts: list[str],
    *,
    batch_sizes: tuple[int, ...],
    block_size: int,
    prompt_length: int,
    max_blocks: int,
    quality_batch_size: int,
) -> Workload:
    blocks = lm_blocks(tokenizer, texts, block_size=block_size, max_blocks=max_blocks)
    quality = [{"input_ids": blocks[i : i + quality_batch_size]} for i in range(0, len(blocks), quality_batch_size)]
    latency, prompts = {}, {}
    for size in batch_sizes:
        rows = _rows(blocks, size)[:, :prompt_length]
        groups = [rows[i : i + size] for i in range(0, len(rows) - size + 1, size)]
        prompts[size] = groups
        latency[size] = [{"input_ids": g} for g in groups]
    return Workload(quality_batches=quality, latency_batches=latency, blocks=blocks, prompts=prompts,
                    prompt_length=prompt_length)
