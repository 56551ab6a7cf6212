"""The Llama family on the real IMDB teacher (6 layers, hidden 256, GQA 8/4, SwiGLU 704, untied 8k vocab).

    python benchmarks/llama.py                  # all three parts
    python benchmarks/llama.py --only student   # half-depth student (layers 0,3,5): held-out perplexity, wall time
    python benchmarks/llama.py --only prune     # Minitron-style width pruning + recovery: perplexity, MACs, tok/s
    python benchmarks/llama.py --only quant     # ONNX int4 MatMulNBits vs int8-dynamic vs float: perplexity, tok/s
    python benchmarks/llama.py --only recipe    # `compress run pipelines/llama-lm.yaml`: its bench, best artifact

Targets (issue 14): student perplexity <= 1.25x the teacher's, trained in <= 30 min; width pruning with
>= 1.3x fewer multiply-adds per token, perplexity after recovery <= 1.10x the teacher's, decode tokens/s
>= 0.85 x the MAC ratio in PyTorch and in ONNX; int4 ONNX perplexity <= +3% over its float parent; the best
artifact of pipelines/llama-lm.yaml >= 10x the FP32 PyTorch teacher's decode tokens/s at <= +10% perplexity
(read from the recipe's own bench stage: every artifact and the teacher timed in one process).

Perplexity is on the first ``--eval-blocks`` 128-token blocks of imdb/heldout-1000.txt (the README's teacher
figure is 185 on its first 40k tokens), with a paired-bootstrap 95% interval against the teacher. Decode
speed: greedy generation with the KV cache, 2 threads, models timed in blocks with alternating order
(the timing parts hold /tmp/compress-cpu.lock). Results: a table and benchmarks/results/llama.json
(parts run separately are merged).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
WORK = ROOT / "benchmarks" / "work" / "llama"
RESULTS = ROOT / "benchmarks" / "results" / "llama.json"
sys.path.insert(0, str(ROOT))

TEACHER = ASSETS / "teachers" / "llama-imdb"
IMDB_TRAIN, IMDB_HELDOUT = ASSETS / "imdb" / "train.jsonl", ASSETS / "imdb" / "heldout-1000.txt"
THREADS = 2  # --threads changes it; rows timed with another count are stored as "<part>@<n>threads"
LOCK = "/tmp/compress-cpu.lock"


@contextmanager
def cpu_lock():
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def heldout_blocks(n: int):
    from compressor.data import DataSpec, load_texts
    from compressor.data.batching import lm_blocks
    from compressor.loading import load_tokenizer

    tokenizer = load_tokenizer(TEACHER)
    return lm_blocks(tokenizer, load_texts(DataSpec(str(IMDB_HELDOUT))), block_size=128, max_blocks=n)


def block_nll(runner, blocks, batch_size: int = 8):
    from compressor import tasks

    batches = [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]
    return tasks.get("causal-lm").evaluate(runner, batches, desc="held-out").block_nll


def quality(nll, base_nll) -> dict:
    import numpy as np

    from compressor.bench import quality as q

    row = {"perplexity": round(float(np.exp(nll.mean())), 2)}
    if base_nll is not None:
        vs = q.lm_vs_baseline(nll, base_nll, agreement=1.0)
        row["increase_pct"] = round(vs["perplexity_increase_pct"], 2)
        row["increase_ci95"] = [round(v, 2) for v in vs["perplexity_increase_ci95"]]
    return row


def macs_per_token(model, context: float) -> dict:
    """Multiply-adds per generated token: block projections, attention over ``context`` keys, LM head."""
    blocks = 0.0
    for layer in model.model.layers:
        blocks += sum(m.weight.numel() for m in layer.modules() if getattr(m, "weight", None) is not None
                      and m.weight.dim() == 2)
        attn = layer.self_attn
        blocks += 2 * attn.q_proj.out_features * context  # q.k scores and the weighted sum of v
    head = model.lm_head.weight.numel()
    return {"blocks": blocks, "lm_head": float(head), "total": blocks + head}


def decode_rates(runners: dict, prompts: list, new_tokens: int, rounds: int = 2) -> dict:
    """Median per-token decode time (KV cache) and prefill time of each runner, blocks in alternating order."""
    names = list(runners)
    steps = {n: [] for n in names}
    prefill = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runner = runners[name]
            runner.generate(prompts[0], 8)  # warm-up
            for prompt in prompts:
                seconds, per_step = runner.generate(prompt, new_tokens)
                prefill[name].append(seconds)
                steps[name] += per_step
    return {n: {"decode_ms_per_token": round(statistics.median(steps[n]) * 1e3, 3),
                "tokens_per_s": round(1 / statistics.median(steps[n]), 1),
                "prefill_ms": round(statistics.median(prefill[n]) * 1e3, 2)} for n in names}


def load_torch(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def export(src: Path, name: str, reuse: bool) -> Path:
    from compressor.export import ExportConfig, export_onnx

    dst = WORK / name
    if not (reuse and (dst / "model.onnx").exists()):
        export_onnx(src, dst, ExportConfig(optimize="O2"), force=True)
    return dst


def part_student(args) -> dict:
    from compressor.data import DataSpec
    from compressor.distill import DistillConfig, distill
    from compressor.inference import TorchRunner

    out = WORK / "student"
    wall = None
    if not (args.reuse and (out / "model.safetensors").exists()):
        config = DistillConfig(data=DataSpec(str(IMDB_TRAIN)), student_layers=3, max_steps=args.student_steps,
                               batch_size=16, lr=args.student_lr, temperature=1.0, max_length=128,
                               eval_teacher=False)
        t0 = time.perf_counter()
        report = distill(TEACHER, out, config, force=True)
        wall = round(time.perf_counter() - t0, 1)
    report = json.loads((out / "compress.json").read_text())["stages"][-1]
    wall = wall or report.get("wall_time_s")
    blocks = heldout_blocks(args.eval_blocks)
    base = block_nll(TorchRunner(load_torch(TEACHER)), blocks)
    nll = block_nll(TorchRunner(load_torch(out)), blocks)
    row = {"part": "student", "layer_map": report["report"]["layer_map"], "steps": args.student_steps,
           "lr": args.student_lr, "wall_s": wall, "teacher": quality(base, None), "student": quality(nll, base),
           "heldout_blocks": int(len(blocks))}
    row["perplexity_ratio"] = round(row["student"]["perplexity"] / row["teacher"]["perplexity"], 4)
    row["met"] = row["perplexity_ratio"] <= 1.25 and (wall or 0) <= 1800
    return row


def part_prune(args) -> dict:
    import torch

    from compressor.bench.runner import OnnxBench, TorchBench
    from compressor.data import DataSpec
    from compressor.inference import OnnxRunner, TorchRunner
    from compressor.prune import PruneConfig, prune

    out = WORK / "pruned"
    wall = None
    if not (args.reuse and (out / "model.safetensors").exists()):
        config = PruneConfig(methods=args.prune_method, data=DataSpec(str(IMDB_TRAIN)), calibration_samples=32,
                             max_length=128, recover_from=str(TEACHER), recover_data=DataSpec(str(IMDB_TRAIN)),
                             recover_steps=args.recover_steps, recover_lr=args.recover_lr, recover_batch_size=16,
                             recover_options={"temperature": 1.0},
                             layer_importance=args.layer_importance)
        t0 = time.perf_counter()
        prune(TEACHER, out, config, force=True)
        wall = round(time.perf_counter() - t0, 1)
    report = json.loads((out / "compress.json").read_text())["stages"][-1]["report"]
    torch.set_num_threads(THREADS)
    teacher, pruned = load_torch(TEACHER), load_torch(out)
    blocks = heldout_blocks(args.eval_blocks)
    base = block_nll(TorchRunner(teacher), blocks)
    nll = block_nll(TorchRunner(pruned), blocks)
    context = 32 + args.new_tokens / 2  # mean keys attended to while decoding after a 32-token prompt
    m_t, m_p = macs_per_token(teacher, context), macs_per_token(pruned, context)
    teacher_onnx, pruned_onnx = export(TEACHER, "teacher-onnx", args.reuse), export(out, "pruned-onnx", args.reuse)
    prompts = [blocks[i : i + 1, :32] for i in range(args.prompts)]
    with cpu_lock():
        torch_rates = decode_rates({"teacher": TorchBench(teacher), "pruned": TorchBench(pruned)}, prompts,
                                   args.new_tokens)
        onnx_rates = decode_rates({"teacher": OnnxBench(teacher_onnx / "model.onnx", threads=THREADS),
                                   "pruned": OnnxBench(pruned_onnx / "model.onnx", threads=THREADS)},
                                  prompts, args.new_tokens)
    onnx_nll = block_nll(OnnxRunner(pruned_onnx / "model.onnx", threads=THREADS), blocks)
    mac_ratio = m_t["total"] / m_p["total"]
    row = {
        "part": "prune", "methods": report["methods"], "structure": report["structure"],
        "heads_kept": report.get("heads_kept"), "recover_steps": args.recover_steps, "prune_wall_s": wall,
        "teacher": quality(base, None), "pruned": quality(nll, base), "pruned_onnx": quality(onnx_nll, base),
        "params_m": round(report["parameters"] / 1e6, 3), "teacher_params_m": round(report["parameters_before"] / 1e6, 3),
        "macs_teacher": m_t, "macs_pruned": m_p, "mac_ratio": round(mac_ratio, 3),
        "mac_ratio_blocks_only": round(m_t["blocks"] / m_p["blocks"], 3),
        "lm_head_share_of_teacher_macs": round(m_t["lm_head"] / m_t["total"], 3),
        "torch": torch_rates, "onnx": onnx_rates, "heldout_blocks": int(len(blocks)),
    }
    row["perplexity_ratio"] = round(row["pruned"]["perplexity"] / row["teacher"]["perplexity"], 4)
    for kind in ("torch", "onnx"):
        rates = row[kind]
        row[f"{kind}_speedup"] = round(rates["pruned"]["tokens_per_s"] / rates["teacher"]["tokens_per_s"], 3)
    target = round(0.85 * mac_ratio, 3)
    row["speed_target"] = target
    row["met_macs"] = mac_ratio >= 1.3
    row["met_perplexity"] = row["perplexity_ratio"] <= 1.10
    row["met_speed_torch"] = row["torch_speedup"] >= target
    row["met_speed_onnx"] = row["onnx_speedup"] >= target
    return row


def part_quant(args) -> dict:
    from compressor.bench.runner import OnnxBench
    from compressor.inference import OnnxRunner
    from compressor.quantize import QuantizeConfig, quantize

    parent = export(TEACHER, "quant-parent-onnx", args.reuse)  # its own copy: parts may run at once
    outs = {}
    for name, config in (("int8", QuantizeConfig(method="int8-dynamic")),
                         ("int4", QuantizeConfig(method="int4-weight", block_size=32, accuracy_level=4))):
        dst = WORK / f"teacher-{name}"
        if not (args.reuse and (dst / "model.onnx").exists()):
            quantize(parent, dst, config, force=True)
        outs[name] = dst / "model.onnx"
    files = {"float": parent / "model.onnx", **outs}
    blocks = heldout_blocks(args.eval_blocks)
    nll = {k: block_nll(OnnxRunner(f, threads=THREADS), blocks) for k, f in files.items()}
    prompts = [blocks[i : i + 1, :32] for i in range(args.prompts)]
    with cpu_lock():
        rates = decode_rates({k: OnnxBench(f, threads=THREADS) for k, f in files.items()}, prompts, args.new_tokens)
    sizes = {k: sum(p.stat().st_size for p in f.parent.glob("*.onnx*")) for k, f in files.items()}
    row = {"part": "quant", "parent": "teacher ONNX (O2)", "int4": "MatMulNBits block 32, accuracy_level 4",
           "quality": {k: quality(v, nll["float"]) for k, v in nll.items()}, "decode": rates,
           "size_mb": {k: round(v / 1e6, 2) for k, v in sizes.items()}, "heldout_blocks": int(len(blocks))}
    row["int4_increase_pct"] = row["quality"]["int4"]["increase_pct"]
    row["int4_vs_int8_tokens_per_s"] = round(rates["int4"]["tokens_per_s"] / rates["int8"]["tokens_per_s"], 3)
    row["met_int4_perplexity"] = row["int4_increase_pct"] <= 3.0
    return row


RECIPE_RUN = ROOT / "runs" / "llama-lm"


def part_recipe(args) -> dict:
    """Run (or resume) pipelines/llama-lm.yaml and read its bench stage: decode tokens/s of every
    artifact against the FP32 PyTorch teacher (bench's baseline), with held-out perplexity."""
    import subprocess

    cmd = [sys.executable, "-m", "compressor.cli", "run", "pipelines/llama-lm.yaml", "--out", str(args.runs_dir)]
    if (args.runs_dir / "run.json").exists():
        cmd.append("--resume")
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code not in (0, 1):  # 1: a gate failed, the artifacts and the bench report still exist
        raise SystemExit(f"compress run pipelines/llama-lm.yaml failed with exit {code}")
    state = json.loads((args.runs_dir / "run.json").read_text())
    report = json.loads((Path(state["stages"]["bench"]["output"]) / "report.json").read_text())
    teacher = report["baseline"]
    batch = str(report["environment"]["reference_batch"])

    def row(entry: dict, name: str) -> dict:
        decode = (entry.get("decode") or {}).get(batch) or {}
        vs = entry["quality"].get("vs_baseline", {})
        return {"model": name, "format": entry["format"], "precision": entry["precision"],
                "perplexity": round(entry["quality"]["perplexity"], 2),
                "increase_pct": round(vs.get("perplexity_increase_pct", 0.0), 2),
                "decode_ms_per_token": round(decode["p50_ms"], 3) if decode else None,
                "tokens_per_s": round(decode["tokens_per_s"], 1) if decode else None,
                "prefill_ms": round(entry["latency"][batch]["p50_ms"], 2),
                "size_mb": round(entry["size_mb"], 2)}

    rows = [row(teacher, "teacher-fp32-pytorch")] + [row(e, e["name"]) for e in report["artifacts"]]
    # bench times one artifact after another; on this shared machine the teacher's PyTorch decode has
    # read 5.6 and 8.3 ms/token in two runs minutes apart. So the verdict is on a second, side-by-side
    # timing: every model in alternating blocks in one process (decode_rates), under the CPU lock.
    from compressor.bench.runner import OnnxBench, TorchBench

    runners = {"teacher-fp32-pytorch": TorchBench(load_torch(TEACHER))}
    for entry in report["artifacts"]:
        path = Path(entry["path"])
        runners[entry["name"]] = (OnnxBench(path / "model.onnx", threads=THREADS) if entry["format"] == "onnx"
                                  else TorchBench(load_torch(path)))
    blocks = heldout_blocks(args.prompts)
    prompts = [blocks[i : i + 1, :32] for i in range(args.prompts)]
    with cpu_lock():
        paired = decode_rates(runners, prompts, args.new_tokens, rounds=4)
    for r in rows:
        r["side_by_side_tokens_per_s"] = paired[r["model"]]["tokens_per_s"]
    for key in ("tokens_per_s", "side_by_side_tokens_per_s"):
        base = rows[0][key]
        for r in rows:  # decode_speedup, side_by_side_decode_speedup
            r[key.replace("tokens_per_s", "decode_speedup")] = round(r[key] / base, 2) if r[key] and base else None
    within = [r for r in rows[1:] if r["increase_pct"] <= 10.0 and r["side_by_side_decode_speedup"]]
    best = max(within, key=lambda r: r["side_by_side_decode_speedup"]) if within else None
    return {"part": "recipe", "run_dir": str(args.runs_dir), "exit_code": code, "rows": rows,
            "best": best["model"] if best else None,
            "best_decode_speedup": best["side_by_side_decode_speedup"] if best else None,
            "best_decode_speedup_in_bench": best["decode_speedup"] if best else None,
            "best_increase_pct": best["increase_pct"] if best else None,
            "met": bool(best and best["side_by_side_decode_speedup"] >= 10.0)}


def print_table(results: dict) -> None:
    print("\n| part | result | target | met |")
    print("|---|---|---|---|")
    s = results.get("student")
    if s:
        print(f"| half-depth student (layers {','.join(map(str, s['layer_map']))}, {s['steps']} steps) | held-out ppl "
              f"{s['teacher']['perplexity']} -> {s['student']['perplexity']} = {s['perplexity_ratio']:.3f}x; "
              f"trained in {s['wall_s'] / 60:.1f} min | <= 1.25x in <= 30 min | {'yes' if s['met'] else 'NO'} |")
    for key in [k for k in results if k.startswith("prune")]:
        print_prune(key, results[key])
    for key in [k for k in results if k.startswith("quant")]:
        print_quant(key, results[key])
    r = results.get("recipe")
    if r:
        print(f"| llama-lm.yaml best artifact: {r['best']} | decode {r['best_decode_speedup']}x the FP32 PyTorch "
              f"teacher side by side ({r['best_decode_speedup_in_bench']}x in the recipe's bench) at "
              f"{r['best_increase_pct']:+.2f}% ppl | >= 10x at <= +10% | {'yes' if r['met'] else 'NO'} |")
        print("\n| model | format | precision | ppl | +% | bench decode ms/token | tok/s | x teacher | "
              "side-by-side tok/s | x teacher | prefill ms | MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for x in r["rows"]:
            print(f"| {x['model']} | {x['format']} | {x['precision']} | {x['perplexity']} | {x['increase_pct']} | "
                  f"{x['decode_ms_per_token']} | {x['tokens_per_s']} | {x['decode_speedup']} | "
                  f"{x['side_by_side_tokens_per_s']} | {x['side_by_side_decode_speedup']} | {x['prefill_ms']} | "
                  f"{x['size_mb']} |")


def print_prune(key: str, p: dict) -> None:
    if p:
        print(f"| {key}: width pruning {p['methods']} + {p['recover_steps']} recovery steps | MACs/token "
              f"{p['mac_ratio']:.2f}x fewer (blocks only {p['mac_ratio_blocks_only']:.2f}x; LM head "
              f"{p['lm_head_share_of_teacher_macs']:.0%} of the teacher's) | >= 1.3x | {'yes' if p['met_macs'] else 'NO'} |")
        print(f"| | held-out ppl {p['teacher']['perplexity']} -> {p['pruned']['perplexity']} = "
              f"{p['perplexity_ratio']:.3f}x (ONNX {p['pruned_onnx']['perplexity']}) | <= 1.10x | "
              f"{'yes' if p['met_perplexity'] else 'NO'} |")
        for kind in ("torch", "onnx"):
            r = p[kind]
            print(f"| | {kind} decode tok/s {r['teacher']['tokens_per_s']} -> {r['pruned']['tokens_per_s']} = "
                  f"{p[kind + '_speedup']:.2f}x (prefill {r['teacher']['prefill_ms']} -> {r['pruned']['prefill_ms']} ms)"
                  f" | >= {p['speed_target']:.2f}x | {'yes' if p['met_speed_' + kind] else 'NO'} |")


def print_quant(key: str, q: dict) -> None:
    if q:
        ql, d = q["quality"], q["decode"]
        print(f"| {key}: ONNX int4 vs float parent | ppl {ql['float']['perplexity']} -> int4 {ql['int4']['perplexity']} "
              f"({ql['int4']['increase_pct']:+.2f}% {ql['int4']['increase_ci95']}), int8 {ql['int8']['perplexity']} "
              f"({ql['int8']['increase_pct']:+.2f}%) | <= +3% | {'yes' if q['met_int4_perplexity'] else 'NO'} |")
        print(f"| | decode tok/s float {d['float']['tokens_per_s']}, int8 {d['int8']['tokens_per_s']}, int4 "
              f"{d['int4']['tokens_per_s']} (int4/int8 {q['int4_vs_int8_tokens_per_s']:.2f}x); size MB "
              f"{q['size_mb']} | reported | - |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["student", "prune", "quant", "recipe"], default=None)
    parser.add_argument("--runs-dir", type=Path, default=RECIPE_RUN, help="the llama-lm.yaml run (--only recipe)")
    parser.add_argument("--reuse", action="store_true", help="measure existing outputs in benchmarks/work again")
    parser.add_argument("--eval-blocks", type=int, default=200)
    parser.add_argument("--student-steps", type=int, default=150)
    parser.add_argument("--student-lr", type=float, default=6e-4)
    parser.add_argument("--prune-method", default="heads=0.25,ffn=0.45")
    parser.add_argument("--layer-importance", choices=["ablation", "cosine"], default="cosine",
                        help="how layers=AMOUNT in --prune-method picks the layers to remove")
    parser.add_argument("--recover-steps", type=int, default=100)
    parser.add_argument("--recover-lr", type=float, default=5e-4)
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads per model when timing (1 stalls less on an oversubscribed machine)")
    parser.add_argument("--from-json", action="store_true", help="print the table of the saved results")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    suffix = "" if args.threads == 2 else f"@{args.threads}threads"
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.from_json:
        WORK.mkdir(parents=True, exist_ok=True)
        parts = {"student": part_student, "prune": part_prune, "quant": part_quant, "recipe": part_recipe}
        for name, fn in parts.items():
            if args.only in (None, name):
                row = fn(args)
                # parts may run as separate processes at once: merge into what is on disk now
                results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
                row["threads"] = args.threads
                results[name + suffix] = row
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
