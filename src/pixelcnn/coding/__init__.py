"""Lossless compression of images with a trained model (range coding of its conditionals)."""

from pixelcnn.coding.codec import DEFAULT_BATCH, compress, decode, decompress, fingerprint
from pixelcnn.coding.container import CompressedFormatError, Header, unpack

__all__ = [
    "DEFAULT_BATCH",
    "CompressedFormatError",
    "Header",
    "compress",
    "decode",
    "decompress",
    "fingerprint",
    "unpack",
]
