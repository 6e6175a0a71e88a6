"""Training: the options, one step at a time (``Trainer``), the loop, checkpoints, metrics
and the run directory."""

from pixelcnn.train.checkpoint import Checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from pixelcnn.train.data import batch_indices
from pixelcnn.train.loop import TrainResult, train
from pixelcnn.train.objective import mean_bits_per_dim
from pixelcnn.train.options import TrainOptions
from pixelcnn.train.trainer import Outcome, StepResult, Trainer

__all__ = [
    "Checkpoint",
    "Outcome",
    "StepResult",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "batch_indices",
    "list_checkpoints",
    "mean_bits_per_dim",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
