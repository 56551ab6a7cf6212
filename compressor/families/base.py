"""What every model family provides. Stages depend on this interface, not on ``model_type``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError

CLASSIFICATION = "text-classification"
CAUSAL_LM = "causal-lm"
ENCODER = "feature-extraction"

# optimum's exporter task names for our tasks; causal LMs are exported with the KV cache so the ONNX
# model is usable for generation.
ONNX_EXPORT_TASKS = {
    CLASSIFICATION: "text-classification",
    CAUSAL_LM: "text-generation-with-past",
    ENCODER: "feature-extraction",
}


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    tasks: tuple[str, ...]
    # architecture-name suffix -> task, checked in order
    architecture_tasks: tuple[tuple[str, str], ...]
    default_task: str

    def detect_task(self, config: dict[str, Any], source: Path | str) -> str:
        architectures = config.get("architectures") or []
        for architecture in architectures:
            for suffix, task in self.architecture_tasks:
                if architecture.endswith(suffix):
                    return task
        if architectures:
            raise BadInputError(
                f"{source}: architecture {architectures[0]!r} is not supported for the {self.name} family; "
                f"supported tasks: {', '.join(self.tasks)}"
            )
        return self.default_task

    def auto_class(self, task: str) -> Any:
        """The transformers Auto class that loads a checkpoint of ``task`` (imported lazily)."""
        import transformers

        names = {
            CLASSIFICATION: "AutoModelForSequenceClassification",
            CAUSAL_LM: "AutoModelForCausalLM",
            ENCODER: "AutoModel",
        }
        if task not in self.tasks:
            raise BadInputError(f"task {task!r} is not supported for the {self.name} family")
        return getattr(transformers, names[task])

    def ort_class(self, task: str) -> Any:
        """optimum's ORTModel class for an exported artifact of ``task``."""
        import optimum.onnxruntime as ortm

        names = {
            CLASSIFICATION: "ORTModelForSequenceClassification",
            CAUSAL_LM: "ORTModelForCausalLM",
            ENCODER: "ORTModelForFeatureExtraction",
        }
        return getattr(ortm, names[task])
