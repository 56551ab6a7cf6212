"""What bench runs: one timed forward pass, logits for quality, and KV-cache generation for LMs.

Built on the shared runners of ``compressor.inference`` (so what bench scores is what export's
parity check compares). Inputs are converted once in ``prepare``; only the model call itself sits
inside a timed region. CPU calls are timed with ``perf_counter``; CUDA calls with CUDA events after
a synchronise, because a kernel launch returns before the GPU has done the work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor import scratch
from compressor.inference import OnnxRunner, OpenVinoRunner, decode_feeds, TorchRunner, providers_for, session_options


class TorchBench:
    kind = "pytorch"

    def __init__(self, model: Any, device: str = "cpu", task: Any = None) -> None:
        import torch

        self._torch = torch
        self.runner = TorchRunner(model, device=device, task=task)
        self.model = self.runner.model
        self.device = device

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        torch = self._torch
        inputs = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in batch.items()}
        return {**inputs, **self.runner._extra}

    def _clock(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        torch = self._torch
        if self.device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3, out
        begin = time.perf_counter()
        out = fn()
        return time.perf_counter() - begin, out

    def time_forward(self, inputs: dict[str, Any]) -> float:
        # inference_mode is entered outside the clock: its cost is not the model's.
        with self._torch.inference_mode():
            return self._clock(lambda: self.model(**inputs))[0]

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.runner.logits(batch)

    def generate(self, prompt: np.ndarray, new_tokens: int) -> tuple[float, list[float]]:
        """Greedy generation with the KV cache: (prefill seconds, seconds of each decode step)."""
        torch = self._torch
        with torch.inference_mode():
            ids = torch.from_numpy(np.ascontiguousarray(prompt)).to(self.device)
            mask = torch.ones_like(ids)
            prefill, out = self._clock(lambda: self.model(input_ids=ids, attention_mask=mask, use_cache=True))
            steps = []
            for _ in range(new_tokens):
                past = out.past_key_values
                ids = out.logits[:, -1:].argmax(-1)
                mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
                step = {"input_ids": ids, "attention_mask": mask, "past_key_values": past, "use_cache": True}
                seconds, out = self._clock(lambda: self.model(**step))
                steps.append(seconds)
        return prefill, steps

    def supports_decode(self) -> bool:
        return self.runner.task.generates

    def close(self) -> None:
        del self.model, self.runner
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


class OnnxBench:
    kind = "onnx"

    def __init__(self, onnx_file: Path, device: str = "cpu", threads: int | None = None) -> None:
        self.onnx_file = onnx_file
        self.device = device
        self.threads = threads
        self.runner = OnnxRunner(onnx_file, device=device, threads=threads)
        self.session = self.runner.session
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def properties(self) -> list[str]:  # what bench reports of the runtime: the session's providers
        return self.providers

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.feeds(batch)

    def time_forward(self, feeds: dict[str, np.ndarray]) -> float:
        # session.run blocks until outputs are on the host, on every EP: perf_counter is exact.
        begin = time.perf_counter()
        self.session.run(None, feeds)
        return time.perf_counter() - begin

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.runner.logits(batch)

    def supports_decode(self) -> bool:
        return any(name.startswith("past_key_values") for name in self.runner.inputs)

    def generate(self, prompt: np.ndarray, new_tokens: int) -> tuple[float, list[float]]:
        """Greedy generation feeding ``present.*`` back as ``past_key_values.*``."""
        inputs = self.runner.inputs
        feeds = self.runner.feeds({"input_ids": prompt})
        begin = time.perf_counter()
        outs = self.session.run(None, feeds)
        prefill = time.perf_counter() - begin
        batch, length = prompt.shape
        steps = []
        for step in range(new_tokens):
            out = dict(zip(self.output_names, outs))
            next_ids = out["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
            past_length = length + step
            feeds = {"input_ids": next_ids}
            if "attention_mask" in inputs:
                feeds["attention_mask"] = np.ones((batch, past_length + 1), dtype=np.int64)
            if "position_ids" in inputs:
                feeds["position_ids"] = np.full((batch, 1), past_length, dtype=np.int64)
            for name in inputs:
                if name.startswith("past_key_values"):
                    feeds[name] = out["present" + name[len("past_key_values"):]]
            begin = time.perf_counter()
            outs = self.session.run(None, feeds)
            steps.append(time.perf_counter() - begin)
        return prefill, steps

    def profile(self, feeds_list: list[dict[str, np.ndarray]], runs: int) -> list[dict[str, Any]]:
        """onnxruntime's profile events for ``runs`` calls, from a separate profiling session so the
        timed session never pays for profiling."""
        import onnxruntime as ort

        with scratch.temp_dir("profile") as tmp:
            options = session_options(self.threads, profile=True)
            options.profile_file_prefix = str(Path(tmp) / "ort")
            session = ort.InferenceSession(str(self.onnx_file), options, providers=providers_for(self.device))
            for i in range(runs):
                session.run(None, feeds_list[i % len(feeds_list)])
            profile_file = session.end_profiling()
            return json.loads(Path(profile_file).read_text())

    def close(self) -> None:
        del self.session, self.runner


class OpenVinoBench:
    """An OpenVINO IR on the CPU plugin: latency hint, one stream, fixed threads and f32 precision,
    as the runtime itself reports them (``properties``, in the bench entry)."""

    kind = "openvino"

    def __init__(self, xml: Path, threads: int | None = None) -> None:
        self.runner = OpenVinoRunner(xml, threads=threads)
        self.properties = self.runner.properties

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.feeds(batch)

    def time_forward(self, feeds: dict[str, np.ndarray]) -> float:
        request = self.runner.request
        if self.runner.stateful:
            request.reset_state()  # outside the clock: a whole sequence starts from an empty cache
        begin = time.perf_counter()
        request.infer(feeds)  # synchronous: outputs are in host memory when it returns
        return time.perf_counter() - begin

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.runner.logits(batch)

    def supports_decode(self) -> bool:
        return self.runner.stateful

    def generate(self, prompt: np.ndarray, new_tokens: int) -> tuple[float, list[float]]:
        """Greedy generation with the KV cache held as OpenVINO state."""
        self.runner.request.reset_state()
        runner = self.runner
        feeds = runner.feeds({"input_ids": prompt})
        begin = time.perf_counter()
        out = runner.request.infer(feeds)
        prefill = time.perf_counter() - begin
        length = prompt.shape[1]
        steps = []
        logits = runner.compiled.output(0)
        for step in range(new_tokens):
            token = np.asarray(out[logits])[:, -1].argmax(-1)[:, None].astype(np.int64)
            feeds = decode_feeds(runner.inputs, token, length + step)
            begin = time.perf_counter()
            out = runner.request.infer(feeds)
            steps.append(time.perf_counter() - begin)
        return prefill, steps

    def close(self) -> None:
        del self.runner
