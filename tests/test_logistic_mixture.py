"""Discretized logistic mixture: normalized, exact against float64 brute force, sampler agrees."""

import itertools
import json

import pytest
import torch
from helpers import all_images, perturb

import pixelcnn
from pixelcnn.likelihoods import DiscretizedLogisticMixture


def _params(channels, components, pixels, extreme, seed=0):
    """Random parameters [pixels, P, 1, 1]; ``extreme`` pins log-scales at the clamp and
    throws means far outside [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    lik = DiscretizedLogisticMixture(256, channels, components)
    params = torch.randn(pixels, lik.num_params, 1, 1, generator=generator) * 2
    if extreme:
        k = components
        rest = params[:, k:].reshape(pixels, channels, -1, 1, 1)
        rest[:, :, :k] *= 40  # means up to about +-100
        # below the clamp, or scales so wide that a bin falls under the midpoint fallback
        choice = torch.randint(0, 3, rest[:, :, k : 2 * k].shape, generator=generator)
        rest[:, :, k : 2 * k] = torch.tensor([-30.0, 12.0, 16.0])[choice]
        params[:, k:] = rest.reshape(pixels, -1, 1, 1)
    return params


def _brute_force(params, levels, channels, components, n_levels):
    """float64 p(pixel) straight from the logistic CDF, sigmoid differences, no log tricks."""
    p = params.double()[:, :, 0, 0]
    k = components
    logits, rest = p[:, :k], p[:, k:].reshape(len(p), channels, -1)
    means, log_s = rest[:, :, :k], rest[:, :, k : 2 * k].clamp(min=-7.0)
    x = levels.double()[:, :, 0, 0] * 2 / (n_levels - 1) - 1
    if channels == 3:
        c = torch.tanh(rest[:, :, 2 * k :])
        means = means.clone()
        means[:, 1] += c[:, 0] * x[:, 0:1]
        means[:, 2] += c[:, 1] * x[:, 0:1] + c[:, 2] * x[:, 1:2]
    half = 1 / (n_levels - 1)
    upper = torch.sigmoid((x[:, :, None] + half - means) / log_s.exp())
    lower = torch.sigmoid((x[:, :, None] - half - means) / log_s.exp())
    lv = levels[:, :, 0, 0, None]
    upper = torch.where(lv == n_levels - 1, torch.ones_like(upper), upper)
    lower = torch.where(lv == 0, torch.zeros_like(lower), lower)
    mass = (upper - lower).prod(1)  # [pixels, K]
    return (torch.softmax(logits, 1) * mass).sum(1)


@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("channels", [1, 3])
def test_conditionals_sum_to_one_and_match_float64_brute_force(channels, extreme):
    levels_n, k, pixels = 8, 4, 6
    lik = DiscretizedLogisticMixture(levels_n, channels, k)
    params = _params(channels, k, pixels, extreme)
    values = torch.tensor(list(itertools.product(range(levels_n), repeat=channels)))
    levels = values.repeat(pixels, 1).reshape(-1, channels, 1, 1)  # every pixel value
    repeated = params.repeat_interleave(len(values), dim=0)
    conditionals = lik.log_prob(repeated, levels).double()  # [pixels * V, C, 1, 1]
    assert torch.isfinite(conditionals).all()
    log_joint = conditionals.sum(1).reshape(pixels, len(values))
    # the pixel distribution sums to one and equals the brute force
    assert torch.allclose(
        log_joint.exp().sum(1), torch.ones(pixels, dtype=torch.float64), atol=1e-4
    )
    exact = _brute_force(repeated, levels, channels, k, levels_n).reshape(pixels, -1)
    assert torch.allclose(log_joint.exp(), exact, atol=1e-5)
    # each channel's conditional sums to one over its values, given the earlier channels
    c = conditionals.reshape(pixels, *[levels_n] * channels, channels)
    for ch in range(channels):
        total = c[..., ch].exp().sum(dim=1 + ch)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-4)


def test_losses_and_gradients_are_finite_for_extreme_parameters():
    lik = DiscretizedLogisticMixture(256, 3, 5)
    params = _params(3, 5, 64, extreme=True).requires_grad_()
    levels = torch.randint(0, 256, (64, 3, 1, 1))
    levels[:8] = 0
    levels[8:16] = 255
    loss = -lik.log_prob(params, levels).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(params.grad).all()


def test_sampler_draws_from_the_likelihood():
    levels_n, k, draws = 4, 3, 20000
    lik = DiscretizedLogisticMixture(levels_n, 3, k)
    params = _params(3, k, 1, extreme=False, seed=4) * 0.5
    values = torch.tensor(list(itertools.product(range(levels_n), repeat=3)))
    exact = lik.log_prob(params.expand(len(values), -1, -1, -1), values[:, :, None, None])
    exact = exact.double().sum(1).flatten().exp()
    samples = lik.sample(
        params.expand(draws, -1, -1, -1), generator=torch.Generator().manual_seed(1)
    )
    codes = samples[:, :, 0, 0] @ torch.tensor([levels_n**2, levels_n, 1])
    frequencies = torch.bincount(codes, minlength=len(values)).double() / draws
    assert 0.5 * (frequencies - exact).abs().sum() < 0.03
    expected = exact * draws
    keep = expected > 5
    chi_square = ((frequencies * draws - expected)[keep] ** 2 / expected[keep]).sum().item()
    assert chi_square < 2.0 * keep.sum().item() + 30  # far below what a wrong coupling gives


@pytest.mark.parametrize("model", ["pixelcnn", "gated"])
@pytest.mark.parametrize(
    ("image_shape", "levels"), [((1, 2, 2), 2), ((3, 1, 1), 4), ((3, 1, 2), 2)]
)
def test_any_network_with_the_mixture_is_normalized(model, image_shape, levels):
    net = pixelcnn.create(
        model, image_shape, levels=levels, likelihood="logistic_mixture", preset="tiny"
    )
    net = perturb(net, scale=1.0).double()
    images = all_images(image_shape, net.quantizer.valid_values().tolist())
    with torch.no_grad():
        assert abs(net.log_prob(images).exp().sum().item() - 1.0) < 1e-5


@pytest.mark.parametrize("model", ["pixelcnn", "gated"])
def test_mixture_networks_see_nothing_of_the_current_pixel(model):
    """With the joint likelihood the network's colour groups collapse to one: the output at
    a pixel depends on earlier pixels only, never on any channel of its own."""
    net = perturb(
        pixelcnn.create(model, (3, 4, 4), levels=256, likelihood="logistic_mixture", preset="tiny")
    ).network.double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(net, x, vectorize=True)  # [2, P, 4, 4, 2, 3, 4, 4]
    dep = (jac[0, :, :, :, 0].abs().sum((0, 3)) + jac[1, :, :, :, 1].abs().sum((0, 3))) > 0
    dep = dep.reshape(16, 16)  # output pixel x input pixel
    assert not dep[torch.triu(torch.ones(16, 16, dtype=torch.bool))].any()
    assert dep[5, 4] and dep[5, 1]  # left and above are seen


def test_mixture_model_samples_valid_images_for_few_levels():
    model = pixelcnn.create(
        "gated", (3, 3, 3), levels=5, likelihood="logistic_mixture", preset="tiny"
    )
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 3, 3) and model.quantizer.is_valid(images)
    assert torch.isfinite(model.log_prob(images)).all()


def test_the_number_of_components_is_a_hyperparameter_saved_with_the_model(tmp_path):
    """``components`` (default 10, the paper's) reaches the likelihood from ``create`` and
    from a saved config; the network's output follows it; the config records it always."""
    model = pixelcnn.create("pixelcnnpp", (3, 4, 4), preset="tiny", components=3)
    assert model.likelihood.components == 3 and model.likelihood.num_params == 30
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert model(model.images_to_levels(images)).shape[1] == 30
    model.save(tmp_path / "three")
    assert json.loads((tmp_path / "three" / "config.json").read_text())["likelihood_options"] == {
        "components": 3
    }
    loaded = pixelcnn.load(tmp_path / "three")
    assert loaded.likelihood.components == 3
    assert torch.equal(loaded.log_prob(images), model.log_prob(images))
    default = pixelcnn.create("gated", (1, 4, 4), preset="tiny", likelihood="logistic_mixture")
    assert default.config.likelihood_options == {"components": 10}
    assert pixelcnn.create("gated", (1, 4, 4), preset="tiny").config.likelihood_options == {}


def test_a_config_saved_before_components_existed_loads_with_ten(tmp_path):
    pixelcnn.create("pixelcnnpp", (1, 4, 4), preset="tiny").save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["likelihood_options"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert pixelcnn.load(tmp_path).likelihood.components == 10


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"components": 0}, "in 1..256"),
        ({"components": 1.5}, "integer"),
        ({"components": "many"}, "integer"),
        ({"components": 2, "likelihood": "categorical"}, "belongs to logistic_mixture"),
    ],
)
def test_bad_component_counts_are_refused_when_the_model_is_made(keywords, message):
    with pytest.raises(ValueError, match=message):
        pixelcnn.create("pixelcnnpp", (1, 4, 4), preset="tiny", **keywords)


@pytest.mark.parametrize("options", [[3], {"components": 0}, {"heads": 2}])
def test_a_config_with_bad_likelihood_options_is_refused_on_load(tmp_path, options):
    pixelcnn.create("pixelcnnpp", (1, 4, 4), preset="tiny").save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["likelihood_options"] = options
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json is malformed"):
        pixelcnn.load(tmp_path)


@pytest.mark.parametrize("components", [1, 2])
def test_a_mixture_of_any_size_sums_to_one_over_every_image(components):
    model = pixelcnn.create(
        "gated",
        (3, 1, 1),
        levels=4,
        preset="tiny",
        likelihood="logistic_mixture",
        components=components,
    )
    perturb(model, scale=1.0)
    model.double()
    images = all_images((3, 1, 1), model.quantizer.valid_values().tolist())
    with torch.no_grad():
        probabilities = model.log_prob(images).exp()
    assert abs(probabilities.sum().item() - 1.0) < 1e-9
    assert probabilities.max().item() > 2.0 / len(images)
