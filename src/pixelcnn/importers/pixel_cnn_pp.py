"""Import a PixelCNN++ state dict saved by the public PyTorch implementation
(pclucas14/pixel-cnn-pp: ``torch.save(model.state_dict(), ...)`` of its
``PixelCNN(nr_resnet, nr_filters, nr_logistic_mix, input_channels)``) as a pixelcnn model.

The two networks compute the same function: the same streams and shifts, the same U-Net
(its "up" pass is our down pass), the same gated residual blocks, the same crops of the
transposed convolutions, the channel of ones, inputs scaled to [-1, 1], and the same head
layout as our logistic mixture (logits, then per channel K means, K log-scales and, for RGB,
K coupling coefficients). Two things differ in how the weights are stored, and the
conversion settles both:

- names (``up_layers.i.u_stream.j.conv_input.conv`` is our ``down_u.i.j.conv_in.conv``,
  ``nin_out.lin_a`` our ``out.conv``, ...): :func:`reference_names` pairs them;
- weight normalization: theirs is ``torch.nn.utils.weight_norm`` with its default axis 0,
  which for a transposed convolution (weight [in, out, kh, kw]) gives one scale per INPUT
  channel; ours scales per output channel. The effective weight g * v / ||v|| is computed
  in float64 and stored as our (g, v) pair, so both compute it alike up to float32
  rounding; the convolutions and 1x1 layers copy (g, v) exactly.

The file is a pickle: it is read with ``torch.load(weights_only=True)``, which builds
tensors and plain containers only and never runs code from the file.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from pixelcnn.files import open_regular
from pixelcnn.limits import check_memory

FORMAT = "pixel-cnn-pp"
# Their training script's image sizes: MNIST for one channel, CIFAR-10 for three.
DEFAULT_SIZE = {1: (28, 28), 3: (32, 32)}
_PARAMS_PER_COMPONENT = {1: 3, 3: 10}  # logit, mean, log-scale (, 3 coefficients) per channel
_STAGES = 3


class NotAReferenceCheckpoint(ValueError):
    """A file or state dict that is not a pixel-cnn-pp PixelCNN's, or not all of one."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d state dict at ``path``, loaded without running any
    code from the file; a file that needs code to load (any object beyond tensors and
    plain containers) is refused, never executed."""
    with open_regular(path) as stream, warnings.catch_warnings():  # a FIFO: refused at once
        check_memory(2 * os.fstat(stream.fileno()).st_size, f"loading {os.fspath(path)}")
        warnings.simplefilter("ignore")  # torch's notes on pickle protocols: not the user's
        try:
            loaded = torch.load(stream, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise NotAReferenceCheckpoint(
                f"{path} holds objects other than tensors, which could run code when "
                f"loaded; it is refused unread ({_what_it_needs(error)})"
            ) from None
        except (RuntimeError, EOFError, ValueError, KeyError, IndexError) as error:
            reason = " ".join(str(error).split())[:200]
            raise NotAReferenceCheckpoint(
                f"{path} is not a PyTorch state dict ({reason})"
            ) from None
    return checked_state_dict(loaded, str(path))


def _what_it_needs(error: Exception) -> str:
    """The part of torch's refusal that names the object the file asked for."""
    text = " ".join(str(error).split())
    named = re.search(r"Unsupported [^:]*: (?:GLOBAL )?[\w.]+", text)
    return named.group(0)[:160] if named else "an object torch's safe loader does not build"


def checked_state_dict(loaded: Any, source: str) -> dict[str, torch.Tensor]:
    """``loaded`` as a flat name -> tensor dict, with DataParallel's ``module.`` prefix
    removed; anything else is refused naming what it is."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a training checkpoint wrapping one
    if not isinstance(loaded, dict) or not loaded:
        raise NotAReferenceCheckpoint(
            f"{source} holds a {type(loaded).__name__}, not a state dict of tensors"
        )
    for name, value in loaded.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise NotAReferenceCheckpoint(
                f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor"
            )
    if all(name.startswith("module.") for name in loaded):
        loaded = {name.removeprefix("module."): value for name, value in loaded.items()}
    return dict(loaded)


def reference_sizes(state: dict[str, torch.Tensor], source: str) -> dict[str, int]:
    """``channels``, ``filters``, ``resnets`` and ``components`` read off the tensors."""
    try:
        first = state["u_init.conv.weight_v"]
        head = state["nin_out.lin_a.weight_v"]
    except KeyError as error:
        raise NotAReferenceCheckpoint(
            f"{source} is not a pixel-cnn-pp PixelCNN state dict (no tensor {error.args[0]})"
        ) from None
    if first.ndim != 4 or head.ndim != 2:
        raise NotAReferenceCheckpoint(f"{source}: u_init or nin_out has an unexpected shape")
    filters, channels = first.shape[0], first.shape[1] - 1
    if channels not in _PARAMS_PER_COMPONENT:
        raise NotAReferenceCheckpoint(
            f"{source}: its first layer takes {channels + 1} channels, so images of "
            f"{channels}; only 1 or 3 (plus the channel of ones) are PixelCNN++ models"
        )
    per = _PARAMS_PER_COMPONENT[channels]
    if head.shape[0] % per:
        raise NotAReferenceCheckpoint(
            f"{source}: nin_out gives {head.shape[0]} parameters, not a multiple of {per} "
            f"(the parameters of one mixture component for {channels} channel(s))"
        )
    pattern = re.compile(r"up_layers\.0\.u_stream\.(\d+)\.conv_input\.conv\.weight_v")
    resnets = sum(1 for name in state if pattern.fullmatch(name))
    if resnets == 0:
        raise NotAReferenceCheckpoint(f"{source} has no resnet blocks (up_layers.0.u_stream)")
    return {
        "channels": channels,
        "filters": filters,
        "resnets": resnets,
        "components": head.shape[0] // per,
    }


def reference_names(resnets: int) -> Iterator[tuple[str, str, str]]:
    """(our module, their module, kind) for every weight-normalized layer; kind is "conv",
    "deconv" (a transposed convolution) or "nin" (their Linear, our 1x1 convolution)."""
    yield "u_init.conv", "u_init.conv", "conv"
    yield "ul_init_up.conv", "ul_init.0.conv", "conv"
    yield "ul_init_left.conv", "ul_init.1.conv", "conv"

    def block(ours: str, theirs: str, skip: bool) -> Iterator[tuple[str, str, str]]:
        yield f"{ours}.conv_in.conv", f"{theirs}.conv_input.conv", "conv"
        if skip:
            yield f"{ours}.skip.conv", f"{theirs}.nin_skip.lin_a", "nin"
        yield f"{ours}.conv_out.conv", f"{theirs}.conv_out.conv", "conv"

    for stage in range(_STAGES):  # their up pass is our down pass (towards low resolution)
        for j in range(resnets):
            yield from block(f"down_u.{stage}.{j}", f"up_layers.{stage}.u_stream.{j}", False)
            yield from block(f"down_ul.{stage}.{j}", f"up_layers.{stage}.ul_stream.{j}", True)
        if stage < _STAGES - 1:
            yield f"downsample_u.{stage}.conv", f"downsize_u_stream.{stage}.conv", "conv"
            yield f"downsample_ul.{stage}.conv", f"downsize_ul_stream.{stage}.conv", "conv"
    for stage in range(_STAGES):
        for j in range(resnets if stage == 0 else resnets + 1):
            yield from block(f"up_u.{stage}.{j}", f"down_layers.{stage}.u_stream.{j}", True)
            yield from block(f"up_ul.{stage}.{j}", f"down_layers.{stage}.ul_stream.{j}", True)
        if stage < _STAGES - 1:
            yield f"upsample_u.{stage}.deconv", f"upsize_u_stream.{stage}.deconv", "deconv"
            yield f"upsample_ul.{stage}.deconv", f"upsize_ul_stream.{stage}.deconv", "deconv"
    yield "out.conv", "nin_out.lin_a", "nin"


def _norm(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """||weight|| over every axis but ``keep``, shaped to broadcast against it."""
    axes = [axis for axis in range(weight.ndim) if axis != keep]
    return torch.linalg.vector_norm(weight, dim=axes, keepdim=True)


def import_state_dict(
    state: dict[str, torch.Tensor],
    image_size: int | tuple[int, int] | None = None,
    source: str = "the state dict",
):
    """A pixelcnn PixelCNN++ model (256 levels, the logistic mixture) computing what the
    reference network with these weights computes. ``image_size``: S or (H, W); by default
    28x28 for one channel, 32x32 for three, as the reference trained them."""
    from pixelcnn.data.readers import output_size
    from pixelcnn.model import create, load_weights

    state = checked_state_dict(state, source)
    sizes = reference_sizes(state, source)
    channels = sizes["channels"]
    height, width = DEFAULT_SIZE[channels] if image_size is None else output_size(image_size)
    model = create(
        "pixelcnnpp",
        (channels, height, width),
        levels=256,
        likelihood="logistic_mixture",
        filters=sizes["filters"],
        resnets_per_stage=sizes["resnets"],
        dropout=0.5,  # the reference's (training only)
        components=sizes["components"],
    )
    ours, used = {}, set()
    for mine, theirs, kind in reference_names(sizes["resnets"]):
        names = {part: f"{theirs}.{part}" for part in ("weight_g", "weight_v", "bias")}
        missing = [name for name in names.values() if name not in state]
        if missing:
            raise NotAReferenceCheckpoint(
                f"{source} is not a whole pixel-cnn-pp PixelCNN of {sizes['resnets']} resnets: "
                f"tensor {missing[0]} is missing"
            )
        g, v, bias = (state[names[part]] for part in ("weight_g", "weight_v", "bias"))
        used.update(names.values())
        if kind == "nin":  # their Linear [out, in] is our 1x1 convolution [out, in, 1, 1]
            g, v = g.reshape(*g.shape, 1, 1), v.reshape(*v.shape, 1, 1)
        if kind == "deconv":  # their scale is per input channel, ours per output channel
            weight = g.double() * v.double() / _norm(v.double(), 0)
            v = weight.float()
            g = _norm(v.double(), 1).float()
        prefix = f"network.{mine}"
        ours[f"{prefix}.parametrizations.weight.original0"] = g.float().contiguous()
        ours[f"{prefix}.parametrizations.weight.original1"] = v.float().contiguous()
        ours[f"{prefix}.bias"] = bias.float().contiguous()
    extra = sorted(set(state) - used)
    if extra:
        raise NotAReferenceCheckpoint(
            f"{source} holds tensors a pixel-cnn-pp PixelCNN of {sizes['resnets']} resnets "
            f"does not have: {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}"
        )
    try:
        load_weights(model, ours, source)
    except ValueError as error:  # a tensor of another shape than the sizes imply
        raise NotAReferenceCheckpoint(str(error)) from None
    return model.eval()  # for use (dropout off), as pixelcnn.load gives it


def import_checkpoint(path: str | os.PathLike, image_size: int | tuple[int, int] | None = None):
    """:func:`import_state_dict` of the file at ``path`` (see :func:`read_state_dict`)."""
    return import_state_dict(read_state_dict(path), image_size, source=os.fspath(path))


def export_state_dict(model) -> dict[str, torch.Tensor]:
    """The reference layout of one of our PixelCNN++ models (unconditioned, logistic
    mixture): the inverse of :func:`import_state_dict`, for tests and for users who want
    their model in the reference code."""
    network = model.network
    if model.config.model != "pixelcnnpp" or model.condition_spec:
        raise ValueError("only an unconditioned PixelCNN++ model has a pixel-cnn-pp layout")
    resnets = len(network.down_u[0])
    state = {}
    mine = model.state_dict()
    for ours, theirs, kind in reference_names(resnets):
        prefix = f"network.{ours}"
        g = mine[f"{prefix}.parametrizations.weight.original0"]
        v = mine[f"{prefix}.parametrizations.weight.original1"]
        if kind == "deconv":
            weight = g.double() * v.double() / _norm(v.double(), 1)
            v = weight.float()
            g = _norm(v.double(), 0).float()
        if kind == "nin":
            g, v = g.reshape(g.shape[0], 1), v.reshape(v.shape[0], v.shape[1])
        state[f"{theirs}.weight_g"] = g.clone()
        state[f"{theirs}.weight_v"] = v.clone()
        state[f"{theirs}.bias"] = mine[f"{prefix}.bias"].clone()
    return state
