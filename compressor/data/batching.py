"""Turning datasets into model inputs: dynamically padded classification batches and LM blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from compressor.data.datasets import ClassificationData
from compressor.errors import BadInputError


def encode_classification(tokenizer: Any, data: ClassificationData, max_length: int) -> list[dict[str, list[int]]]:
    """Tokenise once, unpadded; batches pad to their own longest row."""
    encoded = tokenizer(
        data.texts,
        data.pairs,
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(len(data))]


def pad_batch(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a list of encoded rows into int64 numpy arrays."""
    import numpy as np

    width = max(len(r["input_ids"]) for r in rows)
    batch: dict[str, Any] = {}
    for key in rows[0]:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = np.array([r[key] + [fill] * (width - len(r[key])) for r in rows], dtype=np.int64)
    return batch


def classification_batches(
    tokenizer: Any, data: ClassificationData, *, batch_size: int, max_length: int = 128
) -> Iterator[dict[str, Any]]:
    rows = encode_classification(tokenizer, data, max_length)
    pad_id = tokenizer.pad_token_id or 0
    for start in range(0, len(rows), batch_size):
        yield pad_batch(rows[start : start + batch_size], pad_id)


def lm_blocks(tokenizer: Any, texts: list[str], *, block_size: int, max_blocks: int | None = None) -> Any:
    """Concatenate documents (separated by EOS) and cut the stream into equal ``block_size`` rows.

    The standard way perplexity is reported for GPT-2 (non-overlapping windows); the tail shorter
    than a block is dropped.
    """
    import numpy as np

    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
        if max_blocks is not None and len(ids) >= block_size * max_blocks:
            break
    n_blocks = len(ids) // block_size
    if max_blocks is not None:
        n_blocks = min(n_blocks, max_blocks)
    if n_blocks == 0:
        raise BadInputError(f"text has {len(ids)} tokens, fewer than one block of {block_size}")
    return np.array(ids[: n_blocks * block_size], dtype=np.int64).reshape(n_blocks, block_size)
