"""What every model family provides. Stages ask the family, never ``model_type`` or a family name.

A family owns: the model types it covers and which task each architecture serves, its layer stack
(get/set), the structural pruning surgery (heads, FFN neurons, whole layers), which teacher layers a
student starts from, and its Hugging Face quirks (GPT-2's Conv1D, position-limit field names).
A new family is one module defining a ``Family`` subclass plus its line in ``families/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.errors import BadInputError


@dataclass(frozen=True)
class Shape:
    """What a family calls its sizes in ``config.json``."""

    layers: str
    heads: str
    hidden: str
    ffn: str


def every_kth(n: int, m: int) -> list[int]:
    """``n`` of ``m`` layers, one every ``m/n`` from the first (3 of 6: 0, 2, 4; 2 of 6: 0, 3), as
    DistilBERT initialises its student ("one layer out of two")."""
    return [i * m // n for i in range(n)]


def spread_with_ends(n: int, m: int) -> list[int]:
    """``n`` of ``m`` layers, evenly spaced from the first to the last (3 of 6: 0, 3, 5; 2 of 6: 0, 5)."""
    if n == 1:
        return [m - 1]
    return [int(i * (m - 1) / (n - 1) + 0.5) for i in range(n)]


class Family:
    name: str = ""
    model_types: tuple[str, ...] = ()
    # architecture-name suffix -> task name, checked in order
    architecture_tasks: tuple[tuple[str, str], ...] = ()
    default_task: str = ""
    # tasks a checkpoint declares by a marker file rather than its architecture (``Task.marker_file``)
    file_tasks: tuple[str, ...] = ()
    # model types whose structure the family's surgery knows; the others get sparsity only
    structural_model_types: tuple[str, ...] = ()
    # config.json keys, first present wins
    layer_keys: tuple[str, ...] = ("num_hidden_layers",)
    width_keys: tuple[str, ...] = ("hidden_size",)
    position_keys: tuple[str, ...] = ("max_position_embeddings",)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([task for _, task in self.architecture_tasks] + list(self.file_tasks)))

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
        """The transformers Auto class that loads a checkpoint of ``task`` in this family."""
        from compressor import tasks

        if task not in self.tasks:
            raise BadInputError(f"task {task!r} is not supported for the {self.name} family")
        return tasks.get(task).auto_model_class()

    # -- config facts ---------------------------------------------------------------------------
    def _first(self, config: dict[str, Any], keys: tuple[str, ...], what: str) -> int:
        for key in keys:
            if config.get(key) is not None:
                return int(config[key])
        raise BadInputError(f"config of model_type {config.get('model_type')!r} has no {what} ({', '.join(keys)})")

    def layer_count(self, config: dict[str, Any]) -> int:
        return self._first(config, self.layer_keys, "layer count")

    def hidden_width(self, config: dict[str, Any]) -> int:
        return self._first(config, self.width_keys, "hidden size")

    def max_positions(self, config: dict[str, Any]) -> int | None:
        """Positions the model embeds (None when unbounded); token inputs are clamped to it."""
        for key in self.position_keys:
            if config.get(key):
                return int(config[key])
        return None

    def clamp_length(self, config: dict[str, Any], requested: int) -> int:
        """``requested`` tokens, or fewer when the model embeds fewer positions."""
        limit = self.max_positions(config)
        return min(requested, limit) if limit else requested

    def attention_window(self, config: dict[str, Any]) -> int | None:
        """Tokens a sliding-window model attends to; None for full attention."""
        return None

    def ort_optimizer_type(self, model_type: str) -> str:
        """The model type optimum's ``ORTOptimizer`` fuses this model's graph as (its own by default)."""
        return model_type

    # -- layers ---------------------------------------------------------------------------------
    def layers(self, model: Any) -> Any:
        """The ``nn.ModuleList`` of transformer blocks (any head)."""
        raise NotImplementedError

    def set_layers(self, model: Any, modules: list[Any]) -> None:
        """Replace the block stack with ``modules``, renumber their ``layer_idx`` (KV-cache slot) and
        update the config's layer count."""
        raise NotImplementedError

    def default_student_layers(self, n: int, m: int) -> list[int]:
        """Which of the teacher's ``m`` layers an ``n``-layer student is copied from."""
        return every_kth(n, m)

    # Vocabulary trimming (prune --method vocab): the family knows where its token embeddings live.
    trims_vocab: bool = False

    def vocab_embeddings(self, model: Any) -> tuple[Any, Any | None]:
        """The input token embedding (rows indexed by token id) and the output head whose rows are token
        ids (an LM head, tied or not), or None when the model has none (classifiers, encoders)."""
        raise BadInputError(
            f"--method vocab: vocabulary trimming is not supported for the {self.name} family (it targets "
            f"BERT-family encoders; a causal LM's output vocabulary would change what it can generate)"
        )

    def attention_projections(self, model: Any, layer: int) -> tuple[Any, Any, Any]:
        """The query, key and value projection modules of block ``layer`` (Python indexing), whose
        outputs [B, L, width] the attention-relation loss (``--alpha-relation``) reads through hooks."""
        raise BadInputError(
            f"--alpha-relation: the {self.name} family does not expose its attention query/key/value "
            f"projections; the relation loss is available for: bert"
        )

    # -- quirks ---------------------------------------------------------------------------------
    def to_linear(self, model: Any) -> int:
        """Turn non-Linear projections into ``nn.Linear`` for quantizers that only know Linear;
        returns how many were converted (0 for families that use Linear throughout)."""
        return 0

    def kv_heads_per_layer(self, model: Any) -> list[int] | None:
        """KV heads of each layer when they differ between layers (a head-pruned model whose cache has a
        different shape per layer), else None: the model exports with the usual cache."""
        return None

    def past_export(self, model: Any, export_task: str, preprocessors: list[Any]) -> tuple[Any, Any]:
        """(optimum ``custom_onnx_configs`` or None, a context manager active during the export) for a
        model whose KV cache differs per layer (``kv_heads_per_layer``)."""
        import contextlib

        return None, contextlib.nullcontext()

    def surgery(self, model_type: str) -> Any | None:
        """The structural pruning adapter for ``model_type``, or None when only sparsity applies."""
        return None


def renumber(modules: list[Any]) -> None:
    """Attention modules know their position (KV-cache slot, optional 1/(i+1) scaling)."""
    for new_index, block in enumerate(modules):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
