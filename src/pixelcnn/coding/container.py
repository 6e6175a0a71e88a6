"""The compressed file: a fixed preamble, a JSON header, then one range-coded stream per group.

Layout (little-endian)::

    0   8 bytes   magic  b"\\x89PXCNN\\r\\n" (a PNG-style signature: binary, and any text-mode
                  newline translation breaks it)
    8   u16       format version
    10  u32       header length H
    14  16 bytes  BLAKE2b-128 digest of everything after it (header and streams)
    30  H bytes   zlib-compressed JSON header (:class:`Header`)
    30+H          the groups' streams (32-bit words), one after another, as long as the
                  header says

Images are coded in groups of ``batch`` (the batch the model ran on; the last group is
padded to it), each group in its own stream, so one image is decoded by decoding only its
group. The digest refuses a truncated or altered file before any decoding; each group's
checksum of its decoded pixels turns a decoder that computed other probabilities into an
error instead of wrong pixels.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from dataclasses import asdict, dataclass
from typing import Any

MAGIC = b"\x89PXCNN\r\n"
VERSION = 1
FORMAT_NAME = "pixelcnn-compressed"
_PREAMBLE = struct.Struct("<8sHI16s")


class CompressedFormatError(ValueError):
    """A file that is not, or no longer, a compressed file this library can read."""


def is_compressed_file(path) -> bool:
    """Whether the file at ``path`` starts as a compressed file does (an earlier output)."""
    try:
        with open(path, "rb") as stream:
            return stream.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def checksum(data: bytes) -> str:
    """A group's check value of its decoded levels: BLAKE2b-64, hex."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass
class Header:
    """What the decoder needs besides the model.

    ``model``: the model's fingerprint (configuration and weights); ``network``: its
    network's name, for messages. ``image_shape``: [C, H, W] of the levels. ``batch``:
    images per group. ``determinism``: what decides the probabilities bit for bit (torch
    version, dtype, threads, device, coder). ``group_bytes``, ``group_checks``: per group,
    its stream's length and the checksum of its decoded levels. ``names``: a file name per
    image, or None. ``labels``: a class label per image (a class-conditional model's
    condition, or the labels of the data compressed), or None. ``split``: the split of the
    ``.npz`` the images came from, so that decompressing rebuilds one like it.
    """

    model: str
    network: str
    image_shape: list[int]
    count: int
    batch: int
    determinism: dict[str, Any]
    group_bytes: list[int]
    group_checks: list[str]
    names: list[str] | None = None
    labels: list[int] | None = None
    split: str | None = None

    def groups(self) -> int:
        return math.ceil(self.count / self.batch)

    def group_of(self, index: int) -> tuple[int, slice]:
        """The group holding image ``index``, and that group's images."""
        group = index // self.batch
        return group, slice(group * self.batch, min((group + 1) * self.batch, self.count))


def pack(header: Header, streams: list[bytes]) -> bytes:
    """The file's bytes."""
    text = json.dumps({"format": FORMAT_NAME, **asdict(header)}, separators=(",", ":"))
    body = zlib.compress(text.encode(), 9) + b"".join(streams)
    head_length = len(body) - sum(len(s) for s in streams)
    return _PREAMBLE.pack(MAGIC, VERSION, head_length, digest(body)) + body


def unpack(data: bytes, source: str = "the data") -> tuple[Header, list[bytes]]:
    """The header and the groups' streams of a file's bytes, every field checked."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CompressedFormatError(f"{source} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise CompressedFormatError(f"{source} is not a pixelcnn compressed file")
    if len(data) < _PREAMBLE.size:
        raise CompressedFormatError(f"{source} is truncated (its preamble is cut off)")
    _, version, head_length, expected = _PREAMBLE.unpack_from(data)
    if version != VERSION:
        raise CompressedFormatError(
            f"{source} has format version {version}; this pixelcnn reads version {VERSION}"
        )
    body = data[_PREAMBLE.size :]
    if head_length > len(body):
        raise CompressedFormatError(f"{source} is truncated (its header is cut off)")
    if digest(body) != expected:
        raise CompressedFormatError(f"{source} is truncated or corrupt (its digest differs)")
    try:
        fields = json.loads(zlib.decompress(body[:head_length]))
    except (zlib.error, ValueError, UnicodeDecodeError) as error:
        raise CompressedFormatError(f"{source} has an unreadable header ({error})") from None
    header = _header(fields, source)
    streams, offset = [], head_length
    for length in header.group_bytes:
        streams.append(body[offset : offset + length])
        offset += length
    if offset != len(body):
        raise CompressedFormatError(f"{source}: the streams' lengths do not add up")
    return header, streams


def _header(fields: Any, source: str) -> Header:
    """A :class:`Header` from parsed JSON, refusing anything out of shape."""
    if not isinstance(fields, dict) or fields.pop("format", None) != FORMAT_NAME:
        raise CompressedFormatError(f"{source} has no pixelcnn compressed-file header")
    try:
        header = Header(**fields)
    except TypeError:
        raise CompressedFormatError(f"{source} has a header with other fields") from None

    def positive(value) -> bool:
        return type(value) is int and value > 0

    if not (positive(header.count) and positive(header.batch)):
        raise CompressedFormatError(f"{source} has a malformed header (count, batch)")
    problems = {
        "model": isinstance(header.model, str),
        "network": isinstance(header.network, str),
        "image_shape": isinstance(header.image_shape, list)
        and len(header.image_shape) == 3
        and all(map(positive, header.image_shape)),
        "determinism": isinstance(header.determinism, dict),
        "group_bytes": isinstance(header.group_bytes, list)
        and len(header.group_bytes) == header.groups()
        and all(type(n) is int and n >= 0 and n % 4 == 0 for n in header.group_bytes),
        "group_checks": isinstance(header.group_checks, list)
        and len(header.group_checks) == header.groups()
        and all(isinstance(c, str) for c in header.group_checks),
        "names": header.names is None
        or (
            isinstance(header.names, list)
            and len(header.names) == header.count
            and all(isinstance(n, str) for n in header.names)
        ),
        "labels": header.labels is None
        or (
            isinstance(header.labels, list)
            and len(header.labels) == header.count
            and all(type(n) is int and n >= 0 for n in header.labels)
        ),
        "split": header.split is None or isinstance(header.split, str),
    }
    wrong = [name for name, fine in problems.items() if not fine]
    if wrong:
        raise CompressedFormatError(f"{source} has a malformed header ({', '.join(wrong)})")
    return header
