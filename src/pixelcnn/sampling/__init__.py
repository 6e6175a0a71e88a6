"""Autoregressive generation, shared by every network: one entry point (``generate``) over
the naive reference and the cached (incremental) sampler, and completion's prefix rule."""

from pixelcnn.sampling.cached import sample_cached
from pixelcnn.sampling.completion import known_prefix
from pixelcnn.sampling.finite import NonFiniteParametersError, check_finite_parameters
from pixelcnn.sampling.generate import SAMPLING_METHODS, Source, generate
from pixelcnn.sampling.naive import sample_naive

__all__ = [
    "NonFiniteParametersError",
    "SAMPLING_METHODS",
    "Source",
    "check_finite_parameters",
    "generate",
    "known_prefix",
    "sample_cached",
    "sample_naive",
]
