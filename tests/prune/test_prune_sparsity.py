"""Sparsity masks and their size accounting, on plain tensors."""

from __future__ import annotations

import pytest
import torch

from compressor.errors import BadInputError
from compressor.prune import sparsity


def test_global_magnitude_hits_the_amount_across_matrices():
    weights = {"a": torch.arange(1.0, 11.0).reshape(2, 5), "b": torch.arange(11.0, 21.0).reshape(5, 2)}
    masks = sparsity.magnitude_masks(weights, 0.5, per_layer=False)
    # The 10 smallest of 20 are all of "a": a global threshold, not 50% of each.
    assert masks["a"].sum() == 0 and masks["b"].sum() == 10


def test_per_layer_magnitude_hits_the_amount_in_each_matrix():
    weights = {"a": torch.arange(1.0, 11.0).reshape(2, 5), "b": -torch.arange(11.0, 21.0).reshape(5, 2)}
    masks = sparsity.magnitude_masks(weights, 0.3, per_layer=True)
    assert masks["a"].sum() == 7 and masks["b"].sum() == 7
    assert not masks["b"].reshape(-1)[:3].any()  # smallest |w| of b are its first entries


@pytest.mark.parametrize("axis", [0, 1])
def test_2_4_keeps_two_largest_of_every_four_along_the_input_axis(axis):
    torch.manual_seed(0)
    w = torch.randn(8, 12)
    masks = sparsity.semi_structured_masks({"w": (w, axis)})
    groups = masks["w"].movedim(axis, -1).reshape(-1, 4)
    assert (groups.sum(-1) == 2).all()
    values = w.abs().movedim(axis, -1).reshape(-1, 4)
    kept_min = torch.where(groups, values, torch.inf).min(-1).values
    dropped_max = torch.where(~groups, values, -torch.inf).max(-1).values
    assert (kept_min >= dropped_max).all()


def test_2_4_refuses_a_dimension_not_divisible_by_4():
    with pytest.raises(BadInputError, match=r"blocks.0.w has an input dimension of 30, not divisible by 4"):
        sparsity.semi_structured_masks({"blocks.0.w": (torch.ones(8, 30), 1)})


def test_apply_and_summary_and_mask_roundtrip(tmp_path):
    w = {"w": torch.randn(16, 16)}
    masks = sparsity.semi_structured_masks({"w": (w["w"], 1)})
    sparsity.apply_masks(w, masks)
    assert int((w["w"] == 0).sum()) == 128
    info = sparsity.summary(w, masks, model_params=512, pattern="2:4")
    assert info["zeroed_params"] == 128 and info["sparsity_of_targeted"] == 0.5 and info["sparsity_of_model"] == 0.25
    # 512 dense fp32 = 2048 bytes; the matrix becomes 128 values (512 B) + 2 bits each (32 B).
    assert info["dense_bytes"] == 2048 and info["compressible_bytes"] == 2048 - 1024 + 512 + 32
    assert info["speedup_on_dense_runtimes"] == 1.0 and "gains no speed" in info["note"]
    sparsity.save_masks(tmp_path / "m.npz", masks)
    assert torch.equal(sparsity.load_masks(tmp_path / "m.npz")["w"], masks["w"])
