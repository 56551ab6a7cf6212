"""Tiny random BERT and GPT-2 checkpoints with tiny local tokenizers, built in code (no network)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun", "moving", "bright", "clever", "warm"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor", "weak", "messy", "flat", "tired", "cold"]
NOUNS = ["film", "movie", "plot", "cast", "story", "book", "show", "song", "meal", "game"]
FILLER = ["the", "a", "this", "that", "was", "is", "really", "very", "quite", "and", "but", "so", "it", "not"]
WORDS = POSITIVE + NEGATIVE + NOUNS + FILLER


def sentence(rng: random.Random, label: int) -> str:
    adjective = rng.choice(POSITIVE if label else NEGATIVE)
    return f"{rng.choice(['the', 'this', 'that'])} {rng.choice(NOUNS)} was {rng.choice(['really', 'very', 'quite'])} {adjective}"


def write_sst(path: Path, rows: int, seed: int = 0, *, label_column: str = "label") -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["sentence", label_column])
        for i in range(rows):
            label = i % 2
            writer.writerow([sentence(rng, label), label])
    return path


def write_corpus(path: Path, documents: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    docs = [" ".join(sentence(rng, rng.randint(0, 1)) + "." for _ in range(6)) for _ in range(documents)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def bert_tokenizer(directory: Path):
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "'", "!", "?"] + sorted(set(WORDS))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = 128
    return tokenizer


def gpt2_tokenizer(directory: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    corpus = [sentence(rng, i % 2) + "." for i in range(400)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=320, min_frequency=1, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(directory))
    tokenizer = GPT2TokenizerFast(
        vocab_file=str(directory / "vocab.json"),
        merges_file=str(directory / "merges.txt"),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.model_max_length = 128
    return tokenizer


def tiny_bert(directory: Path, *, layers: int = 4, seed: int = 0, hidden: int = 32, heads: int = 4) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = bert_tokenizer(directory)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "0", 1: "1"},
        label2id={"0": 0, "1": 1},
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_gpt2(directory: Path, *, layers: int = 4, seed: int = 0, hidden: int = 32, heads: int = 4) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tokenizer = gpt2_tokenizer(directory)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=128,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
