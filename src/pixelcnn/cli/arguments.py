"""Argument types of the ``pixelcnn`` command: each refuses a bad value in argparse's
one-line usage error, before any work (4.7 for a count, inf for a rate, "" for a path)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pixelcnn.values import as_float, as_int

OVERWRITE_HELP = (
    "replace an existing --out file that is not an earlier output of this command "
    "(never the input, a run's own files, or anything but a regular file)"
)


def _checked(check: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse type that runs ``check`` on the text and turns its ValueError into
    argparse's one-line usage error."""

    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = name
    return parse


def count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Integers >= ``minimum`` ("4.7" and "-1" refused, not truncated or accepted)."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        return as_int(value, "the value", minimum, maximum)

    return _checked(check, "count")


def number(minimum: float | None = None, maximum: float | None = None, below=None):
    """Finite floats in range: "inf", "nan" and "1e999" are refused before any work."""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        return as_float(value, "the value", minimum, maximum, below)

    return _checked(check, "number")


def _path_text(text: str) -> str:
    if not text.strip():
        raise ValueError("an empty path is not a path (write . for this directory)")
    return text


path = _checked(_path_text, "path")


RESIZE_HELP = (
    "resize images to SIZE x SIZE, or to H x W with two numbers (Pillow: an area average "
    "(BOX) when shrinking both sides, bilinear otherwise; each channel on its own)"
)


class ImageSize(argparse.Action):
    """``--size S`` or ``--size H W``: stores S (an int) or (H, W)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="+", type=count(1), **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > 2:
            parser.error(f"{option_string} takes one size or a height and a width, got {values}")
        setattr(namespace, self.dest, values[0] if len(values) == 1 else tuple(values))


# What every command that takes a model says of it.
RUN_HELP = "run directory, saved model directory, or pretrained:NAME (see pixelcnn pretrained)"
