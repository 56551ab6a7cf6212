"""Distillation on the real teachers, side by side with the teachers and a plain baseline loop.

    python benchmarks/distill.py                       # everything (about 35 minutes on 2 cores)
    python benchmarks/distill.py --only bert           # SST-2: 3-layer and 2-layer students
    python benchmarks/distill.py --only gpt2           # IMDB GPT-2: half-depth student, perplexity
    python benchmarks/distill.py --only throughput     # samples/s: compress vs a plain KD loop

Targets (issue 5): SST-2 3-layer student within 1.5 pt of the teacher's dev accuracy in <= 30 min;
GPT-2 student held-out perplexity <= 1.25x the teacher's in <= 30 min; student training samples/s
>= 1.5x a plain loop that runs the teacher at every step on fixed-length padded batches.

Run it alone on the machine (``flock /tmp/compress-cpu.lock python benchmarks/distill.py``): the
numbers are wall times. Results: a table on stdout and benchmarks/results/distill.json (parts run
separately are merged into it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
WORK = ROOT / "benchmarks" / "work" / "distill"
RESULTS = ROOT / "benchmarks" / "results" / "distill.json"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

SST_TEACHER = ASSETS / "teachers" / "minilm-l6-sst2"
GPT2_TEACHER = ASSETS / "teachers" / "gpt2-imdb"
SST_TRAIN, SST_DEV = ASSETS / "glue/SST-2/train.tsv", ASSETS / "glue/SST-2/dev.tsv"
IMDB_TRAIN, IMDB_HELDOUT = ASSETS / "imdb/train.jsonl", ASSETS / "imdb/heldout-1000.txt"
MINUTES_LIMIT = 30


def run_distill(teacher: Path, name: str, **fields) -> tuple[dict, float]:
    from compressor.distill import DistillConfig, distill

    config = DistillConfig(**fields)
    t0 = time.perf_counter()
    report = distill(teacher, WORK / name, config, force=True)
    return report, time.perf_counter() - t0


def bench_bert(args: argparse.Namespace) -> list[dict]:
    from compressor.data import DataSpec

    rows = []
    for layers, steps, layer_map in ((3, args.bert_steps, args.bert_map3), (2, args.bert2_steps, args.bert_map2)):
        if not steps:
            continue
        report, wall = run_distill(
            SST_TEACHER, f"sst2-l{layers}",
            data=DataSpec(str(SST_TRAIN)), eval_data=DataSpec(str(SST_DEV)),
            layer_map=tuple(int(i) for i in layer_map.split(",")) if layer_map else None,
            student_layers=None if layer_map else layers,
            max_steps=steps, batch_size=args.bert_batch, lr=args.bert_lr, temperature=args.bert_t,
            alpha_kd=1.0, alpha_ce=args.bert_ce, max_length=64, eval_steps=args.bert_eval_steps, seed=0,
        )
        metrics = report["metrics"]
        gap = (metrics["teacher_accuracy"] - metrics["accuracy"]) * 100
        rows.append({
            "part": "bert", "student": f"{layers}-layer (teacher layers {','.join(map(str, report['layer_map']))})",
            "teacher_accuracy": metrics["teacher_accuracy"], "student_accuracy": metrics["accuracy"],
            "gap_pt": round(gap, 2), "steps": report["training"]["steps"], "epochs": report["training"]["epochs"],
            "samples_per_s": report["training"]["samples_per_s"], "wall_s": round(wall, 1),
            "params_m": round(report["student"]["parameters"] / 1e6, 2),
            "teacher_params_m": round(report["teacher"]["parameters"] / 1e6, 2),
            "curve": report["eval_curve"],
            "target": "gap <= 1.5 pt, wall <= 30 min" if layers == 3 else "(reported)",
            "met": (gap <= 1.5 and wall <= MINUTES_LIMIT * 60) if layers == 3 else None,
        })
        print_row(rows[-1])
    return rows


def bench_gpt2(args: argparse.Namespace) -> list[dict]:
    from compressor.data import DataSpec

    report, wall = run_distill(
        GPT2_TEACHER, "gpt2-l3",
        data=DataSpec(str(IMDB_TRAIN)), eval_data=DataSpec(str(IMDB_HELDOUT), limit=args.gpt2_eval_docs),
        student_layers=3, layer_map=tuple(int(i) for i in args.gpt2_map.split(",")) if args.gpt2_map else None,
        max_steps=args.gpt2_steps, batch_size=args.gpt2_batch, lr=args.gpt2_lr, temperature=args.gpt2_t,
        alpha_kd=1.0, alpha_ce=args.gpt2_ce, max_length=128, eval_steps=args.gpt2_eval_steps, seed=0,
    )
    metrics = report["metrics"]
    ratio = metrics["perplexity"] / metrics["teacher_perplexity"]
    row = {
        "part": "gpt2", "student": f"3-layer (teacher blocks {','.join(map(str, report['layer_map']))})",
        "teacher_perplexity": metrics["teacher_perplexity"], "student_perplexity": metrics["perplexity"],
        "ratio": round(ratio, 4), "eval_docs": args.gpt2_eval_docs or "all", "steps": report["training"]["steps"],
        "samples_per_s": report["training"]["samples_per_s"], "wall_s": round(wall, 1),
        "params_m": round(report["student"]["parameters"] / 1e6, 2),
        "teacher_params_m": round(report["teacher"]["parameters"] / 1e6, 2),
        "curve": report["eval_curve"],
        "target": "ratio <= 1.25, wall <= 30 min", "met": ratio <= 1.25 and wall <= MINUTES_LIMIT * 60,
    }
    print_row(row)
    return [row]


def plain_baseline(rows: int, steps: int, batch_size: int, max_length: int) -> float:
    """The loop most KD scripts are: every batch padded to ``max_length``, the teacher run at every
    step, same student (3 teacher layers), same optimizer and losses. Returns samples/s."""
    import copy
    import random

    import torch

    from compressor.artifact import open_artifact
    from compressor.data import DataSpec, load_classification
    from compressor.distill.losses import kd_loss
    from compressor.distill.student import default_init_layers, select_layers
    from compressor.loading import load_model, load_tokenizer

    artifact = open_artifact(SST_TEACHER)
    tokenizer = load_tokenizer(SST_TEACHER)
    data = load_classification(DataSpec(str(SST_TRAIN), limit=rows), label2id=artifact.config["label2id"],
                               require_labels=True)
    encoded = tokenizer(data.texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    torch.manual_seed(0)
    teacher = load_model(artifact)
    student = select_layers(copy.deepcopy(teacher), "bert", default_init_layers("bert", 3, 6)).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    order = list(range(len(data)))
    random.Random(0).shuffle(order)
    t0 = time.perf_counter()
    done = 0
    for step in range(steps):
        start = (step * batch_size) % len(order)
        idx = order[start : start + batch_size]
        batch = {k: v[idx] for k, v in encoded.items()}
        with torch.no_grad():
            teacher_logits = teacher(**batch).logits
        loss = kd_loss(student(**batch).logits, teacher_logits, 2.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        done += len(idx)
    return done / (time.perf_counter() - t0)


def bench_throughput(args: argparse.Namespace) -> list[dict]:
    """Same data (the first N SST-2 rows), batch size, student and step count for both."""
    from compressor.data import DataSpec

    rows, batch = args.tp_rows, args.bert_batch
    steps = args.tp_epochs * math.ceil(rows / batch)
    baseline = plain_baseline(rows, steps, batch, 64)
    report, _ = run_distill(
        SST_TEACHER, "throughput", data=DataSpec(str(SST_TRAIN), limit=rows), student_layers=3,
        max_steps=steps, batch_size=batch, lr=1e-4, max_length=64, seed=0,
    )
    ours = report["training"]["samples_per_s"]
    row = {
        "part": "throughput", "rows": rows, "batch_size": batch, "steps": steps, "epochs": args.tp_epochs,
        "baseline_samples_per_s": round(baseline, 1), "compress_samples_per_s": ours,
        "speedup": round(ours / baseline, 2), "teacher_cache": report["training"]["teacher_cache"],
        "target": "speedup >= 1.5", "met": ours / baseline >= 1.5,
    }
    print_row(row)
    return [row]


def print_row(row: dict) -> None:
    fields = {k: v for k, v in row.items() if k not in ("curve", "teacher_cache")}
    print("  " + ", ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def table(results: dict) -> str:
    lines = ["| part | student | teacher | student | gap / ratio / speedup | steps | wall | target | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results.get("bert", []):
        lines.append(
            f"| SST-2 dev acc | {row['student']}, {row['params_m']}M | {row['teacher_accuracy']:.2%} | "
            f"{row['student_accuracy']:.2%} | -{row['gap_pt']:.2f} pt | {row['steps']} ({row['epochs']:.2f} ep) | "
            f"{row['wall_s'] / 60:.1f} min | {row['target']} | {row['met']} |")
    for row in results.get("gpt2", []):
        lines.append(
            f"| IMDB held-out ppl | {row['student']}, {row['params_m']}M | {row['teacher_perplexity']:.1f} | "
            f"{row['student_perplexity']:.1f} | x{row['ratio']:.3f} | {row['steps']} | {row['wall_s'] / 60:.1f} min | "
            f"{row['target']} | {row['met']} |")
    for row in results.get("throughput", []):
        lines.append(
            f"| train samples/s | 3-layer, batch {row['batch_size']}, {row['epochs']} epochs of {row['rows']} rows | "
            f"plain {row['baseline_samples_per_s']} | compress {row['compress_samples_per_s']} | "
            f"x{row['speedup']} | {row['steps']} | | {row['target']} | {row['met']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=("bert", "gpt2", "throughput"),
                        help="run only these parts (repeatable)")
    parser.add_argument("--bert-steps", type=int, default=3000, help="3-layer SST-2 student steps (0: skip)")
    parser.add_argument("--bert2-steps", type=int, default=3000, help="2-layer SST-2 student steps (0: skip)")
    parser.add_argument("--bert-map3", default="", help="teacher layers of the 3-layer student (default: 0,2,4)")
    parser.add_argument("--bert-map2", default="", help="teacher layers of the 2-layer student (default: 0,3)")
    parser.add_argument("--bert-batch", type=int, default=32)
    parser.add_argument("--bert-lr", type=float, default=1e-4)
    parser.add_argument("--bert-t", type=float, default=2.0)
    parser.add_argument("--bert-ce", type=float, default=0.0, help="hard-label CE weight")
    parser.add_argument("--bert-eval-steps", type=int, default=250)
    parser.add_argument("--gpt2-steps", type=int, default=500)
    parser.add_argument("--gpt2-map", default="", help="teacher blocks of the student (default: even spread)")
    parser.add_argument("--gpt2-batch", type=int, default=16)
    parser.add_argument("--gpt2-lr", type=float, default=5e-4)
    parser.add_argument("--gpt2-t", type=float, default=1.0)
    parser.add_argument("--gpt2-ce", type=float, default=0.0, help="next-token CE weight")
    parser.add_argument("--gpt2-eval-steps", type=int, default=250)
    parser.add_argument("--gpt2-eval-docs", type=int, default=None, help="held-out reviews to score (default: all)")
    parser.add_argument("--tp-rows", type=int, default=2048, help="throughput: SST-2 rows")
    parser.add_argument("--tp-epochs", type=int, default=2, help="throughput: passes over them")
    args = parser.parse_args()
    parts = args.only or ["bert", "gpt2", "throughput"]

    import torch

    from compressor import progress

    progress.set_quiet(False)
    WORK.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"torch_threads": torch.get_num_threads()}
    runners = {"bert": bench_bert, "gpt2": bench_gpt2, "throughput": bench_throughput}
    for part in parts:
        print(f"== {part}", flush=True)
        results[part] = runners[part](args)
        results[f"{part}_args"] = {k: v for k, v in vars(args).items() if k != "only"}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    shutil.rmtree(WORK / "throughput", ignore_errors=True)


if __name__ == "__main__":
    main()
