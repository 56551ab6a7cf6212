"""Data files of every supported format, and the errors for bad ones."""

from __future__ import annotations

import json

import pytest

from compressor.data import DataSpec, load_classification, load_texts, read_table
from compressor.data.batching import classification_batches, lm_blocks
from compressor.errors import BadInputError
from compressor.loading import load_tokenizer

LABELS = {"0": 0, "1": 1}
ROWS = [{"sentence": 'he said "great', "label": 1}, {"sentence": "it's bad", "label": 0}]


def _write(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".tsv"):
        path.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in ROWS))
    elif name.endswith(".csv"):
        path.write_text('sentence,label\n"he said ""great",1\nit\'s bad,0\n')
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("name", ["d.tsv", "d.csv", "d.jsonl", "d.parquet"])
def test_formats_give_the_same_rows(tmp_path, name):
    data = load_classification(DataSpec(str(_write(tmp_path, name))), label2id=LABELS, require_labels=True)
    assert data.texts == ['he said "great', "it's bad"]
    assert data.labels == [1, 0]


def test_plain_text_documents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first doc\nline two\n\n\nsecond doc\n")
    assert load_texts(DataSpec(str(path))) == ["first doc\nline two", "second doc"]


def test_jsonl_text_column_strips_html_breaks(tmp_path):
    path = tmp_path / "imdb.jsonl"
    path.write_text(json.dumps({"text": "a<br />b", "label": 1}) + "\n")
    assert load_texts(DataSpec(str(path))) == ["a\nb"]


def test_pair_and_custom_columns(tmp_path):
    path = tmp_path / "rte.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\tA man runs.\tA person moves.\tentailment\n")
    data = load_classification(
        DataSpec(str(path)), label2id={"entailment": 0, "not_entailment": 1}, require_labels=True
    )
    assert data.pairs == ["A person moves."] and data.labels == [0]


def test_missing_column_names_it_and_the_columns(tmp_path):
    path = _write(tmp_path, "d.tsv")
    with pytest.raises(BadInputError) as err:
        load_classification(DataSpec(str(path), text_column="review_text"), label2id=LABELS, require_labels=True)
    assert "'review_text'" in err.value.message and "sentence, label" in err.value.message


def test_missing_label_column(tmp_path):
    path = tmp_path / "nolabel.tsv"
    path.write_text("sentence\nfine\n")
    with pytest.raises(BadInputError, match="label column 'label' not found"):
        load_classification(DataSpec(str(path)), label2id=LABELS, require_labels=True)


def test_label_outside_label_set(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabel\nok\t1\nodd\t7\n")
    with pytest.raises(BadInputError) as err:
        load_classification(DataSpec(str(path)), label2id=LABELS, require_labels=True)
    assert "row 2" in err.value.message and "'7'" in err.value.message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        read_table(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(BadInputError, match="no such data file"):
        read_table(tmp_path / "nope.tsv")
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(BadInputError, match="unknown data format .xlsx"):
        read_table(odd)


def test_ragged_tsv_names_the_line(tmp_path):
    path = tmp_path / "ragged.tsv"
    path.write_text("sentence\tlabel\nok\t1\nextra\t0\tfield\n")
    with pytest.raises(BadInputError, match="line 3 has 3 fields"):
        read_table(path)


def test_classification_batches_pad_dynamically(tiny_bert_dir, sst_file):
    tokenizer = load_tokenizer(tiny_bert_dir)
    data = load_classification(DataSpec(str(sst_file)), label2id=LABELS, require_labels=True)
    batches = list(classification_batches(tokenizer, data, batch_size=16, max_length=64))
    assert sum(len(b["input_ids"]) for b in batches) == 64
    for batch in batches:
        width = batch["input_ids"].shape[1]
        assert batch["attention_mask"].shape == (len(batch["input_ids"]), width)
        assert batch["attention_mask"][:, -1].any()  # padded only to the longest row


def test_lm_blocks_shape(tiny_gpt2_dir, corpus_file):
    tokenizer = load_tokenizer(tiny_gpt2_dir)
    blocks = lm_blocks(tokenizer, load_texts(DataSpec(str(corpus_file))), block_size=32, max_blocks=5)
    assert blocks.shape == (5, 32)


def test_lm_blocks_too_little_text(tiny_gpt2_dir):
    tokenizer = load_tokenizer(tiny_gpt2_dir)
    with pytest.raises(BadInputError, match="fewer than one block"):
        lm_blocks(tokenizer, ["hi"], block_size=64)


def test_hub_name_without_hub_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(BadInputError, match="glue:sst2: no such file, and hub datasets need the 'datasets' package"):
        read_table("glue:sst2")
