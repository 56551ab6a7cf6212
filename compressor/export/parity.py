"""PyTorch vs onnxruntime parity on real inputs: the check optimum only warns about.

Inputs are the user's data when given, else built-in sentences. Classifiers compare logits and
top-1 predictions (and accuracy when labels exist); causal LMs compare next-token predictions at
every position of fixed-length text blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics
from compressor.data import ClassificationData, DataSpec, load_classification, load_texts
from compressor.data.batching import classification_batches, lm_blocks
from compressor.families.base import CAUSAL_LM

SAMPLE_SENTENCES = [
    "The film was a delight from start to finish.",
    "I would not recommend this restaurant to anyone.",
    "An uneven, overlong drama that never finds its footing.",
    "The new update makes the app noticeably faster.",
    "She said the weather in the mountains would turn cold by evening.",
    "Despite a strong cast, the plot is predictable and dull.",
    "A warm, funny and surprisingly moving story.",
    "The committee postponed its decision until next spring.",
    "Battery life is poor, but the screen is gorgeous.",
    "It is the kind of movie you forget as soon as the credits roll.",
    "Researchers measured the effect across three independent trials.",
    "What a waste of two hours.",
    "The orchestra's performance was precise and full of energy.",
    "Shipping took three weeks and the box arrived damaged.",
    "This is one of the best books I have read this year.",
    "The documentary explains a complicated subject with clarity and care.",
]


def parity_batches(
    task: str,
    tokenizer: Any,
    spec: DataSpec | None,
    *,
    label2id: dict[str, int] | None,
    samples: int,
    max_length: int,
    batch_size: int = 16,
) -> list[dict[str, np.ndarray]]:
    """Model inputs for the parity check; each batch may carry ``labels`` (not a model input)."""
    if task == CAUSAL_LM:
        texts = load_texts(spec) if spec else SAMPLE_SENTENCES * 8
        blocks = lm_blocks(tokenizer, texts, block_size=max_length, max_blocks=samples)
        return [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]
    if spec:
        data = load_classification(spec, label2id=label2id, require_labels=False)
    else:
        data = ClassificationData(texts=SAMPLE_SENTENCES, pairs=None, labels=None, source="built-in sentences")
    data = ClassificationData(
        texts=data.texts[:samples],
        pairs=data.pairs[:samples] if data.pairs else None,
        labels=data.labels[:samples] if data.labels else None,
        source=data.source,
    )
    batches = list(classification_batches(tokenizer, data, batch_size=batch_size, max_length=max_length))
    if data.labels is not None:
        start = 0
        for batch in batches:
            n = len(batch["input_ids"])
            batch["labels"] = np.array(data.labels[start : start + n])
            start += n
    return batches


def compare(task: str, reference: Any, candidate: Any, batches: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Run both runners on every batch and summarise how far the candidate is from the reference."""
    max_diff = 0.0
    abs_sum, count = 0.0, 0
    ref_pred, cand_pred, labels = [], [], []
    ref_nll, cand_nll = [], []
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        ref = reference.logits(inputs)
        cand = candidate.logits(inputs)
        if task == CAUSAL_LM:
            diff = np.abs(ref - cand)
            ref_nll.append(metrics.next_token_nll(ref, inputs["input_ids"]))
            cand_nll.append(metrics.next_token_nll(cand, inputs["input_ids"]))
        else:
            diff = np.abs(ref - cand)
        max_diff = max(max_diff, float(diff.max()))
        abs_sum += float(diff.sum())
        count += diff.size
        ref_pred.append(ref.argmax(-1).reshape(-1))
        cand_pred.append(cand.argmax(-1).reshape(-1))
        if "labels" in batch:
            labels.append(batch["labels"])
    ref_p, cand_p = np.concatenate(ref_pred), np.concatenate(cand_pred)
    report: dict[str, Any] = {"max_abs_diff": max_diff, "mean_abs_diff": abs_sum / max(count, 1)}
    if task == CAUSAL_LM:
        report["tokens"] = int(ref_p.size)
        report["next_token_agreement"] = metrics.agreement(ref_p, cand_p)
        report["perplexity_reference"] = metrics.perplexity(np.concatenate(ref_nll))
        report["perplexity_candidate"] = metrics.perplexity(np.concatenate(cand_nll))
    else:
        report["samples"] = int(ref_p.size)
        report["top1_agreement"] = metrics.agreement(ref_p, cand_p)
        if labels:
            y = np.concatenate(labels)
            report["accuracy_reference"] = metrics.accuracy(ref_p, y)
            report["accuracy_candidate"] = metrics.accuracy(cand_p, y)
    return report


def decode_parity(model: Any, candidate: Any, prompts: np.ndarray, steps: int = 8) -> dict[str, Any]:
    """Decoding with the KV cache in both runtimes: transformers' cache against the graph's ``present.*``
    outputs fed back as ``past_key_values.*``. Both are given the reference's greedy token at each step
    (so one early difference does not snowball); compared are the logits of every step."""
    import torch

    session = candidate.session
    names = [o.name for o in session.get_outputs()]
    batch, length = prompts.shape
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(prompts).to(device), use_cache=True)
    onnx_out = dict(zip(names, session.run(None, candidate.feeds({"input_ids": prompts}))))
    max_diff, agree = 0.0, 0
    for step in range(steps + 1):
        ref, cand = out.logits[:, -1].float().cpu().numpy(), onnx_out["logits"][:, -1].astype(np.float32)
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        if step == steps:
            break
        token = ref.argmax(-1)[:, None].astype(np.int64)
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(token).to(device), past_key_values=out.past_key_values,
                        use_cache=True)
        feeds = {"input_ids": token}
        if "attention_mask" in candidate.inputs:
            feeds["attention_mask"] = np.ones((batch, length + step + 1), dtype=np.int64)
        if "position_ids" in candidate.inputs:
            feeds["position_ids"] = np.full((batch, 1), length + step, dtype=np.int64)
        for name in candidate.inputs:
            if name.startswith("past_key_values"):
                feeds[name] = onnx_out["present" + name[len("past_key_values"):]]
        onnx_out = dict(zip(names, session.run(None, feeds)))
    return {"steps": steps, "rows": batch, "prompt_length": length, "max_abs_diff": max_diff,
            "next_token_agreement": agree / (batch * (steps + 1))}
