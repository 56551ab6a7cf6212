"""Importance scores and selection, on plain tensors and toy modules."""

from __future__ import annotations

import pytest
import torch

from compressor.errors import BadInputError
from compressor.prune import importance


def test_select_heads_is_global_and_keeps_one_head_per_layer():
    scores = [torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.01, 0.02, 0.03]), torch.tensor([0.5, 0.6, 0.7])]
    # 4 of 9 heads go: the whole of layer 1 would be cheapest, but its best head must stay.
    removed = importance.select_heads(scores, 4 / 9)
    assert removed == [[0, 1], [0, 1], []]


def test_select_heads_refuses_an_amount_that_removes_nothing():
    with pytest.raises(BadInputError, match="removes no head"):
        importance.select_heads([torch.ones(2), torch.ones(2)], 0.1)


def test_normalize_per_layer_gives_unit_norms():
    normalized = importance.normalize_per_layer([torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0])])
    assert torch.allclose(normalized[0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(normalized[1], torch.tensor([0.0, 1.0]))


def test_ffn_keep_width_rounds_down_to_a_multiple():
    assert importance.ffn_keep_width(1536, 0.3, 8) == 1072
    assert importance.ffn_keep_width(1024, 0.3, 8) == 712
    assert importance.ffn_keep_width(1024, 0.3, 1) == 717
    assert importance.ffn_keep_width(10, 0.5, 8) == 5  # fewer than one multiple: not rounded
    # Automatic: the largest alignment costing at most 5% of the width beyond the amount.
    assert importance.ffn_keep_width(1536, 0.3) == 1024  # 64: 51 more removed (3.3%)
    assert importance.ffn_keep_width(1024, 0.3) == 704  # 64: 13 more (1.3%)
    assert importance.ffn_keep_width(128, 0.3) == 88  # 64 or 32 would remove 20%: 8
    assert importance.ffn_keep_width(10, 0.5) == 5
    with pytest.raises(BadInputError, match="removes no neuron"):
        importance.ffn_keep_width(8, 0.01, 1)


def test_select_neurons_keeps_the_top_scores_in_order():
    kept = importance.select_neurons([torch.tensor([0.5, 0.1, 0.9, 0.3]), torch.tensor([1.0, 2.0, 3.0, 0.0])], 2)
    assert kept[0].tolist() == [0, 2] and kept[1].tolist() == [1, 2]


def test_layers_to_remove():
    assert importance.layers_to_remove([0.5, 0.1, 0.3, 0.9], 0.5) == [1, 2]
    assert importance.layers_to_remove([0.5, 0.1, 0.3, 0.9], 0.05) == [1]  # at least one
    with pytest.raises(BadInputError, match="would remove all 4 layers"):
        importance.layers_to_remove([0.5, 0.1, 0.3, 0.9], 0.95)


def test_head_and_neuron_magnitude():
    heads, d, hidden = 2, 3, 4
    q = torch.zeros(heads * d, hidden)
    q[d:] = 1.0  # head 1 has all the weight
    k, v, o = torch.zeros_like(q), torch.zeros_like(q), torch.zeros(hidden, heads * d)
    o[:, :d] = 2.0
    scores = importance.head_magnitude(q, k, v, o, heads)
    assert torch.allclose(scores, torch.tensor([(hidden * d * 4.0) ** 0.5, (d * hidden * 1.0) ** 0.5]))
    w_in, w_out = torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(importance.neuron_magnitude(w_in, w_out), torch.tensor([5.0, 2.0]))


def test_gradient_scores_equal_the_analytic_mask_gradient():
    torch.manual_seed(0)
    out = torch.nn.Linear(6, 1, bias=False)  # input = 3 "heads" of size 2
    x = torch.randn(5, 6)

    def loss(model, batch):
        return model(batch["x"]).sum()

    scores = importance.gradient_scores(out, [(out, 3, 2)], [{"x": x}], loss)[0]
    # d/dm_h sum_b w . (x_b * m) at m = 1 is sum_b sum_{i in h} w_i x_bi.
    expected = (x * out.weight[0]).sum(0).unflatten(0, (3, 2)).sum(-1).abs().detach()
    assert torch.allclose(scores, expected, atol=1e-6)
    assert out.weight.grad is None  # parameters untouched


def test_skip_block_passes_the_input_through():
    class Block(torch.nn.Module):
        def forward(self, hidden_states, extra=None):
            return (hidden_states * 10, "attn")

    block, x = Block(), torch.ones(2)
    with importance.skip_block(block):
        assert block(x)[0] is x and block(hidden_states=x)[1] == "attn"
    assert torch.equal(block(x)[0], x * 10)
