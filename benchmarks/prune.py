"""Structured pruning with recovery on the real teachers, measured side by side with them.

    python benchmarks/prune.py                 # both parts (about 20 min on 2 cores)
    python benchmarks/prune.py --only bert     # SST-2 MiniLM: heads 25% + FFN 30%, recovery, dev accuracy, latency
    python benchmarks/prune.py --only gpt2     # IMDB GPT-2: FFN 30%, recovery, held-out perplexity, tokens/s

Targets (issue 6): SST-2 dev accuracy within 1.0 pt of the teacher and CPU p50 latency at batch 1 with
2 threads >= 1.3x faster; GPT-2 held-out perplexity (context 128) <= 1.15x the teacher's and tokens/s
>= 1.2x faster. Latency and throughput are measured in one run, teacher and pruned model interleaved
input by input, so machine noise hits both alike.

Run it alone on the machine: ``flock /tmp/compress-cpu.lock python benchmarks/prune.py``. Results: a
table on stdout and benchmarks/results/prune.json (parts run separately are merged into it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
WORK = ROOT / "benchmarks" / "work" / "prune"
RESULTS = ROOT / "benchmarks" / "results" / "prune.json"
sys.path.insert(0, str(ROOT))

from compressor.bench.timing import side_by_side  # noqa: E402  (after the path insert)

SST_TEACHER = ASSETS / "teachers" / "minilm-l6-sst2"
GPT2_TEACHER = ASSETS / "teachers" / "gpt2-imdb"
SST_TRAIN, SST_DEV = ASSETS / "glue/SST-2/train.tsv", ASSETS / "glue/SST-2/dev.tsv"
SST_TEST = ASSETS / "glue/SST-2/test-labeled.tsv"  # 1,821 more labelled rows: a second, larger sample
IMDB_TRAIN, IMDB_HELDOUT = ASSETS / "imdb/train.jsonl", ASSETS / "imdb/heldout-1000.txt"
THREADS = 2


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def macs_per_token(model, context: float, with_lm_head: bool) -> float:
    """Multiply-adds per token that pruning can change: the blocks' matrices, attention over ``context``
    keys, and the LM head (which FFN pruning cannot touch)."""
    from compressor.prune import structural

    family = "gpt2" if model.config.model_type == "gpt2" else "bert"
    adapter = structural.adapter_for(family, model.config.model_type)
    total = 0.0
    for block in adapter.blocks(model):
        total += sum(m.weight.numel() for m in block.modules() if getattr(m, "weight", None) is not None
                     and m.weight.dim() == 2)
        heads, head_dim = adapter.heads(block)
        total += 2 * heads * head_dim * context
    if with_lm_head:
        total += model.config.vocab_size * model.config.hidden_size
    return total


def prune_run(name: str, teacher: Path, reuse: bool = False, **fields) -> tuple[dict, float, Path]:
    """Prune (with recovery) into benchmarks/work; with ``reuse``, an earlier output of the same
    config is measured again instead (to repeat the timing on a quieter machine)."""
    from compressor.prune import PruneConfig, prune

    out = WORK / name
    config = PruneConfig(**fields)
    manifest = out / "compress.json"
    if reuse and manifest.exists():
        record = json.loads(manifest.read_text())["stages"][-1]
        if record["config"] == json.loads(json.dumps(config.to_dict(), default=str)):
            return record["report"], record["wall_time_s"], out
        print(f"{out}: made with another config; pruning again", file=sys.stderr)
    t0 = time.perf_counter()
    report = prune(teacher, out, config, force=True)
    return report, time.perf_counter() - t0, out


def bench_bert(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compressor.data import DataSpec, load_classification
    from compressor.prune import parse_methods

    report, wall, out = prune_run(
        "minilm-sst2-" + args.bert_method.replace("=", "").replace(",", "-") + args.tag, SST_TEACHER, args.reuse,
        methods=parse_methods(args.bert_method), data=DataSpec(str(SST_TRAIN)), calibration_samples=args.calib,
        ffn_multiple_of=args.ffn_multiple_of,
        eval_data=DataSpec(str(SST_DEV)), max_length=64, recover_from=str(SST_TEACHER),
        recover_data=DataSpec(str(SST_TRAIN)), recover_steps=args.bert_steps, recover_lr=args.bert_lr,
        recover_batch_size=32, recover_options={"alpha_ce": args.bert_ce, "temperature": args.bert_t, "alpha_hidden": args.bert_hidden},
    )
    metrics = report["metrics"]
    torch.set_num_threads(THREADS)
    tokenizer = AutoTokenizer.from_pretrained(SST_TEACHER)
    label2id = json.loads((SST_TEACHER / "config.json").read_text())["label2id"]
    sentences = load_classification(DataSpec(str(SST_DEV)), label2id=label2id, require_labels=False).texts
    encoded = [tokenizer(s, return_tensors="pt") for s in sentences]
    models = {"teacher": AutoModelForSequenceClassification.from_pretrained(SST_TEACHER).eval(),
              "pruned": AutoModelForSequenceClassification.from_pretrained(out).eval()}

    def call(model):
        def run(x):
            with torch.inference_mode():
                model(**x)
        return run

    from compressor.evaluation import evaluate, task_batches
    from compressor.inference import TorchRunner

    test = task_batches("test", "text-classification", tokenizer, DataSpec(str(SST_TEST)), label2id=label2id,
                        samples=None, max_length=128, batch_size=16, require_labels=True)
    test_accuracy = {k: evaluate(TorchRunner(m), "text-classification", test)["accuracy"] for k, m in models.items()}
    times = side_by_side({k: call(m) for k, m in models.items()}, encoded, rounds=args.rounds)
    row = {
        "part": "bert",
        "methods": report["methods"],
        "teacher_accuracy": metrics["accuracy_before"],
        "pruned_accuracy_before_recovery": metrics["accuracy_pruned"],
        "accuracy": metrics["accuracy_final"],
        "gap_pt": round((metrics["accuracy_before"] - metrics["accuracy_final"]) * 100, 2),
        "teacher_test_accuracy": test_accuracy["teacher"],
        "test_accuracy": test_accuracy["pruned"],
        "params_m": round(report["parameters"] / 1e6, 2),
        "teacher_params_m": round(report["parameters_before"] / 1e6, 2),
        "heads_per_layer": report["structure"]["heads_per_layer"],
        "ffn_width": report["structure"]["ffn_per_layer"][0],
        "recover_steps": args.bert_steps,
        "prune_wall_s": round(wall, 1),
        "teacher_p50_ms": round(p50_ms(times["teacher"]), 3),
        "pruned_p50_ms": round(p50_ms(times["pruned"]), 3),
        "sentences": len(encoded),
    }
    mean_len = sum(e["input_ids"].shape[1] for e in encoded) / len(encoded)
    row["compute_ratio"] = round(macs_per_token(models["teacher"], mean_len, False)
                                 / macs_per_token(models["pruned"], mean_len, False), 3)
    row["speedup_p50"] = round(row["teacher_p50_ms"] / row["pruned_p50_ms"], 3)
    row["met_accuracy"] = row["gap_pt"] <= 1.0
    row["met_latency"] = row["speedup_p50"] >= 1.3
    if args.onnx:
        batches = [{k: v.numpy() for k, v in e.items()} for e in encoded]
        row.update(onnx_latency("bert", out, SST_TEACHER, batches, args))
    return row


def onnx_latency(name: str, pruned: Path, teacher: Path, batches: list, args: argparse.Namespace) -> dict:
    """The same side-by-side, through export-onnx (O2) and onnxruntime with 2 threads."""
    from compressor.export import ExportConfig, export_onnx
    from compressor.inference import OnnxRunner

    runners = {}
    for label, src in (("teacher", teacher), ("pruned", pruned)):
        dst = WORK / f"{name}-{label}-onnx"
        export_onnx(src, dst, ExportConfig(optimize="O2"), force=True)
        runners[label] = OnnxRunner(dst / "model.onnx", threads=THREADS)
    times = side_by_side({k: (lambda r: lambda x: r.logits(x))(r) for k, r in runners.items()}, batches,
                        rounds=args.rounds)
    teacher_ms, pruned_ms = p50_ms(times["teacher"]), p50_ms(times["pruned"])
    return {"onnx_teacher_p50_ms": round(teacher_ms, 3), "onnx_pruned_p50_ms": round(pruned_ms, 3),
            "onnx_speedup_p50": round(teacher_ms / pruned_ms, 3)}


def heldout_perplexity(model, blocks, batch_size: int = 16) -> float:
    from compressor.evaluation import evaluate
    from compressor.tasks import CAUSAL_LM
    from compressor.inference import TorchRunner

    batches = [{"input_ids": blocks[i : i + batch_size]} for i in range(0, len(blocks), batch_size)]
    return evaluate(TorchRunner(model), CAUSAL_LM, batches)["perplexity"]


def bench_gpt2(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from compressor.data import DataSpec, load_texts
    from compressor.data.batching import lm_blocks
    from compressor.loading import load_tokenizer
    from compressor.prune import parse_methods

    report, wall, out = prune_run(
        "gpt2-imdb-" + args.gpt2_method.replace("=", "").replace(",", "-"), GPT2_TEACHER, args.reuse,
        methods=parse_methods(args.gpt2_method), data=DataSpec(str(IMDB_TRAIN)), calibration_samples=args.calib // 4,
        ffn_multiple_of=args.ffn_multiple_of,
        eval_data=DataSpec(str(IMDB_HELDOUT)), eval_samples=args.gpt2_eval_blocks, max_length=128,
        recover_from=str(GPT2_TEACHER), recover_data=DataSpec(str(IMDB_TRAIN)), recover_steps=args.gpt2_steps,
        recover_lr=args.gpt2_lr, recover_batch_size=16,
        recover_options={"alpha_ce": args.gpt2_ce, "temperature": args.gpt2_t},
    )
    torch.set_num_threads(THREADS)
    tokenizer = load_tokenizer(GPT2_TEACHER)
    blocks = lm_blocks(tokenizer, load_texts(DataSpec(str(IMDB_HELDOUT))), block_size=128)
    models = {"teacher": AutoModelForCausalLM.from_pretrained(GPT2_TEACHER).eval(),
              "pruned": AutoModelForCausalLM.from_pretrained(out).eval()}
    ppl = {k: heldout_perplexity(m, blocks) for k, m in models.items()}

    # Scoring throughput: one 128-token block per forward, batch 1 (how perplexity/ranking runs).
    def score(model):
        def run(x):
            with torch.inference_mode():
                model(input_ids=x, use_cache=False)
        return run

    inputs = [torch.from_numpy(blocks[i : i + 1]) for i in range(args.score_blocks)]
    score_times = side_by_side({k: score(m) for k, m in models.items()}, inputs, rounds=args.rounds)
    # Generation throughput: greedy decoding of 64 new tokens after a 32-token prompt, with the KV cache.
    new_tokens = 64

    def generate(model):
        def run(x):
            with torch.inference_mode():
                model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        return run

    prompts = [torch.from_numpy(blocks[i : i + 1, :32]) for i in range(args.gen_prompts)]
    gen_times = side_by_side({k: generate(m) for k, m in models.items()}, prompts, warmup=2)
    row = {
        "part": "gpt2",
        "methods": report["methods"],
        "teacher_perplexity": round(ppl["teacher"], 2),
        "perplexity": round(ppl["pruned"], 2),
        "perplexity_ratio": round(ppl["pruned"] / ppl["teacher"], 4),
        "heldout_tokens": int(blocks.size),
        "stage_metrics": report["metrics"],
        "params_m": round(report["parameters"] / 1e6, 2),
        "teacher_params_m": round(report["parameters_before"] / 1e6, 2),
        "ffn_width": report["structure"]["ffn_per_layer"][0],
        "recover_steps": args.gpt2_steps,
        "prune_wall_s": round(wall, 1),
        "teacher_score_tok_s": round(128 / statistics.median(score_times["teacher"]), 1),
        "pruned_score_tok_s": round(128 / statistics.median(score_times["pruned"]), 1),
        "teacher_gen_tok_s": round(new_tokens / statistics.median(gen_times["teacher"]), 1),
        "pruned_gen_tok_s": round(new_tokens / statistics.median(gen_times["pruned"]), 1),
    }
    # Causal attention over a 128-token block looks at 64.5 keys per token on average.
    row["compute_ratio"] = round(macs_per_token(models["teacher"], 64.5, True)
                                 / macs_per_token(models["pruned"], 64.5, True), 3)
    row["score_speedup"] = round(row["pruned_score_tok_s"] / row["teacher_score_tok_s"], 3)
    row["gen_speedup"] = round(row["pruned_gen_tok_s"] / row["teacher_gen_tok_s"], 3)
    row["met_perplexity"] = row["perplexity_ratio"] <= 1.15
    row["met_speed"] = row["score_speedup"] >= 1.2
    if args.onnx:
        onnx = onnx_latency("gpt2", out, GPT2_TEACHER, [{"input_ids": x.numpy()} for x in inputs], args)
        row.update({k.replace("onnx_", "onnx_score_"): v for k, v in onnx.items()})
    return row


def print_table(results: dict) -> None:
    print("\n| case | metric: teacher → pruned (target) | speed: teacher → pruned (target) | params | met |")
    print("|---|---|---|---|---|")
    for key, row in results.items():
        if not isinstance(row, dict) or row.get("part") not in ("bert", "gpt2"):
            continue
        if row["part"] == "bert":
            onnx = f"; ONNX {row['onnx_speedup_p50']:.2f}×" if "onnx_speedup_p50" in row else ""
            test = (f"; test-labeled {row['teacher_test_accuracy']:.2%} → {row['test_accuracy']:.2%}"
                    if "test_accuracy" in row else "")
            print(f"| MiniLM SST-2, {row['methods']}, {row['recover_steps']} recovery steps | dev acc "
                  f"{row['teacher_accuracy']:.2%} → {row['accuracy']:.2%} (before recovery "
                  f"{row['pruned_accuracy_before_recovery']:.2%}); gap {row['gap_pt']:.2f} pt (≤ 1.0){test} | p50 batch 1, "
                  f"{THREADS} threads: {row['teacher_p50_ms']:.2f} → {row['pruned_p50_ms']:.2f} ms = "
                  f"{row['speedup_p50']:.2f}× (≥ 1.3){onnx}; compute {row['compute_ratio']:.2f}× | "
                  f"{row['teacher_params_m']}M → {row['params_m']}M | "
                  f"{'yes' if row['met_accuracy'] and row['met_latency'] else 'NO'} |")
        else:
            onnx = f"; ONNX {row['onnx_score_speedup_p50']:.2f}×" if "onnx_score_speedup_p50" in row else ""
            print(f"| GPT-2 IMDB, {row['methods']}, {row['recover_steps']} recovery steps | held-out ppl "
                  f"{row['teacher_perplexity']:.1f} → {row['perplexity']:.1f} = "
                  f"{row['perplexity_ratio']:.3f}× (≤ 1.15) | "
                  f"scoring tok/s {row['teacher_score_tok_s']:.0f} → {row['pruned_score_tok_s']:.0f} = "
                  f"{row['score_speedup']:.2f}× (≥ 1.2){onnx}; generation {row['gen_speedup']:.2f}×; "
                  f"compute {row['compute_ratio']:.2f}× | {row['teacher_params_m']}M → {row['params_m']}M | "
                  f"{'yes' if row['met_perplexity'] and row['met_speed'] else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["bert", "gpt2"], default=None)
    parser.add_argument("--bert-method", default="heads=0.25,ffn=0.3")
    parser.add_argument("--bert-steps", type=int, default=600)
    parser.add_argument("--bert-lr", type=float, default=2e-5)
    parser.add_argument("--bert-ce", type=float, default=0.0)
    parser.add_argument("--bert-t", type=float, default=2.0)
    parser.add_argument("--bert-hidden", type=float, default=0.0, help="Weight of hidden-state distillation.")
    parser.add_argument("--ffn-multiple-of", type=int, default=None,
                        help="FFN width kept rounds down to this (default: the tool's automatic choice).")
    parser.add_argument("--gpt2-method", default="ffn=0.3")
    parser.add_argument("--gpt2-steps", type=int, default=300)
    parser.add_argument("--gpt2-lr", type=float, default=3e-4)
    parser.add_argument("--gpt2-ce", type=float, default=0.0)
    parser.add_argument("--gpt2-t", type=float, default=1.0)
    parser.add_argument("--gpt2-eval-blocks", type=int, default=256, help="Blocks for the stage's own metrics.")
    parser.add_argument("--calib", type=int, default=512, help="Calibration rows (GPT-2: a quarter, as blocks).")
    parser.add_argument("--score-blocks", type=int, default=200)
    parser.add_argument("--gen-prompts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="Measure an existing pruned output of the same config.")
    parser.add_argument("--tag", default="", help="Suffix of the result keys (e.g. a variant: gpt2-ffn50).")
    parser.add_argument("--onnx", action="store_true", help="Also time both models through export-onnx + onnxruntime.")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"torch_threads": THREADS}
    if args.only in (None, "bert"):
        results["bert" + args.tag] = bench_bert(args)
        results["bert" + args.tag + "_args"] = vars(args)
    if args.only in (None, "gpt2"):
        results["gpt2" + args.tag] = bench_gpt2(args)
        results["gpt2" + args.tag + "_args"] = vars(args)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
