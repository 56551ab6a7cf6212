"""The MiniLM-v2 attention-relation loss: the pure function on plain tensors, and one tiny run."""

from __future__ import annotations

import json

import torch

from compressor.distill.losses import relation_kl


def _qkv(seed: int, width: int = 16, batch: int = 2, length: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, length, width, generator=g) for _ in range(3)]


def test_relation_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    teacher = _qkv(0)
    assert relation_kl(teacher, [t.clone() for t in teacher], heads=4).item() < 1e-6
    assert relation_kl(_qkv(1), teacher, heads=4).item() > 1e-3


def test_relation_loss_compares_different_widths_and_ignores_padding():
    teacher, student = _qkv(0, width=24), _qkv(1, width=8)  # 4 relation heads of 6 and of 2 dims
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = relation_kl(student, teacher, heads=4, mask=mask)
    # Changing padded positions of either model changes nothing.
    noisy = [s.clone() for s in student]
    for s in noisy:
        s[0, 3:] += 100.0
    assert torch.allclose(relation_kl(noisy, teacher, heads=4, mask=mask), base, atol=1e-6)
    assert torch.isfinite(base) and base.item() > 0


def test_relation_loss_gradients_flow_to_every_student_projection():
    teacher = _qkv(0)
    student = [s.requires_grad_() for s in _qkv(1)]
    relation_kl(student, teacher, heads=2).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_distill_with_the_relation_loss(run_cli, tiny_bert_dir, sst_file, tmp_path):
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--student-layers", "2",
                     "--alpha-relation", "1", "--relation-heads", "8", "--relation-layer", "2", "--max-steps", "3",
                     "--batch-size", "16", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["losses"]["relation"] == {"weight": 1.0, "heads": 8, "teacher_layer": 2}
    assert report["training"]["teacher_cache"] is None  # the relation loss needs the live teacher


def test_relation_loss_bad_inputs_exit_2(run_cli, tiny_bert_dir, tiny_gpt2_dir, sst_file, corpus_file, tmp_path):
    common = ("--max-steps", "1", "--batch-size", "16", "--alpha-relation", "1")
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "a", "--data", sst_file, "--relation-layer", "9",
                     *common)
    assert result.exit_code == 2 and "--relation-layer 9" in result.stderr
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "b", "--data", sst_file, "--relation-heads", "5",
                     *common)
    assert result.exit_code == 2 and "--relation-heads 5" in result.stderr and "not divisible" in result.stderr
    result = run_cli("distill", tiny_gpt2_dir, "-o", tmp_path / "c", "--data", corpus_file, *common)
    assert result.exit_code == 2 and "gpt2 family" in result.stderr
    assert not any(p.name.startswith((".a", ".b", ".c", "a", "b", "c")) for p in tmp_path.iterdir())
