"""The naive sampler draws from the distribution that log_prob defines."""

import pytest
import torch
from helpers import all_images, perturb

import pixelcnn


def test_sample_frequencies_match_exact_probabilities():
    """1x1 RGB with 3 levels: 27 images; the RGB order and the channel masks must agree."""
    model = perturb(pixelcnn.create("pixelcnn", (3, 1, 1), levels=3, preset="tiny"), scale=0.8)
    images = all_images((3, 1, 1), model.quantizer.valid_values().tolist())
    with torch.no_grad():
        probabilities = model.log_prob(images).exp().double()
    draws = 6000
    samples = model.sample(draws, generator=torch.Generator().manual_seed(1))
    codes = model.quantizer.to_levels(samples).reshape(draws, 3) @ torch.tensor([9, 3, 1])
    counts = torch.bincount(codes, minlength=27).double()
    expected = probabilities * draws
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    # 26 degrees of freedom: the 99.9% quantile of chi-square(26) is 54.05
    assert chi_square < 54.05, chi_square
    total_variation = 0.5 * (counts / draws - probabilities).abs().sum().item()
    assert total_variation < 0.05


def test_samples_are_valid_images_and_reproducible():
    model = pixelcnn.create("pixelcnn", (1, 6, 5), levels=4, preset="tiny")
    a = model.sample(3, generator=torch.Generator().manual_seed(7))
    b = model.sample(3, generator=torch.Generator().manual_seed(7))
    assert a.dtype == torch.uint8 and a.shape == (3, 1, 6, 5)
    assert torch.equal(a, b)
    assert model.quantizer.is_valid(a)
    assert torch.isfinite(model.log_prob(a)).all()


def test_zero_temperature_picks_the_most_likely_level_greedily():
    model = perturb(pixelcnn.create("pixelcnn", (1, 3, 3), levels=4, preset="tiny"))
    greedy = model.sample(2, temperature=0)
    assert torch.equal(greedy[0], greedy[1])
    levels = model.quantizer.to_levels(greedy)
    with torch.no_grad():
        params = model(levels).reshape(2, 1, 4, 3, 3)
    assert torch.equal(params.argmax(2), levels)


def test_low_temperature_concentrates_samples():
    model = perturb(pixelcnn.create("pixelcnn", (1, 3, 3), levels=4, preset="tiny"))
    hot = model.log_prob(
        model.sample(64, temperature=2.0, generator=torch.Generator().manual_seed(0))
    )
    cold = model.log_prob(
        model.sample(64, temperature=0.3, generator=torch.Generator().manual_seed(0))
    )
    assert cold.mean() > hot.mean()


def test_draw_index_follows_the_probabilities_and_never_draws_an_impossible_index():
    from pixelcnn.likelihoods.draw import draw_index

    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0])  # zero at both ends and inside
    rows = probs.expand(20000, 6) * 1.0000001  # rows that do not sum to exactly 1
    draws = draw_index(rows, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=6).double()
    assert counts[probs == 0].sum() == 0
    expected = probs.double() * len(draws)
    nonzero = probs > 0
    chi_square = ((counts - expected)[nonzero] ** 2 / expected[nonzero]).sum().item()
    assert chi_square < 13.82  # 2 degrees of freedom, 99.9% quantile
    again = draw_index(rows, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    # a row whose mass sits at the very end: u * total stays below the total
    edge = torch.tensor([[0.0, 0.0, 1e-30, 1.0]])
    assert draw_index(edge.expand(1000, 4), torch.Generator().manual_seed(1)).max() == 3


def _overflowing(network: str, channels: int = 1, **options):
    """A tiny model whose every weight is multiplied by 3e37: finite weights (a saved file
    of them loads) whose outputs overflow to infinity and NaN."""
    model = pixelcnn.create(network, (channels, 4, 4), levels=4, preset="tiny", **options)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3e37)
        empty = torch.zeros(1, channels, 4, 4, dtype=torch.uint8)
        assert not torch.isfinite(model.log_prob(empty)).all()  # scoring refuses it too
    return model


OVERFLOWING = [
    ("gated", 1, {}),
    ("pixelcnn", 3, {}),
    ("pixelsnail", 1, {}),
    ("gated", 3, {"likelihood": "logistic_mixture"}),
]


@pytest.mark.parametrize("method", ["cached", "naive"])
@pytest.mark.parametrize(
    ("network", "channels", "options"), OVERFLOWING, ids=[f"{n}-{c}ch" for n, c, _ in OVERFLOWING]
)
def test_sample_and_complete_refuse_non_finite_parameters(network, channels, options, method):
    """Drawing from NaN parameters gives plausible-looking all-255 or all-0 images; the
    samplers refuse them with a ValueError instead, as scoring refuses NaN scores."""
    model = _overflowing(network, channels, **options)
    with pytest.raises(ValueError, match="non-finite likelihood parameters"):
        model.sample(2, method=method)
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[:2] = True
    images = torch.zeros(2, channels, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="non-finite likelihood parameters"):
        model.complete(images, known, method=method)


@pytest.mark.parametrize("likelihood", ["categorical", "logistic_mixture"])
def test_a_tiny_temperature_draws_the_most_likely_values_not_garbage(likelihood):
    """logits / 1e-300 overflows to inf, and softmax(inf - inf) is NaN: tiny temperatures
    must tend to temperature 0 (the most likely value), not to all-255 images."""
    model = pixelcnn.create("gated", (3, 4, 4), levels=4, preset="tiny", likelihood=likelihood)
    perturb(model)
    greedy = model.sample(2, temperature=0)
    for temperature in (1e-300, 1e-40):
        for method in ("cached", "naive"):
            generator = torch.Generator().manual_seed(0)
            drawn = model.sample(2, temperature=temperature, method=method, generator=generator)
            assert torch.equal(drawn, greedy), (temperature, method)
