"""Causality of the networks, checked by gradients of outputs with respect to inputs."""

import pytest
import torch
from helpers import dependency_matrix, perturb

import pixelcnn
from pixelcnn.nn import MaskedConv2d, causal_mask


@pytest.mark.parametrize("image_shape", [(1, 5, 5), (3, 4, 4)])
def test_pixelcnn_conditionals_never_see_current_or_later_subpixels(image_shape):
    model = pixelcnn.create(
        "pixelcnn", image_shape, levels=4, preset="tiny", residual_blocks=2, hidden_channels=24
    )
    perturb(model)
    dep = dependency_matrix(model.network, image_shape, params_per_channel=4)
    n = dep.shape[0]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool))  # i >= o: itself and later
    assert not dep[future].any(), "an output depends on its own or a later sub-pixel"
    # the dependence on the past is real: earlier channels of the same pixel, and every
    # channel of the pixels to the left and directly above
    channels, height, width = image_shape
    for row in range(height):
        for col in range(width):
            pixel = row * width + col
            for ch in range(channels):
                o = pixel * channels + ch
                assert dep[o, pixel * channels : o].all()
                for seen in ([pixel - 1] if col else []) + ([pixel - width] if row else []):
                    assert dep[o, seen * channels : (seen + 1) * channels].all()


def test_rgb_centre_taps_follow_r_g_b_order():
    a = causal_mask(6, 3, 3, "A", groups=3)[:, :, 1, 1]
    b = causal_mask(6, 6, 3, "B", groups=3)[:, :, 1, 1]
    # out groups: channels 0-1 R, 2-3 G, 4-5 B; input channels 0 R, 1 G, 2 B
    assert a.tolist() == [[0, 0, 0]] * 2 + [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2
    assert b.tolist() == [[1, 1, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 0, 0]] * 2 + [[1] * 6] * 2


def test_grayscale_mask_a_hides_centre_and_b_shows_it():
    a = causal_mask(1, 1, 5, "A")[0, 0]
    b = causal_mask(1, 1, 5, "B")[0, 0]
    assert a.shape == (3, 5)  # cropped to the rows up to the centre
    assert a[:2].all() and a[2, :2].all() and not a[2, 2:].any()
    assert torch.equal(b[2], torch.tensor([1.0, 1, 1, 0, 0]))


def test_masked_weights_get_no_gradient_and_stay_zero_in_state_dict():
    """Closed taps start at zero and get no gradient, so even after optimizer steps the
    stored weights are zero there (Adam's update of a zero gradient is zero)."""
    conv = MaskedConv2d(3, 6, 3, "A", groups=3)
    closed = conv.mask == 0
    assert closed.any() and torch.all(conv.weight[closed] == 0)
    optimizer = torch.optim.Adam(conv.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        conv(torch.randn(2, 3, 5, 5)).square().sum().backward()
        assert torch.all(conv.weight.grad[closed] == 0)
        optimizer.step()
    stored = conv.state_dict()["weight"]
    assert torch.all(stored[closed] == 0) and stored[~closed].abs().sum() > 0
    assert "mask" not in conv.state_dict()  # derived, not stored


def test_masked_conv_matches_square_masked_kernel():
    """The cropped kernel computes what a full k x k kernel with the lower half zeroed does."""
    conv = MaskedConv2d(3, 6, 5, "B", groups=3)
    x = torch.randn(2, 3, 7, 6)
    full = torch.zeros(6, 3, 5, 5)
    full[:, :, :3] = conv.weight * conv.mask
    expected = torch.nn.functional.conv2d(x, full, conv.bias, padding=2)
    assert torch.allclose(conv(x), expected, atol=1e-5)
