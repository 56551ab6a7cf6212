"""export-onnx --skip-layernorm split (the CPU default) against fused: the same graphs, timed side by side.

onnxruntime's transformer optimizer fuses ``Add [+ Add] -> LayerNormalization`` into one
SkipLayerNormalization (SkipSimplifiedLayerNormalization for RMSNorm). Its CPU kernel is the slow one
(one node timed alone: 53-59 vs 14-23 us for 25 x 384, one thread), so on CPU the export splits each into
``Sum + LayerNormalization`` (``compressor/export/layernorm_split.py``). This script measures what that
buys on every family it applies to, with the real teachers:

- encoders (SST-2 classifier, CoNLL-2003 tagger, sentence embedder; and a 3-layer pruned SST-2
  student, the size ``compress auto`` ends at): FP32 and INT8 (dynamic; static for SST-2), batch 1 on
  200 dev rows and batch 8 on 25 batches;
- decoders (GPT-2, Llama): a 128-token forward (batch 1) and 16 greedy tokens after a 32-token prompt.

Every pair is one export twice (``--skip-layernorm fused`` / ``split``) and, for INT8, the same
quantize of each. All rows of a model are timed in one process, with 1 and with 2 intra-op threads,
in blocks whose order reverses every round (``compressor.bench.timing.side_by_side``), under
``flock /tmp/compress-cpu.lock``. Outputs are compared too: the split must compute the fused graph's
numbers.

    python benchmarks/layernorm_split.py [--rounds 6] [--threads 1,2] [--only MODEL]

Writes benchmarks/results/layernorm_split.json and prints the table.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402  (its asset paths and its command runner)

ASSETS = peers.ASSETS
WORK = ROOT / "benchmarks" / "work" / "layernorm_split"
RESULTS = ROOT / "benchmarks" / "results"
COMPRESS = [sys.executable, "-m", "compressor.cli", "-q"]
TEACHERS = ASSETS / "teachers"
SST2 = ASSETS / "glue" / "SST-2"
# name: (source, parity/dev data, calibration data or None (no static INT8), kind, INT8 or not)
MODELS = {
    "sst2-teacher": (TEACHERS / "minilm-l6-sst2", SST2 / "dev.tsv", SST2 / "train.tsv", "encoder", True),
    "sst2-3layer-pruned": (None, SST2 / "dev.tsv", SST2 / "train.tsv", "encoder", True),
    "ner-teacher": (TEACHERS / "minilm-l6-conll03", ASSETS / "conll2003" / "valid.txt", None, "encoder", True),
    "embed-teacher": (TEACHERS / "minilm-l6-embed", ASSETS / "stsb" / "dev.tsv", None, "encoder", True),
    "gpt2-imdb": (TEACHERS / "gpt2-imdb", ASSETS / "imdb" / "heldout-1000.txt", None, "decoder", False),
    "llama-imdb": (TEACHERS / "llama-imdb", ASSETS / "imdb" / "heldout-1000.txt", None, "decoder", False),
}


def made(out: Path, cmd: list) -> Path:
    if not (out / "compress.json").exists():
        peers.sh([*COMPRESS, *cmd, "-o", out, "--force"], check=True)
    return out


def pruned_student() -> Path:
    """The SST-2 teacher's layers 0, 2, 4 with half its heads and FFN: latency only, no recovery."""
    return made(WORK / "sst2-3layer-pruned-pytorch", [
        "prune", TEACHERS / "minilm-l6-sst2", "--method", "layers=[1,3,5],heads=0.5,ffn=0.5",
        "--data", SST2 / "train.tsv", "--calibration-samples", "64", "--max-length", "64"])


def build(name: str) -> dict[str, Path]:
    source, dev, calib, kind, int8 = MODELS[name]
    source = source or pruned_student()
    rows = {}
    for mode in ("fused", "split"):
        fp32 = made(WORK / f"{name}-{mode}", ["export-onnx", source, "--skip-layernorm", mode, "--parity-data", dev,
                                             "--parity-samples", "64"])
        rows[f"fp32-{mode}"] = fp32
        if int8:
            rows[f"int8-dynamic-{mode}"] = made(WORK / f"{name}-{mode}-int8", ["quantize", fp32, "--method", "int8-dynamic"])
        if calib is not None:
            rows[f"int8-static-{mode}"] = made(WORK / f"{name}-{mode}-static", [
                "quantize", fp32, "--method", "int8-static", "--calib-data", calib, "--calib-samples", "128",
                "--max-length", "64"])
    return rows


def inputs(name: str, tokenizer) -> dict[str, list]:
    import numpy as np

    from compressor.data import DataSpec
    from compressor import tasks
    from compressor.artifact import open_artifact

    source, dev, _, kind, _ = MODELS[name]
    if kind == "decoder":
        text = dev.read_text(encoding="utf-8")
        ids = tokenizer(text[:200_000], return_tensors="np")["input_ids"][0].astype(np.int64)
        blocks = [{"input_ids": ids[None, i:i + 128]} for i in range(0, 128 * 40, 128)]
        prompts = [ids[None, i:i + 32] for i in range(0, 32 * 20, 32)]
        return {"forward-128": blocks, "generate-16": prompts}
    artifact = open_artifact(source or pruned_student())
    task = tasks.get(artifact.task)
    label2id = artifact.config.get("label2id")
    one = list(task.batches("--data", tokenizer, DataSpec(str(dev)), label2id=label2id, samples=200, max_length=128,
                            batch_size=1, require_labels=False))
    eight = list(task.batches("--data", tokenizer, DataSpec(str(dev)), label2id=label2id, samples=200, max_length=128,
                              batch_size=8, require_labels=False))
    return {"b1": one, "b8": eight}


def generate(runner, prompt, tokens: int = 16):
    import numpy as np

    logits = runner.start(prompt)
    for _ in range(tokens - 1):
        logits = runner.step(np.argmax(logits, axis=-1)[:, None].astype(np.int64))
    return logits


def measure(name: str, rows: dict[str, Path], rounds: int, threads: int) -> dict:
    import numpy as np

    from compressor.artifact import open_artifact
    from compressor.bench.timing import side_by_side
    from compressor.inference import OnnxRunner
    from compressor.loading import load_tokenizer

    tokenizer = load_tokenizer(rows["fp32-fused"])
    workloads = inputs(name, tokenizer)
    runners = {row: OnnxRunner(open_artifact(path).onnx_file, threads=threads) for row, path in rows.items()}
    result: dict = {"rows": {}, "max_abs_diff": {}}
    compared = next(iter(workloads.values()))[:20]  # whole-sequence batches (b1, or the 128-token blocks)
    for precision in sorted({row.rsplit("-", 1)[0] for row in rows}):
        fused, split = runners[f"{precision}-fused"], runners[f"{precision}-split"]
        result["max_abs_diff"][precision] = max(float(np.abs(fused.logits(x) - split.logits(x)).max()) for x in compared)
    with open("/tmp/compress-cpu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for workload, batches in workloads.items():
            if workload == "generate-16":
                fns = {row: (lambda r: lambda p: generate(r, p))(r) for row, r in runners.items()}
            else:
                fns = {row: (lambda r: lambda x: r.logits(x))(r) for row, r in runners.items()}
            times = side_by_side(fns, batches, rounds=rounds, warmup=5)
            for row, seconds in times.items():
                result["rows"].setdefault(row, {})[workload] = float(np.percentile(np.asarray(seconds) * 1e3, 50))
                per_round = np.asarray(seconds).reshape(rounds, -1) * 1e3  # side_by_side: one block per round
                result.setdefault("round_p50_ms", {}).setdefault(row, {})[workload] = np.median(per_round, axis=1).tolist()
    for row, path in rows.items():
        manifest = json.loads((path / "compress.json").read_text())
        export = next(s for s in manifest["stages"] if s["stage"] == "export-onnx")
        result["rows"][row]["skip_layernorm_split"] = export["report"].get("skip_layernorm", {}).get("split", 0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", default="1,2", help="Intra-op thread counts, each timed on its own.")
    parser.add_argument("--only", action="append", choices=list(MODELS), help="Only these models (repeatable).")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    import onnxruntime

    thread_counts = [int(t) for t in args.threads.split(",")]
    results = {"benchmark": "layernorm_split", "onnxruntime": onnxruntime.__version__, "threads": thread_counts,
               "rounds": args.rounds, "target": "split p50 <= fused p50 on every row (the CPU default must not lose)",
               "models": {}}
    table = []
    for name in args.only or MODELS:
        rows = build(name)
        for threads in thread_counts:
            measured = measure(name, rows, args.rounds, threads)
            results["models"].setdefault(name, {})[f"threads-{threads}"] = measured
            for precision in sorted({row.rsplit("-", 1)[0] for row in rows}):
                fused, split = measured["rows"][f"{precision}-fused"], measured["rows"][f"{precision}-split"]
                for workload in (w for w in fused if w != "skip_layernorm_split"):
                    speedup = fused[workload] / split[workload]
                    rounds_f = measured["round_p50_ms"][f"{precision}-fused"][workload]
                    rounds_s = measured["round_p50_ms"][f"{precision}-split"][workload]
                    per_round = [a / b for a, b in zip(rounds_f, rounds_s)]
                    table.append({"model": name, "precision": precision, "workload": workload, "threads": threads,
                                  "speedup_per_round": [round(x, 3) for x in per_round],
                                  "fused_p50_ms": fused[workload], "split_p50_ms": split[workload],
                                  "speedup": speedup, "split_nodes": split["skip_layernorm_split"],
                                  "max_abs_diff": measured["max_abs_diff"][precision], "met": speedup >= 1.0})
    results["table"] = table
    results["misses"] = [{**row, "reason": "within the round-to-round spread (a round read the split faster)"
                          if max(row["speedup_per_round"]) >= 1.0 else "the split was slower in every round"}
                         for row in table if not row["met"]]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "layernorm_split.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'model':20s} {'precision':13s} {'workload':12s} {'thr':>3s} {'fused ms':>9s} {'split ms':>9s} {'x':>6s} {'nodes':>5s} {'max|diff|':>9s}")
    for row in table:
        print(f"{row['model']:20s} {row['precision']:13s} {row['workload']:12s} {row['threads']:3d} {row['fused_p50_ms']:9.3f} "
              f"{row['split_p50_ms']:9.3f} {row['speedup']:6.2f} {row['split_nodes']:5d} {row['max_abs_diff']:9.2g}"
              f"  rounds {min(row['speedup_per_round']):.2f}-{max(row['speedup_per_round']):.2f}")


if __name__ == "__main__":
    main()
