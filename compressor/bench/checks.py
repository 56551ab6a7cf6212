"""Honesty checks: the ways a compressed model can look fine on paper and still not be worth shipping.

- a quantized artifact slower than the float model it was quantized from;
- an ONNX graph whose nodes did not all run on the requested execution provider (counted from
  onnxruntime's own profile, so a silent fallback to CPU is seen, not assumed away);
- a quality gate whose verdict the bootstrap interval cannot support.

Each check returns warnings (``kind``, ``artifact``, ``message``); the stage prints and reports them.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from compressor.artifact import ONNX, Artifact
from compressor.bench.gates import GateResult

REQUESTED_PROVIDER = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def warning(kind: str, artifact: str, message: str) -> dict[str, str]:
    return {"kind": kind, "artifact": artifact, "message": message}


def quantized_from(artifact: Artifact) -> tuple[Path, str, str] | None:
    """(source path, source hash, method) of the last quantize stage in the lineage, if any."""
    for record in reversed(artifact.stages):
        if record.stage == "quantize":
            method = str(record.config.get("method") or record.report.get("method") or "quantized")
            return Path(record.source_path), record.source_hash, method
    return None


def slower_than_parent(
    name: str, p50_ms: float, parent_name: str, parent_p50_ms: float, batch: int, *, tolerance: float = 0.0
) -> dict[str, str] | None:
    if p50_ms <= parent_p50_ms * (1 + tolerance):
        return None
    return warning(
        "quantized-slower-than-float",
        name,
        f"{name} is quantized but slower than its float parent {parent_name}: p50 {p50_ms:.3g} ms vs "
        f"{parent_p50_ms:.3g} ms at batch {batch} ({p50_ms / parent_p50_ms:.2f}x)",
    )


def provider_coverage(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Nodes, op types and kernel time per execution provider from an onnxruntime profile."""
    providers: dict[str, set[str]] = defaultdict(set)
    ops: dict[str, Counter[str]] = defaultdict(Counter)
    time_us: Counter[str] = Counter()
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or "provider" not in args:
            continue
        provider = args["provider"]
        node = event.get("name", "").removesuffix("_kernel_time")
        if node not in providers[provider]:
            providers[provider].add(node)
            ops[provider][args.get("op_name", "?")] += 1
        time_us[provider] += int(event.get("dur", 0))
    total_time = sum(time_us.values())
    return {
        "nodes_by_provider": {p: len(nodes) for p, nodes in sorted(providers.items())},
        "op_types_by_provider": {p: dict(sorted(c.items())) for p, c in sorted(ops.items())},
        "time_share_by_provider": {p: t / total_time for p, t in sorted(time_us.items())} if total_time else {},
    }


def provider_warnings(
    name: str, device: str, session_providers: list[str], coverage: dict[str, Any] | None
) -> list[dict[str, str]]:
    requested = REQUESTED_PROVIDER[device]
    found = []
    if requested not in session_providers:
        found.append(warning(
            "execution-provider-missing", name,
            f"{name}: {requested} was requested but onnxruntime created the session with "
            f"{', '.join(session_providers)}; every node runs there instead",
        ))
    if coverage:
        elsewhere = {p: n for p, n in coverage["nodes_by_provider"].items() if p != requested}
        if elsewhere:
            total = sum(coverage["nodes_by_provider"].values())
            ops = coverage["op_types_by_provider"]
            detail = "; ".join(
                f"{count} on {provider} ({', '.join(f'{op} x{n}' for op, n in ops[provider].items())})"
                for provider, count in elsewhere.items()
            )
            found.append(warning(
                "nodes-off-requested-provider", name,
                f"{name}: {sum(elsewhere.values())} of {total} nodes did not run on {requested}: {detail}",
            ))
    return found


def openvino_warnings(name: str, properties: dict[str, Any], threads: int) -> list[dict[str, str]]:
    """What the OpenVINO CPU plugin reports it compiled for, against what bench asked for: the CPU
    device, f32 precision (not a silent bf16), ``threads`` threads, one stream."""
    found = []
    devices = properties.get("execution_devices") or []
    if devices and any(not str(d).startswith("CPU") for d in devices):
        found.append(warning("execution-device-mismatch", name,
                             f"{name}: the CPU plugin was requested but OpenVINO runs it on {', '.join(devices)}"))
    asked = {"inference_precision_hint": "f32", "inference_num_threads": threads, "num_streams": 1}
    for key, want in asked.items():
        got = properties.get(key)
        if got is not None and str(got).lower() != str(want).lower():
            found.append(warning("openvino-setting-differs", name,
                                 f"{name}: OpenVINO compiled with {key} {got}, not the requested {want}"))
    return found


def ci_warnings(results: list[GateResult]) -> list[dict[str, str]]:
    return [
        warning(
            "ci-too-wide", r.artifact,
            f"{r.artifact}: gate {r.gate} {r.threshold:g} lies inside the 95% CI "
            f"[{r.ci95[0]:.3g}, {r.ci95[1]:.3g}] {r.unit} of the measured {r.value:.3g}; the data cannot support "
            f"this {'pass' if r.passed else 'fail'} (use more --max-samples or a looser gate)",
        )
        for r in results
        if r.ci95 is not None and r.value is not None and not r.ci_supports_verdict
    ]


def _cpu_jiffies() -> tuple[int, int, int] | None:
    """(busy, total, cpu count) from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return sum(fields[:8]) - idle, sum(fields[:8]), cpus


def busy_cpus(interval: float = 0.25) -> tuple[float, int] | None:
    """CPUs kept busy by *other* processes over ``interval`` seconds while this one sleeps:
    (busy CPUs, CPUs). A shared machine inflates latency; this is how much."""
    import time

    first = _cpu_jiffies()
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_jiffies()
    if second is None or second[1] == first[1]:
        return None
    busy = (second[0] - first[0]) / (second[1] - first[1]) * second[2]
    return busy, second[2]


def cpu_count() -> int:
    """CPUs of the machine (what other processes compete for), as /proc/stat counts them."""
    sample = _cpu_jiffies()
    return sample[2] if sample else (os.cpu_count() or 1)


def machine_busy_warning(busy: float, cpus: int, threads: int) -> dict[str, str] | None:
    """Warn when other processes and our threads together ask for more CPUs than there are."""
    if busy < 0.5 or busy + threads <= cpus + 0.25:
        return None
    return warning(
        "machine-busy", "*",
        f"other processes kept {busy:.1f} of {cpus} CPUs busy while benching with {threads} threads: "
        "latencies are inflated and comparisons between models are unreliable; bench on an idle machine "
        "or lower --threads",
    )


def precision(artifact: Artifact) -> str:
    """The precision a bench entry reports: the quantize record's method, fp16 from the export, else what
    an ONNX graph's ops say."""
    origin = quantized_from(artifact)
    if origin:
        return origin[2]
    if any(r.stage == "export-onnx" and r.config.get("fp16") for r in artifact.stages):
        return "fp16"
    if artifact.format == ONNX:
        return graph_precision(artifact.onnx_file)
    return "float"


def graph_precision(path: Path) -> str:
    """What the graph's ops say, for an ONNX model quantized by another tool (no quantize record in its
    lineage, e.g. a peer's export): "int4 (graph)" for MatMulNBits, "int8 (graph)" for integer/QDQ ops."""
    import onnx

    from compressor.quantize.onnx_ort import QUANTIZED_OPS

    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    if "MatMulNBits" in ops:
        return "int4 (graph)"
    return "int8 (graph)" if ops & QUANTIZED_OPS else "float"
