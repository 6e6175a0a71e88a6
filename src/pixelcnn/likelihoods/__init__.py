"""Likelihoods: turn network parameters into log-probabilities, or draw values from them."""

from __future__ import annotations

from pixelcnn.likelihoods.categorical import Categorical
from pixelcnn.likelihoods.logistic_mixture import DiscretizedLogisticMixture

LIKELIHOODS = {"categorical": Categorical, "logistic_mixture": DiscretizedLogisticMixture}


def build_likelihood(
    name: str, levels: int, channels: int
) -> Categorical | DiscretizedLogisticMixture:
    """The likelihood called ``name`` for images with ``channels`` channels and L levels."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](levels, channels)


__all__ = ["Categorical", "DiscretizedLogisticMixture", "LIKELIHOODS", "build_likelihood"]
