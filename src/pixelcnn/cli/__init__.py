"""The ``pixelcnn`` command line (thin: parsing and printing only)."""

from pixelcnn.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
