"""Lossless compression with a trained model: its exact conditionals drive a range coder.

Each sub-pixel is coded with ``constriction``'s range coder (a queue: symbols come out in the
order they went in, as an autoregressive decoder needs them) under the model's distribution
there, quantized by ``constriction`` to integer frequencies that give every level a non-zero
share, so any image can be coded. The cost is the model's -log2 p(x) plus a little.

Determinism is the whole difficulty: the decoder must see the encoder's probabilities bit
for bit. Both sides therefore run :func:`~pixelcnn.coding.walk.walk` (the cached steps,
teacher-forced only through the coder's callback) on the same batch layout, dtype and
thread count, which the file records. Decoding is supported where torch, its version, the
dtype and the device kind are those of the encoder (refused otherwise); on another CPU the
kernels may round differently, which each group's checksum turns into a clear error.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import constriction
import numpy as np
import torch
from tqdm.auto import tqdm

from pixelcnn.coding.container import (
    CompressedFormatError,
    Header,
    check_decoded_memory,
    checksum,
    pack,
    unpack,
)
from pixelcnn.coding.walk import walk
from pixelcnn.values import as_int

DEFAULT_BATCH = 32
# perfect=False: constriction's fast quantization; the decoder must use the same setting
_FAMILY = constriction.stream.model.Categorical(perfect=False)
CODER = f"constriction {version('constriction')} range coder, categorical perfect=False"


def fingerprint(model) -> str:
    """SHA-256 of the model's configuration and every weight (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(json.dumps(model.config.to_json(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def determinism(model) -> dict[str, Any]:
    """What, besides the model and the batch, decides the probabilities bit for bit."""
    return {
        "torch": torch.__version__,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": model.device.type,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "coder": CODER,
    }


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _class_labels(model, condition: Any, labels: Any, count: int) -> list[int] | None:
    """The labels to store: a class-conditional model's condition (``labels`` if no
    condition is given), or an unconditional model's ``labels`` kept as they are."""
    spec = model.condition_spec
    if spec and list(spec.kinds) != ["class"]:
        raise ValueError("compression stores class labels only; this model takes other conditions")
    if spec:
        return model.prepare_condition(labels if condition is None else condition, count)[
            "class"
        ].tolist()
    model.prepare_condition(condition, count)  # refuses a condition it cannot use
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.shape != (count,) or labels.is_floating_point() or (labels < 0).any():
        raise ValueError(f"labels must be {count} non-negative integers, one per image")
    return labels.tolist()


def _walk_group(model, labels: list[int] | None, start: int, symbols, progress: bool, batch: int):
    """The shared walk over the group of ``batch`` images from ``start`` (``labels``: all
    images' class conditions, or None; the group's are padded with class 0)."""
    if labels is not None:
        labels = labels[start : start + batch]
    condition = None if labels is None else torch.tensor(labels + [0] * (batch - len(labels)))
    source = model.generation_source(condition, batch)
    shape = (batch, *model.image_shape)
    steps = source.steps(batch, *shape[2:])
    if steps is None:
        raise ValueError(f"the {source.name} network cannot step, so it cannot code images")
    return walk(steps, source.likelihood, source.encode, shape, symbols, model.device, progress)


def compress(
    model,
    images: Any,
    condition: Any = None,
    names: Sequence[str] | None = None,
    labels: Any = None,
    split: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> bytes:
    """The bytes of a compressed file holding ``images`` (uint8 [N, C, H, W], or token grids
    [N, H, W]), a name per image if given, and class labels: a class-conditional model's
    ``condition`` (or ``labels``), or for any other model ``labels`` to keep as they are.
    ``split``: the npz split the images came from, recorded."""
    batch = as_int(batch_size, "batch_size", 1)
    levels = model.images_to_levels(images).cpu()
    count = len(levels)
    if count == 0:
        raise ValueError("no images to compress")
    labels = _class_labels(model, condition, labels, count)
    batch = min(batch, count)  # a batch beyond the images would only code padding
    if names is not None:
        names = [str(name) for name in names]
        if len(names) != count:
            raise ValueError(f"got {len(names)} names for {count} images")
    settings = determinism(model)
    conditions = labels if model.condition_spec else None  # kept labels condition nothing
    streams, checks = [], []
    bar = tqdm(total=count, desc="compressing", unit="image", disable=not progress)
    with model.inference(), bar:
        for start in range(0, count, batch):
            group = levels[start : start + batch].numpy()
            encoder = constriction.stream.queue.RangeEncoder()

            def encode(probabilities, position, group=group, encoder=encoder):
                known = group[(slice(None), *position)]
                encoder.encode(known.astype(np.int32), _FAMILY, probabilities[: len(group)])
                return np.pad(known, (0, batch - len(group)))

            _walk_group(model, conditions, start, encode, progress, batch)
            streams.append(encoder.get_compressed().astype("<u4").tobytes())
            checks.append(checksum(group.astype("<i8").tobytes()))
            bar.update(len(group))
    header = Header(
        model=fingerprint(model),
        network=model.config.model,
        image_shape=list(model.image_shape),
        count=count,
        batch=batch,
        determinism=settings,
        group_bytes=[len(s) for s in streams],
        group_checks=checks,
        names=names,
        labels=labels,
        split=split,
    )
    return pack(header, streams)


def check_decodable(model, header: Header, source: str = "the file") -> None:
    """Refuse a file made with another model, or on a setup that computes otherwise."""
    if header.model != fingerprint(model):
        raise ValueError(
            f"{source} was compressed with another model (a {header.network} network, fingerprint "
            f"{header.model[:12]}); decode it with that model"
        )
    here = determinism(model)
    for key in ("torch", "dtype", "device"):
        if header.determinism.get(key) != here[key]:
            raise ValueError(
                f"{source} was compressed with {key} {header.determinism.get(key)!r}, "
                f"this setup has {here[key]!r}; decoding needs the same"
            )


def decompress(
    model,
    data: bytes,
    indices: Sequence[int] | None = None,
    progress: bool = False,
    source: str = "the data",
) -> torch.Tensor:
    """The images of a compressed file (``indices``: only those, decoding only their groups)
    as uint8 [N, C, H, W] (token grids: int64 [N, H, W])."""
    header, streams = unpack(data, source)
    return decode(model, header, streams, indices, progress, source)


def decode(
    model,
    header: Header,
    streams: Sequence[bytes],
    indices: Sequence[int] | None = None,
    progress: bool = False,
    source: str = "the data",
) -> torch.Tensor:
    """:func:`decompress` of a file already unpacked (its digest checked once, its header
    inflated once)."""
    check_decodable(model, header, source)
    wanted = range(header.count) if indices is None else [int(i) for i in indices]
    check_fits(model, header, streams, len(wanted), source)
    for index in wanted:
        if not 0 <= index < header.count:
            raise ValueError(f"image index {index} is not in 0..{header.count - 1}")
    groups = sorted({header.group_of(index)[0] for index in wanted})
    decoded = {}
    threads = as_int(header.determinism.get("threads"), f"the thread count in {source}", 1, 1024)
    bar = tqdm(total=len(groups), desc="decompressing", unit="group", disable=not progress)
    with model.inference(), _threads(threads), bar:
        for group in groups:
            decoded[group] = _decode_group(model, header, streams[group], group, progress, source)
            bar.update()
    levels = torch.stack([decoded[i // header.batch][i % header.batch] for i in wanted])
    return model.encoding.from_levels(levels.to(model.device)).cpu()


# With constriction's Categorical(perfect=False) every one of L levels keeps a frequency of at
# least 1 out of 2^24, so no symbol is more likely than 1 - (L - 1) / 2^24: each costs at least
# -log2 of that (measured: a long run of certain symbols costs 1.3 to 9 times this bound). A
# stream of w 32-bit words cannot hold more than (32 w + _STREAM_SLACK_BITS) / that symbols;
# the slack covers the coder's 64-bit state flushed at the end, with a word to spare.
_PRECISION_BITS = 24
_STREAM_SLACK_BITS = 96
# More than constriction's quantization adds to a float probability: each level's frequency
# out of 2^24 is its rounded share plus one (tests/test_hostile_codec.py checks the bound).
_QUANTIZATION_SLACK = 2.0**-22


def min_bits_per_symbol(levels: int) -> float:
    """The fewest bits the range coder can spend on one symbol of ``levels`` levels."""
    return -math.log1p(-(levels - 1) / 2**_PRECISION_BITS) / math.log(2)


def check_fits(model, header: Header, streams: Sequence[bytes], wanted: int, source: str) -> None:
    """Refuse, before anything is allocated, what a file declares and cannot hold: images
    of another shape than the model's, labels the model has no class for, groups holding
    more symbols than their streams can carry, and decoded output larger than free memory
    (``wanted``: how many images are to be decoded)."""
    shape = list(model.image_shape)
    if header.image_shape != shape:
        raise CompressedFormatError(
            f"{source} declares images of shape {header.image_shape}, but the model's are "
            f"{shape}; it is corrupt or was not made with this model"
        )
    spec = model.condition_spec
    if spec and spec.num_classes:
        if header.labels is None:
            raise CompressedFormatError(
                f"{source} stores no class labels, which this class-conditional model needs"
            )
        beyond = [label for label in header.labels if label >= spec.num_classes]
        if beyond:
            raise CompressedFormatError(
                f"{source} stores the class label {beyond[0]}, but the model has "
                f"{spec.num_classes} classes (0..{spec.num_classes - 1}); it is corrupt"
            )
    per_image = math.prod(shape)
    least = min_bits_per_symbol(model.levels)
    for group, stream in enumerate(streams):
        members = header.group_of(group * header.batch)[1]
        symbols = (members.stop - members.start) * per_image
        if symbols * least > 32 * (len(stream) // 4) + _STREAM_SLACK_BITS:
            raise CompressedFormatError(
                f"{source} declares {symbols} sub-pixels in images {members.start}.."
                f"{members.stop - 1}, more than their {len(stream)}-byte stream can hold; "
                "it is corrupt"
            )
    check_decoded_memory(header, wanted, source)


class _CoderError(Exception):
    """The range decoder refused its stream: what a decoder fed other probabilities does."""


def _decode_group(model, header: Header, stream: bytes, group: int, progress: bool, source: str):
    """Levels [n, C, H, W] of one group, checked against its checksum."""
    members = header.group_of(group * header.batch)[1]
    real = members.stop - members.start
    words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    budget, spent = 32 * len(words) + _STREAM_SLACK_BITS, [0.0]
    rows = np.arange(real)

    def decode(probabilities, position):
        try:
            symbols = decoder.decode(_FAMILY, probabilities[:real])
        except (RuntimeError, ValueError) as error:
            raise _CoderError(str(error)) from error
        # A range coder spends at least -log2 q(x) bits on x, and constriction's quantized
        # q exceeds the float p by under 2^-22: decoding more information than the stream
        # holds (an empty stream declared for a million images) stops here, at once.
        chosen = probabilities[rows, symbols]
        spent[0] += float(-np.log2(np.minimum(chosen + _QUANTIZATION_SLACK, 1.0)).sum())
        if spent[0] > budget:
            raise _CoderError(f"the range decoder ran past its {len(stream)}-byte stream")
        return np.pad(symbols.astype(np.int64), (0, header.batch - real))

    labels = header.labels if model.condition_spec else None
    try:
        levels = _walk_group(model, labels, members.start, decode, progress, header.batch)
    except _CoderError as error:  # only the coder's own errors mean other probabilities
        raise _mismatch(header, members, source, str(error)) from error
    except (RuntimeError, MemoryError) as error:  # torch's failed allocation, or numpy's
        if isinstance(error, RuntimeError) and "alloc" not in str(error).lower():
            raise
        raise ValueError(
            f"decoding images {members.start}..{members.stop - 1} of {source} in a batch of "
            f"{header.batch} needs more memory than this machine has free"
        ) from error
    levels = levels[:real].cpu()
    if checksum(levels.numpy().astype("<i8").tobytes()) != header.group_checks[group]:
        raise _mismatch(header, members, source, "checksum mismatch")
    return levels


def _mismatch(header: Header, members: slice, source: str, why: str) -> ValueError:
    settings = ", ".join(f"{k} {v}" for k, v in header.determinism.items())
    return ValueError(
        f"images {members.start}..{members.stop - 1} of {source} decode to other pixels than "
        f"were compressed ({why}): the file was altered before its digest was "
        f"made, or this machine computes the model's probabilities differently from the "
        f"encoder ({settings})"
    )
