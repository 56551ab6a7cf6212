"""One interface to run PyTorch, ONNX and OpenVINO artifacts on numpy batches, returning the task's
output (logits, or hidden states for a bare encoder).

Causal LMs also decode through the KV cache the same way in every runtime: ``start(prompts)`` runs
the prompt and ``step(tokens)`` one token per row, each returning the last position's logits.

Parity checks, evaluation and benchmarks all go through these runners, so what is measured is
what is compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np



def graph_feeds(inputs: Any, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch's arrays a graph takes, plus the standard inputs it expects and the batch lacks: an
    all-ones attention mask, zero token types, positions counted along the mask (ONNX and OpenVINO
    graphs name their inputs alike)."""
    feeds = {k: v for k, v in batch.items() if k in inputs}
    input_ids = batch["input_ids"]
    if "attention_mask" in inputs and "attention_mask" not in feeds:
        feeds["attention_mask"] = np.ones_like(input_ids)
    if "token_type_ids" in inputs and "token_type_ids" not in feeds:
        feeds["token_type_ids"] = np.zeros_like(input_ids)
    if "position_ids" in inputs and "position_ids" not in feeds:
        mask = feeds.get("attention_mask", np.ones_like(input_ids))
        feeds["position_ids"] = np.clip(np.cumsum(mask, axis=1) - 1, 0, None).astype(np.int64)
    return feeds

class TorchRunner:
    def __init__(self, model: Any, device: str = "cpu", task: Any = None) -> None:
        import torch

        from compressor import tasks

        self.model = model.to(device).eval()
        self.device = device
        self.task = task if task is not None else tasks.of_model(model)
        self._torch = torch
        # forward() keywords of the task when scoring whole sequences (causal LMs: no KV cache).
        self._extra = dict(self.task.model_kwargs)

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self.model(**inputs, **self._extra)
        return getattr(out, self.task.output_name).float().cpu().numpy()

    def start(self, prompts: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            self._out = self.model(input_ids=torch.from_numpy(prompts).to(self.device), use_cache=True)
        return self._out.logits[:, -1].float().cpu().numpy()

    def step(self, tokens: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            self._out = self.model(input_ids=torch.from_numpy(tokens).to(self.device),
                                   past_key_values=self._out.past_key_values, use_cache=True)
        return self._out.logits[:, -1].float().cpu().numpy()


def decode_feeds(inputs: Any, tokens: np.ndarray, past_length: int) -> dict[str, np.ndarray]:
    """The non-cache inputs of one decode step after ``past_length`` tokens (every row unpadded)."""
    batch = tokens.shape[0]
    feeds = {"input_ids": tokens}
    if "attention_mask" in inputs:
        feeds["attention_mask"] = np.ones((batch, past_length + tokens.shape[1]), dtype=np.int64)
    if "position_ids" in inputs:
        feeds["position_ids"] = np.arange(past_length, past_length + tokens.shape[1], dtype=np.int64)[None] \
            .repeat(batch, 0)
    if "beam_idx" in inputs:
        feeds["beam_idx"] = np.arange(batch, dtype=np.int32)
    return feeds


def session_options(threads: int | None = None, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
    return options


def providers_for(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


class OnnxRunner:
    """Runs an exported graph with plain onnxruntime. Causal LMs get an empty KV cache on the first
    pass, which is exactly how generation starts."""

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers_for(device))
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = {o.name: o for o in self.session.get_outputs()}
        self.output = self.session.get_outputs()[0].name  # logits, or last_hidden_state

    def feeds(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = graph_feeds(self.inputs, batch)
        input_ids = batch["input_ids"]
        for name, meta in self.inputs.items():
            if name.startswith("past_key_values"):
                heads, head_dim = meta.shape[1], meta.shape[3]
                if not isinstance(heads, int):  # a head-pruned layer: as many heads as its present output
                    heads = self.outputs["present" + name[len("past_key_values"):]].shape[1]
                dtype = np.float16 if "float16" in meta.type else np.float32
                feeds[name] = np.zeros((input_ids.shape[0], heads, 0, head_dim), dtype=dtype)
        return feeds

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        out = self.session.run([self.output], self.feeds(batch))[0]
        return out.astype(np.float32)

    def start(self, prompts: np.ndarray) -> np.ndarray:
        names = [o.name for o in self.session.get_outputs()]
        self._out = dict(zip(names, self.session.run(None, self.feeds({"input_ids": prompts}))))
        self._length = prompts.shape[1]
        return self._out["logits"][:, -1].astype(np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        feeds = decode_feeds(self.inputs, tokens, self._length)
        for name in self.inputs:
            if name.startswith("past_key_values"):
                feeds[name] = self._out["present" + name[len("past_key_values"):]]
        names = [o.name for o in self.session.get_outputs()]
        self._out = dict(zip(names, self.session.run(None, feeds)))
        self._length += tokens.shape[1]
        return self._out["logits"][:, -1].astype(np.float32)


class OpenVinoRunner:
    """Runs an OpenVINO IR (a path, or an ``ov.Model`` / compiled model in memory) on the CPU plugin
    with the settings of ``compressor.formats.openvino.compile_config``. A stateful LM keeps its KV
    cache in the infer request: every whole-sequence call starts from an empty cache."""

    def __init__(self, model: Any, threads: int | None = None, precision: str | None = None) -> None:
        from compressor.formats import openvino as ovf

        ov = ovf.require(str(model) if isinstance(model, Path) else "OpenVINO runner")
        if isinstance(model, Path):
            model = ovf.read_ir(model)
        if hasattr(model, "create_infer_request"):  # already compiled (nncf's validation hands one over)
            self.compiled = model
        else:
            config = ovf.compile_config(threads, precision or ovf.DEFAULT_PRECISION)
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = {port.get_any_name(): port for port in self.compiled.inputs}
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.stateful = bool(self.request.query_state())
        self._length = 0

    @property
    def properties(self) -> dict[str, Any]:
        from compressor.formats.openvino import compiled_properties

        return compiled_properties(self.compiled)

    def feeds(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = graph_feeds(self.inputs, batch)
        input_ids = batch["input_ids"]
        if "beam_idx" in self.inputs:
            feeds["beam_idx"] = np.arange(input_ids.shape[0], dtype=np.int32)
        return feeds

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        if self.stateful:
            self.request.reset_state()
        return self.request.infer(feeds)

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        out = self.run(self.feeds(batch))
        return np.array(out[self.compiled.output(0)], dtype=np.float32)

    def start(self, prompts: np.ndarray) -> np.ndarray:
        self._length = prompts.shape[1]
        out = self.run(self.feeds({"input_ids": prompts}))
        return np.array(out[self.compiled.output(0)][:, -1], dtype=np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        out = self.request.infer(decode_feeds(self.inputs, tokens, self._length))
        self._length += tokens.shape[1]
        return np.array(out[self.compiled.output(0)][:, -1], dtype=np.float32)
