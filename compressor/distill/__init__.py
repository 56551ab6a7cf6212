"""Knowledge distillation into a smaller student, for BERT classifiers and GPT-2 LMs."""

from compressor.distill.config import DistillConfig
from compressor.distill.stage import distill

__all__ = ["DistillConfig", "distill"]
