"""The user's API: shapes, units, validation, save/load."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
from helpers import perturb

import pixelcnn


@pytest.fixture
def rgb_model():
    return perturb(pixelcnn.create("pixelcnn", (3, 5, 4), levels=8, preset="tiny"), scale=0.5)


def _images(model, n=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n, *model.image_shape), generator=generator, dtype=torch.uint8)
    return model.quantize(raw)


def test_log_prob_is_sum_of_conditionals_and_bits_per_dim_is_its_scaling(rgb_model):
    x = _images(rgb_model)
    conditionals = rgb_model.conditional_log_probs(x)
    assert conditionals.shape == (3, 3, 5, 4)
    assert torch.all(conditionals <= 0)
    log_p = rgb_model.log_prob(x)
    assert log_p.shape == (3,)
    assert torch.allclose(log_p, conditionals.flatten(1).sum(1))
    dims = 3 * 5 * 4
    assert torch.allclose(rgb_model.bits_per_dim(x), -log_p / (dims * math.log(2)))


def test_untrained_model_is_near_uniform():
    model = pixelcnn.create("pixelcnn", (1, 8, 8), levels=256)
    bpd = model.bits_per_dim(_images(model, n=4))
    assert torch.all((bpd > 7.5) & (bpd < 9.0))  # uniform over 256 levels is 8 bits


def test_numpy_input_is_accepted(rgb_model):
    x = _images(rgb_model)
    assert torch.allclose(rgb_model.log_prob(x.numpy()), rgb_model.log_prob(x))


BAD_INPUTS = [
    ("wrong rank", lambda m: torch.zeros(3, 5, 4, dtype=torch.uint8), "4 dimensions"),
    ("wrong channels", lambda m: torch.zeros(2, 1, 5, 4, dtype=torch.uint8), "shape"),
    ("wrong size", lambda m: torch.zeros(2, 3, 4, 5, dtype=torch.uint8), "shape"),
    ("float dtype", lambda m: torch.zeros(2, 3, 5, 4), "uint8"),
    ("int64 dtype", lambda m: torch.zeros(2, 3, 5, 4, dtype=torch.int64), "uint8"),
    ("off-level values", lambda m: torch.full((2, 3, 5, 4), 3, dtype=torch.uint8), "levels"),
    ("a list", lambda m: [[0]], "torch.Tensor"),
]


@pytest.mark.parametrize(("case", "make", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
@pytest.mark.parametrize("method", ["log_prob", "conditional_log_probs", "bits_per_dim"])
def test_bad_images_raise_value_error_saying_what_was_expected(
    rgb_model, case, make, message, method
):
    with pytest.raises(ValueError, match=message):
        getattr(rgb_model, method)(make(rgb_model))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "nope", "image_shape": (1, 8, 8)}, "unknown model"),
        ({"model": "pixelcnn", "image_shape": (2, 8, 8)}, "1 or 3 channels"),
        ({"model": "pixelcnn", "image_shape": (8, 8)}, "image_shape"),
        ({"model": "pixelcnn", "image_shape": (1, 8, 8), "levels": 1}, "levels"),
        ({"model": "pixelcnn", "image_shape": (1, 8, 8), "levels": 300}, "levels"),
        ({"model": "pixelcnn", "image_shape": (1, 8, 8), "likelihood": "x"}, "likelihood"),
        ({"model": "pixelcnn", "image_shape": (1, 8, 8), "depth": 3}, "unknown hyperparameter"),
        ({"model": "pixelcnn", "image_shape": (1, 8, 8), "preset": "huge"}, "preset"),
    ],
)
def test_create_refuses_bad_configurations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pixelcnn.create(**kwargs)


@pytest.mark.parametrize(("n", "temperature"), [(0, 1.0), (-1, 1.0), (2.5, 1.0), (2, -0.5)])
def test_sample_refuses_bad_arguments(rgb_model, n, temperature):
    with pytest.raises(ValueError):
        rgb_model.sample(n, temperature=temperature)


def test_save_then_load_gives_identical_log_probs(rgb_model, tmp_path):
    x = _images(rgb_model)
    rgb_model.save(tmp_path / "m")
    loaded = pixelcnn.load(tmp_path / "m")
    assert loaded.config == rgb_model.config
    assert torch.equal(loaded.log_prob(x), rgb_model.log_prob(x))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "pixelcnn-model" and config["levels"] == 8


def test_load_refuses_missing_corrupt_and_foreign_files(rgb_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        pixelcnn.load(tmp_path / "absent")
    rgb_model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="safetensors"):
        pixelcnn.load(tmp_path / "m")
    weights.write_bytes(good)
    # a different configuration's weights
    other = pixelcnn.create("pixelcnn", (3, 5, 4), levels=8, preset="tiny", hidden_channels=18)
    other.save(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_bytes((tmp_path / "m" / "config.json").read_bytes())
    with pytest.raises(ValueError, match="does not match|shape"):
        pixelcnn.load(tmp_path / "other")
    (tmp_path / "m" / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a pixelcnn model"):
        pixelcnn.load(tmp_path / "m")


class _Exploit:
    def __reduce__(self):
        return (open, ("PWNED_MARKER", "w"))


def test_load_never_unpickles(rgb_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rgb_model.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(pickle.dumps({"w": _Exploit()}))
    with pytest.raises(ValueError):
        pixelcnn.load(tmp_path / "m")
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_quantize_snaps_raw_images_to_the_model_levels():
    model = pixelcnn.create("pixelcnn", (1, 4, 4), levels=2, preset="tiny")
    raw = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4) * 16
    snapped = model.quantize(raw)
    assert set(snapped.unique().tolist()) <= {0, 255}
    assert torch.equal(snapped.flatten() == 255, torch.from_numpy(raw.flatten() >= 128))
    assert torch.isfinite(model.log_prob(snapped)).all()


def test_a_loaded_model_scores_exactly_and_repeatably_even_with_dropout(tmp_path):
    """pixelcnn.load gives a model for use: dropout off, so log_prob is the likelihood, the
    same every call (in training mode a dropout network's output is a random draw)."""
    model = pixelcnn.create("pixelcnnpp", (1, 8, 8), preset="tiny", dropout=0.5)
    model.save(tmp_path / "m")
    loaded = pixelcnn.load(tmp_path / "m")
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        first, second = loaded.log_prob(images), loaded.log_prob(images)
        assert torch.equal(first, second)
        assert torch.equal(first, model.eval().log_prob(images))
