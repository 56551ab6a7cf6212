"""Llama family: llama, qwen2 (q/k/v biases, usually tied embeddings) and mistral (sliding window).

They share one layout: ``model.model.layers`` of blocks with ``self_attn`` (q/k/v/o projections,
grouped-query attention: ``num_attention_heads`` query heads share ``num_key_value_heads`` K/V heads),
a SwiGLU ``mlp`` (``down(silu(gate(x)) * up(x))``), RMSNorm and RoPE. Their configs are global (one
head count and one FFN width for every layer), so every structural cut here is the same in every
layer and the result is a plain config that ``AutoModelForCausalLM.from_pretrained`` loads:

- heads: whole KV groups with their query heads (``--head-unit kv-group``), or the same number of
  query heads in every group (``query``); ``head_dim`` is written explicitly, since
  ``hidden_size / num_attention_heads`` no longer gives it;
- FFN neurons: rows of gate and up, columns of down (``intermediate_size``);
- layers: the block list, the layer count and the per-layer ``layer_types`` (qwen2).
"""

from __future__ import annotations

from typing import Any

from compressor.errors import BadInputError
from compressor.families.base import Family, Shape, renumber, spread_with_ends

# RoPE variants whose parameters depend only on positions and head_dim (kept by every cut here), so a
# pruned model carries them unchanged. Anything else is refused rather than silently dropped.
ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")
HEAD_UNITS = ("kv-group", "query")


def layers(model: Any) -> Any:
    return model.base_model.layers


def set_layers(model: Any, modules: list[Any]) -> None:
    """Replace the block stack, renumber ``layer_idx`` and keep per-layer config lists aligned."""
    import torch

    old = list(layers(model))
    positions = {id(block): i for i, block in enumerate(old)}
    kept = [positions.get(id(block)) for block in modules]
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and all(i is not None for i in kept):
        model.config.layer_types = [layer_types[i] for i in kept]
    model.base_model.layers = torch.nn.ModuleList(modules)
    model.config.num_hidden_layers = len(modules)
    if getattr(model.config, "max_window_layers", None) is not None:  # qwen2: first N layers use full attention
        model.config.max_window_layers = min(model.config.max_window_layers, len(modules))
    renumber(modules)


def rope_type(config: dict[str, Any] | Any) -> str | None:
    scaling = config.get("rope_scaling") if isinstance(config, dict) else getattr(config, "rope_scaling", None)
    if not scaling:
        return None
    return str(scaling.get("rope_type") or scaling.get("type") or "default")


def gqa_amounts(n_q: int, n_kv: int, unit: str) -> list[tuple[int, float]]:
    """Valid (query heads removed, amount) pairs for a layout of ``n_q`` query / ``n_kv`` KV heads."""
    group = n_q // n_kv
    step, limit = (group, n_q - group) if unit == "kv-group" else (n_kv, n_q - n_kv)
    return [(r, r / n_q) for r in range(step, limit + 1, step)]


def heads_to_remove(n_q: int, n_kv: int, amount: float, unit: str, spec: str) -> int:
    """Query heads removed per layer for ``heads=amount``; exit 2 when that breaks the GQA layout."""
    if unit not in HEAD_UNITS:
        raise BadInputError(f"--head-unit {unit!r}: choose one of {', '.join(HEAD_UNITS)}")
    remove = int(round(amount * n_q))
    valid = gqa_amounts(n_q, n_kv, unit)
    if any(r == remove for r, _ in valid):
        return remove
    group = n_q // n_kv
    if unit == "kv-group":
        rule = (f"removing whole KV groups ({n_kv} groups of {group} query heads) needs a multiple of {group} "
                f"query heads, keeping at least one group")
    else:
        rule = (f"removing the same number of query heads from each of the {n_kv} KV groups needs a multiple of "
                f"{n_kv} query heads, keeping at least one per group")
    if valid:
        nearest = sorted(valid, key=lambda rv: (abs(rv[0] - remove), rv[0]))[:2]
        hint = "nearest valid amounts: " + ", ".join(f"heads={a:g} ({r} heads)" for r, a in sorted(nearest))
    else:
        other = [u for u in HEAD_UNITS if u != unit][0]
        hint = f"no amount removes heads this way; try --head-unit {other}"
    raise BadInputError(
        f"--method {spec}: removes {remove} of {n_q} query heads per layer, which breaks the grouped-query "
        f"layout: {rule}; {hint}"
    )


class LlamaSurgery:
    """Where a Llama block keeps its heads and FFN, and the GQA-aware cuts."""

    shape = Shape(layers="num_hidden_layers", heads="num_attention_heads", hidden="hidden_size",
                  ffn="intermediate_size")
    uniform_heads = True  # one head count for every layer (the config is global)

    def blocks(self, model: Any) -> Any:
        return layers(model)

    def set_blocks(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

    # -- config checks ------------------------------------------------------------------------------
    def check_config(self, config: dict[str, Any], spec: str) -> None:
        kind = rope_type(config)
        if kind is not None and kind not in ROPE_TYPES:
            raise BadInputError(
                f"--method {spec}: rope_scaling type {kind!r} is not one this tool can carry through pruning "
                f"(supported: {', '.join(ROPE_TYPES)}); refusing rather than dropping it"
            )

    def check_heads(self, config: dict[str, Any], amount: float, unit: str, spec: str) -> None:
        """Exit 2, before any work, when ``heads=amount`` breaks the grouped-query layout."""
        heads_to_remove(int(config["num_attention_heads"]), self.kv_heads(config), amount, unit, spec)

    def kv_heads(self, config: dict[str, Any]) -> int:
        return int(config.get("num_key_value_heads") or config["num_attention_heads"])

    def head_dim(self, config: dict[str, Any]) -> int:
        return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])

    # -- heads --------------------------------------------------------------------------------------
    def heads(self, block: Any) -> tuple[int, int]:
        attn = block.self_attn
        return attn.q_proj.out_features // attn.head_dim, attn.head_dim

    def kv_count(self, block: Any) -> int:
        attn = block.self_attn
        return attn.k_proj.out_features // attn.head_dim

    def pruned_heads(self, block: Any) -> set[int]:
        return set()

    def head_output(self, block: Any) -> Any:
        return block.self_attn.o_proj

    def head_weights(self, block: Any) -> tuple[Any, Any, Any, Any]:
        """q as [q_heads*d, hidden]; k and v repeated per query head (each query head reads its group's
        K/V), so the per-head magnitude counts the shared K/V once per query head; o as [hidden, q_heads*d]."""
        attn = block.self_attn
        n_q, d = self.heads(block)
        group = n_q // self.kv_count(block)
        k = attn.k_proj.weight.unflatten(0, (-1, d)).repeat_interleave(group, dim=0).flatten(0, 1)
        v = attn.v_proj.weight.unflatten(0, (-1, d)).repeat_interleave(group, dim=0).flatten(0, 1)
        return attn.q_proj.weight, k, v, attn.o_proj.weight

    def select_heads(self, scores: list[Any], n_kv: int, amount: float, unit: str, spec: str) -> list[dict[str, Any]]:
        """Per layer: the kept KV groups and, per kept group, its kept query heads (positions within the
        group), chosen by the query-head ``scores``; the same counts in every layer."""
        import torch

        plans = []
        for score in scores:
            n_q = int(score.numel())
            group = n_q // n_kv
            remove = heads_to_remove(n_q, n_kv, amount, unit, spec)
            by_group = score.float().view(n_kv, group)
            if unit == "kv-group":
                drop = remove // group
                order = torch.argsort(by_group.sum(dim=1), descending=True, stable=True)
                groups = sorted(order[: n_kv - drop].tolist())
                queries = [list(range(group)) for _ in groups]
            else:
                keep = group - remove // n_kv
                groups = list(range(n_kv))
                queries = [sorted(torch.argsort(by_group[g], descending=True, stable=True)[:keep].tolist())
                           for g in groups]
            plans.append({"kv_groups": groups, "query_heads": queries})
        return plans

    def prune_heads(self, model: Any, scores: list[Any], amount: float, unit: str, spec: str) -> dict[str, Any]:
        """Cut every layer to the same GQA layout; returns what was kept per layer."""
        from transformers.pytorch_utils import prune_linear_layer
        import torch

        blocks = list(self.blocks(model))
        n_kv = self.kv_count(blocks[0])
        plans = self.select_heads(scores, n_kv, amount, unit, spec)
        n_q, d = self.heads(blocks[0])
        group = n_q // n_kv
        for block, plan in zip(blocks, plans):
            attn = block.self_attn
            q_heads = [g * group + q for g, qs in zip(plan["kv_groups"], plan["query_heads"]) for q in qs]
            q_rows = torch.tensor([h * d + i for h in q_heads for i in range(d)], dtype=torch.long)
            kv_rows = torch.tensor([g * d + i for g in plan["kv_groups"] for i in range(d)], dtype=torch.long)
            attn.q_proj = prune_linear_layer(attn.q_proj, q_rows, dim=0)
            attn.k_proj = prune_linear_layer(attn.k_proj, kv_rows, dim=0)
            attn.v_proj = prune_linear_layer(attn.v_proj, kv_rows, dim=0)
            attn.o_proj = prune_linear_layer(attn.o_proj, q_rows, dim=1)
            attn.num_key_value_groups = len(q_heads) // len(plan["kv_groups"])
            plan["query_heads_kept"] = q_heads
        config = model.config
        config.head_dim = d
        config.num_attention_heads = len(plans[0]["query_heads_kept"])
        config.num_key_value_heads = len(plans[0]["kv_groups"])
        return {str(i): {"kv_groups_kept": p["kv_groups"], "query_heads_kept": p["query_heads_kept"]}
                for i, p in enumerate(plans)}

    # -- FFN ----------------------------------------------------------------------------------------
    def ffn_output(self, block: Any) -> Any:
        return block.mlp.down_proj

    def ffn_weights(self, block: Any) -> tuple[Any, Any]:
        """FFN in as [width, 2*hidden] (gate and up rows side by side) and out as [hidden, width]."""
        import torch

        mlp = block.mlp
        return torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=1), mlp.down_proj.weight

    def prune_ffn(self, block: Any, keep: Any) -> None:
        from transformers.pytorch_utils import prune_linear_layer

        mlp = block.mlp
        mlp.gate_proj = prune_linear_layer(mlp.gate_proj, keep, dim=0)
        mlp.up_proj = prune_linear_layer(mlp.up_proj, keep, dim=0)
        mlp.down_proj = prune_linear_layer(mlp.down_proj, keep, dim=1)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = len(keep)

    def ffn_width(self, config: dict[str, Any]) -> int:
        return int(config["intermediate_size"])

    def set_ffn_width(self, config: Any, width: int) -> None:
        config.intermediate_size = width


class Llama(Family):
    name = "llama"
    model_types = ("llama", "qwen2", "mistral")
    architecture_tasks = (("ForCausalLM", "causal-lm"),)
    default_task = "causal-lm"
    structural_model_types = ("llama", "qwen2", "mistral")
    layer_keys = ("num_hidden_layers",)
    width_keys = ("hidden_size",)
    position_keys = ("max_position_embeddings",)

    def layers(self, model: Any) -> Any:
        return layers(model)

    def set_layers(self, model: Any, modules: list[Any]) -> None:
        set_layers(model, modules)

    def default_student_layers(self, n: int, m: int) -> list[int]:
        """Keep the first block (embeddings into features) and the last (features into the LM head's
        space), evenly spread between, as for GPT-2."""
        return spread_with_ends(n, m)

    def attention_window(self, config: dict[str, Any]) -> int | None:
        """Tokens a sliding-window model attends to (None: full attention)."""
        window = config.get("sliding_window")
        if not window:
            return None
        if config.get("model_type") == "qwen2" and not config.get("use_sliding_window"):
            return None
        return int(window)

    def ort_optimizer_type(self, model_type: str) -> str:
        """optimum has no fusion entry for qwen2; its graph is llama's plus q/k/v bias adds, which
        onnxruntime's llama (gpt2-style) fusions handle; the export parity check guards the result."""
        return "llama" if model_type == "qwen2" else model_type

    def surgery(self, model_type: str) -> LlamaSurgery | None:
        return LlamaSurgery() if model_type in self.structural_model_types else None


LLAMA = Llama()
