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
import os
import re
import struct
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from pixelcnn.files import open_regular
from pixelcnn.limits import check_memory

MAGIC = b"\x89PXCNN\r\n"
VERSION = 1
FORMAT_NAME = "pixelcnn-compressed"
_PREAMBLE = struct.Struct("<8sHI16s")
SPLITS = ("train", "test")
# The JSON header is inflated with a ceiling, so a small file cannot declare gigabytes of
# header (zlib inflates up to ~1000x): 256 MiB holds the names of millions of images.
MAX_HEADER_BYTES = 256 << 20
# Beyond 16 MiB, a header inflates to at most 128 times its compressed size: a real one holds
# a 16-hex-digit checksum per group (8 incompressible bytes), names and labels, and deflates
# 5 to 50 times; only a bomb (or millions of images of one label in huge groups) goes far
# beyond, and parsing it would cost seconds and gigabytes for a file of kilobytes.
FREE_HEADER_BYTES = 16 << 20
HEADER_RATIO = 128
# The decoder walks a whole group's batch, padding included: no encoder pads more than this
# (this one never pads beyond the count; earlier ones padded a group of a few images to
# the --batch-size asked for).
MAX_PADDED_BATCH = 1024
# Parsing JSON holds Python objects several times the text's size.
_JSON_COST = 8
_INFLATE_CHUNK = 1 << 20


class CompressedFormatError(ValueError):
    """A file that is not, or no longer, a compressed file this library can read."""


def is_compressed_file(path) -> bool:
    """Whether the file at ``path`` starts as a compressed file does (an earlier output)."""
    try:
        with open_regular(path) as stream:
            return stream.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_file(path, source: str | None = None) -> bytes:
    """The bytes of the compressed file at ``path``, refused in one line before it is read
    whole unless it is a regular file that starts as a compressed file does and fits in
    free memory (a FIFO, ``/dev/zero`` or a huge foreign file is never read to its end)."""
    source = str(path) if source is None else source
    with open_regular(path) as stream:
        preamble = stream.read(_PREAMBLE.size)
        _check_preamble(preamble, source)
        size = os.fstat(stream.fileno()).st_size
        # the bytes, and the copies unpack makes of the streams
        check_memory(3 * size, f"reading {source} ({size} bytes)", CompressedFormatError)
        # no more than it had: a file that grows meanwhile is cut, and its digest refuses it
        return preamble + stream.read(max(size - len(preamble), 0))


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
    data = memoryview(data).cast("B")
    _check_preamble(bytes(data[: _PREAMBLE.size]), source)
    _, _, head_length, expected = _PREAMBLE.unpack_from(data)
    body = data[_PREAMBLE.size :]
    if head_length > len(body):
        raise CompressedFormatError(f"{source} is truncated (its header is cut off)")
    if digest(body) != expected:
        raise CompressedFormatError(f"{source} is truncated or corrupt (its digest differs)")
    try:
        fields = json.loads(_inflate(body[:head_length], source))
    except (zlib.error, ValueError, UnicodeDecodeError, RecursionError) as error:
        if isinstance(error, CompressedFormatError):
            raise
        reason = " ".join(str(error).split())
        raise CompressedFormatError(f"{source} has an unreadable header ({reason})") from None
    header = _header(fields, source)
    if sum(header.group_bytes) != len(body) - head_length:
        raise CompressedFormatError(f"{source}: the streams' lengths do not add up")
    streams, offset = [], head_length
    for length in header.group_bytes:
        streams.append(bytes(body[offset : offset + length]))
        offset += length
    return header, streams


def check_decoded_memory(header: Header, wanted: int, source: str) -> None:
    """Refuse, before anything is allocated, decoding ``wanted`` of the file's images when
    what that holds would not fit in free memory: int64 levels (the walk's batch twice,
    every decoded group kept, the stacked output), the output itself, and a Python int
    per wanted index."""
    per_image = math.prod(header.image_shape)
    images_in_groups = min(header.count, wanted * header.batch)
    nbytes = (2 * header.batch + images_in_groups + wanted) * per_image * 8
    nbytes += wanted * (per_image + 64)
    check_memory(
        nbytes,
        f"decoding {wanted} of the {header.count} images of "
        f"{'x'.join(map(str, header.image_shape))} in {source} (groups of {header.batch})",
        CompressedFormatError,
    )


def _check_preamble(preamble: bytes, source: str) -> None:
    """Refuse a file that does not start as a compressed file of this version does, from
    its first 30 bytes alone."""
    if not preamble.startswith(MAGIC):
        raise CompressedFormatError(f"{source} is not a pixelcnn compressed file")
    if len(preamble) < _PREAMBLE.size:
        raise CompressedFormatError(f"{source} is truncated (its preamble is cut off)")
    version = _PREAMBLE.unpack(preamble)[1]
    if version != VERSION:
        raise CompressedFormatError(
            f"{source} has format version {version}; this pixelcnn reads version {VERSION}"
        )


def _inflate(compressed, source: str) -> bytes:
    """The header's JSON text, inflated a chunk at a time and refused past its limit
    (MAX_HEADER_BYTES, and HEADER_RATIO times its compressed size beyond the first
    FREE_HEADER_BYTES) or free memory, so a zlib bomb is never inflated whole."""
    limit = min(MAX_HEADER_BYTES, max(FREE_HEADER_BYTES, HEADER_RATIO * len(compressed)))
    inflater = zlib.decompressobj()
    chunks, total, pending = [], 0, bytes(compressed)
    while pending and not inflater.eof:
        chunk = inflater.decompress(pending, _INFLATE_CHUNK)
        pending = inflater.unconsumed_tail
        total += len(chunk)
        if total > limit:
            raise CompressedFormatError(
                f"{source} declares a header of more than {limit / 2**20:.0f} MiB in "
                f"{len(compressed)} bytes; refused as corrupt or hostile"
            )
        check_memory(total * _JSON_COST, f"the header of {source}", CompressedFormatError)
        chunks.append(chunk)
    chunks.append(inflater.flush())
    if not inflater.eof:
        raise CompressedFormatError(f"{source} has an unreadable header (it is cut off)")
    return b"".join(chunks)


_HEX16 = re.compile(r"[0-9a-f]{16}")


def _short(value: Any) -> bool:
    """A determinism setting: a short string, a number, or None."""
    return (
        value is None
        or type(value) in (int, float, bool)
        or (isinstance(value, str) and len(value) <= 256)
    )


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
    if header.batch > max(header.count, MAX_PADDED_BATCH):
        raise CompressedFormatError(
            f"{source} declares groups of {header.batch} images for {header.count}; it is corrupt"
        )
    problems = {
        # strings that reach messages and file names are bounded and of their own alphabet
        "model": isinstance(header.model, str) and re.fullmatch(r"[0-9a-f]{64}", header.model),
        "network": isinstance(header.network, str)
        and re.fullmatch(r"[\w.+-]{1,64}", header.network, re.ASCII),
        "image_shape": isinstance(header.image_shape, list)
        and len(header.image_shape) == 3
        and all(map(positive, header.image_shape)),
        "determinism": isinstance(header.determinism, dict)
        and len(header.determinism) <= 64
        and all(
            isinstance(k, str) and len(k) <= 64 and _short(v) for k, v in header.determinism.items()
        ),
        "group_bytes": isinstance(header.group_bytes, list)
        and len(header.group_bytes) == header.groups()
        and all(type(n) is int and n >= 0 and n % 4 == 0 for n in header.group_bytes),
        "group_checks": isinstance(header.group_checks, list)
        and len(header.group_checks) == header.groups()
        and all(isinstance(c, str) and _HEX16.fullmatch(c) for c in header.group_checks),
        "names": header.names is None
        or (
            isinstance(header.names, list)
            and len(header.names) == header.count
            and all(
                isinstance(n, str) and 0 < len(n) <= 4096 and "\0" not in n for n in header.names
            )
        ),
        "labels": header.labels is None
        or (
            isinstance(header.labels, list)
            and len(header.labels) == header.count
            and all(type(n) is int and 0 <= n < 2**63 for n in header.labels)  # int64
        ),
        # the split names the members of the npz decompress writes: nothing else may
        "split": header.split is None or header.split in SPLITS,
    }
    wrong = [name for name, fine in problems.items() if not fine]  # (a match object is fine)
    if wrong:
        raise CompressedFormatError(f"{source} has a malformed header ({', '.join(wrong)})")
    return header
