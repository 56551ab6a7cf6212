"""What every task provides. Stages ask the task; they never branch on its name.

A task owns: reading its examples from data rows, tokenising and batching them (the position clamp is
the family's), running a PyTorch or ONNX runner to predictions, its metrics (with the bootstrap bench
uses), its distillation losses and targets, calibration batches, the export parity comparison, and its
export task name and transformers/optimum classes. A new task is one module defining a ``Task``
subclass plus its line in ``tasks/__init__.py``.

Batches are numpy dicts of model inputs; a batch may carry ``labels`` (never a model input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.errors import BadInputError

Batch = dict[str, np.ndarray]

# Built-in inputs for parity checks and data-free scoring when the user gives no data.
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


def model_inputs(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if k != "labels"}


@dataclass
class EvalResult:
    """Metrics plus what sensitivity analysis compares against: per-row log-probabilities of a
    classifier (small: rows x labels), or per-block mean NLL of a language model."""

    metrics: dict[str, Any]
    log_probs: np.ndarray | None = None
    block_nll: np.ndarray | None = field(default=None, repr=False)


def same_labels(subjects: list[Any], what: str = "label set") -> dict[str, int] | None:
    """The baseline's ``label2id``; exit-2 error when another subject's differs (predictions of
    different label sets cannot be compared)."""
    label2id = subjects[0].artifact.config.get("label2id")
    for subject in subjects[1:]:
        other = subject.artifact.config.get("label2id")
        if label2id and other and other != label2id:
            raise BadInputError(f"{subject.artifact.path}: {what} {other} differs from the baseline's {label2id}; "
                                "predictions cannot be compared")
    return label2id


class Task:
    name: str = ""
    noun: str = "model"  # how messages name a model of this task: "classifier", "causal LM"
    # transformers / optimum class names, and optimum's exporter task
    auto_model: str = "AutoModel"
    ort_model: str = "ORTModelForFeatureExtraction"
    export_task: str = "feature-extraction"
    output_name: str = "logits"  # the model output every runner returns
    # quality: the primary metric (None: the task has no head to score), its direction, the option
    # that bounds its loss (quantize's budget and bench's gate share the name)
    metric: str | None = None
    higher_is_better: bool = True
    budget_option: str | None = None
    uses_labels: bool = False  # the model's label set must match its data's and its teacher's
    generates: bool = False  # decodes with a KV cache (bench times prefill and per-token decode)
    # forward() keywords when scoring whole sequences (causal LMs: no KV cache)
    model_kwargs: dict[str, Any] = {}
    # transformers' table of the model classes of this task (``transformers.models.auto.modeling_auto``)
    transformers_mapping: str = "MODEL_MAPPING_NAMES"
    # a file whose presence in a checkpoint directory makes it a model of this task, whatever its
    # config.json architecture says (sentence-transformers' modules.json)
    marker_file: str | None = None

    # -- classes --------------------------------------------------------------------------------
    @property
    def plural(self) -> str:
        return self.noun + "s"

    def auto_model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_model)

    def ort_model_class(self) -> Any:
        import optimum.onnxruntime as ortm

        return getattr(ortm, self.ort_model)

    def owns_model(self, model: Any) -> bool:
        """Whether ``model`` (a transformers model object) is a model of this task."""
        from transformers.models.auto import modeling_auto

        mapping = getattr(modeling_auto, self.transformers_mapping)
        return type(model).__name__ in set(mapping.values())

    def export_task_for(self, config: dict[str, Any]) -> str:
        """optimum's exporter task for a model with this ``config.json``."""
        return self.export_task

    def check_directory(self, directory: Any) -> None:
        """Exit-2 error when a checkpoint directory of this task lacks a file it needs."""

    def export_model(self, model: Any) -> Any:
        """The transformers model optimum exports (a wrapper's inner model)."""
        return model

    def finish_export(self, model: Any, out: Any) -> None:
        """Complete an exported ONNX directory (extra graph outputs, the task's own files)."""

    # -- data -----------------------------------------------------------------------------------
    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        """Model-input batches from a data file; errors name ``flag`` so the user knows which file."""
        raise BadInputError(f"{flag}: {self.name} models take no evaluation or calibration data here")

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        """Unlabelled batches from the built-in sentences (parity checks, data-free scoring)."""
        raise NotImplementedError

    def parity_batches(self, tokenizer: Any, spec: Any | None, *, label2id: dict[str, int] | None, samples: int,
                       max_length: int, batch_size: int = 16) -> list[Batch]:
        if spec is None:
            return self.builtin_batches(tokenizer, samples=samples, max_length=max_length, batch_size=batch_size)
        return self.batches("--parity-data", tokenizer, spec, label2id=label2id, samples=samples,
                            max_length=max_length, batch_size=batch_size, require_labels=False)

    def check_data(self, flag: str, spec: Any, *, label2id: dict[str, int] | None) -> None:
        """Read the head of a data file now, so a wrong column or task fails before any work."""
        raise BadInputError(f"{flag}: {self.name} models take no training data here")

    # -- quality --------------------------------------------------------------------------------
    def evaluate(self, runner: Any, batches: list[Batch], *, desc: str = "evaluating") -> EvalResult:
        raise BadInputError(f"{self.name} models have no task head to score; quality can be measured for "
                            "classifiers and causal LMs")

    def divergence(self, reference: EvalResult, candidate: EvalResult) -> float:
        """How far a candidate's predictions moved from the reference's (a continuous signal where a
        metric on a small set moves in whole rows)."""
        raise NotImplementedError

    def better(self, new: float, old: float | None) -> bool:
        if old is None:
            return True
        return new > old if self.higher_is_better else new < old

    def compare(self, reference: Any, candidate: Any, batches: list[Batch]) -> dict[str, Any]:
        """Parity: run both runners on every batch; how far is the candidate from the reference."""
        max_diff, abs_sum, count = 0.0, 0.0, 0
        for batch in batches:
            inputs = model_inputs(batch)
            diff = np.abs(reference.logits(inputs) - candidate.logits(inputs))
            max_diff = max(max_diff, float(diff.max()))
            abs_sum += float(diff.sum())
            count += diff.size
        return {"max_abs_diff": max_diff, "mean_abs_diff": abs_sum / max(count, 1),
                "samples": int(sum(len(b["input_ids"]) for b in batches))}

    # -- distillation ---------------------------------------------------------------------------
    distillable: bool = False

    def training_rows(self, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None, max_length: int,
                      flag: str, labels_needed: bool = True) -> Any:
        raise BadInputError(f"distill needs a model with a task head (a text classifier or a causal LM), not a "
                            f"{self.name} model")

    def output_losses(self, config: Any, logits: Any, targets: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        """The output-level distillation terms (``kd``, ``ce``) that ``config`` enables."""
        raise NotImplementedError

    def teacher_targets(self, logits: Any, *, top_k: int | None) -> dict[str, Any]:
        """What the distillation losses need of the teacher's logits (``top_k``: cache-sized)."""
        return {"logits": logits.float()}

    # Whether the teacher's targets can be cached per row at all (distill --teacher-cache).
    teacher_cacheable: bool = True

    def cache_worthwhile(self, total_steps: int, steps_per_epoch: int) -> bool:
        """Whether caching teacher targets per row pays (rows revisited, targets small)."""
        return self.teacher_cacheable

    # True: the training-time metric needs the whole eval set at once (entity F1, Spearman), and the
    # trainer calls ``score_rows`` with every (batch, logits) instead of summing ``eval_sums``.
    scores_rows: bool = False

    def score_rows(self, rows: Any, outputs: list[tuple[dict[str, Any], Any]]) -> float:
        raise NotImplementedError

    def eval_sums(self, logits: Any, batch: dict[str, Any]) -> tuple[Any, int]:
        """(numerator, denominator) of the training-time eval metric over one batch."""
        raise NotImplementedError

    def eval_value(self, ratio: float) -> float:
        return ratio

    def loss_fn(self, device: str = "cpu") -> Any:
        """(model, numpy batch) -> the task loss whose gradients pruning importance measures."""
        raise NotImplementedError

    # -- bench ----------------------------------------------------------------------------------
    def bench_workloads(self, config: Any, subjects: list[Any]) -> Any:
        """Give each subject its workload (``subject.workload``); returns what quality needs."""
        raise BadInputError(f"--baseline {subjects[0].artifact.path}: task {self.name} has no quality metric to "
                            "bench; bench supports text-classification and causal-lm")

    def bench_scores(self, runner: Any, workload: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def bench_quality(self, raw: dict[str, np.ndarray], base_raw: dict[str, np.ndarray], context: Any, *,
                      vs_baseline: bool, config: Any) -> dict[str, Any]:
        raise NotImplementedError

    def bench_warnings(self, subjects: list[Any]) -> list[dict[str, str]]:
        return []
