"""token-classification: a tag per word (NER), BERT-family ``ForTokenClassification`` heads.

Data is CoNLL (the tag in the last column) or JSONL/Parquet with ``tokens`` and ``tags`` lists. Words
are split into sub-tokens; the first sub-token of each word carries its tag, the others (and the
special tokens) -100, so metrics, losses and parity count one position per word. Quality is
entity-level micro F1 / precision / recall (seqeval, IOB2) and token accuracy, with a paired
bootstrap over sentences; distillation is per-token KL (x T^2) on those positions, plus optional CE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics, progress
from compressor.data.conll import TaggedData, load_tagged, looks_like_conll
from compressor.errors import BadInputError
from compressor.tasks.base import SAMPLE_SENTENCES, Batch, EvalResult, Task, model_inputs, same_labels

IGNORE = -100


class TagBatches(list):
    """Batches that know the tag names of their label ids (for entity-level scoring)."""

    tag_names: list[str] | None = None
    iob1_starts: int = 0


def _names(label2id: dict[str, int] | None) -> list[str] | None:
    if not label2id:
        return None
    return [name for name, _ in sorted(label2id.items(), key=lambda kv: kv[1])]


def encode_tagged(tokenizer: Any, data: TaggedData, max_length: int) -> tuple[list[dict[str, list[int]]], list[list[int]]]:
    """Tokenised rows (unpadded) and their aligned labels: a word's tag on its first sub-token, -100
    on the rest and on special tokens. Words cut off by ``max_length`` are not scored."""
    if not getattr(tokenizer, "is_fast", False):
        raise BadInputError("token classification needs a fast tokenizer (tokenizer.json) to align tags to words")
    encoded = tokenizer(data.words, is_split_into_words=True, truncation=True, max_length=max_length, padding=False)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    rows, labels = [], []
    for i in range(len(data)):
        word_ids = encoded.word_ids(i)
        tags = data.tags[i] if data.tags is not None else None
        aligned, previous = [], None
        for word in word_ids:
            if word is None or word == previous:
                aligned.append(IGNORE)
            else:
                aligned.append(tags[word] if tags is not None else 0)
            previous = word
        rows.append({k: encoded[k][i] for k in keys})
        labels.append(aligned)
    return rows, labels


def _pad_labels(labels: list[list[int]], width: int) -> np.ndarray:
    return np.array([row + [IGNORE] * (width - len(row)) for row in labels], dtype=np.int64)


def tagged_batches(tokenizer: Any, data: TaggedData, *, batch_size: int, max_length: int,
                   label2id: dict[str, int] | None, with_labels: bool = True) -> TagBatches:
    from compressor.data.batching import pad_batch

    rows, labels = encode_tagged(tokenizer, data, max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = TagBatches()
    batches.tag_names = _names(label2id)
    batches.iob1_starts = data.iob1_starts
    for start in range(0, len(rows), batch_size):
        batch = pad_batch(rows[start : start + batch_size], pad_id)
        if with_labels and data.tags is not None:
            batch["labels"] = _pad_labels(labels[start : start + batch_size], batch["input_ids"].shape[1])
        batches.append(batch)
    return batches


def _head(data: TaggedData, samples: int | None) -> TaggedData:
    if not samples:
        return data
    return TaggedData(words=data.words[:samples], tags=data.tags[:samples] if data.tags is not None else None,
                      source=data.source, iob1_starts=data.iob1_starts)


def _load(flag: str, spec: Any, label2id: dict[str, int] | None, require_tags: bool) -> TaggedData:
    try:
        data = load_tagged(spec, label2id=label2id, require_tags=require_tags)
    except BadInputError as exc:
        raise BadInputError(f"{flag}: {exc.message}") from exc
    if data.iob1_starts:
        progress.status(f"{flag} {spec.path}: {data.iob1_starts} I- tag(s) open an entity (IOB1-style); "
                        "scored as entity starts, as conlleval does")
    return data


def _word_sequences(logits: np.ndarray, labels: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per row: predicted and gold ids at the scored positions; and the log-probs there."""
    preds, golds, lps = [], [], []
    for row_logits, row_labels in zip(logits, labels):
        keep = row_labels != IGNORE
        preds.append(row_logits[keep].argmax(-1))
        golds.append(row_labels[keep])
        lps.append(metrics.log_softmax(row_logits[keep].astype(np.float64)))
    return preds, golds, np.concatenate(lps) if lps else np.zeros((0, logits.shape[-1]))


def _to_names(sequences: list[np.ndarray], names: list[str]) -> list[list[str]]:
    return [[names[int(i)] for i in seq] for seq in sequences]


def _tag_names_of(batches: Any, runner: Any) -> list[str] | None:
    names = getattr(batches, "tag_names", None)
    if names:
        return names
    model = getattr(runner, "model", None)
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if id2label:
        return [id2label[i] for i in sorted(id2label)]
    return None


class TokenClassification(Task):
    name = "token-classification"
    noun = "token classifier"
    auto_model = "AutoModelForTokenClassification"
    ort_model = "ORTModelForTokenClassification"
    export_task = "token-classification"
    transformers_mapping = "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"
    metric = "f1"
    higher_is_better = True
    budget_option = "max_f1_drop"
    uses_labels = True
    distillable = True
    scores_rows = True

    # -- data -----------------------------------------------------------------------------------
    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        data = _head(_load(flag, spec, label2id, require_labels), samples)
        return tagged_batches(tokenizer, data, batch_size=batch_size, max_length=max_length, label2id=label2id)

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        data = TaggedData(words=[s.split() for s in SAMPLE_SENTENCES[:samples]], tags=None, source="built-in sentences")
        return tagged_batches(tokenizer, data, batch_size=batch_size, max_length=max_length, label2id=None)

    def check_data(self, flag: str, spec: Any, *, label2id: dict[str, int] | None) -> None:
        _load(flag, spec, label2id, False)

    # -- quality --------------------------------------------------------------------------------
    def evaluate(self, runner: Any, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
        from compressor.bench.quality import token_scores

        preds, golds, lps = [], [], []
        labelled = all("labels" in b for b in batches)
        for batch in progress.bar(batches, desc=desc, total=len(batches)):
            logits = runner.logits(model_inputs(batch))
            labels = batch["labels"] if labelled else np.where(batch["attention_mask"] > 0, 0, IGNORE)
            p, g, lp = _word_sequences(logits, labels)
            preds += p
            golds += g
            lps.append(lp)
        result: dict[str, Any] = {"samples": len(preds)}
        names = _tag_names_of(batches, runner)
        if labelled and names:
            result.update(token_scores(_to_names(golds, names), _to_names(preds, names)))
            result["iob1_starts"] = int(getattr(batches, "iob1_starts", 0))
        return EvalResult(metrics=result, log_probs=np.concatenate(lps))

    def divergence(self, reference: EvalResult, candidate: EvalResult) -> float:
        from compressor.evaluation import kl_divergence

        return kl_divergence(reference.log_probs, candidate.log_probs)

    def compare(self, reference: Any, candidate: Any, batches: list[Batch]) -> dict[str, Any]:
        """Logit differences and per-token argmax agreement over real (unpadded) tokens."""
        max_diff, abs_sum, count, agree, tokens = 0.0, 0.0, 0, 0, 0
        for batch in batches:
            inputs = model_inputs(batch)
            ref, cand = reference.logits(inputs), candidate.logits(inputs)
            real = batch["attention_mask"] > 0
            diff = np.abs(ref - cand)[real]
            max_diff, abs_sum, count = max(max_diff, float(diff.max())), abs_sum + float(diff.sum()), count + diff.size
            agree += int((ref.argmax(-1) == cand.argmax(-1))[real].sum())
            tokens += int(real.sum())
        return {"max_abs_diff": max_diff, "mean_abs_diff": abs_sum / max(count, 1),
                "samples": int(sum(len(b["input_ids"]) for b in batches)), "tokens": tokens,
                "token_agreement": agree / max(tokens, 1)}

    # -- distillation ---------------------------------------------------------------------------
    def training_rows(self, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None, max_length: int,
                      flag: str, labels_needed: bool = True) -> Any:
        """Tagged sentences: the per-token KL is taken on each word's first sub-token."""
        data = _load(flag, spec, label2id, True)
        rows, labels = encode_tagged(tokenizer, data, max_length)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return TokenRows(rows=rows, labels=labels, source=spec.path, pad_id=pad_id, tag_names=_names(label2id))

    def output_losses(self, config: Any, logits: Any, targets: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        from compressor.distill import losses

        classes = logits.shape[-1]
        labels = batch["labels"].reshape(-1)
        mask = labels != IGNORE
        parts: dict[str, Any] = {}
        if config.alpha_kd:
            parts["kd"] = losses.kd_loss(logits.reshape(-1, classes), targets["logits"].reshape(-1, classes),
                                         config.temperature, mask)
        if config.alpha_ce:
            parts["ce"] = losses.ce_loss(logits.reshape(-1, classes), labels.clamp_min(0), mask)
        return parts

    teacher_cacheable = False  # per-token logits of rows padded to their batch: not stackable across batches

    def score_rows(self, rows: Any, outputs: list[tuple[dict[str, Any], Any]]) -> float:
        """Entity F1 of the training-time evaluation (the whole eval set at once)."""
        from compressor.bench.quality import token_scores

        names = rows.tag_names
        preds, golds = [], []
        for batch, logits in outputs:
            p, g, _ = _word_sequences(logits.float().numpy(), batch["labels"].numpy())
            preds += p
            golds += g
        return token_scores(_to_names(golds, names), _to_names(preds, names))["f1"]

    def loss_fn(self, device: str = "cpu") -> Any:
        import torch
        import torch.nn.functional as F

        def loss(model: Any, batch: Batch) -> Any:
            inputs = {k: torch.from_numpy(v).to(device) for k, v in model_inputs(batch).items()}
            logits = model(**inputs).logits
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   torch.from_numpy(batch["labels"]).to(device).reshape(-1), ignore_index=IGNORE)

        return loss

    # -- bench ----------------------------------------------------------------------------------
    def bench_workloads(self, config: Any, subjects: list[Any]) -> Any:
        from compressor.bench.workload import Workload

        label2id = same_labels(subjects, "tag set")
        data = _head(_load("--data", config.data, label2id, True), config.max_samples)
        for subject in subjects:
            tok = subject.tokenizer
            quality = tagged_batches(tok, data, batch_size=config.quality_batch_size, max_length=config.max_length,
                                     label2id=label2id)
            latency = {}
            for size in config.batch_sizes:
                cycled = data if len(data) >= size else TaggedData(
                    words=(data.words * (-(-size // len(data))))[:size], tags=None, source=data.source)
                batches = tagged_batches(tok, cycled, batch_size=size, max_length=config.max_length,
                                         label2id=None, with_labels=False)
                latency[size] = [b for b in batches if len(b["input_ids"]) == size]
            subject.workload = Workload(quality_batches=quality, latency_batches=latency)
        return _names(label2id)

    def bench_scores(self, runner: Any, workload: Any) -> dict[str, np.ndarray]:
        preds, golds = [], []
        for batch in workload.quality_batches:
            p, g, _ = _word_sequences(runner.logits(model_inputs(batch)), batch["labels"])
            preds += p
            golds += g
        return {"predictions": np.concatenate(preds), "gold": np.concatenate(golds),
                "lengths": np.array([len(p) for p in preds], dtype=np.int64)}

    def bench_quality(self, raw: dict[str, np.ndarray], base_raw: dict[str, np.ndarray], context: Any, *,
                      vs_baseline: bool, config: Any) -> dict[str, Any]:
        from compressor.bench import quality

        names = context

        def split(flat: np.ndarray, lengths: np.ndarray) -> list[list[str]]:
            return _to_names(np.split(flat, np.cumsum(lengths)[:-1]), names)

        gold = split(raw["gold"], raw["lengths"])
        predicted = split(raw["predictions"], raw["lengths"])
        scores = quality.token_scores(gold, predicted)
        if vs_baseline:
            baseline = split(base_raw["predictions"], base_raw["lengths"])
            if len(baseline) != len(predicted) or any(len(a) != len(b) for a, b in zip(baseline, predicted)):
                raise BadInputError("bench: the artifacts' tokenizers split the words differently; their tags "
                                    "cannot be compared word by word")
            scores["vs_baseline"] = quality.token_vs_baseline(gold, predicted, baseline, resamples=config.bootstrap,
                                                              seed=config.seed)
        return scores


class TokenRows:
    """Distillation rows of a token classifier: labels are per-token lists, padded with -100."""

    def __init__(self, rows: list[dict[str, list[int]]], labels: list[list[int]], source: str, pad_id: int,
                 tag_names: list[str] | None) -> None:
        from compressor.distill.batches import Rows

        self._rows = Rows(rows=rows, labels=None, source=source, pad_id=pad_id)
        self.rows, self.labels, self.source, self.pad_id = rows, labels, source, pad_id
        self.tag_names = tag_names

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return self._rows.lengths()

    def collate(self, indices: list[int]) -> dict[str, Any]:
        import torch

        batch = self._rows.collate(indices)
        width = batch["input_ids"].shape[1]
        batch["labels"] = torch.from_numpy(_pad_labels([self.labels[int(i)] for i in indices], width))
        return batch


def refuse_conll(flag: str, spec: Any, what: str) -> None:
    """Exit-2 error when ``spec`` is CoNLL data given to a model that does not tag tokens."""
    if looks_like_conll(spec.path):
        raise BadInputError(f"{flag} {spec.path}: looks like CoNLL token-tagged data (a tag per token line); "
                            f"{what}")
