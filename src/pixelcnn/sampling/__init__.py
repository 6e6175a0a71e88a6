"""Autoregressive sampling: the naive reference and the cached (incremental) sampler."""

from pixelcnn.sampling.cached import sample_cached
from pixelcnn.sampling.naive import sample_naive

__all__ = ["sample_cached", "sample_naive"]
