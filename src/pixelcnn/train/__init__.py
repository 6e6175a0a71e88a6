"""Training: the loop, checkpoints, metrics and the run directory."""

from pixelcnn.train.checkpoint import Checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from pixelcnn.train.loop import TrainOptions, TrainResult, batch_indices, train
from pixelcnn.train.objective import mean_bits_per_dim

__all__ = [
    "Checkpoint",
    "TrainOptions",
    "TrainResult",
    "batch_indices",
    "list_checkpoints",
    "mean_bits_per_dim",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
