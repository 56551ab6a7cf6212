"""GPT-2 family: decoder-only causal LMs. Its projections are transformers' ``Conv1D`` (a Linear with
a transposed weight); this module is the one place that knows it."""

from __future__ import annotations

from typing import Any

from compressor.families.base import Family, Shape, renumber, spread_with_ends


def layers(model: Any) -> Any:
    """The ``nn.ModuleList`` of transformer blocks (``transformer.h``) of a GPT-2 model."""
    return model.base_model.h


def set_layers(model: Any, modules: list[Any]) -> None:
    """Replace the block stack with ``modules`` and update ``n_layer`` to match."""
    import torch

    model.base_model.h = torch.nn.ModuleList(modules)
    model.config.n_layer = len(modules)
    renumber(modules)


def conv1d_to_linear(model: Any) -> int:
    """Replace every transformers ``Conv1D`` by the equivalent ``nn.Linear``; returns how many."""
    import torch
    from transformers.pytorch_utils import Conv1D

    names = [name for name, module in model.named_modules() if isinstance(module, Conv1D)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        conv = getattr(parent, child)
        n_in, n_out = conv.weight.shape  # Conv1D stores (in, out)
        linear = torch.nn.Linear(n_in, n_out, bias=conv.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.t())
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        setattr(parent, child, linear.to(conv.weight.device, conv.weight.dtype))
    return len(names)


class GPT2Surgery:
    shape = Shape(layers="n_layer", heads="n_head", hidden="n_embd", ffn="n_inner")

    def blocks(self, model: Any) -> Any:
        return layers(model)

    def set_blocks(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

    def heads(self, block: Any) -> tuple[int, int]:
        return block.attn.num_heads, block.attn.head_dim

    def pruned_heads(self, block: Any) -> set[int]:
        return set(block.attn.pruned_heads)

    def head_output(self, block: Any) -> Any:
        return block.attn.c_proj

    def head_weights(self, block: Any) -> tuple[Any, Any, Any, Any]:
        # Conv1D stores [in, out]; transpose to the Linear layout the scoring code expects.
        attn = block.attn
        q, k, v = attn.c_attn.weight.t().split(attn.split_size, dim=0)
        return q, k, v, attn.c_proj.weight.t()

    def ffn_output(self, block: Any) -> Any:
        return block.mlp.c_proj

    def ffn_weights(self, block: Any) -> tuple[Any, Any]:
        return block.mlp.c_fc.weight.t(), block.mlp.c_proj.weight.t()

    def prune_ffn(self, block: Any, keep: Any) -> None:
        from transformers.pytorch_utils import prune_conv1d_layer

        block.mlp.c_fc = prune_conv1d_layer(block.mlp.c_fc, keep, dim=1)
        block.mlp.c_proj = prune_conv1d_layer(block.mlp.c_proj, keep, dim=0)

    def ffn_width(self, config: dict[str, Any]) -> int:
        return int(config.get("n_inner") or 4 * config["n_embd"])

    def set_ffn_width(self, config: Any, width: int) -> None:
        config.n_inner = width


class GPT2(Family):
    name = "gpt2"
    model_types = ("gpt2",)
    architecture_tasks = (("LMHeadModel", "causal-lm"), ("ForCausalLM", "causal-lm"))
    default_task = "causal-lm"
    structural_model_types = ("gpt2",)
    layer_keys = ("n_layer",)
    width_keys = ("n_embd",)
    position_keys = ("n_positions",)

    def layers(self, model: Any) -> Any:
        return layers(model)

    def set_layers(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

    def default_student_layers(self, n: int, m: int) -> list[int]:
        """A GPT-2 student needs the teacher's block 0, which turns token embeddings into the features
        every later block reads: 3 of 6 blocks as 1,3,5 start at 83x the teacher's held-out
        perplexity, as 0,3,5 at 1.36x (measured on the real IMDB teacher)."""
        return spread_with_ends(n, m)

    def to_linear(self, model: Any) -> int:
        return conv1d_to_linear(model)

    def kv_heads_per_layer(self, model: Any) -> list[int] | None:
        heads = [int(block.attn.num_heads) for block in layers(model)]
        return heads if any(h < model.config.n_head for h in heads) else None

    def past_export(self, model: Any, export_task: str, preprocessors: list[Any]) -> tuple[Any, Any]:
        import contextlib

        from compressor.families import gpt2_past

        heads = self.kv_heads_per_layer(model)
        if not heads:
            return None, contextlib.nullcontext()
        return ({"model": gpt2_past.onnx_config(model, export_task, heads, preprocessors)},
                gpt2_past.slicing_past(model))

    def surgery(self, model_type: str) -> GPT2Surgery | None:
        return GPT2Surgery() if model_type in self.structural_model_types else None


GPT2_FAMILY = GPT2()
