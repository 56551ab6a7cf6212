"""Exporting a head-pruned causal LM with its KV cache.

After ``compress prune --method heads=...`` the layers of a GPT-2 keep different numbers of heads, so
its KV cache has a different shape in each layer. optimum builds its dummy cache for the export, and
``ORTModelForCausalLM`` its first, empty cache at generation time, with ``config.n_head`` heads in
every layer; an export with a per-layer cache alone would be refused by onnxruntime on that first
call. So, for each layer with fewer heads than ``config.n_head``:

- the graph takes the layer's past with any head count (a symbolic axis ``past_heads_N``) and uses
  its first ``heads`` heads (``past[:, :heads]``, a Slice in the graph): the first call's empty cache
  of ``config.n_head`` heads and the layer's own ``present.N`` outputs both fit;
- ``present.N.key/value`` have the layer's real head count, so the cache really is smaller.

The slicing is a forward pre-hook on the pruned attention modules, in place only while exporting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _slice_past(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
    cache = kwargs.get("past_key_values")
    cache_layers = getattr(cache, "layers", None)
    if cache_layers is None or module.layer_idx >= len(cache_layers):
        return
    layer = cache_layers[module.layer_idx]
    keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
    if keys is not None and values is not None and keys.dim() == 4:
        layer.keys, layer.values = keys[:, : module.num_heads], values[:, : module.num_heads]


@contextmanager
def slicing_past(model: Any) -> Iterator[None]:
    """While active, each pruned attention layer uses only the first ``num_heads`` heads of its past."""
    from compressor.families.gpt2 import layers

    handles = [block.attn.register_forward_pre_hook(_slice_past, with_kwargs=True)
               for block in layers(model) if block.attn.num_heads < model.config.n_head]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def onnx_config(model: Any, task: str, heads: list[int], preprocessors: list[Any]) -> Any:
    """optimum's own OnnxConfig for ``model`` and ``task``, with a symbolic head axis on the past inputs
    of the pruned layers."""
    from optimum.exporters.onnx import model_configs  # noqa: F401 - registers the exporter configs
    from optimum.exporters.tasks import TasksManager

    constructor = TasksManager.get_exporter_config_constructor(model=model, exporter="onnx", task=task,
                                                               library_name="transformers")
    full = model.config.n_head

    class PastHeadsOnnxConfig(constructor.func):  # type: ignore[misc, name-defined]
        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            axes = super().inputs
            for layer, kept in enumerate(heads):
                for kind in ("key", "value"):
                    name = f"past_key_values.{layer}.{kind}"
                    if kept < full and name in axes:
                        axes[name] = {**axes[name], 1: f"past_heads_{layer}"}
            return axes

    return PastHeadsOnnxConfig(model.config, task=constructor.keywords.get("task", task), use_past=True,
                               use_past_in_inputs=True, preprocessors=preprocessors)
