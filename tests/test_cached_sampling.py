"""Cached sampling is the naive sampler, only faster: same random stream, same images, and
the log-probabilities it computes on the way are those of a whole forward pass."""

import pytest
import torch
from helpers import count_operations, perturb
from torch.utils.flop_counter import FlopCounterMode

import pixelcnn
from pixelcnn.nn.stepping import RowQueue, Steppable

# (model, image shape, create() keywords, condition kind). Every network x likelihood x
# channel count x condition kind x token input is drawn cached == naive by the contract
# suite (tests/test_contracts.py) on small square images; these add non-square images,
# larger grids, other kernel sizes and deeper stacks, and check the scores on the way.
NAMED = {
    "pixelcnn-rgb": ("pixelcnn", (3, 5, 4), {}, None),
    "gated-grey": ("gated", (1, 6, 5), {}, None),
    "gated-rgb": ("gated", (3, 5, 4), {}, None),
    "gated-class": ("gated", (3, 5, 4), {"num_classes": 3}, "class"),
    "gated-spatial": ("gated", (3, 4, 5), {"spatial_channels": 2}, "spatial"),
    "gated-mixture": ("gated", (3, 4, 4), {"likelihood": "logistic_mixture"}, None),
    "gated-tokens": ("gated", (5, 6), {"data": "tokens", "embedding_dim": 4}, None),
    "pixelcnnpp-wide": ("pixelcnnpp", (3, 8, 12), {}, None),
    "pixelcnnpp-class": ("pixelcnnpp", (3, 8, 8), {"num_classes": 3}, "class"),
    "pixelcnnpp-tall-vector": ("pixelcnnpp", (1, 12, 8), {"vector_dim": 2}, "vector"),
    # other kernel sizes, 1x1 input layers (no queue) included
    "pixelcnn-kernels": ("pixelcnn", (3, 5, 4), {"input_kernel": 1, "residual_kernel": 5}, None),
    "gated-kernels": ("gated", (1, 5, 6), {"input_kernel": 1, "kernel_size": 5}, None),
    "pixelcnnpp-deep": ("pixelcnnpp", (3, 8, 8), {"resnets_per_stage": 3}, None),
    # attention with a key/value cache: keys of every committed position, several heads
    "pixelsnail-wide": ("pixelsnail", (3, 5, 7), {}, None),
    "pixelsnail-class": ("pixelsnail", (3, 4, 5), {"num_classes": 3}, "class"),
    "pixelsnail-tokens": ("pixelsnail", (4, 5), {"data": "tokens", "embedding_dim": 4}, None),
    "pixelsnail-heads": (
        "pixelsnail",
        (1, 6, 5),
        {"heads": 2, "key_size": 4, "value_size": 6, "blocks": 2},
        None,
    ),
}
CASES, IDS = list(NAMED.values()), list(NAMED)


def some(*names):
    """A parametrization over the named cases."""
    return pytest.mark.parametrize("case", [NAMED[n] for n in names], ids=list(names))


BATCH = 3


def make(case, dtype=torch.float64, scale=0.4):
    name, shape, keywords, kind = case
    model = pixelcnn.create(name, shape, levels=6, preset="tiny", **keywords)
    # random weights far from zero: conditionals far from uniform, so a wrong activation
    # anywhere changes draws and log-probabilities
    model = perturb(model, scale=scale).to(dtype)
    generator = torch.Generator().manual_seed(3)
    condition = {
        None: None,
        "class": torch.tensor([0, 2, 1]),
        "vector": torch.randn(BATCH, 2, generator=generator, dtype=dtype),
        "spatial": torch.randn(BATCH, 2, *shape[1:], generator=generator, dtype=dtype),
    }[kind]
    return model, condition


def draw(model, condition, method, seed=5, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return model.sample(
        BATCH, condition, generator=generator, method=method, return_log_probs=True, **kwargs
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cached_and_naive_draw_identical_images(case):
    model, condition = make(case)
    naive, _ = draw(model, condition, "naive")
    cached, log_probs = draw(model, condition, "cached")
    assert torch.equal(naive, cached)
    # the images are not all alike: the test would not notice a sampler stuck on one value
    assert len(torch.unique(cached)) > 1
    expected = model.conditional_log_probs(cached, condition)
    assert torch.allclose(log_probs, expected.float(), atol=1e-4, rtol=0)


@some("pixelcnn-rgb", "gated-rgb", "gated-spatial", "gated-mixture", "pixelcnnpp-wide")
def test_float32_cached_log_probs_match_a_forward_pass(case):
    model, condition = make(case, dtype=torch.float32)
    naive, _ = draw(model, condition, "naive", seed=11)
    cached, log_probs = draw(model, condition, "cached", seed=11)
    assert torch.equal(naive, cached)
    expected = model.conditional_log_probs(cached, condition)
    assert (log_probs - expected).abs().max() < 1e-4


@pytest.mark.parametrize("temperature", [0, 0.5, 2.0])
@pytest.mark.parametrize("name", ["gated-rgb", "pixelcnnpp-wide", "pixelsnail-wide"])
def test_temperature_is_applied_alike(temperature, name):
    model, condition = make(NAMED[name])
    naive, _ = draw(model, condition, "naive", temperature=temperature)
    cached, _ = draw(model, condition, "cached", temperature=temperature)
    assert torch.equal(naive, cached)


@some(
    "pixelcnn-rgb", "gated-class", "gated-mixture", "gated-tokens", "pixelcnnpp-class",
    "pixelsnail-class", "pixelsnail-tokens",
)  # fmt: skip
def test_teacher_forced_steps_score_known_images_like_a_forward_pass(case):
    """Completing an image whose every sub-pixel is known runs every step with known
    inputs: its log-probabilities are then exactly conditional_log_probs."""
    model, condition = make(case)
    images = model.sample(BATCH, condition, generator=torch.Generator().manual_seed(1))
    known = torch.ones(images.shape[1:], dtype=torch.bool)
    kept, log_probs = model.complete(images, known, condition, return_log_probs=True)
    assert torch.equal(kept, images)
    expected = model.conditional_log_probs(images, condition).float()
    assert torch.allclose(log_probs, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name, shape", [("gated", (1, 8, 8)), ("pixelcnnpp", (3, 8, 8))])
def test_work_per_pixel_does_not_grow_with_the_image(name, shape):
    """A constant amount of work per pixel: twice the rows, twice the FLOPs (naive
    sampling would need about four times as many)."""

    def flops(height):
        model = pixelcnn.create(name, (shape[0], height, shape[2]), levels=8, preset="tiny")
        with FlopCounterMode(display=False) as counter:
            model.sample(2, generator=torch.Generator().manual_seed(0))
        return counter.get_total_flops()

    ratio = flops(16) / flops(8)
    assert 1.9 < ratio < 2.1, ratio


def test_layers_compute_whole_images_again_after_sampling_even_after_an_error(monkeypatch):
    model, _ = make(NAMED["pixelcnnpp-wide"])
    levels = torch.randint(0, 6, (2, 3, 8, 12))
    before = model(levels)

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(model.likelihood, "sample", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.sample(2)
    assert all(m._stepper is None for m in model.modules() if isinstance(m, Steppable))
    assert torch.equal(model(levels), before)
    assert model.training  # the model's mode is restored too


def test_sample_rejects_unknown_methods_and_bad_temperatures():
    model, _ = make(NAMED["gated-grey"])
    with pytest.raises(ValueError, match="method"):
        model.sample(2, method="fast")
    for temperature in (-1.0, float("nan"), float("inf"), "hot"):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(2, temperature=temperature)


def test_row_queue_keeps_the_newest_rows_and_reads_zeros_above_the_image():
    queue = RowQueue(1, 1, width=3, depth=2, left=1, right=1)
    assert torch.equal(queue.window(0, 2), torch.zeros(1, 1, 2, 5))  # row -1 is padding
    queue.put(0, torch.tensor([[[[1.0, 2.0, 3.0]]]]))
    queue.put(1, torch.tensor([[[[4.0]]]]), col=0)
    window = queue.window(1, 2)
    assert window[0, 0].tolist() == [[0, 1, 2, 3, 0], [0, 4, 0, 0, 0]]
    assert queue.window(1, 2, first_col=1, width=2)[0, 0].tolist() == [[1, 2], [4, 0]]
    queue.put(2, torch.tensor([[[[5.0]]]]), col=2)  # row 0 leaves the queue
    assert queue.window(2, 2)[0, 0].tolist() == [[0, 4, 0, 0, 0], [0, 0, 0, 5, 0]]
    with pytest.raises(RuntimeError, match="left the queue"):
        queue.put(0, torch.zeros(1, 1, 1, 1), col=0)


def test_each_resolution_of_the_unet_runs_only_where_it_advances():
    """PixelCNN++ on 8x12: the up stream steps once per row of its resolution, the up-left
    stream once per pixel of it; stage s has (8 >> s) x (12 >> s) positions."""
    model = pixelcnn.create("pixelcnnpp", (1, 8, 12), levels=4, preset="tiny")
    network, calls = model.network, {}
    watched = {
        f"{stream}{stage}": blocks[stage][0]
        for stage in range(3)
        for stream, blocks in (("u", network.down_u), ("ul", network.down_ul))
    }
    watched.update(upsample_u0=network.upsample_u[0], upsample_ul1=network.upsample_ul[1])
    for name, module in watched.items():
        calls[name] = 0
        module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    model.sample(2)
    assert calls == {
        "u0": 8, "u1": 4, "u2": 2,  # rows
        "ul0": 96, "ul1": 24, "ul2": 6,  # pixels
        "upsample_u0": 4,  # into the rows of resolution 1/2
        "upsample_ul1": 96,  # into every full-resolution pixel
    }  # fmt: skip


def test_a_progress_bar_shows_on_request(capsys):
    model = pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny")
    model.sample(1)
    assert "sampling" not in capsys.readouterr().err
    model.sample(1, progress=True)
    assert "sampling" in capsys.readouterr().err


def test_a_gated_pixel_step_is_a_handful_of_operations_per_block():
    """The fused horizontal step (pixelcnn/nn/gated_step.py) costs at most eight tensor
    operations per block plus a few for the skips and the head; the generic layer steppers
    took about 27 per block, and per-call overhead is what a step's time is made of."""
    model = pixelcnn.create("gated", (1, 6, 6), levels=256)  # the default: 8 blocks
    steps = model.network.generation(4, 6, 6)
    x = torch.zeros(4, 1, 1, 1)
    with torch.no_grad(), steps:
        steps.row(0)
        steps.pixel(0, 0, x)
        operations = count_operations(lambda: steps.pixel(0, 1, x))
    assert operations <= 8 * len(model.network.blocks) + 8, operations
