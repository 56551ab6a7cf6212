"""sentence-embedding: sentence-transformers checkpoints (``modules.json``: a Transformer module at the
root, a ``1_Pooling/config.json``, optionally Normalize), detected from ``modules.json``.

The model every stage handles is ``SentenceEncoder``: the transformer plus pooling and normalisation,
whose output (``logits``, also ``sentence_embedding``) is the sentence embedding. It saves back to the
sentence-transformers layout, so ``SentenceTransformer(dir)`` loads every PyTorch artifact. The ONNX
export is optimum's feature-extraction graph with pooling and normalisation appended: its first output
``sentence_embedding`` is what plain onnxruntime users read, and ``last_hidden_state`` stays for
``SentenceTransformer(dir, backend="onnx")`` (which pools in Python).

Data: distillation on unlabelled text (a plain text file, one sentence per line, or a text column of
a table; STS tables give both sentence columns); quality is Spearman of cosine similarity against gold
scores (STS-B layout: ``sentence1``, ``sentence2``, ``score`` 0-5), with a paired bootstrap over pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor import progress
from compressor.data.batching import classification_batches, encode_classification
from compressor.data.datasets import ClassificationData, DataSpec, _pick_text_column
from compressor.data.tables import TEXT_SUFFIXES, read_table
from compressor.errors import BadInputError
from compressor.tasks.base import SAMPLE_SENTENCES, Batch, EvalResult, Task, model_inputs
from compressor.tasks.st_model import add_pooling, encoder_class, read_modules, write_st_files

SCORE_COLUMNS = ("score", "similarity", "label")
STS_MAX = 5.0

# ------------------------------------------------------------------------------------ data


@dataclass
class STSData:
    first: list[str]
    second: list[str]
    scores: np.ndarray
    source: str


def _score_column(columns: list[str], spec: DataSpec) -> str | None:
    if spec.label_column:
        if spec.label_column not in columns:
            raise BadInputError(f"{spec.path}: score column {spec.label_column!r} not found; columns are: "
                                f"{', '.join(columns)}")
        return spec.label_column
    return next((c for c in SCORE_COLUMNS if c in columns), None)


def _refuse_conll(flag: str, spec: DataSpec) -> None:
    from compressor.tasks.token_classification import refuse_conll

    refuse_conll(flag, spec, "a sentence-embedding model takes sentences (one per line) or an STS table")


def load_sts(flag: str, spec: DataSpec, *, require_scores: bool) -> STSData | None:
    """STS pairs with gold scores in [0, 5]; None when the table has no pair-and-score columns."""
    _refuse_conll(flag, spec)
    if Path(spec.path).suffix.lower() in TEXT_SUFFIXES:
        if require_scores:
            raise BadInputError(f"{flag} {spec.path}: plain text has no similarity scores; a sentence-embedding model "
                                "is scored on STS pairs (sentence1, sentence2, score 0-5)")
        return None
    columns, rows = read_table(spec.path, split=spec.split, no_header=spec.no_header)
    first = spec.text_column or "sentence1"
    second = spec.text_pair_column or "sentence2"
    score = _score_column(columns, spec)
    if first not in columns or second not in columns or score is None:
        if require_scores:
            raise BadInputError(f"{flag} {spec.path}: needs STS pairs with gold scores (columns {first}, {second}, "
                                f"score); columns are: {', '.join(columns)}")
        return None
    if spec.limit:
        rows = rows[: spec.limit]
    values = []
    for number, row in enumerate(rows, start=1):
        raw = row[score]
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise BadInputError(f"{flag} {spec.path}: row {number}: score {raw!r} is not a number") from None
        if not math.isfinite(value) or not 0.0 <= value <= STS_MAX:
            raise BadInputError(f"{flag} {spec.path}: row {number}: score {raw!r} is outside 0-5")
        values.append(value)
    return STSData(first=[str(r[first]) for r in rows], second=[str(r[second]) for r in rows],
                   scores=np.asarray(values, dtype=np.float64), source=spec.path)


def load_sentences(flag: str, spec: DataSpec) -> list[str]:
    """Unlabelled sentences: the lines of a text file, both sides of an STS table, or a text column."""
    _refuse_conll(flag, spec)
    path = Path(spec.path)
    if path.suffix.lower() in TEXT_SUFFIXES and path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = lines[: spec.limit] if spec.limit else lines
    else:
        sts = load_sts(flag, spec, require_scores=False)
        if sts is not None:
            texts = sts.first + sts.second
        else:
            columns, rows = read_table(spec.path, split=spec.split, no_header=spec.no_header)
            if spec.limit:
                rows = rows[: spec.limit]
            try:
                column = _pick_text_column(spec, columns)
            except BadInputError as exc:
                raise BadInputError(f"{flag}: {exc.message}") from exc
            texts = [str(row[column]) for row in rows if str(row[column]).strip()]
    if not texts:
        raise BadInputError(f"{flag} {spec.path}: no sentences")
    return texts


def _text_batches(tokenizer: Any, texts: list[str], *, batch_size: int, max_length: int) -> list[Batch]:
    data = ClassificationData(texts=texts, pairs=None, labels=None, source="")
    return list(classification_batches(tokenizer, data, batch_size=batch_size, max_length=max_length))


class PairBatches(list):
    """Batches of every first sentence, then every second one; ``scores`` the gold similarities."""

    scores: np.ndarray | None = None


def cosine_pairs(embeddings: np.ndarray, pairs: int) -> np.ndarray:
    a, b = embeddings[:pairs].astype(np.float64), embeddings[pairs : 2 * pairs].astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)).clip(1e-12)


class STSRows:
    """Distillation eval rows: first sentences then second ones, and the gold scores."""

    def __init__(self, rows: Any, scores: np.ndarray) -> None:
        self._rows, self.scores = rows, scores
        self.rows, self.labels, self.source, self.pad_id = rows.rows, None, rows.source, rows.pad_id

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return self._rows.lengths()

    def collate(self, indices: list[int]) -> dict[str, Any]:
        return self._rows.collate(indices)


class SentenceEmbedding(Task):
    name = "sentence-embedding"
    noun = "sentence-embedding model"
    auto_model = "SentenceEncoder"
    ort_model = "ORTModelForFeatureExtraction"
    export_task = "feature-extraction"
    output_name = "sentence_embedding"
    metric = "spearman"
    higher_is_better = True
    budget_option = "max_score_drop"
    marker_file = "modules.json"
    distillable = True
    scores_rows = True

    def auto_model_class(self) -> Any:
        return encoder_class()

    def owns_model(self, model: Any) -> bool:
        return isinstance(model, encoder_class())

    def check_directory(self, directory: Any) -> None:
        read_modules(Path(directory))

    def export_model(self, model: Any) -> Any:
        return model.transformer

    def finish_export(self, model: Any, out: Any) -> None:
        out = Path(out)
        add_pooling(out / "model.onnx", model.pooling, model.normalize)
        write_st_files(out, model.pooling, model.normalize, model.extra_files, model.config.hidden_size)

    # -- data -----------------------------------------------------------------------------------
    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        sts = load_sts(flag, spec, require_scores=require_labels)
        if sts is None:
            texts = load_sentences(flag, spec)[:samples] if samples else load_sentences(flag, spec)
            return _text_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length)
        n = min(samples, len(sts.scores)) if samples else len(sts.scores)
        batches = PairBatches(_text_batches(tokenizer, sts.first[:n], batch_size=batch_size, max_length=max_length)
                              + _text_batches(tokenizer, sts.second[:n], batch_size=batch_size, max_length=max_length))
        batches.scores = sts.scores[:n]
        return batches

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        return _text_batches(tokenizer, SAMPLE_SENTENCES[:samples], batch_size=batch_size, max_length=max_length)

    def check_data(self, flag: str, spec: Any, *, label2id: dict[str, int] | None) -> None:
        load_sentences(flag, spec)

    # -- quality --------------------------------------------------------------------------------
    def evaluate(self, runner: Any, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
        from compressor.bench.quality import spearman

        embeddings = np.concatenate([runner.logits(model_inputs(b)) for b in progress.bar(batches, desc=desc,
                                                                                          total=len(batches))])
        scores = getattr(batches, "scores", None)
        result: dict[str, Any] = {"samples": len(embeddings)}
        sims = None
        if scores is not None:
            sims = cosine_pairs(embeddings, len(scores))
            result.update(pairs=len(scores), spearman=spearman(sims, scores))
        # "log_probs" holds the embeddings: divergence compares them directly.
        return EvalResult(metrics=result, log_probs=embeddings)

    def divergence(self, reference: EvalResult, candidate: EvalResult) -> float:
        """Mean cosine distance between the reference's and the candidate's embeddings."""
        a, b = reference.log_probs.astype(np.float64), candidate.log_probs.astype(np.float64)
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)).clip(1e-12)
        return float(np.mean(1.0 - cos))

    def compare(self, reference: Any, candidate: Any, batches: list[Batch]) -> dict[str, Any]:
        report = super().compare(reference, candidate, batches)
        refs = np.concatenate([reference.logits(model_inputs(b)) for b in batches])
        cands = np.concatenate([candidate.logits(model_inputs(b)) for b in batches])
        cos = (refs * cands).sum(-1) / (np.linalg.norm(refs, axis=-1) * np.linalg.norm(cands, axis=-1)).clip(1e-12)
        report["min_cosine"] = float(cos.min())
        return report

    # -- distillation ---------------------------------------------------------------------------
    def training_rows(self, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None, max_length: int,
                      flag: str, labels_needed: bool = True) -> Any:
        """Training: unlabelled sentences (the pooled embedding is the target). Evaluation
        (``--eval-data``): STS pairs, first sentences then second ones, scored by Spearman."""
        from compressor.distill.batches import Rows

        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

        def rows_of(texts: list[str]) -> Rows:
            data = ClassificationData(texts=texts, pairs=None, labels=None, source=spec.path)
            return Rows(rows=encode_classification(tokenizer, data, max_length), labels=None, source=spec.path,
                        pad_id=pad_id)

        if flag == "--eval-data":
            sts = load_sts(flag, spec, require_scores=True)
            return STSRows(rows_of(sts.first + sts.second), sts.scores)
        return rows_of(load_sentences(flag, spec))

    def output_losses(self, config: Any, logits: Any, targets: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        import torch.nn.functional as F

        if config.alpha_ce:
            raise BadInputError(f"--alpha-ce {config.alpha_ce:g}: a sentence-embedding model has no labels to train "
                                "on; use --alpha-kd (embedding loss) and optionally --alpha-hidden")
        parts: dict[str, Any] = {}
        if config.alpha_kd:
            student, teacher = logits.float(), targets["logits"].float()
            kind = getattr(config, "embedding_loss", "mse+cosine")
            loss = 0.0
            if "mse" in kind:  # squared L2 distance per sentence (the MSE of Reimers & Gurevych 2020, x dim)
                loss = loss + (student - teacher).pow(2).sum(-1).mean()
            if "cosine" in kind:
                loss = loss + (1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)).mean()
            parts["kd"] = loss
        return parts

    def score_rows(self, rows: Any, outputs: list[tuple[dict[str, Any], Any]]) -> float:
        from compressor.bench.quality import spearman

        width = outputs[0][1].shape[-1]
        embeddings = np.zeros((len(rows), width), dtype=np.float32)
        for batch, logits in outputs:
            embeddings[batch["index"].numpy()] = logits.numpy()
        return spearman(cosine_pairs(embeddings, len(rows.scores)), rows.scores)

    def loss_fn(self, device: str = "cpu") -> Any:
        raise BadInputError("prune --data: sentence-embedding models are pruned without labelled data; omit --data "
                            "(layers are scored against the model's own embeddings)")

    # -- bench ----------------------------------------------------------------------------------
    def bench_workloads(self, config: Any, subjects: list[Any]) -> Any:
        from compressor.bench.workload import Workload

        sts = load_sts("--data", config.data, require_scores=True)
        n = min(config.max_samples, len(sts.scores)) if config.max_samples else len(sts.scores)
        texts = sts.first[:n] + sts.second[:n]
        for subject in subjects:
            tok = subject.tokenizer
            quality = _text_batches(tok, texts, batch_size=config.quality_batch_size, max_length=config.max_length)
            latency = {}
            for size in config.batch_sizes:
                cycled = (texts * (-(-size // len(texts))))[: max(size, len(sts.first[:n]))]
                batches = _text_batches(tok, cycled, batch_size=size, max_length=config.max_length)
                latency[size] = [b for b in batches if len(b["input_ids"]) == size]
            subject.workload = Workload(quality_batches=quality, latency_batches=latency)
        return sts.scores[:n]

    def bench_scores(self, runner: Any, workload: Any) -> dict[str, np.ndarray]:
        return {"embeddings": np.concatenate([runner.logits(b) for b in workload.quality_batches])}

    def bench_quality(self, raw: dict[str, np.ndarray], base_raw: dict[str, np.ndarray], context: Any, *,
                      vs_baseline: bool, config: Any) -> dict[str, Any]:
        from compressor.bench import quality

        gold = context
        sims = cosine_pairs(raw["embeddings"], len(gold))
        scores = quality.sts_scores(sims, gold)
        if vs_baseline:
            base = cosine_pairs(base_raw["embeddings"], len(gold))
            scores["vs_baseline"] = quality.sts_vs_baseline(sims, base, gold, resamples=config.bootstrap,
                                                            seed=config.seed)
        return scores
