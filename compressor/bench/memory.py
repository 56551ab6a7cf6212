"""Peak memory of one artifact, measured in a fresh Python process.

In the benching process the allocator has already seen every other model, so its high-water mark
says nothing about one artifact. A child that imports only its engine, loads the one model and runs
the same real inputs reports its own peak RSS (VmHWM, see ``_peak_rss_bytes``), the RSS it had before the model was
loaded (the engine's share), and on CUDA torch's peak allocated GPU memory.

Run as ``python -m compressor.bench.memory ART --inputs FILE.npz [...]``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from compressor import scratch
from compressor.errors import RuntimeFailureError

TIMEOUT_S = 1800


def _peak_rss_bytes() -> int:
    """This process's RSS high-water mark.

    Linux: ``VmHWM`` of /proc/self/status, not ``getrusage``: ``ru_maxrss`` survives ``execve`` and
    a child spawned by a big parent (vfork/posix_spawn) starts with the *parent's* peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak so far is the best available stand-in
        return _peak_rss_bytes()


def _import_model_code(artifact: Any) -> None:
    """Import transformers' modeling code before the engine reading, so the model's share is weights,
    activations and caches, not Python modules."""
    import transformers

    for name in artifact.config.get("architectures") or []:
        getattr(transformers, name, None)
    artifact.family.auto_class(artifact.task)


def _child(args: argparse.Namespace) -> dict[str, Any]:
    from compressor.artifact import OPENVINO, PYTORCH, open_artifact

    artifact = open_artifact(args.artifact)
    arrays = np.load(args.inputs)
    batches: dict[str, dict[str, np.ndarray]] = {}
    for key in arrays.files:
        group, _, name = key.partition("/")
        batches.setdefault(group, {})[name] = arrays[key]
    prompt = batches.pop("prompt", {}).get("input_ids")

    gpu = None
    if artifact.format == PYTORCH:
        import torch

        from compressor.bench.runner import TorchBench
        from compressor.loading import load_model

        torch.set_num_threads(args.threads)
        _import_model_code(artifact)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        engine_rss = _current_rss_bytes()
        runner: Any = TorchBench(load_model(artifact, allow_pickle=args.allow_pickle), device=args.device)
    elif artifact.format == OPENVINO:
        import openvino  # noqa: F401  (imported before the baseline reading: it is the engine's share)

        from compressor.bench.runner import OpenVinoBench

        engine_rss = _current_rss_bytes()
        runner = OpenVinoBench(artifact.ir_file, threads=args.threads)
    else:
        import onnxruntime  # noqa: F401  (imported before the baseline reading: it is the engine's share)

        from compressor.bench.runner import OnnxBench

        engine_rss = _current_rss_bytes()
        runner = OnnxBench(artifact.onnx_file, device=args.device, threads=args.threads)
    for _ in range(2):  # a second pass: some allocators and EPs grow on the first reuse
        for batch in batches.values():
            runner.time_forward(runner.prepare(batch))
        if prompt is not None and runner.supports_decode():
            runner.generate(prompt, args.decode_tokens)
    if artifact.format == PYTORCH and args.device == "cuda":
        import torch

        gpu = torch.cuda.max_memory_allocated()
    peak = _peak_rss_bytes()
    return {
        "peak_rss_mb": peak / 1e6,
        "engine_rss_mb": engine_rss / 1e6,
        "model_rss_mb": max(peak - engine_rss, 0) / 1e6,
        "gpu_peak_mb": gpu / 1e6 if gpu is not None else None,
    }


def measure(
    artifact_path: Path,
    *,
    device: str,
    threads: int,
    batches: list[dict[str, np.ndarray]],
    prompt: np.ndarray | None = None,
    decode_tokens: int = 0,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Spawn the child on ``batches`` (and a KV-cache generation from ``prompt``); its report."""
    with scratch.temp_dir("mem") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        arrays = {f"b{i}/{k}": v for i, batch in enumerate(batches) for k, v in batch.items()}
        if prompt is not None:
            arrays["prompt/input_ids"] = prompt
        np.savez(inputs, **arrays)
        command = [
            sys.executable, "-m", "compressor.bench.memory", str(artifact_path), "--inputs", str(inputs),
            "--device", device, "--threads", str(threads), "--decode-tokens", str(decode_tokens),
        ]
        if allow_pickle:
            command.append("--allow-pickle")
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
            "TRANSFORMERS_VERBOSITY": "error",
            # One thread pool size everywhere, as in the benching process.
            "OMP_NUM_THREADS": str(threads),
        }
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeFailureError(f"{artifact_path}: memory measurement timed out after {TIMEOUT_S} s") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeFailureError(f"{artifact_path}: memory measurement process failed ({tail})")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compressor.bench.memory", description=__doc__)
    parser.add_argument("artifact")
    parser.add_argument("--inputs", required=True, help="npz of batches: keys GROUP/INPUT_NAME")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decode-tokens", type=int, default=0)
    parser.add_argument("--allow-pickle", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from compressor.errors import CompressError

    try:
        report = _child(args)
    except CompressError as exc:
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
