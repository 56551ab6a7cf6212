"""Knowledge distillation into a smaller student, for BERT classifiers, GPT-2 and Llama-family LMs."""

from compressor.distill.config import DistillConfig
from compressor.distill.stage import distill

__all__ = ["DistillConfig", "distill"]
