"""Every registered network takes any image size: square or not, odd or even, down to 1x1
(PixelCNN++'s U-Net pads below and to the right and crops). Causality by gradients,
probabilities that sum to one, and cached == naive sampling, at each size."""

import itertools

import pytest
import torch
from helpers import lively

import pixelcnn
from pixelcnn.networks import NETWORKS

SIZES = [(1, 1), (3, 5), (7, 7), (30, 30), (13, 8)]
CASES = list(itertools.product(NETWORKS, SIZES))
IDS = [f"{network}-{h}x{w}" for network, (h, w) in CASES]


def positions(height: int, width: int) -> list[tuple[int, int]]:
    """Every position of a small image; corners, edges and a few inside of a large one."""
    if height * width <= 49:
        return list(itertools.product(range(height), range(width)))
    chosen = {(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)}
    chosen |= {(height // 2, width // 2), (height // 2, width - 1), (1, 1)}
    return sorted(chosen)


@pytest.mark.parametrize(("network", "size"), CASES, ids=IDS)
def test_no_output_sees_its_own_sub_pixel_or_a_later_one_at_any_size(network, size):
    height, width = size
    model = lively(pixelcnn.create(network, (3, height, width), levels=3, preset="tiny"))
    net = model.network
    groups = 1 if model.likelihood.joint_channels else 3
    out_group = torch.arange(net.out_channels) * groups // net.out_channels
    in_group = torch.arange(net.input_channels) * groups // net.input_channels
    x = torch.randn(3, net.input_channels, height, width, dtype=torch.float64, requires_grad=True)
    out = net(x)
    assert out.shape == (3, net.out_channels, height, width)
    for (i, j), g in itertools.product(positions(height, width), range(groups)):
        (grad,) = torch.autograd.grad(out[:, out_group == g, i, j].sum(), x, retain_graph=True)
        seen = grad.abs().sum(0) > 0  # [C_in, H, W]
        for c, k, m in zip(*seen.nonzero(as_tuple=True), strict=True):
            earlier = (k, m) < (i, j) or ((k, m) == (i, j) and in_group[c] < g)
            assert earlier, f"group {g} at ({i}, {j}) sees input {int(c)} at ({int(k)}, {int(m)})"
        if j:
            assert seen[:, i, j - 1].any(), f"({i}, {j}) does not see its left neighbour"
        if i:
            assert seen[:, i - 1, j].any(), f"({i}, {j}) does not see the pixel above"


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize(("shape", "levels"), [((3, 1, 1), 3), ((1, 3, 5), 2)])
def test_every_image_of_an_odd_size_sums_to_one(network, shape, levels):
    model = lively(pixelcnn.create(network, shape, levels=levels, preset="tiny"))
    count = shape[0] * shape[1] * shape[2]
    grid = torch.tensor(list(itertools.product(range(levels), repeat=count)))
    levels_grid = grid.reshape(len(grid), *shape[1:], shape[0]).permute(0, 3, 1, 2)
    with torch.no_grad():
        total = model.log_prob(model.encoding.from_levels(levels_grid)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("network", "size"), CASES, ids=IDS)
def test_cached_sampling_draws_what_naive_sampling_draws_at_any_size(network, size):
    model = lively(pixelcnn.create(network, (3, *size), levels=4, preset="tiny"))
    naive = model.sample(2, generator=torch.Generator().manual_seed(6), method="naive")
    if model.network.generation(2, *size) is None:  # a network that cannot step says so
        with pytest.raises(ValueError, match="cannot step"):
            model.sample(2)
        return
    cached = model.sample(2, generator=torch.Generator().manual_seed(6))
    assert naive.shape == (2, 3, *size)
    assert torch.equal(cached, naive)


def test_a_size_of_zero_is_refused_when_the_model_is_created():
    for shape in [(1, 0, 4), (3, 4, 0)]:
        with pytest.raises(ValueError, match="image_shape"):
            pixelcnn.create("pixelcnnpp", shape)
