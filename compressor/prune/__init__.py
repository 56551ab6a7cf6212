"""Structured pruning (layers, heads, FFN neurons) that really shrinks models, plus sparsity."""

from compressor.prune.config import Method, PruneConfig, parse_methods
from compressor.prune.stage import prune

__all__ = ["Method", "PruneConfig", "parse_methods", "prune"]
