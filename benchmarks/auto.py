"""`compress auto` on SST-2 (issue 13): search for the fastest MiniLM-L6 SST-2 compression within 1.0
accuracy point (dev), then measure the winner, the FP32 PyTorch teacher and the optimum INT8 peer in
one `compress bench` run on the labelled test split (1,821 sentences no trial selected on).

Targets (batch 1, 2 threads): the winner within 1.0 point of the teacher on the test split, >= 25x
lower p50 than the teacher, >= 4x lower than the optimum INT8 peer, >= 10x smaller than the teacher.
Writes benchmarks/results/auto.json and prints the table.

    python benchmarks/auto.py [--time-budget 60m] [--distill-steps 1000,2000,3000] [--student DIR]
                              [--recover-steps 0,40] [--recover-data FILE] [--backends onnx]
                              [--vocab auto|on|off] [--vocab-data FILE] [--vocab-size N] [--embeddings int4]
                              [--prune-heads S,S] [--prune-ffn S,S] [--prune-layers S,S]
                              [--run-name run] [--measure-only]

compress auto holds out 30% of dev (seeded) from the search and picks the winner among the fastest
feasible trials re-benched together on those rows; the JSON records the split and every finalist.

The search runs at `nice -n 5`; the final bench holds `flock /tmp/compress-cpu.lock`. An existing run
directory is resumed (`--resume`) unless --measure-only, which only measures its winner again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402  (the optimum INT8 peer is built exactly as the peers benchmark builds it)

ASSETS = peers.ASSETS
TEACHER = peers.BERT_TEACHER
SST2 = ASSETS / "glue" / "SST-2"
WORK = ROOT / "benchmarks" / "work" / "auto"
RESULTS = ROOT / "benchmarks" / "results"
COMPRESS = [sys.executable, "-m", "compressor.cli"]
TARGETS = {"test_accuracy_drop_points": 1.0, "speedup_vs_teacher": 25.0, "speedup_vs_optimum_int8": 4.0,
           "size_ratio": 10.0}


def search(args: argparse.Namespace, run_dir: Path) -> int:
    cmd = ["nice", "-n", "5", *COMPRESS, "auto", str(TEACHER), "--data", str(SST2 / "train.tsv"),
           "--eval-data", str(SST2 / "dev.tsv"), "--test-data", str(SST2 / "test-labeled.tsv"),
           "--max-accuracy-drop", "1.0", "--objective", "latency", "--time-budget", args.time_budget,
           "--distill-steps", args.distill_steps, "--max-length", "64", "--batch-size", "32", "--threads", "2",
           "-o", str(run_dir)]
    for student in args.student:
        cmd += ["--student", student]
    if args.recover_steps:
        cmd += ["--recover-steps", args.recover_steps]
    if args.backends:
        cmd += ["--backends", args.backends]
    for flag in ("recover_data", "vocab", "vocab_data", "vocab_size", "embeddings", "prune_heads", "prune_ffn",
                 "prune_layers"):
        if getattr(args, flag) is not None:
            cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    if (run_dir / "auto.json").exists():
        cmd.append("--resume")
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    started = time.time()
    code = subprocess.run(cmd, cwd=ROOT).returncode
    print(f"compress auto exit {code} after {(time.time() - started) / 60:.1f} min", file=sys.stderr, flush=True)
    return code


def measure(run_dir: Path) -> dict:
    """One `compress bench` over the winner and the optimum INT8 peer against the teacher, test split."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # optimum-cli of this venv
    peers.WORK = WORK / "peers"
    _, int8, arch = peers.peer_onnx()
    rows = {"auto-winner": run_dir / "winner", f"optimum-int8-{arch}": int8}
    links = WORK / "rows"
    links.mkdir(parents=True, exist_ok=True)
    named = []
    for name, path in rows.items():  # bench names a row after its directory
        link = links / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
        named.append(str(link))
    report_dir = WORK / "bench-test"
    cmd = ["flock", "/tmp/compress-cpu.lock", *COMPRESS, "-q", "bench", *named, "--baseline", str(TEACHER),
           "--data", str(SST2 / "test-labeled.tsv"), "--max-samples", "1821", "--batch-sizes", "1,8",
           "--threads", "2", "--seed", "0", "--report-dir", str(report_dir)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code not in (0, 1):
        raise SystemExit(f"compress bench failed with exit {code}")
    report = json.loads((report_dir / "report.json").read_text())
    return {"report": report, "peer": f"optimum-int8-{arch}", "report_path": str(report_dir / "report.json")}


def _history(path: Path, run_dir: Path) -> dict:
    """What the committed auto.json knew before this run: its own run's summary joins ``previous_runs``
    (unless it measured this same run directory), and the side measurements are kept as they are."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    runs = list(old.get("previous_runs") or [])
    old_run = Path((old.get("winner") or {}).get("recipe") or "").parent
    if old.get("winner") and old_run != run_dir:
        keys = ("trial", "configuration", "test_accuracy", "test_accuracy_drop_points", "p50_ms", "speedup_vs_teacher",
                "speedup_vs_optimum_int8", "size_mb", "size_ratio")
        search = old.get("search") or {}
        runs.insert(0, {"run": old_run.name, "note": old.get("run_note"),
                        "search": {k: v for k, v in search.items() if k not in ("space", "finalists", "holdout")},
                        "winner": {k: old["winner"].get(k) for k in keys},
                        "teacher_p50_ms": (old.get("teacher_fp32_pytorch") or {}).get("p50_ms"),
                        "optimum_int8_p50_ms": (old.get("optimum_int8") or {}).get("p50_ms")})
    return {"previous_runs": runs, **({"side_measurements": old["side_measurements"]}
                                      if old.get("side_measurements") else {})}


def entry_row(entry: dict) -> dict:
    lat = entry.get("latency") or {}
    return {"test_accuracy": (entry.get("quality") or {}).get("accuracy"),
            "p50_ms": (lat.get("1") or {}).get("p50_ms"), "p50_ms_batch8": (lat.get("8") or {}).get("p50_ms"),
            "size_mb": entry.get("size_mb")}


def verdict(winner: dict) -> list[dict]:
    rows = []
    for key, target in TARGETS.items():
        value = winner.get(key)
        met = value is not None and (value <= target if key == "test_accuracy_drop_points" else value >= target)
        relation = "<=" if key == "test_accuracy_drop_points" else ">="
        row = {"target": key, "needs": f"{relation} {target:g}", "value": value, "met": met}
        if not met:
            row["reason"] = REASONS.get(key, "")
        rows.append(row)
    return rows


# Why a target can be missed in general; results/auto.json states the measured run's own reasons.
REASONS = {
    "test_accuracy_drop_points": "the search rows (610 of dev) and the test split disagree by 1-1.5 points for the same "
                                 "artifact: at 93% agreement with the teacher a drop measured on 610 rows has a standard "
                                 "error of about 1.0 point (262 confirmation rows: 1.5; test: 0.6), so the one trial "
                                 "within budget on dev is partly there by chance (a winner's curse). run-s10's winner "
                                 "was 0.98 below on the search rows, 0.76 on the confirmation rows and 1.87 on test; "
                                 "run-s9's 0.33, 0.0 and 2.14; while the heads/FFN-halved recipe that was -0.49 on "
                                 "test cost 1.97-2.30 on the search rows and was never eligible",
    "speedup_vs_teacher": "the fastest 3-layer INT8 students run 0.55-0.8 ms at batch 1 in their trials (the same "
                          "artifact read 0.77 and 1.39 ms minutes apart) and the teacher read 10.3-15.2 ms across "
                          "runs, so 25x needs 0.4-0.6 ms; the students that fast (heads and FFN halved) were over "
                          "budget on the search rows, and narrower ones (2 layers, or heads and FFN quartered) stay "
                          "outside it before quantization (-2.3 and -1.3 after 8,000 KD steps)",
    "speedup_vs_optimum_int8": "the peer (6-layer ONNX INT8) reads 2.5-3.5 ms; only heads-and-FFN-halved 3-layer "
                               "students reach 4x it (session 9's fixed recipe: 5.4x at -0.49 on test), and they were "
                               "over budget on the search rows",
    "size_ratio": "10x needs <= 9.1 MB; the 30,522-token table alone is 11.7 MB in INT8. SST-2 train's vocabulary "
                  "(13,486 tokens) with heads halved or FFN halved gives 8.3-8.9 MB; a 15,000-token vocabulary "
                  "(--vocab-size 15000) 8.8 MB, an INT4 vocabulary table (--embeddings int4) 9.3 MB",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", default="60m")
    parser.add_argument("--distill-steps", default="1000,2000,3000")
    parser.add_argument("--student", action="append", default=[],
                        help="An existing student searched besides new distillations (compress auto --student).")
    parser.add_argument("--recover-steps", default=None, help="compress auto --recover-steps (e.g. 0,40).")
    parser.add_argument("--backends", default=None, help="compress auto --backends (default: every one installed).")
    parser.add_argument("--recover-data", default=None, help="compress auto --recover-data (e.g. the transfer set).")
    parser.add_argument("--vocab", default=None, choices=["auto", "on", "off"], help="compress auto --vocab.")
    parser.add_argument("--vocab-data", default=None, help="compress auto --vocab-data.")
    parser.add_argument("--vocab-size", default=None, type=int, help="compress auto --vocab-size.")
    parser.add_argument("--embeddings", default=None, choices=["int8", "int4"], help="compress auto --embeddings.")
    for name in ("heads", "ffn", "layers"):
        parser.add_argument(f"--prune-{name}", default=None, help=f"compress auto --prune-{name} (shares searched).")
    parser.add_argument("--run-name", default="run", help="run directory under benchmarks/work/auto (resumed if there)")
    parser.add_argument("--measure-only", action="store_true")
    args = parser.parse_args()
    run_dir = WORK / args.run_name
    WORK.mkdir(parents=True, exist_ok=True)
    code = None
    if not args.measure_only:
        code = search(args, run_dir)
        if code not in (0, 1):
            raise SystemExit(f"compress auto failed with exit {code}")
    state = json.loads((run_dir / "auto.json").read_text())
    result = state.get("result") or {}
    if not (run_dir / "winner").is_dir():
        raise SystemExit("no winner: the search found no trial within the budget (see pareto.md)")
    measured = measure(run_dir)
    report = measured["report"]
    teacher = entry_row(report["baseline"])
    entries = {Path(e["path"]).name: e for e in report["artifacts"]}
    win, peer = entry_row(entries["auto-winner"]), entry_row(entries[measured["peer"]])
    winner = {
        **win,
        "test_accuracy_drop_points": (teacher["test_accuracy"] - win["test_accuracy"]) * 100,
        "speedup_vs_teacher": teacher["p50_ms"] / win["p50_ms"],
        "speedup_vs_optimum_int8": peer["p50_ms"] / win["p50_ms"],
        "size_ratio": teacher["size_mb"] / win["size_mb"],
        "trial": (result.get("winner") or {}).get("trial"),
        "configuration": (result.get("winner") or {}).get("configuration"),
        "dev": (result.get("winner") or {}).get("dev"),
        "confirmation": (result.get("winner") or {}).get("confirmation"),
        "recipe": str(run_dir / "recipe.yaml"),
    }
    invocations = state.get("invocations", [])
    out = {
        "benchmark": "compress auto on SST-2 (MiniLM-L6 teacher), issue 13",
        "search": {"time_budget": args.time_budget, "time_budgets_s": [i.get("time_budget_s") for i in invocations],
                   "distill_steps": args.distill_steps, "students": args.student,
                   "recover_steps": args.recover_steps, "recover_data": args.recover_data, "vocab": args.vocab,
                   "vocab_data": args.vocab_data, "vocab_size": args.vocab_size, "embeddings": args.embeddings,
                   "prune": {"heads": args.prune_heads, "ffn": args.prune_ffn, "layers": args.prune_layers},
                   "budget": "--max-accuracy-drop 1.0 (dev)",
                   "objective": "latency", "exit_code": code, "trials": result.get("trials"),
                   "space": state.get("space"), "holdout": result.get("holdout"),
                   "finalists": result.get("finalists")},
        "measured_on": "SST-2 labelled test split (1,821), batch 1 and 8, 2 threads, one compress bench run under the CPU lock",
        "winner": winner,
        "teacher_fp32_pytorch": teacher,
        "optimum_int8": {"name": measured["peer"], **peer},
        "targets": verdict(winner),
        "pareto_front": result.get("front"),
        "bench_report": measured["report_path"],
        "warnings": report.get("warnings"),
    }
    out.update(_history(RESULTS / "auto.json", run_dir))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "auto.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"{'model':<28} {'test acc':>9} {'p50 ms':>8} {'size MB':>8}")
    for name, row in (("teacher FP32 PyTorch", teacher), (measured["peer"], peer), ("auto winner", win)):
        print(f"{name:<28} {row['test_accuracy'] * 100:>8.2f}% {row['p50_ms']:>8.3f} {row['size_mb']:>8.1f}")
    for row in out["targets"]:
        print(f"{row['target']:<28} {row['value']:.3g} (needs {row['needs']}): {'met' if row['met'] else 'MISSED: ' + row['reason']}")


if __name__ == "__main__":
    main()
