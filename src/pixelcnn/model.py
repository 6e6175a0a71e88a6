"""The object a user holds: network + likelihood + quantizer + config.

It speaks like ``torch.distributions``: uint8 images in, log-probabilities out, samples back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn
from torch.nn.utils import parametrize

from pixelcnn import coding
from pixelcnn.chunking import CHUNK_BYTES, chunk_length, largest_temporary
from pixelcnn.conditions import prepare_condition, select
from pixelcnn.encodings import ImageEncoding, TokenEncoding
from pixelcnn.files import atomic_write, check_regular, check_writable, read_regular
from pixelcnn.likelihoods import LIKELIHOODS, build_likelihood, option_names, resolve_options
from pixelcnn.limits import check_memory
from pixelcnn.networks import build_network, network_spec, resolve_hyperparameters
from pixelcnn.quantize import Quantizer, check_levels
from pixelcnn.sampling import Source, generate, known_prefix
from pixelcnn.units import bits_per_dim
from pixelcnn.values import as_int

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_LIMIT_BYTES = 1 << 20  # a config is a few hundred bytes of JSON
FORMAT_NAME = "pixelcnn-model"
FORMAT_VERSION = 1
# safetensors metadata of the weights this library writes: tells them apart from others'
WEIGHTS_TAG = {"format": FORMAT_NAME}
MAX_SIDE = 65536  # pixels per image side, and channels; larger is a typo or a hostile file
MAX_SYMBOLS = 1 << 20  # symbols of a token model (image models: 2..256 levels)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's structure (weights live in safetensors).

    ``data`` is "image" (uint8 images, ``levels`` colour levels) or "tokens" (integer grids
    with ``levels`` symbols, fed through an embedding of ``embedding_dim`` channels).
    """

    model: str
    image_shape: tuple[int, int, int]
    levels: int
    likelihood: str = "categorical"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data: str = "image"
    embedding_dim: int = 0
    likelihood_options: dict[str, Any] = field(default_factory=dict)  # e.g. components

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
        missing = [key for key in ("model", "image_shape", "levels") if key not in data]
        if missing:
            raise ValueError(f"{source} is incomplete: it lacks {', '.join(missing)}")
        try:  # the exact JSON types: 4.7 levels, "true" channels or 1e400 never pass
            shape = data["image_shape"]
            if not isinstance(shape, list) or len(shape) != 3:
                raise ValueError(f"image_shape must be a list [C, H, W], got {shape!r}")
            hyperparameters = data.get("hyperparameters", {})
            if not isinstance(hyperparameters, dict):
                raise ValueError(f"hyperparameters must be an object, got {hyperparameters!r}")
            options = data.get("likelihood_options", {})  # absent before components existed
            if not isinstance(options, dict):
                raise ValueError(f"likelihood_options must be an object, got {options!r}")
            likelihood = _text(data.get("likelihood", "categorical"), "likelihood")
            options = resolve_options(likelihood, options)
            return cls(
                model=_text(data["model"], "model"),
                image_shape=tuple(as_int(v, "image_shape", 1, MAX_SIDE) for v in shape),
                levels=as_int(data["levels"], "levels", 2, MAX_SYMBOLS),
                likelihood=likelihood,
                hyperparameters=hyperparameters,
                data=_text(data.get("data", "image"), "data"),
                embedding_dim=as_int(data.get("embedding_dim", 0), "embedding_dim", 0, 65536),
                likelihood_options=options,
            )
        except ValueError as error:
            raise ValueError(f"{source} is malformed: {error}") from None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _check_shape(shape: Any, length: int, what: str) -> tuple[int, ...]:
    names = "(C, H, W)" if length == 3 else "(H, W)"
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else ()
    if len(shape) != length:
        raise ValueError(f"{what} must be {names} with positive ints, got {shape or what!r}")
    return tuple(as_int(v, f"each side of {what} {names}", 1, MAX_SIDE) for v in shape)


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    shape = _check_shape(image_shape, 3, "image_shape")
    if shape[0] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {shape[0]}")
    return shape


def _build_encoding(config: ModelConfig) -> ImageEncoding | TokenEncoding:
    if config.data == "image":
        return ImageEncoding(config.image_shape, config.levels)
    if config.data == "tokens":
        return TokenEncoding(config.image_shape[1:], config.levels, config.embedding_dim)
    raise ValueError(f"data must be 'image' or 'tokens', got {config.data!r}")


# Images snapped at a time by DensityModel.quantize.
_QUANTIZE_CHUNK = 1024


class DensityModel(nn.Module):
    """An autoregressive density with an exact likelihood over images or token grids.

    Images are uint8 tensors [B, C, H, W] whose values are the model's L representable
    values (``quantizer.valid_values()``; every value 0..255 when L = 256); use
    :meth:`quantize` to snap arbitrary uint8 images onto them. Token models take integer
    grids [B, H, W] instead. Conditional networks take ``condition=`` everywhere.
    """

    # Scoring without autograd works a chunk of images at a time, as many as keep the
    # largest temporary within this many bytes (see pixelcnn.chunking); None: whole batches.
    scoring_chunk_bytes: int | None = CHUNK_BYTES

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoding = _build_encoding(config)
        channels = config.image_shape[0]
        self.likelihood = build_likelihood(
            config.likelihood, config.levels, channels, **config.likelihood_options
        )
        tokens = config.data == "tokens"
        # A likelihood that draws whole pixels (the logistic mixture couples R -> G -> B
        # itself) needs a network that sees nothing of the current pixel: one colour group.
        groups = 1 if self.likelihood.joint_channels else channels
        self.network = build_network(
            config.model,
            groups,
            self.likelihood.num_params,
            input_channels=self.encoding.input_channels if tokens or groups != channels else None,
            **config.hyperparameters,
        )
        self.condition_spec = self.network.condition_spec
        self._scoring_chunks: dict[tuple, int] = {}  # see _scoring_chunk

    # ----------------------------------------------------------------- inputs
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def quantizer(self) -> Quantizer:
        if self.encoding.kind != "image":
            raise AttributeError("token models have no colour quantizer")
        return self.encoding.quantizer

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def quantize(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Snap any uint8 images [B, C, H, W] to the nearest representable values (a new
        tensor; converted a chunk of images at a time, so a whole training set never needs
        the conversion's int64 temporaries at once)."""
        images = self.encoding.check(images, check_values=False)
        snapped = torch.empty_like(images)
        for start in range(0, len(images), _QUANTIZE_CHUNK):
            part = slice(start, start + _QUANTIZE_CHUNK)
            snapped[part] = self.quantizer.snap(images[part])
        return snapped

    def images_to_levels(self, data: Any) -> torch.Tensor:
        """Validated images (or token grids) -> int64 levels [B, C, H, W] on the device."""
        return self.encoding.to_levels(data, self.device)

    def prepare_condition(self, condition: Any, batch: int) -> dict[str, torch.Tensor] | None:
        """Check a user's condition and bring it to the network's form for ``batch`` items."""
        return prepare_condition(
            self.condition_spec, condition, batch, self.image_shape[1:], self.device, self.dtype
        )

    # ----------------------------------------------------------------- density
    def forward(
        self, levels: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Integer levels [B, C, H, W] (+ prepared condition) -> parameters [B, P, H, W]."""
        return self.network(self.encoding.encode(levels, self.dtype), condition)

    def level_log_probs(
        self, levels: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for integer levels [B, C, H, W] -> [B, C, H, W]."""
        return self.likelihood.log_prob(self(levels, condition), levels)

    def _log_probs(self, data: Any, condition: Any) -> torch.Tensor:
        """log p of every sub-pixel; without autograd, a chunk of images at a time (the
        same numbers, at full speed for any batch: see :mod:`pixelcnn.chunking`)."""
        levels = self.images_to_levels(data)
        prepared = self.prepare_condition(condition, len(levels))
        if torch.is_grad_enabled():
            return self.level_log_probs(levels, prepared)
        size = self._scoring_chunk(levels, prepared)
        parts = []
        with parametrize.cached():  # weight-normalized layers: their weights once, not per chunk
            for start in range(0, len(levels), size):
                part = slice(start, start + size)
                parts.append(self.level_log_probs(levels[part], select(prepared, part)))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _scoring_chunk(
        self, levels: torch.Tensor, condition: dict[str, torch.Tensor] | None
    ) -> int:
        """Images per scoring chunk for inputs like ``levels``, measured once per input
        shape, device and autocast setting by scoring one image (the whole batch without a
        :attr:`scoring_chunk_bytes` budget)."""
        budget = self.scoring_chunk_bytes
        if not budget:
            return len(levels)
        device = levels.device.type
        autocast = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device)
        key = (tuple(levels.shape[1:]), levels.device, self.dtype, autocast, budget)
        if key not in self._scoring_chunks:
            one = select(condition, slice(0, 1))
            largest = largest_temporary(lambda: self.level_log_probs(levels[:1], one))
            self._scoring_chunks[key] = chunk_length(largest, budget)
        return self._scoring_chunks[key]

    def conditional_log_probs(self, images: Any, condition: Any = None) -> torch.Tensor:
        """log p(x_i | x_<i) in nats for every sub-pixel: [B,C,H,W] ([B,H,W] for tokens)."""
        return self.encoding.per_subpixel(self._log_probs(images, condition))

    def log_prob(self, images: Any, condition: Any = None) -> torch.Tensor:
        """Exact log-likelihood in nats per image: [B, C, H, W] (or tokens [B, H, W]) -> [B]."""
        return self._log_probs(images, condition).flatten(1).sum(1)

    def nll_map(self, images: Any, condition: Any = None) -> torch.Tensor:
        """Where the model is surprised: -log p of each pixel given the pixels before it,
        in nats, summed over its channels: [B, C, H, W] (tokens [B, H, W]) -> [B, H, W].
        Each image's map sums to its -log p(x) (:meth:`log_prob`)."""
        return -self._log_probs(images, condition).sum(1)

    def bits_per_dim(self, images: Any, condition: Any = None) -> torch.Tensor:
        """-log2 p(x) / (C * H * W): -> [B]."""
        return bits_per_dim(-self.log_prob(images, condition), math.prod(self.image_shape))

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        condition: Any = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: bool = False,
        method: str = "cached",
        return_log_probs: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` images, uint8 [n, C, H, W] with values as in the training images
        (token models: int64 [n, H, W]). ``condition`` is one for all or one per image.

        ``method`` "cached" computes only what each new pixel changes; "naive" runs the
        whole network per draw (the reference: both give the same images for the same
        ``generator`` state). ``temperature`` divides the logits (0: the most likely
        value). With ``return_log_probs`` also log p(x_i | x_<i) in nats of every sub-pixel,
        shaped like the images.
        """
        n = as_int(n, "n (the number of images)", 1)
        levels = torch.zeros(n, *self.image_shape, dtype=torch.int64, device=self.device)
        drawn, log_probs = self._generate(
            levels, condition, 0, temperature, generator, progress, method, return_log_probs
        )
        return self._images_out(drawn, log_probs)

    @torch.no_grad()
    def complete(
        self,
        images: Any,
        known: Any,
        condition: Any = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: bool = False,
        method: str = "cached",
        return_log_probs: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Fill in the unknown part of ``images`` [B, C, H, W] (tokens: [B, H, W]).

        ``known`` is a boolean mask of the known sub-pixels, shaped like the images, like
        one image, or [H, W] (whole pixels); it must be a raster prefix (every known
        sub-pixel comes before every unknown one in raster order, R -> G -> B inside a
        pixel), because the model conditions on the past only. The known part is kept
        exactly (it must hold representable values, see :meth:`quantize`); the rest is
        drawn as in :meth:`sample`.
        """
        levels = self.images_to_levels(images)
        joint = self.likelihood.name if self.likelihood.joint_channels else None
        tokens = self.encoding.kind != "image"
        mask, start = known_prefix(known, levels.shape, tokens=tokens, whole_pixels=joint)
        levels = levels.masked_fill(~mask.to(levels.device), 0)  # never shown what is drawn
        drawn, log_probs = self._generate(
            levels, condition, start, temperature, generator, progress, method, return_log_probs
        )
        return self._images_out(drawn, log_probs)

    def _generate(
        self,
        levels: torch.Tensor,
        condition: Any,
        start: int,
        temperature: float,
        generator: torch.Generator | None,
        progress: bool,
        method: str,
        score: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw the sub-pixels of ``levels`` [B, C, H, W] from index ``start`` on, in eval
        mode, through :func:`pixelcnn.sampling.generate`."""
        source = self.generation_source(condition, len(levels))
        with self.inference():
            return generate(source, levels, start, temperature, generator, method, progress, score)

    def generation_source(self, condition: Any, batch: int) -> Source:
        """What a sampler or a coder needs of this model for ``batch`` images under
        ``condition``: the likelihood, the input encoding, whole passes and cached steps."""
        prepared = self.prepare_condition(condition, batch)
        return Source(
            likelihood=self.likelihood,
            encode=lambda pixel: self.encoding.encode(pixel, self.dtype),
            parameters_of=lambda levels_so_far: self(levels_so_far, prepared),
            steps=lambda batch, height, width: self.network.generation(
                batch, height, width, prepared
            ),
            row_multiple=self.network.row_multiple,
            name=self.config.model,
        )

    @contextmanager
    def inference(self) -> Iterator[None]:
        """Eval mode, and weight-normalized layers computing their weights once, not once
        per step; the mode before is restored after."""
        was_training = self.training
        self.eval()
        try:
            with parametrize.cached():
                yield
        finally:
            self.train(was_training)

    def _images_out(self, levels: torch.Tensor, log_probs: torch.Tensor | None):
        images = self.encoding.from_levels(levels).cpu()
        if log_probs is None:
            return images
        return images, self.encoding.per_subpixel(log_probs.float()).cpu()

    # ----------------------------------------------------------------- compression
    def compress(
        self,
        images: Any,
        condition: Any = None,
        names: list[str] | None = None,
        labels: Any = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> bytes:
        """Losslessly compress ``images`` (uint8 [N, C, H, W]; token grids [N, H, W]) into
        a file's bytes of about -log2 p(x) bits each. ``condition``: class labels for a
        class-conditional model (stored in the file); ``names`` and (for other models)
        ``labels``: one per image, kept. Decoding needs this model, and torch and dtype as
        here (see :mod:`pixelcnn.coding.codec`)."""
        batch_size = coding.DEFAULT_BATCH if batch_size is None else batch_size
        return coding.compress(
            self, images, condition, names, labels, batch_size=batch_size, progress=progress
        )

    def decompress(
        self, data: bytes, indices: list[int] | None = None, progress: bool = False
    ) -> torch.Tensor:
        """The images of :meth:`compress`'s bytes, exactly (``indices``: only those, and
        only their groups are decoded). Names and labels: ``pixelcnn.coding.unpack``."""
        return coding.decompress(self, data, indices, progress)

    # ----------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically."""
        directory = Path(directory)
        for name in (WEIGHTS_FILE, CONFIG_FILE):  # both, before either is written
            check_writable(directory / name)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        check_finite(tensors, f"the model to save in {directory}")
        text = json.dumps(self.config.to_json(), indent=2) + "\n"
        directory.mkdir(parents=True, exist_ok=True)
        # safetensors' save_file writes a file of its own (mode 0600) and renames it over the
        # name it is given; its bytes go into our temporary instead, made at the umask's mode
        blob = save(tensors, WEIGHTS_TAG)
        atomic_write(directory / WEIGHTS_FILE, lambda p: Path(p).write_bytes(blob))
        atomic_write(directory / CONFIG_FILE, lambda p: Path(p).write_text(text))
        return directory


def create(
    model: str,
    image_shape: tuple[int, int, int],
    levels: int = 256,
    likelihood: str | None = None,
    preset: str | None = None,
    data: str = "image",
    embedding_dim: int = 32,
    **hyperparameters: Any,
) -> DensityModel:
    """A new, randomly initialised model.

    ``model`` names the network ("pixelcnn", "gated", "pixelcnnpp", "pixelsnail");
    ``likelihood`` is "categorical" or "logistic_mixture" (default: the network's own, the
    mixture for PixelCNN++ and PixelSNAIL); ``preset`` picks a named
    hyperparameter set ("default", "tiny", "paper"), which keyword ``hyperparameters`` then
    override (conditioning too: ``num_classes``, ``vector_dim``, ``spatial_channels``);
    a keyword of the likelihood goes to it (the mixture's ``components``, default 10).

    ``data="tokens"`` makes a prior over integer grids: ``image_shape`` is then (H, W),
    ``levels`` the number of symbols K, and each symbol enters through a learned embedding
    of ``embedding_dim`` channels.
    """
    if data == "tokens":
        grid = _check_shape(image_shape[-2:] if len(image_shape) == 3 else image_shape, 2, "grid")
        levels = as_int(levels, "levels (the number of symbols)", 2, MAX_SYMBOLS)
        dim = as_int(embedding_dim, "embedding_dim", 1, 65536)
        shape = (1, *grid)
    elif data == "image":
        shape, dim = _check_image_shape(image_shape), 0
        levels = check_levels(levels)
    else:
        raise ValueError(f"data must be 'image' or 'tokens', got {data!r}")
    if likelihood is None:
        likelihood = network_spec(model).likelihood
    # a keyword some likelihood takes (the mixture's components) goes to the likelihood
    known = {name for other in LIKELIHOODS for name in option_names(other)}
    options = {k: hyperparameters.pop(k) for k in list(hyperparameters) if k in known}
    config = ModelConfig(
        model=model,
        image_shape=shape,
        levels=levels,
        likelihood=likelihood,
        hyperparameters=resolve_hyperparameters(model, preset, hyperparameters),
        data=data,
        embedding_dim=dim,
        likelihood_options=resolve_options(likelihood, options, with_defaults=True),
    )
    return DensityModel(config)


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> DensityModel:
    """Rebuild a model saved with :meth:`DensityModel.save`. Never unpickles anything.
    The model comes in evaluation mode (dropout off: ``log_prob`` is the exact, repeatable
    likelihood); ``model.train()`` before fine-tuning it. ``"pretrained:NAME"`` opens a
    model shipped with the package (``pixelcnn pretrained`` lists them), after checking its
    weights against its card."""
    from pixelcnn import pretrained  # the zoo's folders hold saved models

    if pretrained.is_pretrained(directory):
        directory = pretrained.check_weights(str(directory))
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not (os.path.lexists(config_path) and os.path.lexists(weights_path)):
        raise FileNotFoundError(
            f"{directory} holds no saved model (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        data = json.loads(read_regular(config_path, CONFIG_LIMIT_BYTES, "model config"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    config = ModelConfig.from_json(data, source=str(config_path))
    model = DensityModel(config)
    check_regular(weights_path)
    check_memory(weights_path.stat().st_size, f"loading {weights_path}")
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {error}") from None
    load_weights(model, state, source=str(weights_path))
    return model.eval()


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
        if tensor.dtype != expected[key].dtype:
            raise ValueError(
                f"{source}: tensor {key} is {tensor.dtype}, the model needs {expected[key].dtype}"
            )
    check_finite(state, source)
    model.load_state_dict(state)


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: such a model scores every image NaN."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{source}: tensor {key} holds NaN or infinite values")
