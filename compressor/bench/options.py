"""``compress bench``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.bench.config import GATES, BenchConfig, gate_name, parse_gate
from compressor.errors import BadInputError
from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, DEVICE, SEED, Option, data_spec

_GATE_METAVARS = {"points": "P", "%": "P", "x": "X", "ms": "MS", "MB": "MB"}

GATE_OPTIONS = tuple(
    Option(spec.name, "float", min=spec.low, min_open=not spec.low_inclusive, max=spec.high,
           metavar=_GATE_METAVARS.get(spec.unit), help=spec.help[0].upper() + spec.help[1:] + ".")
    for spec in GATES.values()
)

OPTIONS = (
    Option("baseline", required=True, path="artifact", help="The model artifacts are compared with (usually the teacher)."),
    Option("data", required=True, path="data", help="Evaluation data: labelled table (classifiers) or text (LMs)."),
    DEVICE,
    Option("batch-sizes", default="1,8", metavar="B,B,...", help="Comma-separated batch sizes to time."),
    Option("threads", "int", min=1, max=1024,
           help="Intra-op threads for torch and onnxruntime [default: every CPU available]."),
    Option("warmup", "int", 5, min=0, max=10**6, help="Untimed runs before measuring."),
    Option("min-runs", "int", 20, min=1, max=10**7,
           help="Timed runs per batch size, at least; a classifier is also timed on every latency batch once, so "
                "all artifacts see the same inputs."),
    Option("min-seconds", "float", 1.0, min=0, max=86400, help="Time each batch size for at least S seconds."),
    Option("max-samples", "int", 1000, min=1, max=10**7, help="Rows (LM: blocks) of --data scored and timed."),
    Option("max-length", "int", 128, min=2, max=1 << 16, help="Tokens per input (LM: block and prompt length)."),
    Option("decode-tokens", "int", 32, min=1, max=1 << 16, help="LMs: tokens generated per decode-latency run."),
    Option("bootstrap", "int", 1000, min=100, max=100_000, help="Bootstrap resamples for the 95% intervals."),
    SEED,
    Option("no-memory", "flag", False, help="Skip the peak-memory measurement (one fresh process per model)."),
    Option("profile-runs", "int", 5, min=0, max=10**5,
           help="ONNX runs profiled to count nodes per execution provider (0: off)."),
    Option("gate", multiple=True, metavar="NAME=VALUE",
           help="A gate by name (repeatable), e.g. --gate max-accuracy-drop=1.0; same names as the flags."),
    *GATE_OPTIONS,
    Option("report-dir", help="Write report.json, report.md, report.png and junit.xml here."),
    Option("junit", help="JUnit XML path (default: REPORT_DIR/junit.xml)."),
    *COLUMN_OPTIONS,
    ALLOW_PICKLE,
)


def gates(values: dict[str, Any]) -> dict[str, float]:
    # In the order given (command line, config file or recipe): reports list gates in that order.
    keys = {o.key: o.name for o in GATE_OPTIONS}
    found = {gate_name(keys[k]): v for k, v in values.items() if k in keys and v is not None}
    for text in values.get("gate") or ():
        name, value = parse_gate(text)
        if name in found and found[name] != value:
            raise BadInputError(f"--gate {text!r}: {name} is already set to {found[name]:g}")
        found[name] = value
    return found


def build(values: dict[str, Any]) -> BenchConfig:
    v = values
    return BenchConfig(
        baseline=v["baseline"], data=data_spec(v, "data"), device=v["device"], batch_sizes=v["batch_sizes"],
        threads=v["threads"], warmup=v["warmup"], min_runs=v["min_runs"], min_seconds=v["min_seconds"],
        max_samples=v["max_samples"], max_length=v["max_length"], decode_tokens=v["decode_tokens"],
        bootstrap=v["bootstrap"], seed=v["seed"], measure_memory=not v["no_memory"], profile_runs=v["profile_runs"],
        gates=gates(v), report_dir=v["report_dir"], junit=v["junit"], allow_pickle=v["allow_pickle"],
    )
