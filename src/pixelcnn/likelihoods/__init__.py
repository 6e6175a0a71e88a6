"""Likelihoods: turn network parameters into log-probabilities, or draw values from them."""

from __future__ import annotations

from pixelcnn.likelihoods.base import Likelihood
from pixelcnn.likelihoods.categorical import Categorical
from pixelcnn.likelihoods.logistic_mixture import DiscretizedLogisticMixture

# name -> class taking (levels, channels); register_likelihood adds to it
LIKELIHOODS: dict[str, type[Likelihood]] = {}


def register_likelihood(likelihood: type[Likelihood]) -> type[Likelihood]:
    """Make a likelihood available everywhere (API, CLI, contract suite) by its ``name``."""
    LIKELIHOODS[likelihood.name] = likelihood
    return likelihood


register_likelihood(Categorical)
register_likelihood(DiscretizedLogisticMixture)


def build_likelihood(name: str, levels: int, channels: int) -> Likelihood:
    """The likelihood called ``name`` for images with ``channels`` channels and L levels."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name](levels, channels)


__all__ = [
    "Categorical",
    "DiscretizedLogisticMixture",
    "LIKELIHOODS",
    "Likelihood",
    "build_likelihood",
    "register_likelihood",
]
