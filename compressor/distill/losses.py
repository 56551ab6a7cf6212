"""Distillation losses as pure functions on tensors (no models): testable on hand-made inputs.

Shapes: ``logits`` are [N, C] rows (a classifier's samples or an LM's token positions, flattened);
``mask`` is a [N] (or [B, L]) 0/1 tensor of the rows that count. Every loss is a mean over counted
rows, so it does not depend on batch size or padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype).reshape(values.shape)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened distributions, times T².

    The T² keeps the gradient scale independent of T (Hinton et al. 2015), so the weight of this term
    against the hard-label loss means the same at any temperature.
    """
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_row = F.kl_div(s, t, reduction="none", log_target=True).sum(-1)
    return _masked_mean(per_row, mask) * temperature**2


def kd_loss_topk(student_logits: torch.Tensor, topk_values: torch.Tensor, topk_indices: torch.Tensor,
                 temperature: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``kd_loss`` against a teacher known only by its top-k logits per row (an LM's cache).

    The teacher distribution is renormalised over its k tokens; the student's log-probabilities are
    taken over the whole vocabulary and read at those tokens, so mass the student puts elsewhere is
    still penalised through the normalisation.
    """
    s = F.log_softmax(student_logits.float() / temperature, dim=-1).gather(-1, topk_indices.long())
    t = F.log_softmax(topk_values.float() / temperature, dim=-1)
    per_row = (t.exp() * (t - s)).sum(-1)
    return _masked_mean(per_row, mask) * temperature**2


def topk_targets(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The compact form an LM teacher is cached in: fp16 values and int32 indices of the top k.

    Live and cached teachers both go through this, so a run gives the same numbers whether a row's
    teacher output was computed now or earlier.
    """
    values, indices = teacher_logits.float().topk(min(k, teacher_logits.shape[-1]), dim=-1)
    return values.half(), indices.int()


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against hard labels (class ids, or an LM's next tokens)."""
    per_row = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    return _masked_mean(per_row, mask)


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None,
                kind: str = "mse") -> torch.Tensor:
    """Distance between hidden states [B, L, D] (student already projected to the teacher's width).

    ``mse`` averages the squared error over features; ``cosine`` is 1 - cos per token.
    """
    student, teacher = student.float(), teacher.float()
    if kind == "mse":
        per_token = (student - teacher).pow(2).mean(-1)
    elif kind == "cosine":
        per_token = 1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-6)
    else:
        raise ValueError(f"unknown hidden loss {kind!r}")
    return _masked_mean(per_token, mask)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None,
                 eps: float = 1e-8) -> torch.Tensor:
    """KL(teacher ‖ student) between attention distributions [B, H, L, L] (MiniLM / TinyBERT).

    Each query row is a distribution over keys; rows of padded queries do not count. When the two
    models have different head counts (a head-pruned student), the head-averaged distributions are
    compared instead, which is still a distribution per query.
    """
    student, teacher = student.float(), teacher.float()
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(1, keepdim=True)
        teacher = teacher.mean(1, keepdim=True)
    per_query = (teacher * (teacher.clamp_min(eps).log() - student.clamp_min(eps).log())).sum(-1)  # [B, H, L]
    per_query = per_query.mean(1)  # over heads -> [B, L]
    return _masked_mean(per_query, mask)


def _relations(x: torch.Tensor, heads: int, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Log of softmax(x_h x_h^T / sqrt(d_h)) per relation head: [B, L, D] -> [B, heads, L, L]."""
    b, length, width = x.shape
    if width % heads:
        raise ValueError(f"width {width} is not divisible by {heads} relation heads")
    x = x.float().reshape(b, length, heads, width // heads).transpose(1, 2)  # [B, R, L, d]
    scores = x @ x.transpose(-1, -2) / math.sqrt(width // heads)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_kl(student: tuple[torch.Tensor, ...] | list[torch.Tensor],
                teacher: tuple[torch.Tensor, ...] | list[torch.Tensor], heads: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM-v2's multi-head self-attention relation loss (Wang et al. 2021).

    ``student`` and ``teacher`` are the (query, key, value) projections [B, L, D] of one layer each,
    before the split into attention heads. Each is re-split into ``heads`` relation heads (so the two
    models' widths and head counts need not match; both widths must divide by ``heads``), the scaled
    dot-product relation softmax(x x^T / sqrt(d)) of every token to every token is formed, and the
    KL(teacher ‖ student) of the Q-Q, K-K and V-V relations is averaged. Padded keys get no mass;
    padded queries do not count (``mask`` is the [B, L] attention mask).
    """
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student relations against {len(teacher)} teacher relations")
    terms = []
    for s, t in zip(student, teacher):
        log_s, log_t = _relations(s, heads, mask), _relations(t, heads, mask)
        per_query = (log_t.exp() * (log_t - log_s)).sum(-1).mean(1)  # KL per query row, over heads -> [B, L]
        terms.append(_masked_mean(per_query, mask))
    return torch.stack(terms).mean()
