"""model.complete: the known raster prefix is kept exactly, the rest is drawn from the
model's conditionals (as the naive reference would), and any other mask is refused."""

import pytest
import torch
from helpers import perturb

import pixelcnn


def rgb_model(likelihood="categorical", **keywords):
    model = pixelcnn.create(
        "gated", (3, 4, 5), levels=8, preset="tiny", likelihood=likelihood, **keywords
    )
    return perturb(model, scale=0.4).double()


def images_of(model, n=3, seed=0):
    return model.sample(n, generator=torch.Generator().manual_seed(seed))


def top_rows(shape, rows):
    known = torch.zeros(shape[-2:], dtype=torch.bool)
    known[:rows] = True
    return known


@pytest.mark.parametrize("method", ["cached", "naive"])
def test_known_rows_are_kept_and_the_rest_is_drawn(method):
    model = rgb_model()
    images = images_of(model)
    known = top_rows(images.shape, 2)
    draws = [
        model.complete(images, known, generator=torch.Generator().manual_seed(s), method=method)
        for s in range(4)
    ]
    for filled in draws:
        assert filled.dtype == torch.uint8 and filled.shape == images.shape
        assert torch.equal(filled[:, :, :2], images[:, :, :2])
        assert model.quantizer.is_valid(filled)
    # the bottom rows are drawn, not copied: different seeds give different completions
    assert len({tuple(d[:, :, 2:].flatten().tolist()) for d in draws}) > 1


PREFIXES = [("categorical", k) for k in (0, 21, 22, 23, 60)] + [
    ("logistic_mixture", k)
    for k in (0, 21, 60)  # a mixture draws whole pixels
]


@pytest.mark.parametrize("likelihood, known_subpixels", PREFIXES)
def test_cached_and_naive_completions_are_identical(likelihood, known_subpixels):
    """Prefixes ending inside a pixel too (R known, G and B drawn) for the categorical."""
    model = rgb_model(likelihood)
    images = images_of(model)
    order = torch.arange(60).reshape(4, 5, 3).permute(2, 0, 1)  # raster index of each sub-pixel
    known = order < known_subpixels
    results = [
        model.complete(
            images,
            known,
            generator=torch.Generator().manual_seed(9),
            method=method,
            return_log_probs=True,
        )
        for method in ("naive", "cached")
    ]
    (naive, naive_lp), (cached, cached_lp) = results
    assert torch.equal(naive, cached)
    assert torch.equal(cached[:, known], images[:, known])
    assert torch.allclose(naive_lp, cached_lp, atol=1e-6, rtol=0)


def test_the_unknown_part_of_the_input_is_never_seen():
    model = rgb_model()
    images = images_of(model)
    garbage = model.quantize(torch.randint(0, 256, images.shape, dtype=torch.uint8))
    garbage[:, :, :2] = images[:, :, :2]  # the same known rows, other unknown ones
    known = top_rows(images.shape, 2)
    a = model.complete(images, known, generator=torch.Generator().manual_seed(4))
    b = model.complete(garbage, known, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_conditional_completion_and_token_grids():
    model = rgb_model(num_classes=3)
    images = model.sample(3, torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    known = top_rows(images.shape, 3)
    filled = model.complete(images, known, condition=torch.tensor([0, 1, 2]))
    assert torch.equal(filled[:, :, :3], images[:, :, :3])

    prior = pixelcnn.create("gated", (4, 4), levels=5, data="tokens", preset="tiny")
    grids = prior.sample(2)
    filled = prior.complete(grids, top_rows(grids.shape, 2))
    assert filled.shape == grids.shape and torch.equal(filled[:, :2], grids[:, :2])


def test_masks_that_are_not_a_raster_prefix_are_refused():
    model = rgb_model()
    images = images_of(model, n=2)
    bottom = ~top_rows(images.shape, 2)
    hole = torch.ones(4, 5, dtype=torch.bool)
    hole[1, 2] = False
    left = torch.zeros(4, 5, dtype=torch.bool)
    left[:, 0] = True
    green_only = torch.zeros(3, 4, 5, dtype=torch.bool)
    green_only[1, 0, 0] = True  # G of the first pixel known, R not
    for mask in (bottom, hole, left, green_only):
        with pytest.raises(ValueError, match="raster prefix.*past"):
            model.complete(images, mask)
    with pytest.raises(ValueError, match="row 1, column 0, channel 0 comes after"):
        model.complete(images, left)


def test_other_bad_masks_are_refused_with_clear_errors():
    model = rgb_model()
    images = images_of(model, n=2)
    known = top_rows(images.shape, 2)
    with pytest.raises(ValueError, match="boolean"):
        model.complete(images, known.int())
    with pytest.raises(ValueError, match="shape"):
        model.complete(images, known[:3])
    per_image = torch.stack([known, top_rows(images.shape, 1)])[:, None].expand(2, 3, 4, 5)
    with pytest.raises(ValueError, match="same mask for every image"):
        model.complete(images, per_image)
    mixture = rgb_model("logistic_mixture")
    partial = torch.zeros(3, 4, 5, dtype=torch.bool)
    partial[0, 0, 0] = True  # R of the first pixel only
    with pytest.raises(ValueError, match="whole pixels"):
        mixture.complete(images_of(mixture, n=2), partial)


def test_a_mask_for_every_image_alike_is_accepted():
    model = rgb_model()
    images = images_of(model, n=2)
    known = top_rows(images.shape, 2)[None, None].expand(2, 3, 4, 5)
    filled = model.complete(images, known)
    assert torch.equal(filled[:, :, :2], images[:, :, :2])
