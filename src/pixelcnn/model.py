"""The object a user holds: network + likelihood + quantizer + config.

It speaks like ``torch.distributions``: uint8 images in, log-probabilities out, samples back.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pixelcnn.likelihoods import build_likelihood
from pixelcnn.models import build_network, resolve_hyperparameters
from pixelcnn.quantize import Quantizer, check_levels
from pixelcnn.sampling import sample_naive

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "pixelcnn-model"
FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's structure (weights live in safetensors)."""

    model: str
    image_shape: tuple[int, int, int]
    levels: int
    likelihood: str = "categorical"
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str = "config") -> ModelConfig:
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ValueError(f"{source} is not a pixelcnn model configuration")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{source} has format version {data.get('version')!r}; "
                f"this pixelcnn reads version {FORMAT_VERSION}"
            )
        try:
            return cls(
                model=str(data["model"]),
                image_shape=tuple(int(v) for v in data["image_shape"]),
                levels=int(data["levels"]),
                likelihood=str(data.get("likelihood", "categorical")),
                hyperparameters=dict(data.get("hyperparameters", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source} is incomplete or malformed: {error}") from None


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive ints, got {image_shape!r}")
    if shape[0] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {shape[0]}")
    return shape


class DensityModel(nn.Module):
    """An autoregressive image density with an exact likelihood.

    Images are uint8 tensors [B, C, H, W] whose values are the model's L representable
    values (``quantizer.valid_values()``; every value 0..255 when L = 256); use
    :meth:`quantize` to snap arbitrary uint8 images onto them.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        channels, _, _ = config.image_shape
        self.quantizer = Quantizer(config.levels)
        self.likelihood = build_likelihood(config.likelihood, config.levels, channels)
        self.network = build_network(
            config.model, channels, self.likelihood.num_params, **config.hyperparameters
        )

    # ----------------------------------------------------------------- inputs
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def quantize(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Snap any uint8 images [B, C, H, W] to the nearest representable values."""
        return self.quantizer.snap(self._as_uint8_batch(images, check_values=False))

    def _as_uint8_batch(self, images: Any, check_values: bool = True) -> torch.Tensor:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor or numpy array, got {type(images)}")
        if images.dtype != torch.uint8:
            raise ValueError(f"images must have dtype uint8 (values 0..255), got {images.dtype}")
        if images.dim() != 4:
            raise ValueError(
                f"images must have 4 dimensions [B, C, H, W], got shape {tuple(images.shape)}"
            )
        if tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"images must have shape [B, {', '.join(map(str, self.image_shape))}], "
                f"got {list(images.shape)}"
            )
        if check_values and not self.quantizer.is_valid(images):
            raise ValueError(
                f"images hold values that are not among the {self.levels} levels of this model "
                f"(e.g. {self.quantizer.valid_values()[:4].tolist()}...); "
                "snap them with model.quantize(images)"
            )
        return images

    def images_to_levels(self, images: Any) -> torch.Tensor:
        """Validated uint8 images [B, C, H, W] -> int64 levels on the model's device."""
        images = self._as_uint8_batch(images)
        return self.quantizer.to_levels(images.to(self.device))

    # ----------------------------------------------------------------- density
    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        """Integer levels [B, C, H, W] -> likelihood parameters [B, P, H, W]."""
        return self.network(self.quantizer.to_input(levels, dtype=self.dtype))

    def level_log_probs(self, levels: torch.Tensor) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for integer levels [B, C, H, W] -> [B, C, H, W]."""
        return self.likelihood.log_prob(self(levels), levels)

    def conditional_log_probs(self, images: Any) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for every sub-pixel: uint8 [B,C,H,W] -> float [B,C,H,W]."""
        return self.level_log_probs(self.images_to_levels(images))

    def log_prob(self, images: Any) -> torch.Tensor:
        """Exact log-likelihood in nats per image: uint8 [B, C, H, W] -> [B]."""
        return self.conditional_log_probs(images).flatten(1).sum(1)

    def bits_per_dim(self, images: Any) -> torch.Tensor:
        """-log2 p(x) / (C * H * W): uint8 [B, C, H, W] -> [B]."""
        return -self.log_prob(images) / (math.prod(self.image_shape) * math.log(2))

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images: uint8 [n, C, H, W] with values as in the training images."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        levels = torch.zeros(n, *self.image_shape, dtype=torch.int64, device=self.device)
        was_training = self.training
        self.eval()
        try:
            levels = sample_naive(
                self.network,
                self.likelihood,
                partial(self.quantizer.to_input, dtype=self.dtype),
                levels,
                temperature=float(temperature),
                generator=generator,
                row_multiple=getattr(self.network, "row_multiple", None),
                progress=progress,
            )
        finally:
            self.train(was_training)
        return self.quantizer.to_values(levels).cpu()

    # ----------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(tensors, str(p)))
        text = json.dumps(self.config.to_json(), indent=2) + "\n"
        _atomic_write(directory / CONFIG_FILE, lambda p: Path(p).write_text(text))
        return directory


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(temp_path)`` and rename, so readers never see half a file."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temp)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def create(
    model: str,
    image_shape: tuple[int, int, int],
    levels: int = 256,
    likelihood: str = "categorical",
    preset: str | None = None,
    **hyperparameters: Any,
) -> DensityModel:
    """A new, randomly initialised model.

    ``model`` names the network ("pixelcnn"); ``preset`` picks a named hyperparameter set
    ("default", "tiny", "paper"), which keyword ``hyperparameters`` then override.
    """
    config = ModelConfig(
        model=model,
        image_shape=_check_image_shape(image_shape),
        levels=check_levels(levels),
        likelihood=likelihood,
        hyperparameters=resolve_hyperparameters(model, preset, hyperparameters),
    )
    return DensityModel(config)


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> DensityModel:
    """Rebuild a model saved with :meth:`DensityModel.save`. Never unpickles anything."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(
            f"{directory} holds no saved model (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        data = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    config = ModelConfig.from_json(data, source=str(config_path))
    model = DensityModel(config)
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {error}") from None
    load_weights(model, state, source=str(weights_path))
    return model


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict with one-line errors for missing, extra or misshapen tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{source} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{source}: tensor {key} has shape {list(tensor.shape)}, "
                f"the model needs {list(expected[key].shape)}"
            )
    model.load_state_dict(state)
