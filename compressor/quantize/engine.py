"""The interface every quantization engine implements, and how a method finds its engine.

A method (``quantize.config.METHODS``: one entry per (method, format)) names its engine class; the
stage only ever talks to this interface. Adding a method is one engine class (or a method name an
existing engine handles) plus its entry in ``METHODS``.

Candidates: ``build(float_units)`` returns a model with every unit quantized except ``float_units``;
``only(unit)`` one with just ``unit`` quantized; ``discard`` releases a candidate. That is what the
accuracy budget's per-layer sensitivity and fallback need.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import import_module
from pathlib import Path
from typing import Any

from compressor.quantize.sensitivity import Unit


class Engine(ABC):
    # Layers left in float by design (not by the budget), each {"layer": name, "reason": why}.
    default_float: list[dict[str, str]] = []

    @classmethod
    def check_source(cls, source: Any, tokenizer: Any, method: str) -> None:
        """Exit-2 checks of ``source`` that need no data and no model in memory (run before any work)."""

    @classmethod
    @abstractmethod
    def from_artifact(cls, source: Any, method: str, config: Any, workdir: Path, allow_pickle: bool) -> Engine:
        """An engine for ``source`` (an open artifact); ``workdir`` is scratch space it may use."""

    @abstractmethod
    def calibrate(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        """Quantize the whole model once (calibrating on ``batches`` where the method needs it);
        returns what the report says about calibration."""

    @abstractmethod
    def units(self) -> list[Unit]: ...

    @abstractmethod
    def settings(self) -> dict[str, Any]: ...

    @abstractmethod
    def build(self, float_units: list[str]) -> Any: ...

    @abstractmethod
    def only(self, unit: str) -> Any: ...

    @abstractmethod
    def discard(self, candidate: Any) -> None: ...

    @abstractmethod
    def runner(self, candidate: Any | None) -> Any:
        """A runner (``compressor.inference``) of ``candidate``, or of the float model for None."""

    @abstractmethod
    def op_counts(self, candidate: Any, float_units: list[str]) -> dict[str, Any]: ...

    def fit_budget(self, budget: Any, task: Any, batches: list[dict[str, Any]]) -> tuple[Any, list[str], dict] | None:
        """An engine whose library meets an accuracy budget itself (NNCF's accuracy control) returns
        (candidate, layers kept in float, what the report says of it); None: the stage's measured
        per-layer fallback decides."""
        return None

    @abstractmethod
    def save(self, candidate: Any, out_dir: Path) -> tuple[list[str], dict[str, Any] | None]:
        """Write ``candidate``'s weights; returns the files written and the reload recipe (or None
        when the format loads without one)."""


def engine_class(path: str) -> type[Engine]:
    """The engine class at ``"module:Class"`` (imported on first use: engines import heavy libraries)."""
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)
