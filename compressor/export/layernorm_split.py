"""Undo onnxruntime's SkipLayerNormalization fusion for CPU graphs: ``Sum`` + ``LayerNormalization``.

Why: onnxruntime's CPU kernel for the fused op is several times slower than the two ops it replaces
(one node timed alone, onnxruntime 1.31, one thread: 53-59 vs 14-23 us for 25 x 384, 127-137 vs 27-42 us
at 64 tokens), and a BERT layer runs two of them: in a 3-layer INT8 student they took 315 of 1,213 us
per run. Whole models fused against split: ``benchmarks/layernorm_split.py``.

Why ``Sum`` and not ``Add``: onnxruntime re-fuses ``Add -> [Add] -> LayerNormalization`` into
SkipLayerNormalization when it loads a graph whose shapes are known (every quantized graph), so a
graph split into Adds runs the slow kernel again in any plain session. No onnxruntime fusion matches
``Sum``, so the split survives loading, quantization and other tools' sessions (the tests check it).

The math is the fused op's: ``LayerNorm(input + skip [+ bias]) * gamma [+ beta]`` (RMS norm for
SkipSimplifiedLayerNormalization), with its epsilon; the optional ``input_skip_bias_sum`` output is the
Sum's. A node whose mean / inverse-std outputs are read (training graphs) is left fused.
"""

from __future__ import annotations

from typing import Any

MS_DOMAIN = "com.microsoft"
# fused op -> the op normalising the sum (both registered by onnxruntime in the default domain)
SPLITS = {"SkipLayerNormalization": "LayerNormalization",
          "SkipSimplifiedLayerNormalization": "SimplifiedLayerNormalization"}
DEFAULT_EPSILON = 1e-12  # onnxruntime's SkipLayerNormalization default


def _epsilon(node: Any) -> float:
    return next((a.f for a in node.attribute if a.name == "epsilon"), DEFAULT_EPSILON)


def split_skip_layernorm(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns how many fused nodes were split."""
    from onnx import helper

    graph = model.graph
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    nodes, split = [], 0
    for node in graph.node:
        norm = SPLITS.get(node.op_type)
        statistics = [name for name in node.output[1:3] if name]
        if node.domain != MS_DOMAIN or norm is None or any(name in read for name in statistics):
            nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (5 - len(node.input))
        if norm == "LayerNormalization":
            data, skip, gamma, beta, bias = inputs[:5]
        else:  # SkipSimplifiedLayerNormalization: input, skip, gamma, bias
            (data, skip, gamma, bias), beta = inputs[:4], ""
        name = node.name or f"{node.op_type}_{split}"
        total = node.output[3] if len(node.output) > 3 and node.output[3] else f"{name}/sum_output_0"
        nodes.append(helper.make_node("Sum", [data, skip] + ([bias] if bias else []), [total], name=f"{name}/Sum"))
        nodes.append(helper.make_node(norm, [total, gamma] + ([beta] if beta else []), [node.output[0]],
                                      name=f"{name}/{norm}", axis=-1, epsilon=_epsilon(node)))
        split += 1
    if split:
        del graph.node[:]
        graph.node.extend(nodes)
    return split
