"""feature-extraction: a bare encoder (no task head). It exports and is compared by its hidden states;
it has no quality metric, so it cannot be distilled, gated or given an accuracy budget."""

from __future__ import annotations

from typing import Any

from compressor.tasks.base import Batch, Task


def _sentences() -> Task:
    """The registered text-classification task: a bare encoder's inputs are tokenised like its."""
    from compressor import tasks

    return tasks.get(tasks.CLASSIFICATION)


class FeatureExtraction(Task):
    name = "feature-extraction"
    noun = "bare encoder"
    auto_model = "AutoModel"
    ort_model = "ORTModelForFeatureExtraction"
    export_task = "feature-extraction"
    output_name = "last_hidden_state"

    def builtin_batches(self, tokenizer: Any, *, samples: int, max_length: int, batch_size: int = 16) -> list[Batch]:
        return _sentences().builtin_batches(tokenizer, samples=samples, max_length=max_length,
                                            batch_size=batch_size)

    def batches(self, flag: str, tokenizer: Any, spec: Any, *, label2id: dict[str, int] | None,
                samples: int | None, max_length: int, batch_size: int, require_labels: bool) -> list[Batch]:
        # Sentences (no labels needed) tokenised exactly as a classifier's.
        return _sentences().batches(flag, tokenizer, spec, label2id=None, samples=samples, max_length=max_length,
                                    batch_size=batch_size, require_labels=False)
