"""Models trained here and shipped inside the package: ``pixelcnn.load("pretrained:NAME")``.

Each model is a folder of this package holding a saved model (``config.json`` +
``model.safetensors``, what :func:`pixelcnn.load` opens), its card (``card.json``: the
data, network, command, time and test bits/dim it was trained to) and ``check.npz``: a
fixed slice of its test split with the bits/dim the card records for it, so a fresh
install can check that it computes what the model's makers measured. Nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pixelcnn.files import read_regular

PREFIX = "pretrained:"
ZOO = Path(__file__).resolve().parent
CARD_FILE, CHECK_FILE = "card.json", "check.npz"
CARD_LIMIT_BYTES = 1 << 20


@dataclass(frozen=True)
class Card:
    """What a shipped model is and how it was made."""

    name: str
    summary: str
    data: str  # the dataset's name for --data (or the file it was read from)
    data_description: str
    train_images: int
    test_images: int
    network: str
    hyperparameters: dict[str, Any]
    parameters: int
    levels: int
    likelihood: str
    conditional: bool
    command: str  # the exact command that trained it
    steps: int
    train_minutes: float  # wall minutes inside the training steps
    cpu_minutes: float  # CPU minutes of those steps (all threads)
    threads: int
    test_bits_per_dim: float  # the whole test split, as ``pixelcnn eval`` prints it
    sha256: str  # of model.safetensors
    check: dict[str, Any] = field(default_factory=dict)  # source, images, bits_per_dim

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> Card:
        if not isinstance(data, dict):
            raise ValueError(f"{source} is not a model card: not a JSON object")
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data) - {"check"})
        if missing:
            raise ValueError(f"{source} is not a model card: missing {missing[:3]}")
        return cls(**{key: value for key, value in data.items() if key in names})


def is_pretrained(reference: str | Any) -> bool:
    """Whether ``reference`` names a shipped model (``pretrained:NAME``)."""
    return isinstance(reference, str) and reference.startswith(PREFIX)


def names() -> list[str]:
    """The shipped models, sorted."""
    return sorted(p.parent.name for p in ZOO.glob(f"*/{CARD_FILE}"))


def model_dir(reference: str) -> Path:
    """The folder of ``pretrained:NAME`` (or of NAME); unknown names are refused with the
    list of those there are."""
    name = reference[len(PREFIX) :] if is_pretrained(reference) else reference
    if name not in names():
        known = ", ".join(names()) or "none"
        raise ValueError(
            f"no pretrained model {name!r} (there are: {known}; see pixelcnn pretrained)"
        )
    return ZOO / name


def card(reference: str) -> Card:
    """The card of a shipped model."""
    path = model_dir(reference) / CARD_FILE
    try:
        data = json.loads(read_regular(path, CARD_LIMIT_BYTES, "model card"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    return Card.from_json(data, str(path))


def cards() -> list[Card]:
    return [card(name) for name in names()]


def weights_digest(directory: Path) -> str:
    """SHA-256 of a saved model's weights file, hex."""
    from pixelcnn.data.download import file_digest
    from pixelcnn.model import WEIGHTS_FILE

    return file_digest(directory / WEIGHTS_FILE, hashlib.sha256())


def check_weights(reference: str) -> Path:
    """The folder of a shipped model whose weights are those its card was measured with."""
    expected = card(reference)
    directory = ZOO / expected.name
    if weights_digest(directory) != expected.sha256:
        raise ValueError(
            f"{directory} does not hold the weights its card describes (SHA-256 differs): "
            "reinstall pixelcnn"
        )
    return directory


def output_name(reference: str, filename: str) -> Path:
    """Where a command writes ``filename`` by default for a shipped model: the current
    folder, named after the model (the package's own folder is never written)."""
    name = reference[len(PREFIX) :]
    return Path(f"{name}-{filename}")
