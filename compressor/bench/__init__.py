"""Benchmarking artifacts against a baseline: latency, memory, size, quality, and CI gates."""

from compressor.bench.config import GATES, BenchConfig
from compressor.bench.stage import bench

__all__ = ["GATES", "BenchConfig", "bench"]
