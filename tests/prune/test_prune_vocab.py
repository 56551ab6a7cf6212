"""``compress prune --method vocab``: the trimmed artifact loads without this tool and computes exactly
the source's outputs on text whose tokens are all kept; bad inputs exit 2 and leave nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import factories
from conftest import tree_hash


def _subset(path: Path, rows: int) -> Path:
    """The first ``rows`` sentences of a fresh SST-style file: a vocabulary smaller than the tokenizer's."""
    full = factories.write_sst(path.with_suffix(".full.tsv"), 40, seed=3)
    lines = full.read_text().splitlines()
    path.write_text("\n".join(lines[: rows + 1]) + "\n")
    return path


def _sentences(path: Path) -> list[str]:
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:]]


def test_vocab_trim_keeps_logits_exactly_and_loads_with_auto_classes(run_cli, tiny_bert_dir, sst_file, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = _subset(tmp_path / "few.tsv", 6)
    before = tree_hash(tiny_bert_dir)
    out = tmp_path / "out"
    result = run_cli("prune", tiny_bert_dir, "-o", out, "--method", "vocab", "--data", data, "--eval-data", sst_file,
                     "--json")
    assert result.exit_code == 0, result.output
    assert tree_hash(tiny_bert_dir) == before  # the input is never modified
    full = json.loads(result.stdout)
    report = full["vocab"]
    assert full["size_bytes"] < full["size_bytes_before"]
    source_tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert report["size_before"] == len(source_tok) and report["size"] < report["size_before"]
    assert report["eval_rows"] == 64 and 0 < report["eval_rows_touched"] <= 64 and report["eval_tokens_dropped"] > 0

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    source = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    assert model.config.vocab_size == report["size"] == model.get_input_embeddings().weight.shape[0]
    assert len((out / "vocab.txt").read_text().splitlines()) == report["size"]
    for use_fast in (True, False):
        tok = AutoTokenizer.from_pretrained(out, use_fast=use_fast)
        assert len(tok) == report["size"] and tok.pad_token_id == 0 and tok.unk_token == "[UNK]"
        batch_new = tok(_sentences(data), padding=True, return_tensors="pt")
        batch_old = source_tok(_sentences(data), padding=True, return_tensors="pt")
        assert tok.unk_token_id not in batch_new["input_ids"]
        with torch.no_grad():
            assert torch.equal(model(**batch_new).logits, source(**batch_old).logits)
    # Single-character pieces stay whether or not --data used them (an unseen word is spelled out with
    # them); a word that no kept piece covers becomes the unknown token.
    characters = {t for t in source_tok.get_vocab() if len(t.removeprefix("##")) == 1}
    assert {".", ",", "'", "!", "?"} <= characters
    seen = {t for text in _sentences(data) for t in source_tok.tokenize(text)}
    assert characters <= set((out / "vocab.txt").read_text().splitlines())
    assert report["characters_kept"] == len(characters - seen)
    assert tok("?!")["input_ids"][1:3] == [tok.convert_tokens_to_ids("?"), tok.convert_tokens_to_ids("!")]
    assert tok("zzz")["input_ids"][1] == tok.unk_token_id


def test_vocab_size_limit_keeps_the_most_frequent_tokens(run_cli, tiny_bert_dir, tmp_path):
    """vocab=N keeps N tokens: specials and single characters, then the data's most frequent tokens; the
    rarest are dropped like unseen words (spelled out with kept pieces; this test vocabulary has no letter
    pieces, so [UNK]) and counted in the report."""
    import collections

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = _subset(tmp_path / "few.tsv", 12)
    source_tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    always = set(source_tok.all_special_tokens) | {t for t in source_tok.get_vocab() if len(t.removeprefix("##")) == 1}
    counts = collections.Counter(t for text in _sentences(data) for t in source_tok.tokenize(text))
    words = {t: c for t, c in counts.items() if t not in always}
    assert len(words) > 10
    limit = len(always) + 5
    out = tmp_path / "out"
    result = run_cli("prune", tiny_bert_dir, "-o", out, "--method", f"vocab={limit}", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    full = json.loads(result.stdout)
    report = full["vocab"]
    assert full["methods"] == f"vocab={limit}"
    assert report["size"] == report["size_limit"] == limit
    assert report["data_tokens_limited"] == len(words) - 5
    kept = set((out / "vocab.txt").read_text().splitlines())
    assert len(kept) == limit and always <= kept
    kept_words = [c for t, c in words.items() if t in kept]
    dropped = [c for t, c in words.items() if t not in kept]
    assert len(kept_words) == 5 and min(kept_words) >= max(dropped)
    tok = AutoTokenizer.from_pretrained(out)
    common = max(words, key=lambda t: (words[t], -source_tok.convert_tokens_to_ids(t)))
    rare = next(t for t in words if t not in kept and not t.startswith("##"))
    assert tok(f"{common} {rare}")["input_ids"][1:-1] == [tok.convert_tokens_to_ids(common), tok.unk_token_id]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.vocab_size == limit
    assert model(**tok(_sentences(data), padding=True, return_tensors="pt")).logits.shape == (12, 2)


def test_vocab_composes_with_structural_pruning(run_cli, tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = _subset(tmp_path / "few.tsv", 6)
    out = tmp_path / "out"
    result = run_cli("prune", tiny_bert_dir, "-o", out, "--method", "heads=0.25,vocab", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["methods"] == "heads=0.25,vocab" and report["parameters"] < report["parameters_before"]
    assert report["size_bytes"] < report["size_bytes_before"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model(**tok(_sentences(data)[0], return_tensors="pt")).logits.shape == (1, 2)


def test_vocab_trim_of_a_sentence_transformer(run_cli, tmp_path):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    src = factories.tiny_sentence_transformer(tmp_path / "st")
    texts = _sentences(_subset(tmp_path / "few.tsv", 5))
    (tmp_path / "few.txt").write_text("\n".join(texts) + "\n")
    result = run_cli("prune", src, "-o", tmp_path / "out", "--method", "vocab", "--data", tmp_path / "few.txt")
    assert result.exit_code == 0, result.output
    trimmed, source = SentenceTransformer(str(tmp_path / "out")), SentenceTransformer(str(src))
    assert len(trimmed.tokenizer) < len(source.tokenizer)
    np.testing.assert_array_equal(trimmed.encode(texts), source.encode(texts))


@pytest.mark.parametrize("case", ["no-data", "amount", "too-small", "gpt2", "bpe"])
def test_vocab_bad_inputs_exit_2(case, run_cli, tiny_bert_dir, tiny_gpt2_dir, sst_file, corpus_file, tmp_path):
    src, data, method, expect = tiny_bert_dir, sst_file, "vocab", "--method vocab"
    if case == "no-data":
        data, expect = None, "needs --data"
    elif case == "amount":
        method, expect = "vocab=0.3", "takes no amount"
    elif case == "too-small":
        method, expect = "vocab=10", "below the"
    elif case == "gpt2":
        src, data, expect = tiny_gpt2_dir, corpus_file, "gpt2 family"
    else:  # a BERT model whose tokenizer is byte-level BPE (as RoBERTa's): its merges cannot be renumbered
        src = tmp_path / "bpe"
        shutil.copytree(tiny_bert_dir, src)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (src / name).unlink(missing_ok=True)
        factories.gpt2_tokenizer(src).save_pretrained(src)
        expect = "BPE tokenizer"
    args = ["prune", src, "-o", tmp_path / "out", "--method", method] + (["--data", data] if data else [])
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.stderr and "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))]
