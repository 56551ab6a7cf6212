"""One interface to run PyTorch and ONNX artifacts on numpy batches, returning the task's output
(logits, or hidden states for a bare encoder).

Parity checks, evaluation and benchmarks all go through these runners, so what is measured is
what is compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


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
        feeds = {k: v for k, v in batch.items() if k in self.inputs}
        input_ids = batch["input_ids"]
        if "attention_mask" in self.inputs and "attention_mask" not in feeds:
            feeds["attention_mask"] = np.ones_like(input_ids)
        if "token_type_ids" in self.inputs and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        if "position_ids" in self.inputs and "position_ids" not in feeds:
            mask = feeds.get("attention_mask", np.ones_like(input_ids))
            feeds["position_ids"] = np.clip(np.cumsum(mask, axis=1) - 1, 0, None).astype(np.int64)
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
