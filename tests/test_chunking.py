"""Scoring in chunks: the same log-probabilities as one whole batch, no temporary above the
budget, and the condition of each image kept with its image."""

import pytest
import torch

import pixelcnn
from pixelcnn.chunking import chunk_length, largest_temporary


def test_largest_temporary_sees_every_operation():
    assert largest_temporary(lambda: torch.ones(1000) + 1) == 4000
    assert largest_temporary(lambda: torch.zeros(10, dtype=torch.float64).sum()) == 80
    assert chunk_length(4000, 10_000) == 2 and chunk_length(4000, 100) == 1


@pytest.mark.parametrize(
    "name, shape, extra",
    [
        ("gated", (1, 12, 12), {"num_classes": 3}),
        ("pixelcnnpp", (3, 8, 8), {"num_classes": 3}),
        ("pixelcnn", (3, 8, 8), {}),
    ],
)
def test_chunks_give_the_whole_batch_scores_and_keep_under_budget(name, shape, extra):
    torch.manual_seed(0)
    model = pixelcnn.create(name, shape, levels=16, preset="tiny", **extra).eval()
    images = model.quantize(torch.randint(0, 256, (23, *shape), dtype=torch.uint8))
    labels = torch.arange(23) % 3 if extra else None
    with torch.no_grad():
        model.scoring_chunk_bytes = None
        whole = model.log_prob(images, labels)
        per_image = largest_temporary(
            lambda: model.log_prob(images[:1], None if labels is None else labels[:1])
        )
        # a budget of about three images: eight chunks, the last one short
        model.scoring_chunk_bytes = 3 * per_image + per_image // 2
        chunked = model.log_prob(images, labels)
        largest = largest_temporary(lambda: model.log_prob(images, labels))
        maps = model.nll_map(images, labels)
    assert model._scoring_chunk(model.images_to_levels(images), None) == 3
    assert largest <= model.scoring_chunk_bytes < 23 * per_image
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-4)
    # the chunks keep the images' order and their own labels
    torch.testing.assert_close(maps.flatten(1).sum(1), -whole, rtol=1e-6, atol=1e-3)
    if labels is not None:
        with torch.no_grad():
            shifted = model.log_prob(images, (labels + 1) % 3)
        assert not torch.allclose(shifted, whole)


def test_training_passes_are_not_chunked():
    """With autograd on, the graph must see the whole batch as one (the loss's gradient)."""
    torch.manual_seed(0)
    model = pixelcnn.create("gated", (1, 8, 8), levels=4, preset="tiny")
    model.scoring_chunk_bytes = 1  # one image per chunk, if it were used
    images = model.quantize(torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8))
    with torch.no_grad():
        expected = model.log_prob(images)
    log_p = model.log_prob(images)
    assert log_p.requires_grad
    torch.testing.assert_close(log_p.detach(), expected, rtol=1e-6, atol=1e-4)
