"""PixelCNN++: causal in both streams, no blind spot, normalized, samples, conditions."""

import pytest
import torch
from helpers import all_images, perturb

import pixelcnn


def _pixel_dependencies(network, image_shape, trials=4):
    """D[o, i]: output pixel o has non-zero gradient wrt some channel of input pixel i.

    One backward pass per output pixel, of a random mix of its parameters (random weights
    make an exact cancellation between parameters vanishingly unlikely).
    """
    channels, height, width = image_shape
    network = network.double()
    x = torch.randn(trials, channels, height, width, dtype=torch.float64, requires_grad=True)
    out = network(x)
    mix = torch.randn(out.shape, dtype=torch.float64)
    rows = []
    for o in range(height * width):
        row, col = divmod(o, width)
        (grad,) = torch.autograd.grad(
            (out[:, :, row, col] * mix[:, :, row, col]).sum(), x, retain_graph=True
        )
        rows.append(grad.abs().sum((0, 1)).flatten() > 0)
    return torch.stack(rows)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("likelihood", ["logistic_mixture", "categorical"])
def test_outputs_see_every_earlier_pixel_and_nothing_of_their_own(channels, likelihood):
    model = pixelcnn.create(
        "pixelcnnpp",
        (channels, 8, 8),
        levels=4,
        likelihood=likelihood,
        preset="tiny",
        resnets_per_stage=2,
    )
    dep = _pixel_dependencies(perturb(model, 0.5).network, (channels, 8, 8))
    n = dep.shape[0]
    assert not dep[torch.triu(torch.ones(n, n, dtype=torch.bool))].any()
    assert dep[torch.tril(torch.ones(n, n, dtype=torch.bool), -1)].all()  # no blind spot


def test_probabilities_of_all_4x4_binary_images_sum_to_one():
    model = perturb(pixelcnn.create("pixelcnnpp", (1, 4, 4), levels=2, preset="tiny"), 0.7)
    model = model.double().eval()
    images = all_images((1, 4, 4), [0, 255])
    with torch.no_grad():
        total = sum(model.log_prob(part).exp().sum().item() for part in images.split(8192))
    assert abs(total - 1.0) < 1e-5


def test_sampling_is_valid_with_rows_cropped_to_multiples_of_four():
    model = pixelcnn.create("pixelcnnpp", (3, 8, 4), levels=16, preset="tiny")
    assert model.network.row_multiple == 4
    images = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 8, 4) and model.quantizer.is_valid(images)
    assert torch.isfinite(model.log_prob(images)).all()


def test_class_condition_and_dropout():
    model = pixelcnn.create(
        "pixelcnnpp", (1, 4, 4), levels=8, preset="tiny", num_classes=3, dropout=0.5
    )
    perturb(model, 0.5)
    x = model.quantize(torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8))
    model.eval()
    a, b = model.log_prob(x, 0), model.log_prob(x, 2)
    assert not torch.allclose(a, b)
    assert torch.equal(model.log_prob(x, 0), a)  # no dropout in eval mode
    model.train()
    assert not torch.equal(model.log_prob(x, 0), a)  # dropout is active in training


def test_any_size_runs_padded_and_cropped_and_other_sizes_are_refused():
    """A 6x5 model runs its U-Net on 8x8 and returns 6x5 parameters; images of another
    size than the model's are refused in one line (tests/test_image_sizes.py checks
    causality, normalization and sampling at such sizes)."""
    model = pixelcnn.create("pixelcnnpp", (1, 6, 5), levels=2, preset="tiny")
    images = torch.zeros(2, 1, 6, 5, dtype=torch.uint8)
    assert model(model.images_to_levels(images)).shape[2:] == (6, 5)
    assert torch.isfinite(model.log_prob(images)).all()
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_each_stream_is_causal_and_covers_its_region():
    """The up stream (u) sees only rows above; the up-left stream (ul) sees rows above and
    the current row to the left: checked on each stream's last activations by gradients."""
    model = pixelcnn.create("pixelcnnpp", (1, 8, 8), levels=4, preset="tiny", resnets_per_stage=2)
    network = perturb(model, 0.5).network.double()
    captured = {}
    hooks = [
        network.up_u[-1][-1].register_forward_hook(lambda m, i, o: captured.update(u=o)),
        network.up_ul[-1][-1].register_forward_hook(lambda m, i, o: captured.update(ul=o)),
    ]
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    network(x)
    for hook in hooks:
        hook.remove()
    row, col = 5, 3
    seen = {}
    for stream in ("u", "ul"):
        activation = captured[stream][:, :, row, col]
        weights = torch.randn(activation.shape, dtype=torch.float64)
        (grad,) = torch.autograd.grad((activation * weights).sum(), x, retain_graph=True)
        seen[stream] = grad.abs().sum((0, 1)) > 0  # [H, W]
    above = torch.zeros(8, 8, dtype=torch.bool)
    above[:row] = True
    left = torch.zeros(8, 8, dtype=torch.bool)
    left[row, :col] = True
    assert torch.equal(seen["u"], above)  # every row above, nothing of the current row
    assert torch.equal(seen["ul"], above | left)
