"""BERT family: bert (MiniLM is a bert), distilbert and roberta encoders."""

from __future__ import annotations

from compressor.families.base import CLASSIFICATION, ENCODER, Family

BERT = Family(
    name="bert",
    model_types=("bert", "distilbert", "roberta"),
    tasks=(CLASSIFICATION, ENCODER),
    architecture_tasks=(("ForSequenceClassification", CLASSIFICATION), ("Model", ENCODER)),
    default_task=ENCODER,
)
