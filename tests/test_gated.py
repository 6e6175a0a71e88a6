"""Gated PixelCNN: causal without a blind spot, normalized, conditional, and over tokens."""

import pytest
import torch
from helpers import all_images, dependency_matrix, perturb

import pixelcnn

CONDITIONS = {
    None: {},
    "class": {"num_classes": 3},
    "vector": {"vector_dim": 4},
    "spatial": {"spatial_channels": 2},
}


def _condition(kind, batch, grid=(6, 6)):
    generator = torch.Generator().manual_seed(3)
    if kind is None:
        return None
    if kind == "class":
        return torch.randint(0, 3, (batch,), generator=generator)
    if kind == "vector":
        return torch.randn(batch, 4, generator=generator)
    return torch.randn(batch, 2, 3, 3, generator=generator)  # resized to the grid


@pytest.mark.parametrize("kind", list(CONDITIONS), ids=lambda k: str(k))
@pytest.mark.parametrize("image_shape", [(1, 6, 6), (3, 5, 5)])
def test_no_conditional_sees_its_own_or_later_subpixels_and_every_earlier_one_is_seen(
    image_shape, kind
):
    model = pixelcnn.create(
        "gated",
        image_shape,
        levels=4,
        preset="tiny",
        layers=3,
        hidden_channels=12,
        **CONDITIONS[kind],
    )
    perturb(model)
    condition = model.prepare_condition(_condition(kind, 8), 8)
    dep = dependency_matrix(model.network, image_shape, 4, trials=8, condition=condition)
    n = dep.shape[0]
    assert not dep[torch.triu(torch.ones(n, n, dtype=torch.bool))].any()
    # no blind spot: with a 7x7 first kernel every earlier sub-pixel is within reach
    assert dep[torch.tril(torch.ones(n, n, dtype=torch.bool), -1)].all()


def _centre_field(model, size):
    dep = dependency_matrix(model.network, (1, size, size), model.levels)
    centre = (size // 2) * size + size // 2
    return dep[centre].reshape(size, size)


def test_pixelcnn_has_a_blind_spot_that_the_gated_stacks_remove():
    size, centre = 7, 3
    plain = perturb(
        pixelcnn.create(
            "pixelcnn",
            (1, size, size),
            levels=2,
            preset="tiny",
            input_kernel=3,
            residual_blocks=4,
            hidden_channels=16,
        )
    )
    gated = perturb(
        pixelcnn.create("gated", (1, size, size), levels=2, preset="tiny", input_kernel=3, layers=4)
    )
    earlier = torch.zeros(size, size, dtype=torch.bool)
    earlier[:centre] = True
    earlier[centre, :centre] = True
    plain_field, gated_field = _centre_field(plain, size), _centre_field(gated, size)
    assert not (plain_field & ~earlier).any() and not (gated_field & ~earlier).any()
    # 3x3 kernels, 4+ layers: every earlier pixel of the 7x7 image is within reach
    assert gated_field[earlier].all()
    # the masked stack cannot move right within a row: up-right of the target stays dark
    assert not plain_field[centre - 1, centre + 2] and not plain_field[centre - 1, centre + 3]
    assert plain_field[centre - 2, centre + 2]  # ... while the diagonal is reached


@pytest.mark.parametrize(
    ("image_shape", "levels", "kind"),
    [((1, 2, 2), 2, None), ((3, 1, 1), 4, None), ((3, 2, 2), 2, None), ((1, 2, 2), 3, "class")],
)
def test_probabilities_of_all_images_sum_to_one(image_shape, levels, kind):
    model = perturb(
        pixelcnn.create("gated", image_shape, levels=levels, preset="tiny", **CONDITIONS[kind]),
        scale=1.5,
    ).double()
    images = all_images(image_shape, model.quantizer.valid_values().tolist())
    classes = range(3) if kind == "class" else [None]
    with torch.no_grad():
        for label in classes:
            total = model.log_prob(images, condition=label).exp().sum().item()
            assert abs(total - 1.0) < 1e-5


def test_class_condition_changes_the_distribution_and_the_sampler_follows_it():
    model = perturb(
        pixelcnn.create("gated", (3, 1, 1), levels=3, preset="tiny", num_classes=2), scale=1.0
    )
    images = all_images((3, 1, 1), model.quantizer.valid_values().tolist())
    with torch.no_grad():
        p = [model.log_prob(images, condition=c).exp().double() for c in (0, 1)]
    assert (p[0] - p[1]).abs().sum() > 0.2  # the class matters
    draws = 4000
    codes_weights = torch.tensor([9, 3, 1])
    for label in (0, 1):
        samples = model.sample(draws, condition=label, generator=torch.Generator().manual_seed(5))
        codes = model.quantizer.to_levels(samples).reshape(draws, 3) @ codes_weights
        frequencies = torch.bincount(codes, minlength=27).double() / draws
        assert 0.5 * (frequencies - p[label]).abs().sum() < 0.06  # total variation
        assert 0.5 * (frequencies - p[1 - label]).abs().sum() > 0.08


def test_vector_and_spatial_conditions_change_log_probs():
    x = None
    for kind, other in (("vector", torch.ones(2, 4)), ("spatial", torch.ones(2, 2, 3, 3))):
        model = perturb(
            pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny", **CONDITIONS[kind])
        )
        x = model.quantize(torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8))
        a = model.log_prob(x, condition=torch.zeros_like(other))
        b = model.log_prob(x, condition=other)
        assert not torch.allclose(a, b)
        assert model.sample(2, condition=other).shape == (2, 1, 4, 4)


def test_several_condition_kinds_together_take_a_dict():
    model = pixelcnn.create(
        "gated", (1, 4, 4), levels=2, preset="tiny", num_classes=3, vector_dim=2
    )
    x = model.quantize(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    condition = {"class": torch.tensor([0, 2]), "vector": torch.zeros(2, 2)}
    assert model.log_prob(x, condition).shape == (2,)
    with pytest.raises(ValueError, match="dict"):
        model.log_prob(x, torch.tensor([0, 2]))


BAD_CONDITIONS = [
    ({}, 1, "unconditional"),
    ({"num_classes": 3}, None, "needs a condition"),
    ({"num_classes": 3}, torch.tensor([0, 3]), "0..2"),
    ({"num_classes": 3}, torch.tensor([0.0, 1.0]), "integers"),
    ({"num_classes": 3}, torch.tensor([0, 1, 2]), "3 entries for a batch of 2"),
    ({"vector_dim": 4}, torch.zeros(2, 5), "4 entries"),
    ({"spatial_channels": 2}, torch.zeros(2, 3, 4, 4), "2 channels"),
    ({"num_classes": 3}, {"label": 1}, "condition keys"),
    ({"num_classes": 3}, "cat", "tensor"),
]


@pytest.mark.parametrize(("kwargs", "condition", "message"), BAD_CONDITIONS)
def test_bad_conditions_are_refused_with_what_was_expected(kwargs, condition, message):
    model = pixelcnn.create("gated", (1, 4, 4), levels=2, preset="tiny", **kwargs)
    x = model.quantize(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=message):
        model.log_prob(x, condition)


def test_token_grid_prior_is_a_distribution_with_the_same_api(tmp_path):
    model = perturb(
        pixelcnn.create("gated", (2, 2), levels=5, data="tokens", preset="tiny", embedding_dim=4)
    )
    grids = torch.cartesian_prod(*[torch.arange(5)] * 4).reshape(-1, 2, 2)
    with torch.no_grad():
        assert abs(model.log_prob(grids).exp().sum().item() - 1) < 1e-4
        assert model.conditional_log_probs(grids[:3]).shape == (3, 2, 2)
    samples = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert samples.dtype == torch.int64 and samples.shape == (6, 2, 2)
    assert samples.min() >= 0 and samples.max() < 5
    model.save(tmp_path / "prior")
    loaded = pixelcnn.load(tmp_path / "prior")
    assert torch.equal(loaded.log_prob(grids[:7]), model.log_prob(grids[:7]))
    for bad, message in [
        (torch.zeros(2, 1, 2, 2, dtype=torch.long), "shape"),
        (torch.zeros(2, 2, 2), "integer"),
        (torch.full((2, 2, 2), 5), "0..4"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.log_prob(bad)


def test_token_priors_are_causal_and_take_large_codebooks():
    model = perturb(pixelcnn.create("pixelcnn", (4, 4), levels=6, data="tokens", preset="tiny"))
    embedded = torch.randn(4, model.encoding.input_channels, 4, 4, dtype=torch.float64)
    network = model.network.double()
    jac = torch.autograd.functional.jacobian(network, embedded, vectorize=True)
    # [T, K, H, W, T, E, H, W] -> output position x input position
    dep = torch.stack([jac[t, :, :, :, t] for t in range(4)]).abs().sum((0, 1, 4)) > 0
    dep = dep.reshape(16, 16)
    assert not dep[torch.triu(torch.ones(16, 16, dtype=torch.bool))].any()
    for o in range(16):
        row, col = divmod(o, 4)
        assert (col == 0 or dep[o, o - 1]) and (row == 0 or dep[o, o - 4])  # left, above
    large = pixelcnn.create("gated", (4, 4), levels=512, data="tokens", preset="tiny")
    assert torch.isfinite(large.log_prob(torch.randint(0, 512, (3, 4, 4)))).all()
