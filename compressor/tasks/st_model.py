"""The sentence-transformers checkpoint as one PyTorch module, its files, and its ONNX pooling.

``SentenceEncoder`` is the transformer plus pooling and optional normalisation; its output ``logits``
(also ``sentence_embedding``) is the sentence embedding. It saves back to the sentence-transformers
layout (transformer at the root, ``modules.json``, ``1_Pooling/config.json``, ``2_Normalize``).
``add_pooling`` appends the same pooling to an exported feature-extraction graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import BadInputError

POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                 "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len"}
ST_FILES = ("sentence_bert_config.json", "config_sentence_transformers.json")


# ------------------------------------------------------------------------------------ the checkpoint


def read_modules(directory: Path) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(modules.json entries, the pooling config, whether a Normalize module follows); exit-2 errors
    name the missing or malformed file."""
    path = directory / "modules.json"
    try:
        modules = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable modules.json ({exc})") from exc
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise BadInputError(f"{path}: expected a JSON list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    transformer = next((m for m, k in zip(modules, kinds) if k == "Transformer"), None)
    if transformer is None:
        raise BadInputError(f"{path}: no sentence_transformers.models.Transformer module")
    if transformer.get("path", "") not in ("", "."):
        raise BadInputError(f"{path}: the Transformer module lives in {transformer['path']!r}; only checkpoints "
                            "with the transformer at the root (the current sentence-transformers layout) are supported")
    pooling = next((m for m, k in zip(modules, kinds) if k == "Pooling"), None)
    if pooling is None:
        raise BadInputError(f"{path}: no sentence_transformers.models.Pooling module; a sentence embedding needs one")
    unknown = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unknown:
        raise BadInputError(f"{path}: module {unknown[0]!r} is not supported (Transformer, Pooling, Normalize are)")
    pooling_file = directory / pooling.get("path", "1_Pooling") / "config.json"
    if not pooling_file.is_file():
        raise BadInputError(f"{pooling_file}: missing; modules.json names a Pooling module at "
                            f"{pooling.get('path')!r} but its pooling config is not there")
    try:
        config = json.loads(pooling_file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{pooling_file}: not valid JSON ({exc.msg})") from exc
    config = legacy_pooling(config)
    modes = [mode for key, mode in POOLING_MODES.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode") and v and k not in POOLING_MODES]
    if len(modes) != 1 or others:
        raise BadInputError(f"{pooling_file}: pooling {', '.join(modes + others) or 'none'} is not supported; "
                            "one of mean, cls, max, mean_sqrt_len")
    return modules, legacy_pooling(config), "Normalize" in kinds


def legacy_pooling(config: dict[str, Any]) -> dict[str, Any]:
    """sentence-transformers >= 5 writes ``{"pooling_mode": "mean", "embedding_dimension": N}``; older
    versions (and what this tool writes) one ``pooling_mode_<x>`` flag per mode. Both read alike."""
    config = dict(config)
    named = config.pop("pooling_mode", None)
    if isinstance(named, str):
        key = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
               "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens"}.get(named, f"pooling_mode_{named}")
        config[key] = True
    if "embedding_dimension" in config:
        config.setdefault("word_embedding_dimension", config.pop("embedding_dimension"))
    config.pop("include_prompt", None)
    return config


def pooling_mode(config: dict[str, Any]) -> str:
    return next(mode for key, mode in POOLING_MODES.items() if config.get(key))


@dataclass
class EmbeddingOutput:
    logits: Any  # the sentence embedding: what distillation and runners read
    sentence_embedding: Any
    last_hidden_state: Any
    hidden_states: Any = None
    attentions: Any = None


def _pool(hidden: Any, mask: Any, mode: str) -> Any:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return torch.where(m > 0, hidden, torch.finfo(hidden.dtype).min).max(1).values
    summed = (hidden * m).sum(1)
    count = m.sum(1).clamp_min(1e-9)
    return summed / (count.sqrt() if mode == "mean_sqrt_len" else count)


def _module_class() -> Any:
    import torch

    class SentenceEncoder(torch.nn.Module):
        """A transformer, its pooling and optional normalisation; saves as a sentence-transformers dir."""

        def __init__(self, transformer: Any, pooling: dict[str, Any], normalize: bool,
                     extra_files: dict[str, str] | None = None) -> None:
            super().__init__()
            self.transformer = transformer
            self.pooling = dict(pooling)
            self.normalize = normalize
            self.extra_files = dict(extra_files or {})

        def __getattr__(self, name: str) -> Any:
            # What stages ask of a transformers model (prune_heads, dtype, ...) is the transformer's.
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name == "transformer":
                    raise
                return getattr(self.transformer, name)

        @property
        def config(self) -> Any:
            return self.transformer.config

        @property
        def base_model(self) -> Any:
            return self.transformer.base_model

        def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                    output_hidden_states: bool = False, output_attentions: bool = False, **kwargs: Any) -> EmbeddingOutput:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            out = self.transformer(**inputs, output_hidden_states=output_hidden_states,
                                   output_attentions=output_attentions, **kwargs)
            pooled = _pool(out.last_hidden_state, attention_mask, pooling_mode(self.pooling))
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            return EmbeddingOutput(logits=pooled, sentence_embedding=pooled, last_hidden_state=out.last_hidden_state,
                                   hidden_states=out.hidden_states, attentions=out.attentions)

        def save_pretrained(self, directory: Any, **kwargs: Any) -> None:
            directory = Path(directory)
            self.transformer.save_pretrained(directory, **kwargs)
            write_st_files(directory, self.pooling, self.normalize, self.extra_files, self.config.hidden_size)

        @classmethod
        def from_pretrained(cls, directory: Any, **kwargs: Any) -> Any:
            from transformers import AutoModel

            directory = Path(directory)
            _, pooling, normalize = read_modules(directory)
            kwargs.setdefault("torch_dtype", torch.float32)  # fp16-stored teachers: float32 for CPU work
            transformer = AutoModel.from_pretrained(directory, **kwargs)
            extra = {name: (directory / name).read_text() for name in ST_FILES if (directory / name).is_file()}
            return cls(transformer, pooling, normalize, extra).eval()

        @classmethod
        def from_config(cls, config: Any, **kwargs: Any) -> Any:
            from transformers import AutoModel

            pooling = {"word_embedding_dimension": config.hidden_size, "pooling_mode_mean_tokens": True}
            return cls(AutoModel.from_config(config, **kwargs), pooling, True)

    return SentenceEncoder


_CLASS: Any = None


def encoder_class() -> Any:
    global _CLASS
    if _CLASS is None:
        _CLASS = _module_class()
    return _CLASS


def write_st_files(directory: Path, pooling: dict[str, Any], normalize: bool, extra: dict[str, str],
                   width: int) -> None:
    """modules.json, the pooling config, Normalize and the sentence-transformers configs."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "word_embedding_dimension": width}, indent=2) + "\n")
    extra = dict(extra)
    extra.setdefault("sentence_bert_config.json", json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    for name, text in extra.items():
        (directory / name).write_text(text)


# ------------------------------------------------------------------------------------ the ONNX graph


def add_pooling(onnx_file: Path, pooling: dict[str, Any], normalize: bool) -> None:
    """Append pooling (and L2 normalisation) to an exported feature-extraction graph, as its first
    output ``sentence_embedding``; ``last_hidden_state`` stays (sentence-transformers' ONNX backend)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise BadInputError(f"--opset {opset}: sentence-embedding export needs opset 13 or later")
    hidden = "last_hidden_state"
    mode = pooling_mode(pooling)
    nodes, inits = [], []

    def const(name: str, values: Any, dtype: Any = np.float32) -> str:
        inits.append(onnx.numpy_helper.from_array(np.asarray(values, dtype=dtype), f"st_{name}"))
        return f"st_{name}"

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [f"st_{name}"], name=f"st_{name}", **attrs))
        return f"st_{name}"

    axis1, axis_last = const("axis1", [1], np.int64), const("axis_last", [-1], np.int64)
    mask = node("Unsqueeze", ["attention_mask", axis_last], "mask3")
    maskf = node("Cast", [mask], "maskf", to=TensorProto.FLOAT)
    if mode == "cls":
        pooled = node("Gather", [hidden, const("zero", 0, np.int64)], "pooled", axis=1)
    elif mode == "max":
        neg = node("Mul", [node("Sub", [const("one", 1.0), maskf], "inv"), const("big", 1e9)], "neg")
        pooled = node("ReduceMax", [node("Sub", [hidden, neg], "masked")], "pooled", keepdims=0, axes=[1]) \
            if opset < 18 else node("ReduceMax", [node("Sub", [hidden, neg], "masked"), axis1], "pooled", keepdims=0)
    else:
        summed = node("ReduceSum", [node("Mul", [hidden, maskf], "weighted"), axis1], "summed", keepdims=0)
        count = node("Max", [node("ReduceSum", [maskf, axis1], "count", keepdims=0), const("eps", 1e-9)], "count_c")
        if mode == "mean_sqrt_len":
            count = node("Sqrt", [count], "sqrt_count")
        pooled = node("Div", [summed, count], "pooled")
    if normalize:
        sq = node("ReduceSum", [node("Mul", [pooled, pooled], "sq"), axis_last], "sqsum", keepdims=1)
        norm = node("Max", [node("Sqrt", [sq], "norm"), const("tiny", 1e-12)], "norm_c")
        pooled = node("Div", [pooled, norm], "normalized")
    nodes.append(helper.make_node("Identity", [pooled], ["sentence_embedding"], name="st_output"))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch_size", pooling.get(
        "word_embedding_dimension") or "hidden"])
    outputs = [output] + list(graph.output)
    del graph.output[:]
    graph.output.extend(outputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))


