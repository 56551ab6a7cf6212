"""Encoder tasks on the real assets (issue 15): sentence embeddings (STS-B) and NER (CoNLL-2003).

For each task: run (or resume) its recipe, build the peers' artifacts, then one `compress bench` over
every row together (batch 1, 2 threads, the teacher as FP32 PyTorch is bench's baseline, measured
once), holding /tmp/compress-cpu.lock while timing.

- minilm-embed: the recipe's artifacts vs sentence-transformers' own ONNX export
  (`SentenceTransformer(dir, backend="onnx")`) and `export_dynamic_quantized_onnx_model` (avx512_vnni
  or avx2). Their graphs output token states only (sentence-transformers pools in Python), so the same
  mean pooling + normalisation nodes our export adds are appended to score and time them alike.
  Targets: 3-layer student within 1.5 Spearman points of the teacher in <= 20 min of training; its
  ONNX INT8 within 0.5 of the float student; best artifact >= 8x lower p50 than the teacher.
- bert-conll03: the recipe's artifacts vs `optimum-cli export onnx` + `optimum-cli onnxruntime quantize`.
  Targets: student within 1.5 F1 of the teacher in <= 30 min; ONNX INT8 within 0.5 F1 of the student;
  best >= 8x lower p50 than the teacher.

Writes benchmarks/results/encoders.json and prints a table.

    python benchmarks/encoders.py [--only embed|ner] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ASSETS", ROOT.parent / "shared" / "assets"))
WORK = ROOT / "benchmarks" / "work" / "encoders"
RESULTS = ROOT / "benchmarks" / "results"
COMPRESS = [sys.executable, "-m", "compressor.cli", "-q"]
LOCK = "/tmp/compress-cpu.lock"
OPTIMUM_CLI = [sys.executable, "-m", "optimum.commands.optimum_cli"]  # this interpreter's, on PATH or not

EMBED_TEACHER = ASSETS / "teachers" / "minilm-l6-embed"
NER_TEACHER = ASSETS / "teachers" / "minilm-l6-conll03"
STSB_DEV = ASSETS / "stsb" / "dev.tsv"
CONLL_DEV = ASSETS / "conll2003" / "valid.txt"


def sh(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)


def cpu_arch() -> str:
    flags = (Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else "").split()
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


# --set overrides passed to every recipe run (e.g. a shortened student on a busy machine)
OVERRIDES: list[str] = []


def run_recipe(recipe: str, run_dir: Path) -> dict[str, Path]:
    """Run (or resume) a recipe; a gate failure (exit 1) still leaves every artifact to compare."""
    args = ["run", f"pipelines/{recipe}.yaml", "--out", run_dir]
    for override in OVERRIDES:
        args += ["--set", override]
    if run_dir.exists():
        args.append("--resume")
    code = sh([*COMPRESS, *args]).returncode
    if code not in (0, 1):
        raise SystemExit(f"{recipe}: compress run failed with exit {code}")
    state = json.loads((run_dir / "run.json").read_text())
    return {name: Path(entry["output"]) for name, entry in state["stages"].items()
            if entry.get("status") == "complete" and entry.get("run") != "bench"}


def st_peers() -> dict[str, Path]:
    """sentence-transformers' ONNX export and its dynamic INT8, as directories bench can open."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    from compressor.tasks.st_model import add_pooling, read_modules

    arch = cpu_arch()
    raw = WORK / "st-onnx-raw"
    if not (raw / "onnx" / "model.onnx").exists():
        model = SentenceTransformer(str(EMBED_TEACHER), backend="onnx", model_kwargs={"provider": "CPUExecutionProvider"})
        model.save_pretrained(str(raw))
        export_dynamic_quantized_onnx_model(model, arch, str(raw))
    _, pooling, normalize = read_modules(EMBED_TEACHER)
    rows = {}
    for name, file in (("st-onnx-fp32", "model.onnx"), (f"st-onnx-int8-{arch}", f"model_qint8_{arch}.onnx")):
        out = WORK / name
        if not (out / "model.onnx").exists():
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(raw, out, ignore=shutil.ignore_patterns("onnx"))
            shutil.copyfile(raw / "onnx" / file, out / "model.onnx")
            add_pooling(out / "model.onnx", pooling, normalize)
        rows[name] = out
    return rows


def optimum_peers() -> dict[str, Path]:
    arch = cpu_arch()
    fp32, int8 = WORK / "optimum-fp32", WORK / "optimum-int8"
    if not (fp32 / "model.onnx").exists():
        sh([*OPTIMUM_CLI, "export", "onnx", "--model", NER_TEACHER, "--task", "token-classification", fp32], check=True)
    if not any(int8.glob("*.onnx")):
        sh([*OPTIMUM_CLI, "onnxruntime", "quantize", "--onnx_model", fp32, f"--{arch}", "-o", int8], check=True)
    return {"optimum-fp32-onnx": fp32, f"optimum-int8-{arch}": int8}


def bench(rows: dict[str, Path], baseline: Path, data: Path, report_dir: Path, extra: list[str]) -> dict:
    links = WORK / f"{report_dir.name}-rows"
    links.mkdir(parents=True, exist_ok=True)
    named = []
    for name, path in rows.items():
        link = links / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
        named.append(link)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code = sh([*COMPRESS, "bench", *named, "--baseline", baseline, "--data", data, "--threads", "2",
                   "--batch-sizes", "1", "--report-dir", report_dir, "--seed", "0", *extra]).returncode
    if code not in (0, 1):
        raise SystemExit(f"compress bench failed with exit {code}")
    return json.loads((report_dir / "report.json").read_text())


def train_minutes(artifact: Path) -> dict | None:
    """The whole distill stage (teacher pass included): wall minutes, and CPU minutes of the process
    (all threads), which a busy shared machine inflates much less than the wall time."""
    manifest = json.loads((artifact / "compress.json").read_text())
    record = next((s for s in manifest["stages"] if s["stage"] == "distill"), None)
    if record is None:
        return None
    cpu = record.get("cpu_time_s")
    return {"wall": round(record["wall_time_s"] / 60, 2), "cpu": round(cpu / 60, 2) if cpu is not None else None,
            "train_loop_wall": round(record["report"]["training"]["train_seconds"] / 60, 2)}


def table(report: dict, metric: str) -> list[dict]:
    entries = [report["baseline"], *report["artifacts"]]
    teacher = report["baseline"]
    out = []
    for entry in entries:
        p50 = entry["latency"]["1"]["p50_ms"]
        value = entry["quality"][metric] * 100
        out.append({"model": Path(entry["path"]).name if entry is not teacher else "teacher-fp32-pytorch",
                    "format": entry["format"], "precision": entry["precision"], metric: round(value, 2),
                    "drop_pt": round(teacher["quality"][metric] * 100 - value, 2), "p50_ms": round(p50, 3),
                    "speedup_vs_teacher": round(teacher["latency"]["1"]["p50_ms"] / p50, 2),
                    "size_mb": round(entry["size_mb"], 1)})
    return out


def verdict(rows: list[dict], metric: str, student: str, student_int8: str, minutes: dict | None,
            max_minutes: float, clock: str) -> dict:
    """``clock``: which of ``minutes`` the time target is on ("cpu" for the embedding target, which the
    issue states in CPU minutes; "wall" for NER)."""
    by = {r["model"]: r for r in rows}
    s, q = by.get(student), by.get(student_int8)
    ours = [r for r in rows if r["model"].startswith("recipe-") and r["drop_pt"] <= 1.5]
    best = min(ours, key=lambda r: r["p50_ms"]) if ours else None
    return {
        "student_drop_pt": s["drop_pt"] if s else None, "student_within_1_5": bool(s and s["drop_pt"] <= 1.5),
        "train_minutes": minutes, "train_budget_minutes": max_minutes, "train_budget_clock": clock,
        "train_within_budget": bool(minutes and minutes.get(clock) is not None and minutes[clock] <= max_minutes),
        "int8_vs_student_pt": round(s[metric] - q[metric], 2) if s and q else None,
        "int8_within_0_5": bool(s and q and s[metric] - q[metric] <= 0.5),
        "best": best["model"] if best else None, "best_speedup": best["speedup_vs_teacher"] if best else None,
        "best_8x": bool(best and best["speedup_vs_teacher"] >= 8),
    }


def _part(recipe: str, runs_dir: Path, peers: dict, teacher: Path, data: Path, samples: int, metric: str,
          minutes_target: int, clock: str) -> dict:
    """The recipe's artifacts and the peers in one bench against the teacher, and the verdict."""
    artifacts = run_recipe(recipe, runs_dir / recipe)
    rows = {f"recipe-{n}": p for n, p in artifacts.items()}
    rows.update(peers)
    report = bench(rows, teacher, data, WORK / f"bench-{recipe}", ["--max-samples", str(samples), "--no-memory"])
    result = table(report, metric)
    minutes = train_minutes(artifacts["student"]) if "student" in artifacts else None
    return {"rows": result,
            "verdict": verdict(result, metric, "recipe-student", "recipe-student-int8", minutes, minutes_target,
                                clock)}


def embed_part(runs_dir: Path) -> dict:
    return _part("minilm-embed", runs_dir, st_peers(), EMBED_TEACHER, STSB_DEV, 1500, "spearman", 20, "cpu")


def ner_part(runs_dir: Path) -> dict:
    return _part("bert-conll03", runs_dir, optimum_peers(), NER_TEACHER, CONLL_DEV, 3250, "f1", 30, "wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("embed", "ner"))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="Recipe override for the runs (repeatable); recorded in the results.")
    args = parser.parse_args()
    OVERRIDES[:] = args.set
    WORK.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "encoders.json"
    fresh = {}
    if args.only in (None, "embed"):
        fresh["minilm-embed"] = {**embed_part(args.runs_dir), "overrides": args.set}
    if args.only in (None, "ner"):
        fresh["bert-conll03"] = {**ner_part(args.runs_dir), "overrides": args.set}
    # read just before writing: a run of the other part may have finished meanwhile
    results = {**(json.loads(path.read_text()) if path.exists() else {}), **fresh}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    for name, part in results.items():
        print(f"\n{name}")
        if "rows" not in part:  # a part not measured: its status says why
            print(part.get("status", "not measured"))
            continue
        keys = list(part["rows"][0])
        print(" | ".join(keys))
        for row in part["rows"]:
            print(" | ".join(str(row[k]) for k in keys))
        print("verdict:", json.dumps(part["verdict"]))


if __name__ == "__main__":
    main()
