"""The model is a distribution: probabilities of all possible images sum to one."""

import pytest
import torch
from helpers import all_images, perturb

import pixelcnn


@pytest.mark.parametrize(
    ("image_shape", "levels"),
    [((1, 2, 2), 2), ((3, 1, 1), 4), ((1, 3, 3), 2), ((3, 2, 2), 2), ((1, 2, 2), 3)],
)
def test_probabilities_of_all_images_sum_to_one(image_shape, levels):
    model = pixelcnn.create("pixelcnn", image_shape, levels=levels, preset="tiny")
    perturb(model, scale=1.5)
    model.double()
    images = all_images(image_shape, model.quantizer.valid_values().tolist())
    with torch.no_grad():
        log_p = model.log_prob(images)
    probabilities = log_p.exp()
    assert abs(probabilities.sum().item() - 1.0) < 1e-5
    # the perturbation made the distribution far from uniform, so the test has teeth
    assert probabilities.max().item() > 5.0 / len(images)


def test_conditionals_sum_to_one_over_levels_at_every_subpixel():
    model = perturb(pixelcnn.create("pixelcnn", (3, 3, 3), levels=5, preset="tiny"))
    levels = torch.randint(0, 5, (4, 3, 3, 3))
    with torch.no_grad():
        params = model(levels)
        total = torch.zeros(4, 3, 3, 3)
        for value in range(5):
            total += model.likelihood.log_prob(params, torch.full_like(levels, value)).exp()
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
