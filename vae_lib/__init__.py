"""vae_lib: a small convolutional VAE for teaching, with the tools the notebooks call.

The names below are the public API the notebooks, tests and instructors use.
"""

from vae_lib.checkpoint import CheckpointError, load_model, read_checkpoint
from vae_lib.config import TrainConfig
from vae_lib.data import DataError, ImageDataset, load_dataset, prepare_mnist, to_model_input
from vae_lib.device import choose_device
from vae_lib.evaluate import evaluate
from vae_lib.loss import kl_per_dimension, vae_loss
from vae_lib.model import VAE
from vae_lib.train import Trainer, TrainingDivergedError, TrainingHook

__all__ = [
    "VAE",
    "CheckpointError",
    "DataError",
    "ImageDataset",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "TrainingHook",
    "choose_device",
    "evaluate",
    "kl_per_dimension",
    "load_dataset",
    "load_model",
    "prepare_mnist",
    "read_checkpoint",
    "to_model_input",
    "vae_loss",
]
