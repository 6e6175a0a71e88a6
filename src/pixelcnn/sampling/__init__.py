"""Sampling procedures shared by every network: naive (reference) generation."""

from pixelcnn.sampling.naive import sample_naive

__all__ = ["sample_naive"]
