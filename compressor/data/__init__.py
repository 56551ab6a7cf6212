"""Data loading shared by every stage: local tables and text, or a hub dataset when one is reachable."""

from compressor.data.datasets import (
    ClassificationData,
    DataSpec,
    load_classification,
    load_texts,
)
from compressor.data.tables import read_table

__all__ = ["ClassificationData", "DataSpec", "load_classification", "load_texts", "read_table"]
