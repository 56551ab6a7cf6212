"""text-classification: single sentences or sentence pairs to one label each (BERT-family heads).

Data is a labelled table (label values in the model's label set); quality is accuracy and macro-F1
with paired-bootstrap intervals; distillation is soft-logit KL (x T^2) plus optional hard-label CE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor import metrics, progress
from compressor.data import ClassificationData, load_classification, read_table
from compressor.data.batching import classification_batches, encode_classification
from compressor.data.datasets import DEFAULT_LABEL_COLUMN, check_header
from compressor.errors import BadInputError
from compressor.tasks.base import SAMPLE_SENTENCES, Batch, EvalResult, Task, model_inputs, same_labels


def _head(data: ClassificationData, samples: int | None) -> ClassificationData:
    if not samples:
        return data
    return ClassificationData(texts=data.texts[:samples], pairs=data.pairs[:samples] if data.pairs else None,
                              labels=data.labels[:samples] if data.labels else None, source=data.source)


def _batches(tokenizer: Any, data: ClassificationData, *, batch_size: int, max_length: int) -> list[Batch]:
    """Dynamically padded batches, with ``labels`` when the data has them."""
    batches = list(classification_batches(tokenizer, data, batch_size=batch_size, max_length=max_length))
    if data.labels is not None:
        start = 0
        for batch in batches:
            n = len(batch["input_ids"])
            batch["labels"] = np.array(data.labels[start : start + n], dtype=np.int64)
            start += n
    return batches


class TextClassification(Task):
    name = "text-classification"
    noun = "classifier"
    auto_model = "AutoModelForSequenceClassification"
    ort_model = "ORTModelForSequenceClassification"
    export_task = "text-classification"
    transformers_mapping = "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"
    metric = "accuracy"
    higher_is_better = True
    budget_option = "max_accuracy_drop"
    uses_labels = True
    distillable = True

    # -- data -----------------------------------------------------------------------------------
    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        try:
            data = load_classification(spec, label2id=label2id, require_labels=require_labels)
        except BadInputError as exc:
            raise BadInputError(f"{flag}: {exc.message}") from exc
        return _batches(tokenizer, _head(data, samples), batch_size=batch_size, max_length=max_length)

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        data = ClassificationData(texts=SAMPLE_SENTENCES, pairs=None, labels=None, source="built-in sentences")
        return _batches(tokenizer, _head(data, samples), batch_size=batch_size, max_length=max_length)

    def check_data(self, flag: str, spec: Any, *, label2id: dict[str, int] | None) -> None:
        try:
            load_classification(spec, label2id=label2id, require_labels=False)
        except BadInputError as exc:
            raise BadInputError(f"{flag}: {exc.message}") from exc

    # -- quality --------------------------------------------------------------------------------
    def evaluate(self, runner: Any, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
        log_probs, labels = [], []
        for batch in progress.bar(batches, desc=desc, total=len(batches)):
            log_probs.append(metrics.log_softmax(runner.logits(model_inputs(batch)).astype(np.float64)))
            if "labels" in batch:
                labels.append(batch["labels"])
        lp = np.concatenate(log_probs)
        result: dict[str, Any] = {"samples": len(lp)}
        if labels:
            result["accuracy"] = metrics.accuracy(lp.argmax(-1), np.concatenate(labels))
        return EvalResult(metrics=result, log_probs=lp)

    def divergence(self, reference: EvalResult, candidate: EvalResult) -> float:
        from compressor.evaluation import kl_divergence

        return kl_divergence(reference.log_probs, candidate.log_probs)

    def compare(self, reference: Any, candidate: Any, batches: list[Batch]) -> dict[str, Any]:
        max_diff, abs_sum, count = 0.0, 0.0, 0
        ref_pred, cand_pred, labels = [], [], []
        for batch in batches:
            inputs = model_inputs(batch)
            ref, cand = reference.logits(inputs), candidate.logits(inputs)
            diff = np.abs(ref - cand)
            max_diff, abs_sum, count = max(max_diff, float(diff.max())), abs_sum + float(diff.sum()), count + diff.size
            ref_pred.append(ref.argmax(-1))
            cand_pred.append(cand.argmax(-1))
            if "labels" in batch:
                labels.append(batch["labels"])
        ref_p, cand_p = np.concatenate(ref_pred), np.concatenate(cand_pred)
        report: dict[str, Any] = {"max_abs_diff": max_diff, "mean_abs_diff": abs_sum / max(count, 1),
                                  "samples": int(ref_p.size), "top1_agreement": metrics.agreement(ref_p, cand_p)}
        if labels:
            y = np.concatenate(labels)
            report["accuracy_reference"] = metrics.accuracy(ref_p, y)
            report["accuracy_candidate"] = metrics.accuracy(cand_p, y)
        return report

    # -- distillation ---------------------------------------------------------------------------
    def training_rows(self, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None, max_length: int,
                      flag: str, labels_needed: bool = True) -> Any:
        """One tokenised row per example of a table, at most ``max_length`` tokens. The rows need labels
        only when a loss reads them (``labels_needed``: --alpha-ce > 0); otherwise an unlabelled table
        (a ``sentence`` column, or a plain-text file whose blank-line-separated blocks are rows) is a
        transfer set the teacher labels."""
        from compressor.distill.batches import Rows

        columns, _ = read_table(spec.path, split=spec.split, no_header=spec.no_header)
        label_col = spec.label_column or DEFAULT_LABEL_COLUMN
        if labels_needed and label_col not in columns:
            check_header(spec.path, columns, f"no label column {label_col!r}", flag)
            raise BadInputError(
                f"{flag} {spec.path}: the teacher is a text classifier and this data needs labels (accuracy, "
                f"--alpha-ce), but it has no label column {label_col!r} (columns: {', '.join(columns)}); pass a "
                "labelled table or --label-column (unlabelled training text distils with --alpha-ce 0)"
            )
        data = load_classification(spec, label2id=label2id, require_labels=labels_needed)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return Rows(rows=encode_classification(tokenizer, data, max_length),
                    labels=data.labels if labels_needed else None, source=spec.path, pad_id=pad_id)

    def output_losses(self, config: Any, logits: Any, targets: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        from compressor.distill import losses

        parts: dict[str, Any] = {}
        if config.alpha_kd:
            parts["kd"] = losses.kd_loss(logits, targets["logits"], config.temperature)
        if config.alpha_ce:
            parts["ce"] = losses.ce_loss(logits, batch["labels"])
        return parts

    def eval_sums(self, logits: Any, batch: dict[str, Any]) -> tuple[Any, int]:
        return (logits.argmax(-1) == batch["labels"]).sum(), len(batch["labels"])

    def loss_fn(self, device: str = "cpu") -> Any:
        import torch
        import torch.nn.functional as F

        def loss(model: Any, batch: Batch) -> Any:
            inputs = {k: torch.from_numpy(v).to(device) for k, v in model_inputs(batch).items()}
            return F.cross_entropy(model(**inputs).logits, torch.from_numpy(batch["labels"]).to(device))

        return loss

    # -- bench ----------------------------------------------------------------------------------
    def bench_workloads(self, config: Any, subjects: list[Any]) -> Any:
        from compressor.bench.workload import classification_workload

        baseline = subjects[0].artifact
        label2id = same_labels(subjects)
        data = _head(load_classification(config.data, label2id=label2id, require_labels=True), config.max_samples)
        num_labels = len(label2id) if label2id else int(baseline.config.get("num_labels", 2))
        for subject in subjects:
            subject.workload = classification_workload(
                subject.tokenizer, data, batch_sizes=config.batch_sizes, max_length=config.max_length,
                quality_batch_size=config.quality_batch_size,
            )
        return np.asarray(data.labels), num_labels

    def bench_scores(self, runner: Any, workload: Any) -> dict[str, np.ndarray]:
        return {"predictions": np.concatenate([runner.logits(b).argmax(-1) for b in workload.quality_batches])}

    def bench_quality(self, raw: dict[str, np.ndarray], base_raw: dict[str, np.ndarray], context: Any, *,
                      vs_baseline: bool, config: Any) -> dict[str, Any]:
        from compressor.bench import quality

        y, num_labels = context
        scores = quality.classification_scores(raw["predictions"], y, num_labels)
        if vs_baseline:
            scores["vs_baseline"] = quality.classification_vs_baseline(
                raw["predictions"], base_raw["predictions"], y, num_labels, resamples=config.bootstrap, seed=config.seed
            )
        return scores
