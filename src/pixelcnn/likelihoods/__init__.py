"""Likelihoods: turn network parameters into log-probabilities, or draw values from them."""

from __future__ import annotations

from pixelcnn.likelihoods.categorical import Categorical

LIKELIHOODS = {"categorical": Categorical}


def build_likelihood(name: str, levels: int, channels: int) -> Categorical:
    """The likelihood called ``name`` for images with ``channels`` channels and L levels."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](levels, channels)


__all__ = ["Categorical", "LIKELIHOODS", "build_likelihood"]
