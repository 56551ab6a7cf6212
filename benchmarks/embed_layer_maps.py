"""Which teacher layers to copy into a 3-layer all-MiniLM-L6-v2 student (issue 15).

Each candidate layer map is scored untrained: the teacher with only those layers kept, Spearman x100 of
the cosine of its pooled, normalised embeddings against the gold scores of the first 2,000 STS-B *train*
pairs (never dev, which the recipe's bench reports). The map that starts closest to the teacher is the
one pipelines/minilm-embed.yaml uses. Prints a table and writes benchmarks/results/embed_layer_maps.json.

    python benchmarks/embed_layer_maps.py
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ASSETS", ROOT.parent / "shared" / "assets"))
MAPS = [(0, 2, 4), (1, 3, 5), (0, 2, 5), (0, 3, 5), (0, 1, 5), (0, 4, 5)]
PAIRS = 2000


def main() -> None:
    import torch
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    with (ASSETS / "stsb" / "train.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:PAIRS]
    first, second = [r["sentence1"] for r in rows], [r["sentence2"] for r in rows]
    gold = [float(r["score"]) for r in rows]
    model = SentenceTransformer(str(ASSETS / "teachers" / "minilm-l6-embed"), device="cpu")
    encoder = model[0].auto_model.encoder
    layers = list(encoder.layer)

    def score() -> float:
        a = model.encode(first, batch_size=64, normalize_embeddings=True)
        b = model.encode(second, batch_size=64, normalize_embeddings=True)
        return round(float(spearmanr((a * b).sum(1), gold).statistic) * 100, 2)

    results = {"pairs": PAIRS, "data": "stsb/train.tsv (first pairs)", "teacher": score(), "maps": {}}
    for layer_map in MAPS:
        encoder.layer = torch.nn.ModuleList([layers[i] for i in layer_map])
        results["maps"][",".join(map(str, layer_map))] = score()
    encoder.layer = torch.nn.ModuleList(layers)
    out = ROOT / "benchmarks" / "results" / "embed_layer_maps.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"| layers | Spearman (untrained, STS-B train pairs) |\n|---|---|\n| teacher (all 6) | {results['teacher']} |")
    for name, value in results["maps"].items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
