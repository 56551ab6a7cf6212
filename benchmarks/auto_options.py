"""What three `compress auto` options buy on SST-2 (issue 13), side by side on one pruned student:

- --recover-data: the 3-layer transfer student (--student, /work/students/l3-transfer in the recorded run)
  with heads and FFN halved, recovered for 800 KD steps (lr 2e-5) on the teacher's own training rows
  (SST-2 train) or on the unlabelled SST-2 + IMDB transfer set (benchmarks/distill_losses.py --only
  transfer writes it);
- --vocab-data/--vocab-size: the transfer-recovered student's vocabulary cut to 15,000 tokens ranked by
  frequency in the transfer set (prune --method vocab=15000), against every token of SST-2 train;
- --embeddings int4: its vocabulary table as INT4 (GatherBlockQuantized, 128-value blocks).

Every variant is exported and quantized (ONNX int8-dynamic) the way a search trial is, then all of them
the optimum INT8 peer (as benchmarks/auto.py builds it) and the teacher are measured in one `compress bench`
on the labelled test split (1,821 rows, batch 1, 2 threads; run it under a CPU lock) and a second on dev (872). Writes benchmarks/results/auto_options.json
and prints the table. Built artifacts are kept in benchmarks/work/auto_options and reused.

    python benchmarks/auto_options.py --student DIR [--steps 800]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402  (assets, the command runner and the side-by-side bench)

ASSETS = peers.ASSETS
TEACHER = peers.BERT_TEACHER
SST2 = ASSETS / "glue" / "SST-2"
TRANSFER = ROOT / "benchmarks" / "work" / "transfer" / "sst2-imdb.tsv"
WORK = ROOT / "benchmarks" / "work" / "auto_options"
RESULTS = ROOT / "benchmarks" / "results" / "auto_options.json"
COMPRESS = [sys.executable, "-m", "compressor.cli"]


def build(out: Path, *args: object) -> Path:
    if not (out / "compress.json").is_file():
        peers.sh([*COMPRESS, *args, "-o", out, "--force"], check=True)
    return out


def variants(student: Path, steps: int) -> dict[str, Path]:
    pruned = {}
    for name, data in (("recover-sst2-train", SST2 / "train.tsv"), ("recover-transfer", TRANSFER)):
        pruned[name] = build(WORK / name, "prune", student, "--method", "heads=0.5,ffn=0.5", "--data",
                             SST2 / "train.tsv", "--calibration-samples", "256", "--max-length", "64",
                             "--recover-from", TEACHER, "--recover-data", data, "--recover-steps", steps,
                             "--recover-lr", "2e-5", "--seed", "0")
    base = pruned["recover-transfer"]
    pruned["vocab-15000-transfer"] = build(WORK / "vocab-15000-transfer", "prune", base, "--method", "vocab=15000",
                                           "--data", TRANSFER, "--max-length", "64")
    pruned["vocab-sst2-train"] = build(WORK / "vocab-sst2-train", "prune", base, "--method", "vocab", "--data",
                                       SST2 / "train.tsv", "--max-length", "64")
    rows = {}
    for name, path in pruned.items():
        onnx = build(WORK / f"{name}-onnx", "export-onnx", path, "--parity-data", SST2 / "dev.tsv",
                     "--parity-samples", "256")
        rows[name] = build(WORK / f"{name}-int8", "quantize", onnx, "--method", "int8-dynamic")
    rows["recover-transfer+int4-table"] = build(WORK / "recover-transfer-int8-int4table", "quantize",
                                                WORK / "recover-transfer-onnx", "--method", "int8-dynamic",
                                                "--embeddings", "int4", "--block-size", "128")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="the 3-layer student the search starts from")
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    peers.WORK = ROOT / "benchmarks" / "work" / "auto" / "peers"  # the optimum INT8 peer benchmarks/auto.py builds
    _, peer, arch = peers.peer_onnx()
    peers.WORK = WORK
    rows = variants(Path(args.student).resolve(), args.steps)
    rows[f"optimum-int8-{arch}"] = peer
    out = {"benchmark": "compress auto options on a heads/FFN-halved 3-layer SST-2 student (issue 13)",
           "student": args.student, "recover_steps": args.steps, "splits": {}}
    for split, data, extra in (("test", SST2 / "test-labeled.tsv", ["--batch-sizes", "1"]),
                               ("dev", SST2 / "dev.tsv", ["--batch-sizes", "1", "--min-seconds", "0.5"])):
        report = peers.bench(rows, TEACHER, data, WORK / f"bench-{split}",
                             ["--no-memory", "--max-samples", "100000", *extra])
        entries = peers.named_entries(report)
        teacher = entries["teacher-fp32-pytorch"]
        peer_p50 = entries[f"optimum-int8-{arch}"]["latency"]["1"]["p50_ms"]
        table = {}
        for name, entry in entries.items():
            quality = entry.get("quality") or {}
            table[name] = {"accuracy": quality.get("accuracy"),
                           "drop_points": (teacher["quality"]["accuracy"] - quality["accuracy"]) * 100,
                           "agreement": (quality.get("vs_baseline") or {}).get("agreement"),
                           "p50_ms": ((entry.get("latency") or {}).get("1") or {}).get("p50_ms"),
                           "size_mb": entry.get("size_mb")}
            p50 = table[name]["p50_ms"]
            table[name].update(speedup_vs_teacher=teacher["latency"]["1"]["p50_ms"] / p50, speedup_vs_peer=peer_p50 / p50,
                               size_ratio=teacher["size_mb"] / entry["size_mb"])
        out["splits"][split] = {"rows": teacher["quality"].get("samples"), "table": table,
                                "report": str(WORK / f"bench-{split}" / "report.json")}
    for name in rows:
        vocab = json.loads((WORK / name.split("+")[0] / "compress.json").read_text())["stages"][-1]["report"].get("vocab") \
            if name.startswith("vocab") else None
        if vocab:
            out["splits"]["test"]["table"][name]["vocab"] = {k: vocab[k] for k in ("size", "size_limit",
                                                                                    "data_tokens_limited")}
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'row':<30} {'test acc':>8} {'drop':>6} {'agree':>6} {'dev acc':>8} {'drop':>6} {'p50 ms':>7} "
          f"{'x teach':>7} {'x peer':>6} {'MB':>6} {'x size':>6}")
    for name, row in out["splits"]["test"]["table"].items():
        dev = out["splits"]["dev"]["table"][name]
        print(f"{name:<30} {row['accuracy'] * 100:>7.2f}% {row['drop_points']:>6.2f} {row['agreement'] or 1:>6.3f} "
              f"{dev['accuracy'] * 100:>7.2f}% {dev['drop_points']:>6.2f} {row['p50_ms']:>7.3f} "
              f"{row['speedup_vs_teacher']:>7.1f} {row['speedup_vs_peer']:>6.2f} {row['size_mb']:>6.1f} "
              f"{row['size_ratio']:>6.1f}")


if __name__ == "__main__":
    main()
