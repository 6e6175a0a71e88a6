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


# Every conditional of every registered network summing to one: tests/test_contracts.py.
