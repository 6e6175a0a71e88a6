"""Out-of-distribution detection from exact likelihoods, and the known trap.

Raw likelihood ranks simple images (MNIST digits, constant images) *above* a model's own
test set (Nalisnick et al. 2019). Two published fixes, both built on ``log p(x)`` alone:

- ``complexity`` (Serrà et al. 2020): S(x) = -log2 p(x) - L(x), with L(x) the length in bits
  of x under a generic lossless compressor; it discounts how simple an image is.
- ``ratio`` (Ren et al. 2019): log p(x) - log p_bg(x), with p_bg the same architecture
  trained on perturbed inputs (``pixelcnn train --perturb RATE``): it discounts the
  background statistics both models share.

Every method returns a score where higher means "more in-distribution"; the metrics take the
in-distribution set as the positive class (scikit-learn computes them).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

OOD_METHODS = ("likelihood", "complexity", "ratio")
COMPRESSORS = ("png", "webp")


def compressed_bits(images: np.ndarray, compressor: str = "png") -> np.ndarray:
    """L(x): the length in bits of each uint8 image [N, C, H, W] under a lossless codec
    (PNG at its highest level, or lossless WebP at its slowest method) -> [N]."""
    if compressor not in COMPRESSORS:
        raise ValueError(f"compressor must be one of {', '.join(COMPRESSORS)}, got {compressor!r}")
    options = {"png": {"format": "PNG", "optimize": True, "compress_level": 9}}.get(
        compressor, {"format": "WEBP", "lossless": True, "quality": 100, "method": 6}
    )
    lengths = np.empty(len(images))
    for index, image in enumerate(images):
        array = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, **options)
        lengths[index] = 8 * buffer.tell()
    return lengths


def scores(
    method: str,
    nats: np.ndarray,
    images: np.ndarray | None = None,
    background_nats: np.ndarray | None = None,
    compressor: str = "png",
) -> np.ndarray:
    """In-distribution scores (higher: more typical) of images with -log p(x) = ``nats``."""
    if method == "likelihood":
        return -nats
    if method == "complexity":
        # -S(x) = log2 p(x) + L(x)
        return -nats / math.log(2) + compressed_bits(images, compressor)
    if method == "ratio":
        if background_nats is None:
            raise ValueError("the ratio method needs a background model (--background RUN)")
        return background_nats - nats
    raise ValueError(f"method must be one of {', '.join(OOD_METHODS)}, got {method!r}")


def detection_metrics(in_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC and the false-positive rate at 95% true-positive rate, with the
    in-distribution set as the positive class and higher scores meaning in-distribution."""
    if not len(in_scores) or not len(ood_scores):
        raise ValueError("both the in-distribution and the OOD set need images")
    # scikit-learn's metrics, imported here so that `pixelcnn --help` stays fast
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    truth = np.concatenate([np.ones(len(in_scores)), np.zeros(len(ood_scores))])
    values = np.concatenate([in_scores, ood_scores])
    false_positive, true_positive, _ = roc_curve(truth, values)
    return {
        "auroc": float(roc_auc_score(truth, values)),
        "auprc": float(average_precision_score(truth, values)),
        "fpr_at_95_tpr": float(false_positive[np.searchsorted(true_positive, 0.95)]),
    }


@dataclass
class ScoredSet:
    """One set's uint8 images [N, C, H, W], -log p(x) [N] and, with a background model,
    -log p_bg(x) [N]: computed once, shared by every method."""

    images: np.ndarray
    nats: np.ndarray
    background_nats: np.ndarray | None = None


def evaluate_methods(
    methods: list[str], inside: ScoredSet, outside: ScoredSet, compressor: str = "png"
) -> dict[str, dict[str, float]]:
    """Metrics per method, the ``inside`` (in-distribution) set as the positive class."""
    return {
        method: detection_metrics(
            *(
                scores(method, s.nats, s.images, s.background_nats, compressor)
                for s in (inside, outside)
            )
        )
        for method in methods
    }
