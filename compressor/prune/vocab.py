"""Vocabulary trimming (``--method vocab``): keep only the tokens a task's data uses, plus every special
token, and rewrite the embedding rows and the tokenizer files to one new, contiguous numbering.

Why it is exact: WordPiece picks, at each position of a word, the longest piece in its vocabulary. A
piece it picked with the full vocabulary is still there after trimming, and any longer candidate was
not in the full vocabulary either, so every word of the data tokenises into the same pieces, now under
new ids; the model's embedding row of each kept token moves to its new id, so the model computes the
same numbers. A word with a piece that was dropped is covered by other kept pieces: every
single-character piece is kept, so an unseen word is spelled out rather than turned into ``[UNK]``
(WordPiece marks a whole word unknown only when it cannot cover it: a character the vocabulary lacks).
``vocab=N`` caps the kept vocabulary at N tokens: the data's rarest tokens are dropped too, so text using
them is spelled out with smaller pieces and is no longer computed exactly as before (the report counts
them: ``data_tokens_limited``). BPE merges and Unigram scores are not rewritten: such tokenizers are
refused (exit 2), naming the type.

The data is read through the task (``Task.batches``: its text columns, pair columns, pre-split words),
so this module never knows which task it serves; the embedding location is the family's
(``Family.trim_vocab``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from compressor.errors import BadInputError, RuntimeFailureError

NO_TRUNCATION = 1 << 20  # tokens per row when reading data for its vocabulary: every token counts
READ_BATCH = 256
# Tokenizers whose vocabulary is a plain token -> id map that can be renumbered without changing how
# any kept text tokenises (tokenizer.json ``model.type``, or the slow tokenizer's class).
WORDPIECE_TYPES = ("WordPiece",)
WORDPIECE_CLASSES = ("BertTokenizer", "DistilBertTokenizer")
VOCAB_FILE = "vocab.txt"


@dataclass(frozen=True)
class KeptVocab:
    """The kept token ids of the source vocabulary, in their old order (new id = position)."""

    ids: tuple[int, ...]
    size_before: int
    special: int  # special/added tokens kept whether or not the data used them
    characters: int  # single-character pieces kept for the same reason (unseen words spell out)
    data_rows: int
    limited: int = 0  # tokens the data uses that a size limit (vocab=N) left out, the rarest ones

    def mapping(self) -> np.ndarray:
        """old id -> new id (-1 for a dropped token)."""
        table = np.full(self.size_before, -1, dtype=np.int64)
        table[list(self.ids)] = np.arange(len(self.ids))
        return table


def tokenizer_kind(directory: Path) -> str:
    """What kind of tokenizer ``directory`` holds, refusing (exit 2) a type this module cannot rewrite."""
    config = _read_json(directory / "tokenizer_config.json") if (directory / "tokenizer_config.json").is_file() else {}
    cls = config.get("tokenizer_class") or "unknown tokenizer class"
    path = directory / "tokenizer.json"
    if path.is_file():
        model_type = (_read_json(path).get("model") or {}).get("type")
        if model_type not in WORDPIECE_TYPES:
            raise BadInputError(
                f"--method vocab: {path} is a {model_type} tokenizer ({cls}); vocabulary trimming rewrites "
                f"WordPiece (BERT-family) tokenizers only"
            )
        return "tokenizer.json"
    if (directory / VOCAB_FILE).is_file() and cls.removesuffix("Fast") in WORDPIECE_CLASSES:
        return VOCAB_FILE
    raise BadInputError(
        f"--method vocab: {directory}: tokenizer {cls} has neither a WordPiece tokenizer.json nor a BERT "
        f"vocab.txt; vocabulary trimming rewrites WordPiece (BERT-family) tokenizers only"
    )


def data_rows(task: Any, tokenizer: Any, flag: str, spec: Any, label2id: dict[str, int] | None) -> list[np.ndarray]:
    """The token ids of every row of a data file, tokenised the way the task feeds the model (its text
    and pair columns, or pre-split words), special tokens included, untruncated."""
    batches = task.batches(flag, tokenizer, spec, label2id=label2id, samples=None, max_length=NO_TRUNCATION,
                           batch_size=READ_BATCH, require_labels=False)
    rows: list[np.ndarray] = []
    for batch in batches:
        ids, mask = np.asarray(batch["input_ids"]), np.asarray(batch["attention_mask"])
        rows.extend(ids[i][mask[i] > 0] for i in range(len(ids)))
    return rows


def special_ids(tokenizer: Any, model_config: dict[str, Any]) -> set[int]:
    """Ids kept whatever the data says: special and added tokens, and any ``*_token_id`` of the config."""
    ids = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ids |= {v for k, v in model_config.items() if k.endswith("_token_id") and isinstance(v, int) and v >= 0}
    return ids


def character_ids(tokenizer: Any) -> set[int]:
    """The single-character pieces (``a``, ``##a``): kept so that a word the data never showed splits
    into characters instead of becoming ``[UNK]`` (WordPiece can cover any word spelled with them).
    They cost a few hundred embedding rows."""
    ids = set()
    for token, index in tokenizer.get_vocab().items():
        if len(token.removeprefix("##")) == 1:
            ids.add(index)
    return ids


def always_kept(tokenizer: Any, model_config: dict[str, Any]) -> tuple[set[int], set[int]]:
    """The ids every trimmed vocabulary keeps, whatever the data: (special ids, single-character ids)."""
    size = int(model_config.get("vocab_size") or len(tokenizer))
    return ({i for i in special_ids(tokenizer, model_config) if 0 <= i < size},
            {i for i in character_ids(tokenizer) if 0 <= i < size})


def keep(rows: Iterable[np.ndarray], tokenizer: Any, model_config: dict[str, Any],
         size: int | None = None) -> KeptVocab:
    """The special tokens, the single-character pieces and the tokens ``rows`` use; with ``size``, at most
    that many in all: the data's most frequent tokens fill what the specials and characters leave (ties
    by id), so the rarest are spelled out with smaller pieces instead of keeping a row each."""
    rows = list(rows)
    vocab_size = int(model_config.get("vocab_size") or len(tokenizer))
    ids, counts = np.unique(np.concatenate(rows), return_counts=True) if rows else (np.array([], int), np.array([], int))
    special, characters = always_kept(tokenizer, model_config)
    seen = {int(i) for i in ids if 0 <= i < vocab_size}
    always = special | characters
    if size is not None:
        if size < len(always):
            raise BadInputError(f"--method vocab={size}: below the {len(always):,} tokens always kept ({len(special)} "
                                f"special, {len(characters - special):,} single characters); give at least that")
        # Most frequent first, then the lower id (np.lexsort: the last key is the primary one).
        ranked = [int(ids[j]) for j in np.lexsort((ids, -counts)) if int(ids[j]) in seen - always]
        seen_kept = set(ranked[: size - len(always)])
    else:
        seen_kept = seen - always
    kept = sorted(always | seen_kept)
    return KeptVocab(ids=tuple(kept), size_before=vocab_size, special=len(special - seen),
                     characters=len(characters - seen - special), data_rows=len(rows),
                     limited=len(seen - always - seen_kept))


def dropped(rows: Iterable[np.ndarray], kept: KeptVocab) -> dict[str, int]:
    """How many rows hold at least one token outside the kept vocabulary, and how many such tokens."""
    table = kept.mapping()
    rows = list(rows)
    missing = [int((table[np.clip(r, 0, len(table) - 1)] < 0).sum() + (r >= len(table)).sum()) for r in rows]
    return {"rows": len(rows), "rows_touched": sum(m > 0 for m in missing), "tokens_dropped": sum(missing)}


# -- tokenizer files ------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable JSON file ({exc})") from exc


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _remap_processor(node: Any, table: np.ndarray) -> Any:
    """Token ids inside a post-processor (TemplateProcessing ``special_tokens``, BertProcessing's
    ``cls``/``sep`` pairs, a Sequence of them), renumbered."""
    if isinstance(node, list):
        return [_remap_processor(item, table) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "ids" and isinstance(value, list):
            result[key] = [int(table[i]) for i in value]
        elif key in ("cls", "sep") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            result[key] = [value[0], int(table[value[1]])]
        else:
            result[key] = _remap_processor(value, table)
    return result


def rewrite_tokenizer(directory: Path, kept: KeptVocab) -> None:
    """Renumber the tokenizer files ``save_pretrained`` wrote in ``directory`` to the kept vocabulary."""
    table = kept.mapping()
    path = directory / "tokenizer.json"
    tokens: list[str] | None = None
    if path.is_file():
        data = _read_json(path)
        vocab: dict[str, int] = data["model"]["vocab"]
        by_id = {i: t for t, i in vocab.items()}
        tokens = [by_id[i] for i in kept.ids]
        data["model"]["vocab"] = {t: n for n, t in enumerate(tokens)}
        for added in data.get("added_tokens") or []:
            added["id"] = int(table[added["id"]])
        if data.get("post_processor"):
            data["post_processor"] = _remap_processor(data["post_processor"], table)
        if isinstance(data.get("padding"), dict) and "pad_id" in data["padding"]:
            data["padding"]["pad_id"] = int(table[data["padding"]["pad_id"]])
        _write_json(path, data)
    vocab_file = directory / VOCAB_FILE
    if vocab_file.is_file():
        if tokens is None:
            lines = vocab_file.read_text(encoding="utf-8").split("\n")
            tokens = [lines[i] for i in kept.ids]
        vocab_file.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        config = _read_json(config_path)
        if isinstance(config.get("added_tokens_decoder"), dict):
            config["added_tokens_decoder"] = {str(int(table[int(k)])): v
                                              for k, v in config["added_tokens_decoder"].items()}
        _write_json(config_path, config)


def check_tokenizer(directory: Path, source_tokenizer: Any, rows_text: list[Any], kept: KeptVocab) -> None:
    """The rewritten tokenizer, loaded the way a user would (fast, and slow where a vocab.txt exists),
    must give the renumbered ids of the source's on every text whose tokens are all kept, and keep every
    special token;
    anything else is a bug here (exit 3), never a silently different artifact."""
    from transformers import AutoTokenizer

    table = kept.mapping()
    variants = [True] + ([False] if (directory / VOCAB_FILE).is_file() else [])
    for use_fast in variants:
        new = AutoTokenizer.from_pretrained(directory, local_files_only=True, use_fast=use_fast)
        what = f"{directory} ({type(new).__name__})"
        if len(new) != len(kept.ids):
            raise RuntimeFailureError(f"prune: the trimmed tokenizer {what} has {len(new)} tokens, not {len(kept.ids)}")
        for name in ("unk_token", "pad_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token"):
            old_id = getattr(source_tokenizer, f"{name}_id", None)
            if old_id is not None and getattr(new, f"{name}_id") != int(table[old_id]):
                raise RuntimeFailureError(f"prune: the trimmed tokenizer {what} moved its {name}")
        for text in rows_text:
            old = _encode(source_tokenizer, text)
            if any(i >= len(table) or table[i] < 0 for i in old):
                continue  # a text with a dropped token tokenises differently by design
            if [int(table[i]) for i in old] != _encode(new, text):
                raise RuntimeFailureError(f"prune: the trimmed tokenizer {what} tokenises {text!r} differently")


def _encode(tokenizer: Any, text: Any) -> list[int]:
    if isinstance(text, tuple):
        return tokenizer(*text)["input_ids"]
    if isinstance(text, list):
        return tokenizer(text, is_split_into_words=True)["input_ids"]
    return tokenizer(text)["input_ids"]


def sample_texts(tokenizer: Any, rows: list[np.ndarray], limit: int = 64) -> list[str]:
    """Texts to check the rewritten tokenizer on: the first rows of the data, decoded back (their
    tokens are all kept by construction, since they came from the data)."""
    return [tokenizer.decode(r, skip_special_tokens=True) for r in rows[:limit]]


# -- the model ------------------------------------------------------------------------------------
def trim_model(model: Any, family: Any, kept: KeptVocab) -> None:
    """Keep the embedding rows (and output-head rows, re-tied when they were tied) of the kept tokens,
    at their new ids; the config's vocabulary size and token ids follow."""
    import torch

    index = torch.tensor(kept.ids, dtype=torch.long)
    table = kept.mapping()
    inputs, head = family.vocab_embeddings(model)
    tied = head is not None and head.weight is inputs.weight
    inputs.weight = torch.nn.Parameter(inputs.weight.data.index_select(0, index).clone(),
                                       requires_grad=inputs.weight.requires_grad)
    inputs.num_embeddings = len(kept.ids)
    if getattr(inputs, "padding_idx", None) is not None:
        inputs.padding_idx = int(table[inputs.padding_idx])
    if head is not None:
        head.weight = inputs.weight if tied else torch.nn.Parameter(head.weight.data.index_select(0, index).clone())
        if getattr(head, "bias", None) is not None:
            head.bias = torch.nn.Parameter(head.bias.data.index_select(0, index).clone())
        head.out_features = len(kept.ids)
    config = model.config
    config.vocab_size = len(kept.ids)
    for key, value in config.to_dict().items():
        if key.endswith("_token_id") and isinstance(value, int) and 0 <= value < len(table):
            setattr(config, key, int(table[value]))
