"""Importing pclucas14/pixel-cnn-pp state dicts (pixelcnn.importers.pixel_cnn_pp): the
layout of their names and shapes, the head's parameter layout, exact likelihoods after a
round trip, and files refused in one line without running any code from them."""

import math
import os
import pickle

import pytest
import torch

import pixelcnn
from pixelcnn.cli.main import main
from pixelcnn.importers.pixel_cnn_pp import (
    NotAReferenceCheckpoint,
    export_state_dict,
    import_checkpoint,
    import_state_dict,
)


def perturbed(model, seed=0):
    """``model`` with every parameter moved off its initial value (scales included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(0.1 * noise * (parameter.abs().mean() + 0.1))
    return model.eval()


def reference_like(channels=3, filters=8, resnets=1, components=10, seed=0):
    model = pixelcnn.create(
        "pixelcnnpp",
        (channels, 8, 8),
        filters=filters,
        resnets_per_stage=resnets,
        components=components,
    )
    return export_state_dict(perturbed(model, seed))


def test_their_names_and_shapes():
    """The names and shapes of their PixelCNN(nr_resnet=1, nr_filters=8, nr_logistic_mix=2,
    input_channels=3), written out from their model's structure."""
    state = reference_like(channels=3, filters=8, resnets=1, components=2)
    f = 8
    expected = {
        "u_init.conv": (f, 4, 2, 3),
        "ul_init.0.conv": (f, 4, 1, 3),
        "ul_init.1.conv": (f, 4, 2, 1),
        "up_layers.0.u_stream.0.conv_input.conv": (f, 2 * f, 2, 3),
        "up_layers.0.u_stream.0.conv_out.conv": (2 * f, 2 * f, 2, 3),
        "up_layers.2.ul_stream.0.nin_skip.lin_a": (f, 2 * f),
        "up_layers.1.ul_stream.0.conv_input.conv": (f, 2 * f, 2, 2),
        "downsize_u_stream.1.conv": (f, f, 2, 3),
        "downsize_ul_stream.0.conv": (f, f, 2, 2),
        "down_layers.0.u_stream.0.nin_skip.lin_a": (f, 2 * f),
        "down_layers.2.u_stream.1.nin_skip.lin_a": (f, 2 * f),  # n + 1 blocks after stage 0
        "down_layers.1.ul_stream.1.nin_skip.lin_a": (f, 4 * f),
        "upsize_u_stream.0.deconv": (f, f, 2, 3),
        "upsize_ul_stream.1.deconv": (f, f, 2, 2),
        "nin_out.lin_a": (10 * 2, f),
    }
    for module, shape in expected.items():
        assert tuple(state[f"{module}.weight_v"].shape) == shape, module
        out = shape[1] if "deconv" in module else shape[0]  # a transposed weight: [in, out, ...]
        assert state[f"{module}.bias"].shape == (out,)
        # weight_norm's default axis 0: one scale per row of v (for a transposed
        # convolution, per INPUT channel)
        assert tuple(state[f"{module}.weight_g"].shape) == (shape[0],) + (1,) * (len(shape) - 1)
    blocks = 3 * 1 * 2 + (1 + 2 + 2) * 2  # their up pass: n a stage; down pass: n, n+1, n+1
    resnets = {name.rsplit(".conv_out", 1)[0] for name in state if ".conv_out." in name}
    assert len(resnets) == blocks
    layers = {name.rsplit(".", 1)[0] for name in state}  # g, v and a bias each, nothing else
    # 3 input layers, 2 + 2 strided, 2 + 2 transposed, the head; in the blocks of the up
    # pass 2 layers (u) and 3 (ul, with its skip); in the down pass 3 and 3
    assert len(state) == 3 * len(layers) == 3 * (3 + 4 + 4 + 1 + 3 * 2 + 3 * 3 + 5 * 3 + 5 * 3)


def test_the_head_layout_is_theirs():
    """A head whose weights are zero outputs its bias at every pixel: logits, then per
    channel K means, K log-scales, K coupling coefficients (through tanh). The pixel's
    probability, worked out here from that layout in float64, is the model's."""
    state = reference_like(channels=3, components=1)
    state["nin_out.lin_a.weight_g"] = torch.zeros_like(state["nin_out.lin_a.weight_g"])
    # logit; R: mean, log-scale, alpha; G: mean, log-scale, beta; B: mean, log-scale, gamma
    bias = [0.3, -0.2, -2.0, 0.4, 0.1, -1.5, -0.3, 0.25, -1.0, 0.6]
    state["nin_out.lin_a.bias"] = torch.tensor(bias)
    model = import_state_dict(state, (1, 1))
    pixel = torch.tensor([[[[40]], [[128]], [[250]]]], dtype=torch.uint8)
    r, g, b = (2 * float(v) / 255 - 1 for v in pixel.flatten())
    mean = {"r": bias[1], "g": bias[4] + math.tanh(bias[3]) * r}
    mean["b"] = bias[7] + math.tanh(bias[6]) * r + math.tanh(bias[9]) * g
    scale = {"r": bias[2], "g": bias[5], "b": bias[8]}

    def bin_mass(x, name):
        cdf = lambda t: 1 / (1 + math.exp(-(t - mean[name]) / math.exp(scale[name])))  # noqa: E731
        upper = 1.0 if x > 0.999 else cdf(x + 1 / 255)
        lower = 0.0 if x < -0.999 else cdf(x - 1 / 255)
        return upper - lower

    expected = sum(math.log(bin_mass(x, n)) for x, n in ((r, "r"), (g, "g"), (b, "b")))
    assert model.log_prob(pixel).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "channels, resnets, components", [(3, 1, 10), (1, 1, 10), (3, 2, 5), (1, 2, 1)]
)
def test_a_round_trip_keeps_every_likelihood(channels, resnets, components):
    model = perturbed(
        pixelcnn.create(
            "pixelcnnpp",
            (channels, 8, 8),
            resnets_per_stage=resnets,
            filters=8,
            components=components,
        )  # fmt: skip
    )
    back = import_state_dict(export_state_dict(model), (8, 8)).eval()
    images = torch.randint(0, 256, (3, channels, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(back.log_prob(images), model.log_prob(images), rtol=1e-5, atol=0)
    # the transposed convolutions' weights, scaled per input channel there, come back
    for name in ("upsample_u.0.deconv", "upsample_ul.1.deconv"):
        ours = dict(model.network.named_modules())[name].weight
        theirs = dict(back.network.named_modules())[name].weight
        torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-7)


def test_sizes_are_read_off_the_tensors_and_a_data_parallel_prefix_is_dropped():
    state = reference_like(channels=1, filters=8, resnets=2, components=4)
    model = import_state_dict({f"module.{k}": v for k, v in state.items()})
    assert model.image_shape == (1, 28, 28)  # their MNIST size by default
    assert model.config.hyperparameters["filters"] == 8
    assert model.config.hyperparameters["resnets_per_stage"] == 2
    assert model.likelihood.components == 4 and model.levels == 256
    assert import_state_dict(reference_like(channels=3)).image_shape == (3, 32, 32)


def _without(state, name):
    return {k: v for k, v in state.items() if k != name}


BROKEN = [
    ("not a dict", lambda s: [1, 2], "not a state dict"),
    ("not tensors", lambda s: {**s, "u_init.conv.bias": 3}, "not a tensor"),
    ("another network", lambda s: {"fc.weight": torch.zeros(2, 2)}, "no tensor u_init"),
    (
        "missing",
        lambda s: _without(s, "up_layers.1.ul_stream.0.nin_skip.lin_a.weight_v"),
        "up_layers.1.ul_stream.0.nin_skip.lin_a.weight_v is missing",
    ),
    ("extra", lambda s: {**s, "ema.shadow": torch.zeros(1)}, "does not have: ema.shadow"),
    (
        "channels",
        lambda s: {**s, "u_init.conv.weight_v": torch.zeros(8, 3, 2, 3)},
        "images of 2",
    ),
    (
        "head",
        lambda s: {**s, "nin_out.lin_a.weight_v": torch.zeros(11, 8)},
        "not a multiple of 10",
    ),
    (
        "shape",
        lambda s: {**s, "downsize_u_stream.0.conv.weight_v": torch.zeros(8, 8, 3, 3)},
        "downsample_u.0",
    ),
]


@pytest.mark.parametrize("case, breaks, says", BROKEN, ids=[c for c, _, _ in BROKEN])
def test_what_is_not_their_model_is_refused_naming_what(tmp_path, case, breaks, says):
    state = breaks(reference_like())
    with pytest.raises(NotAReferenceCheckpoint, match=says):
        import_state_dict(state)
    torch.save(state, tmp_path / "broken.pth")
    out = tmp_path / "out"
    status = main(["convert", str(tmp_path / "broken.pth"), "--format", "pixel-cnn-pp",
                   "--out", str(out)])  # fmt: skip
    assert status == 2 and not out.exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # loading it would create the marker file


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.pth"
    torch.save({"u_init.conv.weight_v": _RunsCode(str(marker))}, hostile)
    with open(hostile, "rb") as raw:  # (a plain pickle, too)
        assert raw.read(2)
    (tmp_path / "plain.pth").write_bytes(pickle.dumps(_RunsCode(str(marker))))
    for path in (hostile, tmp_path / "plain.pth"):
        with pytest.raises(NotAReferenceCheckpoint, match="could run code"):
            import_checkpoint(path)
        status = main(["convert", str(path), "--format", "pixel-cnn-pp", "--out",
                       str(tmp_path / "out")])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and "could run code" in err[0]
    assert not marker.exists()


def test_a_fifo_or_a_folder_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo.pth")
    for path in (tmp_path / "fifo.pth", tmp_path):
        assert main(["convert", str(path), "--format", "pixel-cnn-pp", "--out",
                     str(tmp_path / "out")]) == 2  # fmt: skip


def test_convert_writes_a_model_every_command_takes(tmp_path, capsys):
    state = reference_like(channels=1, filters=8, resnets=1, components=2)
    torch.save(state, tmp_path / "theirs.pth")
    out = tmp_path / "converted"
    argv = ["convert", str(tmp_path / "theirs.pth"), "--format", "pixel-cnn-pp"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "1 resnets of 8 filters, 2 logistics" in capsys.readouterr().out
    model = pixelcnn.load(out)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    expected = import_state_dict(state).log_prob(images)
    torch.testing.assert_close(model.log_prob(images), expected)
    assert main(["eval", str(out), "--data", "mnist5k", "--limit", "8", "--quiet"]) == 0
    assert main(["sample", str(out), "--n", "1", "--out", str(tmp_path / "s.png")]) == 0
    assert main([*argv, "--out", str(out)]) == 2  # an existing model is not replaced


def test_convert_takes_the_image_size_as_every_command_does(tmp_path):
    torch.save(reference_like(channels=3), tmp_path / "theirs.pth")
    argv = ["convert", str(tmp_path / "theirs.pth"), "--format", "pixel-cnn-pp", "--out"]
    assert main([*argv, str(tmp_path / "a"), "--size", "12"]) == 0
    assert main([*argv, str(tmp_path / "b"), "--size", "12", "20"]) == 0
    assert pixelcnn.load(tmp_path / "a").image_shape == (3, 12, 12)
    assert pixelcnn.load(tmp_path / "b").image_shape == (3, 12, 20)
    assert main([*argv, str(tmp_path / "c"), "--size", "0"]) == 2 and not (tmp_path / "c").exists()
