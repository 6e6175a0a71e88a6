"""pixelcnn.nn.dropout: the cheap-mask dropout drops with the probability asked for, keeps the
expectation, routes gradients through the kept elements only, and is off in eval mode."""

import math

import pytest
import torch

from pixelcnn.nn.dropout import Dropout, keep_threshold


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_each_element_is_kept_with_the_rounded_probability_and_scaled_back(p):
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = Dropout(p)(x)
    kept = y != 0
    keep = keep_threshold(p) / 2**16
    assert abs(keep - (1 - p)) <= 2**-17
    rate = kept.float().mean().item()
    assert abs(rate - keep) < 5 * math.sqrt(keep * (1 - keep) / len(x))  # 5 sigma
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / keep))
    assert abs(y.mean().item() - 1.0) < 5 * math.sqrt((1 - keep) / keep / len(x))


def test_the_mask_bits_are_independent_of_the_position_in_a_word():
    """Four elements share one 64-bit number: each of the four lanes must be kept at the
    same rate, and neighbours must not be correlated."""
    torch.manual_seed(1)
    kept = (Dropout(0.5)(torch.ones(400_000)) != 0).float().view(-1, 4)
    lane_rates = kept.mean(0)
    assert (lane_rates - 0.5).abs().max() < 5 * math.sqrt(0.25 / len(kept))
    both = (kept[:, 0] * kept[:, 1]).mean().item()
    assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(kept))


def test_gradients_flow_through_kept_elements_only_with_the_same_scale():
    torch.manual_seed(2)
    x = torch.randn(4, 8, 5, 5, requires_grad=True)
    y = Dropout(0.3)(x)
    y.sum().backward()
    scale = 2**16 / keep_threshold(0.3)
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], scale))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))
    assert torch.allclose(y[kept], x.detach()[kept] * scale)


def test_eval_mode_and_zero_probability_pass_through_and_one_drops_everything():
    x = torch.randn(3, 7)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert Dropout(0.0)(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="probability"):
        Dropout(1.5)


def test_the_draw_follows_torchs_random_state():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = Dropout(0.5)(x)
    torch.manual_seed(3)
    assert torch.equal(Dropout(0.5)(x), first)
