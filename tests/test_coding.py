"""Lossless compression: exact round trips for every L, sizes at the model's ideal, and files
that are foreign, altered, truncated or made elsewhere refused in one line."""

from __future__ import annotations

import itertools
import math
import struct

import pytest
import torch
from helpers import perturb

import pixelcnn
from pixelcnn.coding import CompressedFormatError, codec, container, unpack


def lively(model):
    """Random weights: conditionals far from uniform, so a wrong one shows."""
    return perturb(model, 0.5, seed=1).eval()


def random_images(model, count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, model.levels, (count, *model.image_shape), generator=generator)
    return model.encoding.from_levels(levels)


LEVEL_CASES = list(
    itertools.product(
        ["pixelcnn", "gated", "pixelcnnpp"], ["categorical", "logistic_mixture"], [1, 3]
    )
)


@pytest.mark.parametrize("levels", [2, 16, 256])
@pytest.mark.parametrize(("network", "likelihood", "channels"), LEVEL_CASES)
def test_round_trip_is_exact_for_every_number_of_levels(network, likelihood, channels, levels):
    shape = (channels, 4, 4)
    model = lively(pixelcnn.create(network, shape, levels, likelihood, preset="tiny"))
    images = random_images(model, 7, seed=levels)
    blob = model.compress(images, batch_size=3)  # 3 + 3 + 1, the last group padded
    assert torch.equal(model.decompress(blob), images)
    assert torch.equal(model.decompress(blob, [6, 0, 6]), images[[6, 0, 6]])


@pytest.fixture(scope="module")
def digits_model():
    """A small PixelCNN++ fitted for a few steps to real digits, and 40 test digits."""
    from pixelcnn.data import load_dataset
    from pixelcnn.train import mean_bits_per_dim

    torch.manual_seed(0)
    train_images = torch.from_numpy(load_dataset("mnist5k", "train", size=12).images[:256])
    model = pixelcnn.create("pixelcnnpp", (1, 12, 12), levels=256, preset="tiny")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(30):
        batch = model.images_to_levels(train_images[(step % 8) * 32 : (step % 8 + 1) * 32])
        loss = mean_bits_per_dim(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_images = torch.from_numpy(load_dataset("mnist5k", "test", size=12).images[:40])
    return model.eval(), test_images


def test_size_is_the_ideal_plus_under_one_percent_and_a_header(digits_model):
    model, images = digits_model
    blob = model.compress(images, batch_size=16)
    header, streams = unpack(blob)
    with torch.no_grad():
        ideal = float(-model.log_prob(images).sum()) / math.log(2)
    payload = 8 * sum(len(s) for s in streams)
    # the range coder ends each group's stream with at most two 32-bit words
    assert ideal < payload <= 1.01 * ideal + 64 * len(streams)
    assert torch.equal(model.decompress(blob), images)


def test_names_and_labels_travel_with_the_images():
    model = lively(pixelcnn.create("gated", (1, 4, 4), 4, preset="tiny", num_classes=3))
    images = random_images(model, 5)
    labels = torch.tensor([2, 0, 1, 1, 2])
    names = ["a.png", "b.png", "c.png", "d.png", "é.png"]
    blob = model.compress(images, labels, names=names, batch_size=2)
    header, _ = unpack(blob)
    assert header.names == names and header.labels == labels.tolist()
    assert torch.equal(model.decompress(blob), images)


def test_token_grids_round_trip():
    model = lively(pixelcnn.create("gated", (4, 5), 7, data="tokens", preset="tiny"))
    tokens = torch.randint(0, 7, (3, 4, 5))
    blob = model.compress(tokens)
    decoded = model.decompress(blob)
    assert decoded.dtype == torch.int64 and torch.equal(decoded, tokens)


# ----------------------------------------------------------------------- refused files
@pytest.fixture(scope="module")
def small():
    model = lively(pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny"))
    images = random_images(model, 5)
    return model, images, model.compress(images, batch_size=2)


def test_another_model_is_refused(small):
    model, _, blob = small
    other = lively(pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny"))
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match="compressed with another model"):
        other.decompress(blob)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "truncated or corrupt"),
        (lambda b: b[:20], "truncated"),
        (lambda b: b[:5], "not a pixelcnn compressed file"),
        (lambda b: b"", "not a pixelcnn compressed file"),
        (lambda b: b"\x89PNG\r\n\x1a\n" + b[8:], "not a pixelcnn compressed file"),
        (lambda b: b[:8] + struct.pack("<H", 99) + b[10:], "format version 99"),
        (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], "truncated or corrupt"),
        (lambda b: b[:40] + bytes([b[40] ^ 0x80]) + b[41:], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
    ],
    ids=[
        "last-byte-cut",
        "header-cut",
        "stub",
        "empty",
        "png",
        "version",
        "stream-bit",
        "header-bit",
        "extra-byte",
    ],
)
def test_damaged_files_are_refused_before_decoding(small, damage, message):
    model, _, blob = small
    with pytest.raises(CompressedFormatError, match=message):
        model.decompress(damage(blob))


def repacked(blob: bytes, **changes) -> bytes:
    """The same streams under a header with ``changes`` (and a digest that fits)."""
    header, streams = unpack(blob)
    for key, value in changes.items():
        setattr(header, key, value)
    return container.pack(header, streams)


def test_a_header_out_of_shape_is_refused(small):
    model, _, blob = small
    for changes in [
        {"group_bytes": [1, 2]},
        {"names": ["only-one"]},
        {"labels": [-1] * 5},
        {"image_shape": [1, 4]},
        {"batch": 0},
        {"count": "5"},
    ]:
        with pytest.raises(CompressedFormatError, match="malformed header"):
            model.decompress(repacked(blob, **changes))


def test_another_torch_or_dtype_is_refused(small):
    model, _, blob = small
    header, _ = unpack(blob)
    for key, value in [("torch", "1.0.0"), ("dtype", "float64"), ("device", "cuda")]:
        changed = repacked(blob, determinism={**header.determinism, key: value})
        with pytest.raises(ValueError, match=f"compressed with {key}"):
            model.decompress(changed)


def test_other_probabilities_give_a_checksum_error_not_wrong_pixels(small, monkeypatch):
    """A decoder whose probabilities differ in the last bits (here: weights nudged, the
    fingerprint check bypassed) is caught by the groups' checksums."""
    model, _, blob = small
    header, _ = unpack(blob)
    nudged = lively(pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny"))
    with torch.no_grad():
        for parameter in nudged.parameters():
            parameter.mul_(1.05)
    monkeypatch.setattr(codec, "fingerprint", lambda _: header.model)
    with pytest.raises(ValueError, match="decode to other pixels than were compressed"):
        nudged.decompress(blob)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(0, 1, 4, 4, dtype=torch.uint8), "no images"),
        (torch.zeros(2, 1, 5, 4, dtype=torch.uint8), "shape"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.float32), "uint8"),
        (torch.full((2, 1, 4, 4), 3, dtype=torch.uint8), "levels"),
    ],
)
def test_bad_images_are_refused(small, images, message):
    model, _, _ = small
    with pytest.raises(ValueError, match=message):
        model.compress(images)


def test_indices_outside_the_file_are_refused(small):
    model, _, blob = small
    with pytest.raises(ValueError, match="not in 0..4"):
        model.decompress(blob, [5])


@pytest.mark.parametrize("likelihood", ["categorical", "logistic_mixture"])
def test_each_channels_distribution_sums_to_one_and_holds_log_prob(likelihood):
    """The coder's per-channel distributions: normalized, and at the pixel's own value equal
    to log_prob (the fast path of the categorical agrees with the generic one)."""
    from pixelcnn.coding.walk import channel_log_probs

    model = lively(pixelcnn.create("pixelcnnpp", (3, 4, 4), 16, likelihood, preset="tiny"))
    generator = torch.Generator().manual_seed(4)
    params = torch.randn(5, model.likelihood.num_params, 1, 1, generator=generator)
    pixel = torch.randint(0, 16, (5, 3, 1, 1), generator=generator)
    expected = model.likelihood.log_prob(params, pixel)[:, :, 0, 0]

    class Generic:  # the same likelihood without its fast path
        levels, log_prob = model.likelihood.levels, model.likelihood.log_prob

    for channel in range(3):
        for source in (model.likelihood, Generic()):
            log_p = channel_log_probs(source, params, pixel.clone(), channel).float()
            assert log_p.shape == (5, 16)
            torch.testing.assert_close(log_p.logsumexp(1), torch.zeros(5), atol=1e-5, rtol=0)
            own = log_p.gather(1, pixel[:, channel, 0])
            torch.testing.assert_close(own[:, 0], expected[:, channel], atol=1e-5, rtol=1e-5)
