"""causal-lm: next-token prediction (GPT-2 and Llama families). Data is free text cut into fixed blocks; quality
is perplexity with a bootstrap over blocks; distillation is token-level KL on the next-token
distribution (top-k when cached) plus optional next-token CE; it exports with the KV cache."""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics, progress
from compressor.data import DataSpec, load_texts, read_table
from compressor.data.batching import lm_blocks
from compressor.data.datasets import DEFAULT_LABEL_COLUMN, DEFAULT_PAIR_COLUMNS, _pick_text_column
from compressor.errors import BadInputError
from compressor.tasks.base import SAMPLE_SENTENCES, Batch, EvalResult, Task, model_inputs

# Sentence columns that, next to a label, mark a table as classification data.
_SENTENCE_COLUMNS = ("sentence", "sentence1", "question", "question1")
BENCH_QUALITY_BATCH = 8  # LM logits are (batch, length, vocab): keep the float64 log-softmax small


def _blocks(tokenizer: Any, texts: list[str], *, samples: int | None, max_length: int, batch_size: int) -> list[Batch]:
    blocks = lm_blocks(tokenizer, texts, block_size=max_length, max_blocks=samples)
    return [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]


def check_free_text(spec: DataSpec, flag: str) -> None:
    """A causal LM distils on free text: a table of labelled sentences or pairs (GLUE style) is
    classification data, refused unless --text-column names its column explicitly."""
    if spec.text_column:
        return
    columns, _ = read_table(spec.path, split=spec.split, no_header=spec.no_header)
    label_col = spec.label_column or DEFAULT_LABEL_COLUMN
    text_col = _pick_text_column(spec, columns)
    pair_col = spec.text_pair_column or DEFAULT_PAIR_COLUMNS.get(text_col)
    if (label_col in columns and text_col in _SENTENCE_COLUMNS) or (pair_col and pair_col in columns):
        raise BadInputError(
            f"{flag} {spec.path}: columns {', '.join(columns)} are labelled sentences (classification data), but the "
            "teacher is a causal LM, which distils on free text: give a plain-text file or a table with a "
            "'text' column, or name the column with --text-column"
        )


class CausalLM(Task):
    name = "causal-lm"
    noun = "causal LM"
    auto_model = "AutoModelForCausalLM"
    ort_model = "ORTModelForCausalLM"
    export_task = "text-generation-with-past"
    transformers_mapping = "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"
    metric = "perplexity"
    higher_is_better = False
    budget_option = "max_perplexity_increase"
    generates = True
    distillable = True
    model_kwargs = {"use_cache": False}

    # -- data -----------------------------------------------------------------------------------
    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        """Non-overlapping blocks of ``max_length`` tokens (``samples`` = blocks)."""
        try:
            return _blocks(tokenizer, load_texts(spec), samples=samples, max_length=max_length, batch_size=batch_size)
        except BadInputError as exc:
            raise BadInputError(f"{flag}: {exc.message}") from exc

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        return _blocks(tokenizer, SAMPLE_SENTENCES * 8, samples=samples, max_length=max_length, batch_size=batch_size)

    def check_data(self, flag: str, spec: Any, *, label2id: dict[str, int] | None) -> None:
        try:
            load_texts(spec)
        except BadInputError as exc:
            raise BadInputError(f"{flag}: {exc.message}") from exc

    # -- quality --------------------------------------------------------------------------------
    def evaluate(self, runner: Any, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
        block_nll, tokens = [], 0
        for batch in progress.bar(batches, desc=desc, total=len(batches)):
            ids = batch["input_ids"]
            nll = metrics.next_token_nll(runner.logits(model_inputs(batch)), ids).reshape(len(ids), -1)
            block_nll.append(nll.mean(axis=1))
            tokens += nll.size
        per_block = np.concatenate(block_nll)
        return EvalResult(
            metrics={"perplexity": float(np.exp(per_block.mean())), "blocks": int(per_block.size), "tokens": tokens},
            block_nll=per_block,
        )

    def divergence(self, reference: EvalResult, candidate: EvalResult) -> float:
        """Mean |change| of per-block NLL (logits are too large to keep)."""
        return float(np.mean(np.abs(candidate.block_nll - reference.block_nll)))

    def compare(self, reference: Any, candidate: Any, batches: list[Batch]) -> dict[str, Any]:
        max_diff, abs_sum, count = 0.0, 0.0, 0
        ref_pred, cand_pred, ref_nll, cand_nll = [], [], [], []
        for batch in batches:
            inputs = model_inputs(batch)
            ref, cand = reference.logits(inputs), candidate.logits(inputs)
            diff = np.abs(ref - cand)
            max_diff, abs_sum, count = max(max_diff, float(diff.max())), abs_sum + float(diff.sum()), count + diff.size
            ref_nll.append(metrics.next_token_nll(ref, inputs["input_ids"]))
            cand_nll.append(metrics.next_token_nll(cand, inputs["input_ids"]))
            ref_pred.append(ref.argmax(-1).reshape(-1))
            cand_pred.append(cand.argmax(-1).reshape(-1))
        ref_p, cand_p = np.concatenate(ref_pred), np.concatenate(cand_pred)
        return {
            "max_abs_diff": max_diff, "mean_abs_diff": abs_sum / max(count, 1), "tokens": int(ref_p.size),
            "next_token_agreement": metrics.agreement(ref_p, cand_p),
            "perplexity_reference": metrics.perplexity(np.concatenate(ref_nll)),
            "perplexity_candidate": metrics.perplexity(np.concatenate(cand_nll)),
        }

    def compare_decoding(self, reference: Any, candidate: Any, prompts: np.ndarray, steps: int = 8) -> dict[str, Any]:
        """Decoding with the KV cache in both runtimes (runners' ``start``/``step``: transformers' cache,
        an ONNX graph's ``present.*`` fed back, OpenVINO's state). Both are given the reference's greedy
        token at each step (so one early difference does not snowball); compared are every step's logits."""
        batch, length = prompts.shape
        ref, cand = reference.start(prompts), candidate.start(prompts)
        max_diff, agree = 0.0, 0
        for step in range(steps + 1):
            max_diff = max(max_diff, float(np.abs(ref - cand).max()))
            agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
            if step == steps:
                break
            token = ref.argmax(-1)[:, None].astype(np.int64)
            ref, cand = reference.step(token), candidate.step(token)
        return {"steps": steps, "rows": batch, "prompt_length": length, "max_abs_diff": max_diff,
                "next_token_agreement": agree / (batch * (steps + 1))}

    # -- distillation ---------------------------------------------------------------------------
    def training_rows(self, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None, max_length: int,
                      flag: str, labels_needed: bool = True) -> Any:
        """The documents joined by EOS and cut into ``max_length``-token blocks (no padding at all)."""
        from compressor.distill.batches import Rows

        check_free_text(spec, flag)
        try:
            blocks = lm_blocks(tokenizer, load_texts(spec), block_size=max_length)
        except BadInputError as exc:
            raise BadInputError(f"{flag} {spec.path}: {exc.message}") from exc
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return Rows(rows=[{"input_ids": block} for block in blocks.tolist()], labels=None, source=spec.path,
                    pad_id=pad_id)

    def output_losses(self, config: Any, logits: Any, targets: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        from compressor.distill import losses

        mask = batch.get("attention_mask")
        vocab = logits.shape[-1]
        flat = logits.reshape(-1, vocab)
        flat_mask = mask.reshape(-1) if mask is not None else None
        parts: dict[str, Any] = {}
        if config.alpha_kd:
            if "topk_values" in targets:
                k = targets["topk_values"].shape[-1]
                parts["kd"] = losses.kd_loss_topk(flat, targets["topk_values"].reshape(-1, k),
                                                  targets["topk_indices"].reshape(-1, k), config.temperature, flat_mask)
            else:
                parts["kd"] = losses.kd_loss(flat, targets["logits"].reshape(-1, vocab), config.temperature, flat_mask)
        if config.alpha_ce:
            ids = batch["input_ids"]
            shifted_mask = mask[:, 1:].reshape(-1) if mask is not None else None
            parts["ce"] = losses.ce_loss(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1), shifted_mask)
        return parts

    def teacher_targets(self, logits: Any, *, top_k: int | None) -> dict[str, Any]:
        if top_k is None:
            return {"logits": logits.float()}
        from compressor.distill import losses

        values, indices = losses.topk_targets(logits, top_k)
        return {"topk_values": values, "topk_indices": indices}

    def cache_worthwhile(self, total_steps: int, steps_per_epoch: int) -> bool:
        """Top-k is an approximation worth making only when rows are revisited."""
        return total_steps > steps_per_epoch

    def eval_sums(self, logits: Any, batch: dict[str, Any]) -> tuple[Any, int]:
        import torch

        ids = batch["input_ids"]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                reduction="sum")
        return nll, ids[:, 1:].numel()

    def eval_value(self, ratio: float) -> float:
        import math

        return math.exp(ratio)

    def loss_fn(self, device: str = "cpu") -> Any:
        import torch
        import torch.nn.functional as F

        def loss(model: Any, batch: Batch) -> Any:
            inputs = {k: torch.from_numpy(v).to(device) for k, v in model_inputs(batch).items()}
            logits = model(**inputs, use_cache=False).logits[:, :-1]
            targets = inputs["input_ids"][:, 1:]
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

        return loss

    # -- bench ----------------------------------------------------------------------------------
    def bench_workloads(self, config: Any, subjects: list[Any]) -> Any:
        from compressor.bench.workload import lm_workload

        texts = load_texts(config.data)
        limits = [p for p in (s.artifact.family.max_positions(s.artifact.config) for s in subjects) if p]
        block = min([config.max_length, *limits])
        prompt = min([config.max_length, *[p - config.decode_tokens for p in limits]])
        if prompt < 1:
            raise BadInputError(
                f"--decode-tokens {config.decode_tokens}: leaves no room for a prompt within the model's "
                f"{min(limits)} positions"
            )
        for subject in subjects:
            try:
                subject.workload = lm_workload(
                    subject.tokenizer, texts, batch_sizes=config.batch_sizes, block_size=block, prompt_length=prompt,
                    max_blocks=config.max_samples,
                    quality_batch_size=min(config.quality_batch_size, BENCH_QUALITY_BATCH),
                )
                subject.workload.longest = max(block, prompt + config.decode_tokens)
            except BadInputError as exc:  # too little text for one block: name the file
                raise BadInputError(
                    f"{config.data.path}: {exc.message}; give more text or a smaller --max-length"
                ) from exc
        return None

    def bench_scores(self, runner: Any, workload: Any) -> dict[str, np.ndarray]:
        nll, preds = [], []
        for batch in workload.quality_batches:
            ids = batch["input_ids"]
            logits = runner.logits(batch)
            nll.append(metrics.next_token_nll(logits, ids).reshape(len(ids), -1).mean(axis=1))
            preds.append(logits[:, :-1].argmax(-1).reshape(-1))
        return {"block_nll": np.concatenate(nll), "predictions": np.concatenate(preds)}

    def bench_quality(self, raw: dict[str, np.ndarray], base_raw: dict[str, np.ndarray], context: Any, *,
                      vs_baseline: bool, config: Any) -> dict[str, Any]:
        from compressor.bench import quality

        # every position but the first predicts a token
        per_block = int(raw["predictions"].size // max(raw["block_nll"].size, 1))
        scores = quality.lm_scores(raw["block_nll"], tokens_per_block=per_block)
        if vs_baseline:
            scores["vs_baseline"] = quality.lm_vs_baseline(
                raw["block_nll"], base_raw["block_nll"],
                agreement=metrics.agreement(raw["predictions"], base_raw["predictions"]),
                resamples=config.bootstrap, seed=config.seed,
            )
        return scores

    def bench_warnings(self, subjects: list[Any]) -> list[dict[str, str]]:
        """Perplexities are per token: only comparable between models that share a vocabulary."""
        from compressor.bench import checks

        base_vocab = subjects[0].tokenizer.get_vocab()
        found = []
        for s in subjects:  # a sliding-window model attends to fewer tokens than it is scored/timed on
            window = s.artifact.family.attention_window(s.artifact.config)
            longest = s.workload.longest if s.workload is not None else 0
            if window and longest > window:
                found.append(checks.warning(
                    "beyond-sliding-window", s.name,
                    f"{s.name}: sequences reach {longest} tokens, beyond its {window}-token sliding window; it "
                    "attends to the last {window} only, so perplexity and speed are not those of full attention"
                    .replace("{window}", str(window))))
        return found + [
            checks.warning("tokenizer-differs", s.name,
                           f"{s.name}: its tokenizer differs from the baseline's; perplexities are per token of "
                           "different vocabularies and not directly comparable")
            for s in subjects[1:]
            if s.tokenizer is not subjects[0].tokenizer and s.tokenizer.get_vocab() != base_vocab
        ]
