"""PixelSNAIL beyond the contract suite (which certifies it like every registered network):
attention reaches every earlier position, however far; several heads; the paper preset's
numbers; a bad head count is one line."""

import pytest
import torch
from helpers import lively

import pixelcnn
from pixelcnn.networks import NETWORKS, resolve_hyperparameters
from pixelcnn.networks.pixelsnail import causal_mask


def dependencies(model, height, width):
    """bool [H, W, H, W]: whether the parameters at (i, j) depend on the input at (k, m)."""
    network = model.network
    x = torch.randn(1, network.input_channels, height, width, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(network, x)  # [1, P, H, W, 1, C, H, W]
    return (jacobian[0, :, :, :, 0].abs() > 0).any(0).any(2)


def test_the_last_pixel_of_a_row_sees_the_far_end_of_the_first_row():
    """(1, 0) sees (0, 7): seven columns to the right, which no shifted convolution of a
    tiny stack reaches (PixelCNN++'s does not); only attention does."""
    snail = lively(pixelcnn.create("pixelsnail", (1, 2, 8), preset="tiny"))
    seen = dependencies(snail, 2, 8)
    assert seen[1, 0, 0, 7]
    assert all(seen[1, 0, 0, m] for m in range(8)) and not seen[1, 0, 1, 0]
    plus = lively(pixelcnn.create("pixelcnnpp", (1, 2, 8), preset="tiny"))
    assert not dependencies(plus, 2, 8)[1, 0, 0, 7]


@pytest.mark.parametrize("likelihood, channels", [("logistic_mixture", 3), ("categorical", 1)])
def test_several_heads_stay_causal_and_sample_as_naive(likelihood, channels):
    model = lively(
        pixelcnn.create(
            "pixelsnail",
            (channels, 3, 4),
            levels=5,
            likelihood=likelihood,
            preset="tiny",
            heads=2,
            key_size=4,
            value_size=6,
        )  # fmt: skip
    )
    seen = dependencies(model, 3, 4)
    for i, j, k, m in seen.nonzero().tolist():
        assert (k, m) < (i, j)
    naive = model.sample(2, generator=torch.Generator().manual_seed(1), method="naive")
    cached = model.sample(2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cached, naive)


def test_the_mask_lets_each_position_attend_to_exactly_the_earlier_ones():
    mask = causal_mask(5, torch.device("cpu"))
    assert mask[0].tolist() == [True, False, False, False, False]  # zeroed afterwards
    for q in range(1, 5):
        assert mask[q].tolist() == [p < q for p in range(5)]


def test_a_head_count_that_does_not_divide_the_sizes_is_one_line():
    with pytest.raises(ValueError, match="multiples of heads 3"):
        pixelcnn.create("pixelsnail", (1, 4, 4), preset="tiny", heads=3)


def test_the_paper_preset_is_the_reference_cifar_configuration():
    spec = NETWORKS["pixelsnail"]
    values = resolve_hyperparameters("pixelsnail", "paper")
    assert values == {
        "filters": 256, "blocks": 12, "resnets_per_block": 4, "key_size": 16,
        "value_size": 128, "heads": 1, "dropout": 0.5,
    }  # fmt: skip
    assert spec.likelihood == "logistic_mixture"
    assert spec.recipe["ema_decay"] == 0.9995  # the reference's polyak_decay on CIFAR-10
