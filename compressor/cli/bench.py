"""``compress bench``."""

from __future__ import annotations

import click

from compressor.cli.common import allow_pickle_option, column_options, common_options, data_spec, emit, set_json

GATE_FLAGS = (
    ("max_accuracy_drop", "--max-accuracy-drop", "P", "Fail if accuracy drops more than P points (classifiers)."),
    ("max_perplexity_increase", "--max-perplexity-increase", "P",
     "Fail if perplexity rises more than P percent (LMs)."),
    ("min_speedup", "--min-speedup", "X", "Fail if baseline p50 / artifact p50 (batch 1) is below X."),
    ("max_latency_ms", "--max-latency-ms", "MS", "Fail if p90 latency at batch 1 exceeds MS."),
    ("max_size_mb", "--max-size-mb", "MB", "Fail if the weights on disk exceed MB (10^6 bytes)."),
    ("max_memory_mb", "--max-memory-mb", "MB", "Fail if peak RSS in a fresh process exceeds MB."),
)


def gate_options(func):  # type: ignore[no-untyped-def]
    for name, flag, metavar, help_text in reversed(GATE_FLAGS):
        func = click.option(flag, name, type=float, default=None, metavar=metavar, help=help_text)(func)
    return click.option(
        "--gate", "gate", multiple=True, metavar="NAME=VALUE",
        help="A gate by name (repeatable), e.g. --gate max-accuracy-drop=1.0; same names as the flags.",
    )(func)


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True)
@click.option("--baseline", required=True, help="The model artifacts are compared with (usually the teacher).")
@click.option("--data", required=True, help="Evaluation data: labelled table (classifiers) or text (LMs).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--batch-sizes", default="1,8", show_default=True, help="Comma-separated batch sizes to time.")
@click.option("--threads", type=int, default=None,
              help="Intra-op threads for torch and onnxruntime [default: every CPU available].")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs before measuring.")
@click.option("--min-runs", type=int, default=20, show_default=True, help="Timed runs per batch size, at least; a classifier is also timed on every latency batch once, so all artifacts see the same inputs.")
@click.option("--min-seconds", type=float, default=1.0, show_default=True,
              help="Time each batch size for at least S seconds.")
@click.option("--max-samples", type=int, default=1000, show_default=True,
              help="Rows (LM: blocks) of --data scored and timed.")
@click.option("--max-length", type=int, default=128, show_default=True,
              help="Tokens per input (LM: block and prompt length).")
@click.option("--decode-tokens", type=int, default=32, show_default=True,
              help="LMs: tokens generated per decode-latency run.")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement (one fresh process per model).")
@click.option("--profile-runs", type=int, default=5, show_default=True,
              help="ONNX runs profiled to count nodes per execution provider (0: off).")
@gate_options
@click.option("--report-dir", type=click.Path(), default=None,
              help="Write report.json, report.md, report.png and junit.xml here.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="JUnit XML path (default: REPORT_DIR/junit.xml).")
@column_options
@allow_pickle_option
@common_options
@click.pass_context
def command(ctx: click.Context, artifacts: tuple[str, ...], baseline: str, data: str, device: str, batch_sizes: str,
            threads: int | None, warmup: int, min_runs: int, min_seconds: float, max_samples: int, max_length: int,
            decode_tokens: int, bootstrap: int, seed: int, no_memory: bool, profile_runs: int, gate: tuple[str, ...],
            report_dir: str | None, junit: str | None, text_column: str | None, text_pair_column: str | None,
            label_column: str | None, allow_pickle: bool, as_json: bool, **gate_flags: float | None) -> None:
    """Measure ARTIFACTS against --baseline on --data: latency, memory, size, quality; apply gates.

    Exit 1 when any gate fails (each gate is listed with its numbers); reports are written either way.
    """
    set_json(ctx, as_json)
    from compressor.bench import BenchConfig, bench
    from compressor.bench.config import gate_name, parse_gate
    from compressor.bench.reports import summary_lines
    from compressor.errors import BadInputError, GateFailedError

    gates = {gate_name(name): value for name, value in gate_flags.items() if value is not None}
    for text in gate:
        name, value = parse_gate(text)
        if name in gates and gates[name] != value:
            raise BadInputError(f"--gate {text!r}: {name} is already set to {gates[name]:g}")
        gates[name] = value
    config = BenchConfig(
        baseline=baseline,
        data=data_spec(data, text_column, text_pair_column, label_column),
        device=device,
        batch_sizes=batch_sizes,
        threads=threads,
        warmup=warmup,
        min_runs=min_runs,
        min_seconds=min_seconds,
        max_samples=max_samples,
        max_length=max_length,
        decode_tokens=decode_tokens,
        bootstrap=bootstrap,
        seed=seed,
        measure_memory=not no_memory,
        profile_runs=profile_runs,
        gates=gates,
        report_dir=report_dir,
        junit=junit,
        allow_pickle=allow_pickle,
    )
    try:
        report = bench(list(artifacts), config)
    except GateFailedError as exc:
        # The per-gate lines first; the group then prints the JSON report (--json) and the error line.
        if exc.report:
            _print_summary(summary_lines(exc.report))
        raise
    emit(ctx, report, summary_lines(report))


def _print_summary(lines: list[str]) -> None:
    from compressor import progress

    if not progress._quiet:
        for line in lines:
            click.echo(line, err=True)
