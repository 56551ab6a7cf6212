"""Bench reports: JSON (the contract), Markdown (for people and $GITHUB_STEP_SUMMARY), JUnit XML
(one test case per gate and artifact, for CI test tabs) and a PNG of quality against latency.

JSON schema, ``schema_version`` 1 (``REPORT_DIR/report.json``). Units: ms, MB = 10^6 bytes, points on a 0..100
scale, percent. Every difference is artifact minus baseline.

    schema_version       int, 1
    tool                 {"name": "compress bench", "version"}
    created_at           ISO 8601 UTC
    passed               bool: every gate of every artifact passed (true when there are no gates)
    task                 "text-classification" | "causal-lm"
    environment          {device, threads, reference_batch, cpus, max_other_busy_cpus (CPUs other
                         processes kept busy, sampled before each model was timed), versions{...}}
    config               the resolved BenchConfig (data spec, batch sizes, warm-up, runs, gates, ...)
    baseline             entry (below), role "baseline"
    artifacts            [entry], role "artifact", in the order given
    parents              [entry with latency only], float parents of quantized artifacts that were
                         not benched themselves (role "parent"), measured for the slower-than-float check
    gates                [{artifact, gate, threshold, value, unit, passed, detail, ci95|null,
                           ci_supports_verdict}]
    reports              {json, markdown, plot, junit, step_summary: path} of files written (in the
                         --json output and the returned dict; not inside report.json itself)
    warnings             [{kind, artifact, message}], kind in quantized-slower-than-float,
                         execution-provider-missing, nodes-off-requested-provider, ci-too-wide,
                         tokenizer-differs, machine-busy (artifact "*")
    entry:
      name, path, role, format ("pytorch"|"onnx"), family, task, precision ("float" or the quantize
      method), lineage [stage names], float_parent {path, compared, p50_ms} (quantized artifacts),
      other_busy_cpus, size_bytes, size_mb, parameters, weight_matrices,
      weight_elements, zero_weights, sparsity (exact zeros / weight-matrix elements, embeddings
      excluded), providers (ONNX: the session's EPs), provider_coverage (ONNX: nodes_by_provider,
      op_types_by_provider, time_share_by_provider from onnxruntime's profile),
      memory {peak_rss_mb, engine_rss_mb, model_rss_mb, gpu_peak_mb|null} | null,
      latency {"<batch>": {runs, mean_ms, std_ms, min_ms, p50_ms, p90_ms, p99_ms, max_ms,
               samples_per_s, tokens_per_s (LM: prompt tokens), sequence_length (LM)}}
        (LM: latency is the prefill of a prompt with an empty KV cache)
      decode (LM) {"<batch>": {runs, mean_ms, ..., p99_ms: per generated token with the KV cache,
               tokens_per_s, new_tokens, prompt_length}} | null
      speedup           baseline p50 / this p50 at reference_batch (1.0 for the baseline)
      decode_speedup    (LM) the same for per-token decode p50
      quality           classifier: {samples, accuracy, macro_f1, vs_baseline{accuracy_diff_points,
                          accuracy_diff_ci95, accuracy_drop_points, accuracy_drop_ci95,
                          macro_f1_diff_points, macro_f1_diff_ci95, agreement}}
                        LM: {blocks, tokens, perplexity, vs_baseline{perplexity_increase_pct,
                          perplexity_increase_ci95, agreement (next-token argmax)}}
                        token classifier: {sentences, tokens, f1, precision, recall, token_accuracy,
                          vs_baseline{f1_diff_points, f1_diff_ci95, f1_drop_points, f1_drop_ci95,
                          agreement (word tags)}}  (entity-level, seqeval; bootstrap over sentences)
                        sentence embedding: {pairs, spearman (fraction; x100 in tables),
                          vs_baseline{score_diff_points, score_diff_ci95, score_drop_points,
                          score_drop_ci95, similarity_max_abs_diff}}  (bootstrap over pairs)
                        (vs_baseline absent on the baseline)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

SCHEMA_VERSION = 1
JSON_NAME, MARKDOWN_NAME, PLOT_NAME, JUNIT_NAME = "report.json", "report.md", "report.png", "junit.xml"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write beside ``path`` and rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [report["baseline"], *report["artifacts"]]


def quality_value(entry: dict[str, Any]) -> tuple[str, float | None, bool]:
    """(label, value, higher_is_better) of an entry's headline quality."""
    quality = entry.get("quality") or {}
    if "perplexity" in quality:
        return "perplexity", quality["perplexity"], False
    if "spearman" in quality:
        return "STS Spearman (x100)", quality["spearman"] * 100, True
    if "f1" in quality:
        return "entity F1 (%)", quality["f1"] * 100, True
    value = quality.get("accuracy")
    return "accuracy (%)", value * 100 if value is not None else None, True


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of points no other point beats on both latency (lower) and quality; sorted by latency."""
    front = []
    for i, (lat_i, q_i) in enumerate(points):
        dominated = False
        for j, (lat_j, q_j) in enumerate(points):
            if i == j:
                continue
            better_q = q_j >= q_i if higher_is_better else q_j <= q_i
            strictly = lat_j < lat_i or (q_j > q_i if higher_is_better else q_j < q_i)
            if lat_j <= lat_i and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _fmt(value: Any, spec: str = ".3g", suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:{spec}}{suffix}"


def _quality_cell(entry: dict[str, Any]) -> str:
    quality = entry.get("quality") or {}
    vs = quality.get("vs_baseline")
    if "perplexity" in quality:
        cell = f"{quality['perplexity']:.4g}"
        if vs:
            low, high = vs["perplexity_increase_ci95"]
            cell += f" ({vs['perplexity_increase_pct']:+.2f}% [{low:+.2f}, {high:+.2f}])"
        return cell
    if "accuracy" in quality:
        cell = f"{quality['accuracy'] * 100:.2f}% / F1 {quality['macro_f1'] * 100:.2f}"
        if vs:
            low, high = vs["accuracy_diff_ci95"]
            cell += f" ({vs['accuracy_diff_points']:+.2f} pt [{low:+.2f}, {high:+.2f}])"
        return cell
    for key, label, diff in (("f1", "entity F1", "f1_diff"), ("spearman", "Spearman", "score_diff")):
        if key in quality:  # token classifiers, sentence embeddings: x100
            cell = f"{label} {quality[key] * 100:.2f}"
            if key == "f1":
                cell += f" / token acc {quality['token_accuracy'] * 100:.2f}%"
            if vs:
                low, high = vs[f"{diff}_ci95"]
                cell += f" ({vs[f'{diff}_points']:+.2f} pt [{low:+.2f}, {high:+.2f}])"
            return cell
    return "–"


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    ref = str(env["reference_batch"])
    batches = [str(b) for b in report["config"]["batch_sizes"]]
    lm = report["task"] == "causal-lm"
    lines = [
        f"## compress bench: {'passed' if report['passed'] else 'FAILED'}",
        "",
        f"{report['task']} on `{report['config']['data']['path']}`, device {env['device']}, "
        f"{env['threads']} threads; latency on real inputs"
        + (" (LM: prefill; decode per token with the KV cache)" if lm else ""),
        "",
    ]
    header = ["artifact", "format", "precision", "size MB", "params", "sparsity", "peak RSS MB"]
    header += [f"p50 ms (b{b})" for b in batches] + [f"p90 ms (b{ref})", "speedup"]
    if lm:
        header += [f"decode ms/token (b{ref})", f"decode tok/s (b{ref})"]
    else:
        header += [f"samples/s (b{batches[-1]})"]
    header += ["agreement", "quality (Δ vs baseline, 95% CI)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in _entries(report):
        latency = entry.get("latency") or {}
        name = entry["name"] + (" (baseline)" if entry["role"] == "baseline" else "")
        row = [
            name, entry["format"], entry.get("precision", "float"), _fmt(entry.get("size_mb"), ".1f"),
            _fmt((entry.get("parameters") or 0) / 1e6, ".2f", "M"), _fmt(entry.get("sparsity"), ".1%"),
            _fmt((entry.get("memory") or {}).get("peak_rss_mb"), ".0f"),
        ]
        row += [_fmt(latency.get(b, {}).get("p50_ms"), ".3g") for b in batches]
        row += [_fmt(latency.get(ref, {}).get("p90_ms"), ".3g"), _fmt(entry.get("speedup"), ".3g", "x")]
        if lm:
            decode = (entry.get("decode") or {}).get(ref) or {}
            row += [_fmt(decode.get("p50_ms"), ".3g"), _fmt(decode.get("tokens_per_s"), ".0f")]
        else:
            row += [_fmt(latency.get(batches[-1], {}).get("samples_per_s"), ".0f")]
        vs = (entry.get("quality") or {}).get("vs_baseline") or {}
        row += [_fmt(vs.get("agreement"), ".2%"), _quality_cell(entry)]
        lines.append("| " + " | ".join(row) + " |")
    if report["gates"]:
        lines += ["", "| gate | artifact | value | threshold | result |", "|---|---|---|---|---|"]
        for gate in report["gates"]:
            lines.append(
                f"| {gate['gate']} | {gate['artifact']} | {_fmt(gate['value'], '.4g')} {gate['unit']} | "
                f"{gate['threshold']:g} {gate['unit']} | {'pass' if gate['passed'] else '**FAIL**'} |"
            )
    if report["warnings"]:
        lines += ["", "**Warnings**", ""] + [f"- {w['message']}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def junit_xml(report: dict[str, Any]) -> str:
    gates = report["gates"]
    failures = sum(not g["passed"] for g in gates)
    cases = []
    for gate in gates:
        name = quoteattr(f"{gate['gate']} <= {gate['threshold']:g}" if not gate["gate"].startswith("min-")
                         else f"{gate['gate']} >= {gate['threshold']:g}")
        case = f'    <testcase classname={quoteattr("compress.bench." + gate["artifact"])} name={name}>'
        if not gate["passed"]:
            case += f'\n      <failure message={quoteattr(gate["detail"])}>{escape(gate["detail"])}</failure>\n    '
        else:
            case += f"\n      <system-out>{escape(gate['detail'])}</system-out>\n    "
        cases.append(case + "</testcase>")
    body = "\n".join(cases)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites tests="{len(gates)}" failures="{failures}">\n'
        f'  <testsuite name="compress bench" tests="{len(gates)}" failures="{failures}" errors="0" skipped="0">\n'
        + (body + "\n" if body else "")
        + "  </testsuite>\n</testsuites>\n"
    )


def plot(report: dict[str, Any], path: Path) -> None:
    """Quality against p50 latency at the reference batch, the Pareto front as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI
    import matplotlib.pyplot as plt

    ref = str(report["environment"]["reference_batch"])
    points, labels, roles = [], [], []
    label = "quality"
    higher = True
    for entry in _entries(report):
        label, value, higher = quality_value(entry)
        p50 = ((entry.get("latency") or {}).get(ref) or {}).get("p50_ms")
        if value is None or p50 is None:
            continue
        points.append((p50, value))
        labels.append(entry["name"])
        roles.append(entry["role"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    front = pareto_front(points, higher) if points else []
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:gray",
                label="Pareto front", zorder=1)
    for i, ((x, y), name, role) in enumerate(zip(points, labels, roles)):
        on_front = i in front
        ax.scatter([x], [y], s=60, zorder=2, marker="*" if role == "baseline" else "o",
                   color="tab:red" if on_front else "tab:blue", edgecolors="black" if on_front else "none")
        # Alternate labels above and below: artifacts of equal quality sit side by side.
        ax.annotate(name + (" (baseline)" if role == "baseline" else ""), (x, y), textcoords="offset points",
                    xytext=(5, 5 if i % 2 == 0 else -12), fontsize=8)
    xs = [x for x, _ in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 5:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")  # compressed artifacts are often 10x faster: keep them apart
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(f"p50 latency at batch {ref} (ms, {report['environment']['device']})")
    ax.set_ylabel(label + (" (higher is better)" if higher else " (lower is better)"))
    ax.set_title("compress bench: quality vs latency (red: Pareto front)")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.15)  # room for the labels beside the points
    if len(front) > 1:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.parent / f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}.png"
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def write_reports(report: dict[str, Any], report_dir: str | None, junit: str | None) -> dict[str, str]:
    """Every requested report file; returns {kind: path}. $GITHUB_STEP_SUMMARY gets the Markdown."""
    import json

    from compressor.manifest import _json_default  # the serialiser --json output uses too

    written: dict[str, str] = {}
    text = markdown(report)
    if report_dir:
        directory = Path(report_dir)
        atomic_write(directory / JSON_NAME, json.dumps(report, indent=2, default=_json_default) + "\n")
        atomic_write(directory / MARKDOWN_NAME, text)
        plot(report, directory / PLOT_NAME)
        written.update(json=str(directory / JSON_NAME), markdown=str(directory / MARKDOWN_NAME),
                       plot=str(directory / PLOT_NAME))
        if not junit:
            junit = str(directory / JUNIT_NAME)
    if junit:
        atomic_write(Path(junit), junit_xml(report))
        written["junit"] = junit
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        written["step_summary"] = summary
    return written


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The short human summary on stderr: one line per model, one per gate, then the verdict."""
    ref = str(report["environment"]["reference_batch"])
    env = report["environment"]
    lines = [f"bench: {report['task']}, device {env['device']}, {env['threads']} threads, batch {ref} for speed"]
    for entry in _entries(report):
        latency = (entry.get("latency") or {}).get(ref) or {}
        memory_mb = (entry.get("memory") or {}).get("peak_rss_mb")
        decode = ((entry.get("decode") or {}).get(ref) or {}).get("p50_ms")
        parts = [
            f"{entry['name']}{' (baseline)' if entry['role'] == 'baseline' else ''}: "
            f"{entry['format']} {entry.get('precision')}",
            f"{entry['size_mb']:.1f} MB",
            f"p50 {_fmt(latency.get('p50_ms'))} ms p90 {_fmt(latency.get('p90_ms'))} ms",
            f"speedup {_fmt(entry.get('speedup'), '.3g')}x",
        ]
        if decode is not None:
            parts.append(f"decode {decode:.3g} ms/token")
        if memory_mb is not None:
            parts.append(f"peak RSS {memory_mb:.0f} MB")
        parts.append(_quality_cell(entry))
        lines.append("  " + ", ".join(parts))
    for gate in report["gates"]:
        verdict = "PASS" if gate["passed"] else "FAIL"
        lines.append(f"  gate {gate['gate']} [{gate['artifact']}]: {verdict} — {gate['detail']}")
    for kind, path in (report.get("reports") or {}).items():
        lines.append(f"  wrote {kind}: {path}")
    verdict = "all gates passed" if report["passed"] else "GATES FAILED"
    lines.append(f"bench: {verdict}" if report["gates"] else "bench: no gates given")
    return lines
