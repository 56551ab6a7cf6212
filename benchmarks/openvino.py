"""OpenVINO against onnxruntime on the CPU (issue 12): which backend wins for which model, and by how much.

One `compress bench` per task measures every row together (2 threads, batch 1 and 8, real inputs,
the same process settings, under `flock /tmp/compress-cpu.lock`), so the ratios are comparable:

- SST-2 (MiniLM-L6 teacher): the teacher in FP32 on OpenVINO vs onnxruntime; a pruned 3-layer student
  in INT8 on OpenVINO (NNCF, calibrated) vs onnxruntime dynamic INT8; the best of those endings vs
  the OpenVINO peer (the teacher converted with openvino, then NNCF INT8: the best a user gets from
  OpenVINO alone) and the optimum INT8 peer (`optimum-cli export onnx` + `optimum-cli onnxruntime
  quantize`). Accuracy on dev (872) and on the labelled test split (1,821; a second bench).
- NER (minilm-l6-conll03, CoNLL-2003 valid) and embeddings (minilm-l6-embed, STS-B dev), with
  `--only ner|embed`: the teacher in FP32 and INT8 on both backends.

The pruned student: `runs/bert-sst2/pruned` when the recipe has run (its unpruned `student` then joins
too, in INT8 on both backends: the best ending is the fastest of these within 1 point of the teacher); otherwise a stand-in built here
(the teacher's layers 1,3,5 removed, heads 0.25 and FFN 0.3 pruned, 150 recovery steps), because the
recipe's 3,000-step distillation does not fit on a busy shared 2-core machine.

    python benchmarks/openvino.py [--only sst2|ner|embed] [--runs-dir runs]

Writes benchmarks/results/openvino.json and prints the table.
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
# This file is named openvino.py: `python benchmarks/openvino.py` puts benchmarks/ first on sys.path,
# where it would shadow the openvino package itself.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ASSETS = Path(os.environ.get("ASSETS", ROOT.parent / "shared" / "assets"))
WORK = ROOT / "benchmarks" / "work" / "openvino"
RESULTS = ROOT / "benchmarks" / "results"
COMPRESS = [sys.executable, "-m", "compressor.cli", "-q"]
LOCK = ["flock", "/tmp/compress-cpu.lock"]

SST2 = ASSETS / "glue" / "SST-2"
TEACHERS = {"sst2": ASSETS / "teachers" / "minilm-l6-sst2", "ner": ASSETS / "teachers" / "minilm-l6-conll03",
            "embed": ASSETS / "teachers" / "minilm-l6-embed"}
# (calibration data, dev data, labelled test data or None, bench samples)
DATA = {"sst2": (SST2 / "train.tsv", SST2 / "dev.tsv", SST2 / "test-labeled.tsv", 872),
        "ner": (ASSETS / "conll2003" / "train.txt", ASSETS / "conll2003" / "valid.txt", None, 500),
        "embed": (ASSETS / "stsb" / "train.tsv", ASSETS / "stsb" / "dev.tsv", None, 500)}
METRIC = {"sst2": "accuracy", "ner": "f1", "embed": "spearman"}
CALIB_SAMPLES = 300  # NNCF's default subset size


def sh(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, **kwargs)


def made(out: Path, cmd: list) -> Path:
    """Run a stage unless its output exists already (reruns reuse artifacts)."""
    if not (out / "compress.json").exists() and not any(out.glob("*.onnx")):
        sh([*COMPRESS, *cmd, "-o", out, "--force"], check=True)
    return out


def onnx_of(src: Path, name: str, parity: Path) -> Path:
    return made(WORK / name, ["export-onnx", src, "--parity-data", parity, "--parity-samples", "256"])


def openvino_of(src: Path, name: str, parity: Path) -> Path:
    return made(WORK / name, ["export-openvino", src, "--parity-data", parity, "--parity-samples", "256"])


def nncf_int8(src: Path, name: str, calib: Path) -> Path:
    return made(WORK / name, ["quantize", src, "--method", "int8-nncf", "--calib-data", calib,
                              "--calib-samples", str(CALIB_SAMPLES)])


def ort_int8(src: Path, name: str) -> Path:
    return made(WORK / name, ["quantize", src, "--method", "int8-dynamic"])


def pruned_student(runs_dir: Path) -> tuple[Path, str]:
    recipe = runs_dir / "bert-sst2" / "pruned"
    if (recipe / "compress.json").exists():
        return recipe, "recipe bert-sst2 pruned student"
    teacher, (train, dev, _, _) = TEACHERS["sst2"], DATA["sst2"]
    out = made(WORK / "pruned", ["prune", teacher, "--method", "layers=[1,3,5],heads=0.25,ffn=0.3", "--data", train,
                                 "--calibration-samples", "256", "--eval-data", dev, "--recover-from", teacher,
                                 "--recover-data", train, "--recover-steps", "150", "--recover-lr", "1e-4",
                                 "--max-length", "64"])
    return out, "stand-in: teacher layers 0,2,4, heads 0.25 + FFN 0.3 pruned, 150 recovery steps"


REUSE_REPORTS = False
SKIP_TEST_SPLIT = False  # --no-test-split: dev only (the test-split bench times the PyTorch teacher 1,821 times)  # --reuse-reports: take the bench reports of the last run, re-time side by side only


def bench(rows: dict[str, Path], baseline: Path, data: Path, report_dir: Path, extra: list[str]) -> dict:
    """One `compress bench` over every row, under the CPU lock; its report.json is the measurement."""
    if REUSE_REPORTS and (report_dir / "report.json").exists():
        return json.loads((report_dir / "report.json").read_text())
    links = WORK / f"{report_dir.name}-rows"
    links.mkdir(parents=True, exist_ok=True)
    named = []
    for name, path in rows.items():  # bench names an entry after its directory: the link's name
        link = links / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
        named.append(link)
    code = sh([*LOCK, *COMPRESS, "bench", *named, "--baseline", baseline, "--data", data, "--threads", "2",
               "--report-dir", report_dir, "--seed", "0", "--no-memory", *extra]).returncode
    if code not in (0, 1):
        raise SystemExit(f"compress bench failed with exit {code}")
    return json.loads((report_dir / "report.json").read_text())


def entries(report: dict) -> dict[str, dict]:
    """Entries by row name: ``path`` is the link bench was given (its ``name`` is the link's target)."""
    return {"teacher-fp32-pytorch": report["baseline"], **{Path(e["path"]).name: e for e in report["artifacts"]}}


def side_by_side_p50(rows: dict[str, Path], teacher: Path, data: Path, rounds: int = 4) -> dict[str, dict]:
    """p50 ms of every ONNX/OpenVINO row at batch 1 (200 dev rows) and 8 (25 batches), timed in one
    process in blocks whose order reverses every round (``compressor.bench.timing.side_by_side``), with
    2 threads each, under the CPU lock: on a shared machine, load that drifts during a sequential
    bench hits every model alike here."""
    import fcntl

    import numpy as np

    from compressor.artifact import open_artifact
    from compressor.bench.timing import side_by_side
    from compressor.inference import OnnxRunner, OpenVinoRunner
    from compressor.loading import load_tokenizer

    tokenizer = load_tokenizer(teacher)
    lines = data.read_text().splitlines()[1:201]
    sentences = [line.split("\t")[0] for line in lines]

    def encode(texts: list[str]) -> dict:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
        return {k: v.astype(np.int64) for k, v in enc.items()}

    inputs = {"1": [encode([t]) for t in sentences], "8": [encode(sentences[i:i + 8]) for i in range(0, 200, 8)]}
    runners = {}
    for name, path in rows.items():
        artifact = open_artifact(path)
        if artifact.format == "onnx":
            runners[name] = OnnxRunner(artifact.onnx_file, threads=2)
        elif artifact.format == "openvino":
            runners[name] = OpenVinoRunner(artifact.ir_file, threads=2)
    result: dict[str, dict] = {name: {} for name in runners}
    with open("/tmp/compress-cpu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for batch, batches in inputs.items():
            times = side_by_side({n: (lambda r: lambda x: r.logits(x))(r) for n, r in runners.items()}, batches,
                                 rounds=rounds)
            for name, seconds in times.items():
                result[name][batch] = float(np.percentile(np.asarray(seconds) * 1e3, 50))
    return result


def p50(entry: dict, batch: str) -> float | None:
    return ((entry.get("latency") or {}).get(batch) or {}).get("p50_ms")


def ratio(slow: dict, fast: dict, batch: str) -> float | None:
    a, b = p50(slow, batch), p50(fast, batch)
    return a / b if a and b else None


def part(task: str, runs_dir: Path) -> dict:
    teacher = TEACHERS[task]
    calib, dev, test, samples = DATA[task]
    rows = {
        "teacher-fp32-onnx": onnx_of(teacher, f"{task}-teacher-onnx", dev),
        "teacher-fp32-openvino": openvino_of(teacher, f"{task}-teacher-openvino", dev),
    }
    rows["teacher-int8-openvino-nncf"] = nncf_int8(rows["teacher-fp32-openvino"], f"{task}-teacher-ov-int8", calib)
    student_note = None
    if task == "sst2":
        import importlib.util  # the optimum INT8 peer, as benchmarks/peers.py builds it

        spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
        peers = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(peers)

        _, optimum_int8, arch = peers.peer_onnx()
        rows[f"optimum-int8-{arch}"] = optimum_int8
        student, student_note = pruned_student(runs_dir)
        rows["pruned-fp32-onnx"] = onnx_of(student, "sst2-pruned-onnx", dev)
        rows["pruned-int8-onnx-dynamic"] = ort_int8(rows["pruned-fp32-onnx"], "sst2-pruned-onnx-int8")
        rows["pruned-fp32-openvino"] = openvino_of(student, "sst2-pruned-openvino", dev)
        rows["pruned-int8-openvino-nncf"] = nncf_int8(rows["pruned-fp32-openvino"], "sst2-pruned-ov-int8", calib)
        recipe_student = runs_dir / "bert-sst2" / "student"
        if (recipe_student / "compress.json").exists():  # the recipe's unpruned 3-layer student, both backends
            rows["student-int8-onnx-dynamic"] = ort_int8(onnx_of(recipe_student, "sst2-student-onnx", dev),
                                                         "sst2-student-onnx-int8")
            rows["student-int8-openvino-nncf"] = nncf_int8(
                openvino_of(recipe_student, "sst2-student-openvino", dev), "sst2-student-ov-int8", calib)
    else:
        rows["teacher-int8-onnx-dynamic"] = ort_int8(rows["teacher-fp32-onnx"], f"{task}-teacher-onnx-int8")

    report = bench(rows, teacher, dev, WORK / f"bench-{task}", ["--batch-sizes", "1,8", "--max-samples", str(samples)])
    found = entries(report)
    held_out = {}
    if test is not None and not SKIP_TEST_SPLIT:
        second = bench(rows, teacher, test, WORK / f"bench-{task}-test",
                       ["--batch-sizes", "1", "--max-samples", "1821", "--min-seconds", "0", "--min-runs", "1",
                        "--warmup", "1"])
        held_out = {name: e["quality"].get(METRIC[task]) for name, e in entries(second).items()}

    metric = METRIC[task]
    paired = side_by_side_p50(rows, teacher, dev)
    table = []
    for name, entry in found.items():
        table.append({"model": name, "format": entry["format"], "precision": entry.get("precision"),
                      "p50_ms_b1": p50(entry, "1"), "p50_ms_b8": p50(entry, "8"),
                      "side_by_side_p50_ms_b1": paired.get(name, {}).get("1"),
                      "side_by_side_p50_ms_b8": paired.get(name, {}).get("8"),
                      "samples_per_s_b8": ((entry.get("latency") or {}).get("8") or {}).get("samples_per_s"),
                      metric: (entry.get("quality") or {}).get(metric), f"test_{metric}": held_out.get(name),
                      "size_mb": entry.get("size_mb"), "openvino": entry.get("openvino")})

    def versus(a: str, b: str) -> dict:
        """How many times faster ``b`` is than ``a`` (>1: b wins), per batch size: in the sequential
        bench, and timed side by side (the more trustworthy on a shared machine)."""
        if a not in found or b not in found:
            return {}
        out = {f"bench_b{batch}": ratio(found[a], found[b], batch) for batch in ("1", "8")}
        out.update({f"side_by_side_b{batch}": paired[a][batch] / paired[b][batch] for batch in ("1", "8")
                    if a in paired and b in paired})
        return out

    comparisons = {"teacher_fp32_openvino_vs_onnxruntime": versus("teacher-fp32-onnx", "teacher-fp32-openvino")}
    if task == "sst2":
        comparisons["pruned_int8_openvino_nncf_vs_onnxruntime_dynamic"] = versus("pruned-int8-onnx-dynamic",
                                                                                 "pruned-int8-openvino-nncf")
        comparisons["pruned_fp32_openvino_vs_onnxruntime"] = versus("pruned-fp32-onnx", "pruned-fp32-openvino")
        teacher_acc = found["teacher-fp32-pytorch"]["quality"]["accuracy"]
        candidates = [r for r in table if r["model"].startswith(("pruned-", "student-"))]
        within = [r for r in candidates if (teacher_acc - (r["accuracy"] or 0)) * 100 <= 1.0]
        best = min(within or candidates, key=lambda r: r["side_by_side_p50_ms_b1"] or r["p50_ms_b1"])
        peer_name = next(n for n in found if n.startswith("optimum-int8"))
        comparisons["best_student_ending"] = {
            "model": best["model"], "within_1pt_of_teacher": bool(within),
            "vs_openvino_teacher_int8_peer": versus("teacher-int8-openvino-nncf", best["model"]),
            "vs_optimum_int8_peer": versus(peer_name, best["model"]),
        }
        comparisons["openvino_teacher_int8_peer_vs_optimum_int8_peer"] = versus(peer_name, "teacher-int8-openvino-nncf")
    else:
        comparisons["teacher_int8_openvino_nncf_vs_onnxruntime_dynamic"] = versus("teacher-int8-onnx-dynamic",
                                                                                  "teacher-int8-openvino-nncf")
    return {"teacher": str(teacher), "data": str(dev), "samples": samples, "metric": metric, "student": student_note,
            "rows": table, "comparisons": comparisons, "warnings": report.get("warnings", []),
            "environment": report.get("environment"), "bench_report": str(WORK / f"bench-{task}" / "report.json")}


def fmt(value, spec=".3f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    lines = []
    for task, res in results.items():
        if not isinstance(res, dict) or "rows" not in res:
            continue
        metric = res["metric"]
        lines += [f"## {task}: {Path(res['teacher']).name}, CPU, 2 threads ({metric} on {Path(res['data']).name})", "",
                  f"| model | bench p50 ms b1 | b8 | side-by-side p50 ms b1 | b8 | {metric} | test {metric} | size MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            scale = 100
            value = r.get(metric)
            test = r.get(f"test_{metric}")
            lines.append(f"| {r['model']} | {fmt(r['p50_ms_b1'])} | {fmt(r['p50_ms_b8'])} | "
                         f"{fmt(r.get('side_by_side_p50_ms_b1'))} | {fmt(r.get('side_by_side_p50_ms_b8'))} | "
                         f"{fmt(value * scale if value is not None else None, '.2f')} | "
                         f"{fmt(test * scale if test is not None else None, '.2f')} | {fmt(r['size_mb'], '.1f')} |")
        lines += ["", "x = how many times faster the second-named backend is (>1: it wins)", ""]
        for name, value in res["comparisons"].items():
            lines.append(f"- {name}: `{json.dumps(value)}`")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["sst2", "ner", "embed"], action="append")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--reuse-reports", action="store_true",
                        help="take the bench reports of the last run; only re-time side by side")
    parser.add_argument("--no-test-split", action="store_true", help="score on dev only")
    args = parser.parse_args()
    global REUSE_REPORTS, SKIP_TEST_SPLIT
    REUSE_REPORTS, SKIP_TEST_SPLIT = args.reuse_reports, args.no_test_split
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "openvino.json"
    results: dict = json.loads(target.read_text()) if target.exists() else {}
    for task in args.only or ["sst2", "ner", "embed"]:
        started = time.time()
        results[task] = part(task, args.runs_dir)
        results[task]["wall_s"] = round(time.time() - started, 1)
        target.write_text(json.dumps(results, indent=2) + "\n")  # each part as soon as it is measured
    text = markdown(results)
    (RESULTS / "openvino.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
