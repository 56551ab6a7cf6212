"""Family detection and safe checkpoint loading."""

from __future__ import annotations

import json
import os

import pytest
import torch

from compressor import families
from compressor.artifact import open_artifact
from compressor.errors import BadInputError
from compressor.loading import load_model


@pytest.mark.parametrize(
    ("config", "family", "task"),
    [
        ({"model_type": "bert", "architectures": ["BertForSequenceClassification"]}, "bert", "text-classification"),
        ({"model_type": "bert", "architectures": ["BertModel"]}, "bert", "feature-extraction"),
        ({"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"]}, "bert", "text-classification"),
        ({"model_type": "roberta"}, "bert", "feature-extraction"),
        ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "gpt2", "causal-lm"),
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "llama", "causal-lm"),
        ({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}, "llama", "causal-lm"),
        ({"model_type": "mistral"}, "llama", "causal-lm"),
    ],
)
def test_detect(config, family, task):
    found, found_task = families.detect(config)
    assert (found.name, found_task) == (family, task)


def test_unsupported_model_type_names_it_and_the_supported_ones():
    with pytest.raises(BadInputError) as err:
        families.detect({"model_type": "falcon"}, "x/config.json")
    assert "'falcon'" in err.value.message
    assert "bert, distilbert, gpt2, llama, mistral, qwen2, roberta" in err.value.message


def test_unsupported_architecture_of_a_known_family():
    with pytest.raises(BadInputError, match="BertForMaskedLM"):
        families.detect({"model_type": "bert", "architectures": ["BertForMaskedLM"]})


def test_load_tiny_models(tiny_bert_dir, tiny_gpt2_dir):
    bert = load_model(open_artifact(tiny_bert_dir))
    gpt2 = load_model(open_artifact(tiny_gpt2_dir))
    assert type(bert).__name__ == "BertForSequenceClassification"
    assert type(gpt2).__name__ == "GPT2LMHeadModel"
    assert not bert.training


def _to_pickle(directory):
    from safetensors.torch import load_file

    state = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    torch.save(state, directory / "pytorch_model.bin")


def test_pickle_checkpoint_refused_without_flag(bert_copy):
    _to_pickle(bert_copy)
    with pytest.raises(BadInputError, match="--allow-pickle"):
        load_model(open_artifact(bert_copy))


def test_pickle_checkpoint_loads_with_flag(bert_copy, tiny_bert_dir):
    _to_pickle(bert_copy)
    model = load_model(open_artifact(bert_copy), allow_pickle=True)
    reference = load_model(open_artifact(tiny_bert_dir))
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_truncated_safetensors_names_the_file(bert_copy):
    weights = bert_copy / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    with pytest.raises(BadInputError) as err:
        load_model(open_artifact(bert_copy))
    assert str(weights) in err.value.message and "truncated" in err.value.message


def test_config_without_model_type(bert_copy):
    config = json.loads((bert_copy / "config.json").read_text())
    del config["model_type"]
    (bert_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match="model_type"):
        open_artifact(bert_copy)


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BadInputError, match="no model weights"):
        open_artifact(tmp_path)
