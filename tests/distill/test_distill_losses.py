"""The distillation losses on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from compressor.distill import losses


def test_kd_loss_is_zero_for_identical_logits_and_t2_scaled_kl_otherwise():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    assert losses.kd_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    for temperature in (1.0, 2.0, 4.0):
        p = F.softmax(t / temperature, -1)
        manual = (p * (p.log() - F.log_softmax(s / temperature, -1))).sum(-1).mean() * temperature**2
        assert losses.kd_loss(s, t, temperature).item() == pytest.approx(manual.item(), rel=1e-5)


def test_kd_loss_gradient_scale_does_not_vanish_with_temperature():
    # The T^2 factor keeps gradients comparable across temperatures (Hinton et al.).
    torch.manual_seed(1)
    t = torch.randn(64, 10) * 0.1
    grads = []
    for temperature in (2.0, 8.0):
        s = (torch.randn(64, 10) * 0.1).requires_grad_()
        losses.kd_loss(s, t, temperature).backward()
        grads.append(s.grad.abs().mean().item())
    assert 0.2 < grads[0] / grads[1] < 5


def test_kd_loss_mask_ignores_rows():
    s, t = torch.zeros(3, 4), torch.zeros(3, 4)
    t[2] = torch.tensor([9.0, -9.0, 0.0, 0.0])  # only the masked row differs
    assert losses.kd_loss(s, t, 1.0, mask=torch.tensor([1, 1, 0])).item() == pytest.approx(0.0, abs=1e-7)
    assert losses.kd_loss(s, t, 1.0).item() > 0.3


def test_topk_kd_equals_full_kd_when_k_covers_the_vocabulary():
    torch.manual_seed(2)
    s, t = torch.randn(6, 9), torch.randn(6, 9)
    values, indices = t.topk(9, dim=-1)
    full = losses.kd_loss(s, t, 2.0)
    assert losses.kd_loss_topk(s, values, indices, 2.0).item() == pytest.approx(full.item(), rel=1e-5)


def test_topk_targets_are_compact_and_ordered():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0]])
    values, indices = losses.topk_targets(logits, 2)
    assert values.dtype == torch.float16 and indices.dtype == torch.int32
    assert indices.tolist() == [[1, 3]]
    assert values.float().tolist() == [[3.0, 2.0]]


def test_ce_loss_matches_cross_entropy():
    torch.manual_seed(3)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    assert losses.ce_loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)


def test_hidden_mse_and_cosine_with_padding_mask():
    s = torch.zeros(1, 3, 4)
    t = torch.zeros(1, 3, 4)
    t[0, 0] = 2.0  # token 0 differs by 2 in every feature -> squared error 4
    t[0, 2] = 100.0  # a padded token: must not count
    mask = torch.tensor([[1, 1, 0]])
    assert losses.hidden_loss(s, t, mask, "mse").item() == pytest.approx(4.0 / 2)
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert losses.hidden_loss(a, 3 * a, None, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert losses.hidden_loss(a, -a, None, "cosine").item() == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(ValueError):
        losses.hidden_loss(a, a, None, "l1")


def _attention(batch: int, heads: int, length: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return F.softmax(torch.randn(batch, heads, length, length), dim=-1)


def test_attention_kl_zero_for_equal_maps_and_matches_manual_kl():
    a, b = _attention(2, 4, 5, 0), _attention(2, 4, 5, 1)
    assert losses.attention_kl(a, a).item() == pytest.approx(0.0, abs=1e-6)
    manual = (b * (b.log() - a.log())).sum(-1).mean()
    assert losses.attention_kl(a, b).item() == pytest.approx(manual.item(), rel=1e-5)


def test_attention_kl_compares_head_means_when_head_counts_differ():
    student, teacher = _attention(1, 2, 4, 2), _attention(1, 6, 4, 3)
    s, t = student.mean(1), teacher.mean(1)
    manual = (t * (t.log() - s.log())).sum(-1).mean()
    assert losses.attention_kl(student, teacher).item() == pytest.approx(manual.item(), rel=1e-5)


def test_attention_kl_ignores_padded_queries():
    a, b = _attention(1, 2, 3, 4), _attention(1, 2, 3, 5)
    b2 = b.clone()
    b2[:, :, 2] = a[:, :, 2]  # make the last (padded) query row agree
    mask = torch.tensor([[1, 1, 0]])
    assert losses.attention_kl(a, b, mask).item() == pytest.approx(losses.attention_kl(a, b2, mask).item())
    assert math.isfinite(losses.attention_kl(torch.zeros_like(a), b).item())
