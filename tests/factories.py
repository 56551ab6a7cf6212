"""Tiny random BERT, GPT-2 and Llama-family (llama, qwen2, mistral) checkpoints with tiny local tokenizers, built in code (no network)."""

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


def bert_tokenizer(directory: Path, extra: list[str] | None = None):
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "'", "!", "?"] + sorted(set(WORDS))
    if extra:  # names, and sub-word pieces so some words split into several tokens
        vocab += sorted(set(extra) - set(vocab)) + ["##s", "##a"]
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


def tiny_llama(directory: Path, *, model_type: str = "llama", layers: int = 4, seed: int = 0, hidden: int = 64,
               heads: int = 8, kv_heads: int = 4, ffn: int = 96, sliding_window: int = 32,
               rope_scaling: dict | None = None) -> Path:
    """A tiny Llama-family causal LM: ``llama`` (untied), ``qwen2`` (q/k/v biases, tied embeddings) or
    ``mistral`` (sliding window of ``sliding_window`` tokens); GQA with ``heads``/``kv_heads``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    tokenizer = gpt2_tokenizer(directory)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=ffn,
                  max_position_embeddings=128, bos_token_id=tokenizer.eos_token_id,
                  eos_token_id=tokenizer.eos_token_id, rope_scaling=rope_scaling)
    extra = {"llama": dict(tie_word_embeddings=False),
             "qwen2": dict(tie_word_embeddings=True, use_sliding_window=False),
             "mistral": dict(tie_word_embeddings=False, sliding_window=sliding_window)}[model_type]
    config = AutoConfig.for_model(model_type, **common, **extra)
    config.architectures = [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                             "mistral": "MistralForCausalLM"}[model_type]]
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # random init is near-uniform; larger weights give heads and neurons distinct roles
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0, 0.08)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
PEOPLE = ["anna", "bob", "carl"]
PLACES = ["paris", "rome", "oslo"]


def tagged_sentences(rows: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences of known words with IOB2 person/place tags ("anna bob" is one two-word person)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        words, tags = [], []
        for _ in range(rng.randint(3, 8)):
            kind = rng.random()
            if kind < 0.2:
                words += [rng.choice(PEOPLE), rng.choice(PEOPLE)]
                tags += ["B-PER", "I-PER"]
            elif kind < 0.35:
                words.append(rng.choice(PLACES))
                tags.append("B-LOC")
            else:
                words.append(rng.choice(FILLER + NOUNS))
                tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path: Path, rows: int, seed: int = 0) -> Path:
    """CoNLL-2003 layout: -DOCSTART-, token POS chunk NER, blank lines between sentences."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in tagged_sentences(rows, seed):
        lines += [f"{w} NN I-NP {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tagged_jsonl(path: Path, rows: int, seed: int = 0, *, ids: bool = False) -> Path:
    import json

    with path.open("w") as handle:
        for words, tags in tagged_sentences(rows, seed):
            handle.write(json.dumps({"tokens": words, "tags": [TAGS.index(t) for t in tags] if ids else tags}) + "\n")
    return path


def tiny_bert_tagger(directory: Path, *, layers: int = 4, seed: int = 0, hidden: int = 32, heads: int = 4) -> Path:
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    tokenizer = bert_tokenizer(directory, extra=PEOPLE + PLACES)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 4, max_position_embeddings=128,
                        num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    BertForTokenClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_sts(path: Path, rows: int, seed: int = 0) -> Path:
    """STS-B layout (sentence1, sentence2, score 0-5): similar pairs share their adjective's polarity."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["index", "sentence1", "sentence2", "score"])
        for i in range(rows):
            a, b = rng.randint(0, 1), rng.randint(0, 1)
            score = round(rng.uniform(3.0, 5.0) if a == b else rng.uniform(0.0, 2.0), 2)
            writer.writerow([i, sentence(rng, a), sentence(rng, b), score])
    return path


def tiny_sentence_transformer(directory: Path, *, layers: int = 4, seed: int = 0, hidden: int = 32, heads: int = 4,
                              pooling: bool = True) -> Path:
    """A sentence-transformers checkpoint: BertModel at the root, mean pooling, Normalize."""
    import json

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = bert_tokenizer(directory)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 4, max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    if pooling:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
             "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    return directory
