"""Likelihoods: turn network parameters into log-probabilities, or draw values from them."""

from __future__ import annotations

import inspect
from typing import Any

from pixelcnn.likelihoods.base import Likelihood
from pixelcnn.likelihoods.categorical import Categorical
from pixelcnn.likelihoods.logistic_mixture import DiscretizedLogisticMixture
from pixelcnn.values import as_int

# name -> class taking (levels, channels, **options); register_likelihood adds to it
LIKELIHOODS: dict[str, type[Likelihood]] = {}
# Bounds of every likelihood option (an int), by name; beyond them is a typo or a hostile file.
OPTION_BOUNDS: dict[str, tuple[int, int]] = {"components": (1, 256)}
_STRUCTURAL = ("self", "levels", "channels")


def register_likelihood(likelihood: type[Likelihood]) -> type[Likelihood]:
    """Make a likelihood available everywhere (API, CLI, contract suite) by its ``name``."""
    LIKELIHOODS[likelihood.name] = likelihood
    return likelihood


register_likelihood(Categorical)
register_likelihood(DiscretizedLogisticMixture)


def option_names(name: str) -> list[str]:
    """The hyperparameters likelihood ``name`` takes besides levels and channels (the
    mixture's ``components``); [] for an unknown name."""
    if name not in LIKELIHOODS:
        return []
    parameters = inspect.signature(LIKELIHOODS[name].__init__).parameters
    return [p for p in parameters if p not in _STRUCTURAL]


def resolve_options(
    name: str, options: dict[str, Any], with_defaults: bool = False
) -> dict[str, int]:
    """``options`` checked against likelihood ``name``: known names, ints within bounds;
    ``with_defaults`` adds every option not given at its default (what a config records,
    so that a saved model never depends on a default that may change)."""
    _check_name(name)
    accepted = option_names(name)
    for key in options:
        if key not in accepted:
            owners = [other for other in LIKELIHOODS if key in option_names(other)]
            where = f"; it belongs to {', '.join(owners)}" if owners else ""
            raise ValueError(f"the {name} likelihood takes no hyperparameter {key!r}{where}")
    if with_defaults:
        parameters = inspect.signature(LIKELIHOODS[name].__init__).parameters
        options = {key: parameters[key].default for key in accepted} | options
    return {
        key: as_int(value, f"hyperparameter {key}", *OPTION_BOUNDS.get(key, (0, 100_000)))
        for key, value in options.items()
    }


def _check_name(name: str) -> None:
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(LIKELIHOODS)}")


def build_likelihood(name: str, levels: int, channels: int, **options: Any) -> Likelihood:
    """The likelihood called ``name`` for images with ``channels`` channels and L levels,
    with its ``options`` (see :func:`option_names`)."""
    return LIKELIHOODS[name](levels, channels, **resolve_options(name, options))


__all__ = [
    "Categorical",
    "DiscretizedLogisticMixture",
    "LIKELIHOODS",
    "Likelihood",
    "build_likelihood",
    "option_names",
    "register_likelihood",
    "resolve_options",
]
