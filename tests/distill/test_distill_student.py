"""Making students: teacher layers, configs, checkpoints (pruned ones too); batching and the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import factories
from compressor.artifact import open_artifact
from compressor.data import DataSpec
from compressor.distill import DistillConfig
from compressor.distill.batches import BucketBatchSampler
from compressor.distill.student import (
    FROM_CHECKPOINT,
    FROM_CONFIG,
    build_student,
    default_init_layers,
    even_spread,
    every_kth,
    plan_student,
    spread_with_ends,
)
from compressor.distill.teacher_cache import TeacherCache
from compressor.errors import BadInputError
from compressor.families import bert, gpt2
from compressor.loading import load_model


def pruned_student(directory: Path) -> Path:
    """A 2-layer tiny BERT with a narrower FFN (48 vs 128) and pruned heads, as a prune stage leaves it."""
    from transformers import BertConfig, BertForSequenceClassification

    factories.tiny_bert(directory, layers=2, seed=3)
    cfg = BertConfig.from_pretrained(directory)
    cfg.intermediate_size = 48
    torch.manual_seed(3)
    model = BertForSequenceClassification(cfg)
    model.prune_heads({0: [0, 1], 1: [3]})
    model.save_pretrained(directory)
    return directory


def config(path: Path, **fields) -> DistillConfig:
    return DistillConfig(data=DataSpec(str(path)), **fields)


def test_layer_spreads_and_the_per_family_default():
    assert even_spread(3, 6) == [1, 3, 5]
    assert even_spread(2, 6) == [2, 5]
    assert even_spread(1, 4) == [3]
    assert even_spread(4, 4) == [0, 1, 2, 3]
    assert spread_with_ends(3, 6) == [0, 3, 5]
    assert spread_with_ends(4, 12) == [0, 4, 7, 11]
    assert spread_with_ends(1, 4) == [3]
    assert every_kth(3, 6) == [0, 2, 4]
    assert every_kth(2, 6) == [0, 3]
    assert every_kth(6, 12) == [0, 2, 4, 6, 8, 10]
    assert default_init_layers("bert", 3, 6) == [0, 2, 4]
    assert default_init_layers("gpt2", 3, 6) == [0, 3, 5]


def test_student_from_teacher_layers_copies_chosen_blocks_embeddings_and_head(tiny_bert_dir, sst_file):
    teacher = open_artifact(tiny_bert_dir)
    plan = plan_student(config(sst_file, layer_map=(0, 2)), teacher)
    model = load_model(teacher)
    student = build_student(plan, model, teacher)
    assert student.config.num_hidden_layers == 2 and len(bert.layers(student)) == 2
    t_blocks, s_blocks = bert.layers(model), bert.layers(student)
    for s_index, t_index in enumerate((0, 2)):
        for (name, s_param), t_param in zip(s_blocks[s_index].named_parameters(), t_blocks[t_index].parameters()):
            assert torch.equal(s_param, t_param), name
        assert s_blocks[s_index].attention.self.layer_idx == s_index
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.classifier.weight, model.classifier.weight)
    assert len(bert.layers(model)) == 4  # the teacher is untouched


def test_gpt2_student_from_teacher_blocks(tiny_gpt2_dir, corpus_file):
    teacher = open_artifact(tiny_gpt2_dir)
    plan = plan_student(config(corpus_file), teacher)
    assert plan.layer_map == (0, 3)
    model = load_model(teacher)
    student = build_student(plan, model, teacher)
    assert student.config.n_layer == 2 and len(gpt2.layers(student)) == 2
    assert [b.attn.layer_idx for b in gpt2.layers(student)] == [0, 1]
    ids = torch.randint(0, student.config.vocab_size, (2, 10))
    assert student(ids).logits.shape == (2, 10, student.config.vocab_size)
    assert student.lm_head.weight.data_ptr() == student.transformer.wte.weight.data_ptr()  # still tied


def test_student_config_is_random_init_with_teacher_labels(tiny_bert_dir, sst_file, tmp_path):
    teacher = open_artifact(tiny_bert_dir)
    cfg = dict(teacher.config, num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32)
    cfg.pop("id2label"), cfg.pop("label2id"), cfg.pop("architectures")
    (tmp_path / "small.json").write_text(json.dumps(cfg))
    plan = plan_student(config(sst_file, student_config=str(tmp_path / "small.json")), teacher)
    assert plan.source == FROM_CONFIG and plan.layers == 1 and plan.width == 16 and plan.layer_map == (3,)
    student = build_student(plan, load_model(teacher), teacher)
    assert student.config.hidden_size == 16
    assert student.config.label2id == {"0": 0, "1": 1}
    assert type(student).__name__ == "BertForSequenceClassification"


def test_pruned_checkpoint_works_as_student(tiny_bert_dir, sst_file, tmp_path):
    """A structurally pruned model (fewer heads, narrower FFN) of the same family is a valid student."""
    narrow = pruned_student(tmp_path / "narrow")
    teacher = open_artifact(tiny_bert_dir)
    plan = plan_student(config(sst_file, student=str(tmp_path / "narrow")), teacher)
    assert plan.source == FROM_CHECKPOINT and plan.layer_map == (1, 3)
    student = build_student(plan, load_model(teacher), teacher)
    assert bert.layers(student)[0].attention.self.num_attention_heads == 2
    assert bert.layers(student)[1].intermediate.dense.out_features == 48
    assert narrow.exists()


@pytest.mark.parametrize("fields, message", [
    ({"student_layers": 4}, "--student-layers 4: must be fewer than the teacher's 4 layers"),
    ({"layer_map": (0, 7)}, "--layer-map 0,7: index 7 is out of range"),
    ({"student_layers": 3, "layer_map": (0, 1)}, "names 2 layers"),
])
def test_plan_rejects_bad_layer_choices(tiny_bert_dir, sst_file, fields, message):
    with pytest.raises(BadInputError, match=message):
        plan_student(config(sst_file, **fields), open_artifact(tiny_bert_dir))


@pytest.mark.parametrize("fields, message", [
    ({"student_layers": 0}, "--student-layers 0: must be at least 1"),
    ({"layer_map": (1, 1)}, "--layer-map 1,1: repeated indices"),
    ({"layer_map": (-1, 2)}, "must be >= 0"),
    ({"student": "x", "student_layers": 2}, "choose one way"),
    ({"alpha_kd": 0.0}, "at least one loss"),
    ({"hidden_loss": "l1"}, "--hidden-loss 'l1'"),
    ({"mixed_precision": "fp16"}, "mixed precision is for GPUs"),
])
def test_config_rejects_bad_values(sst_file, fields, message):
    with pytest.raises(BadInputError, match=message):
        config(sst_file, **fields)


def test_bucket_sampler_is_seeded_complete_and_groups_lengths():
    lengths = [(i * 37) % 61 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=5, pool=8)
    first, again, other = sampler.batches(0), sampler.batches(0), sampler.batches(1)
    assert first == again and first != other
    flat = [i for batch in first for i in batch]
    assert sorted(flat) == list(range(1000))
    assert len(first[-1]) == 1000 % 16 and all(len(b) == 16 for b in first[:-1])  # the short batch is last
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread < 10  # random batches of these lengths spread ~50
    sampler.epoch = 1
    assert list(iter(sampler)) == other


def test_teacher_cache_serves_a_batch_only_when_all_rows_are_cached():
    cache = TeacherCache()
    cache.put([3, 7], {"logits": torch.tensor([[1.0, 2.0], [3.0, 4.0]])})
    assert cache.get([3, 8], "cpu") is None
    got = cache.get([7, 3], "cpu")
    assert got["logits"].tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert cache.stats() == {"rows": 2, "bytes": 16, "batch_hits": 1, "batch_misses": 1, "rows_loaded": 0}
    small = TeacherCache(limit_bytes=8)
    small.put([0, 1], {"logits": torch.zeros(2, 2)})
    assert len(small) == 1
