"""vae_lib: a small convolutional VAE for teaching, with the tools the notebooks call.

The names below are the public API. Beside them, notebooks use a few submodules, each for one kind of
thing: `vae_lib.viz` (figures), `vae_lib.latent` (grids, traversals, interpolation), `vae_lib.explorer`
(the widget), `vae_lib.course` (the notebooks' shared data, runs and shipped checkpoints), `vae_lib.video` and
`vae_lib.snapshots` (training videos), `vae_lib.exercises` (the checks of the exercises), and for notebook 06
`vae_lib.sweep` (the KL-weight sweep) and `vae_lib.likelihood` (alpha as a decoder variance, bounds on log p(x)).
"""

from vae_lib.config import RECIPES, TrainConfig
from vae_lib.data import ImageDataset, load_dataset, to_model_input, to_pixels
from vae_lib.device import choose_device
from vae_lib.evaluate import (
    active_dimensions,
    encode_means,
    evaluate,
    kl_by_dimension,
    per_class_recon_error,
    reconstruct,
)
from vae_lib.history import EpochRecord, History, StepRecord
from vae_lib.loss import kl_per_dimension, vae_loss
from vae_lib.model import VAE
from vae_lib.prepare_data import DataError, prepare_mnist
from vae_lib.run_folder import CheckpointError, RunFolder, load_model, read_checkpoint
from vae_lib.settings import outputs_dir, smoke_mode
from vae_lib.train import Trainer, TrainingDivergedError, TrainingHook, TrainingInterrupted, open_run, train_step

__all__ = [
    "RECIPES",
    "VAE",
    "CheckpointError",
    "DataError",
    "EpochRecord",
    "History",
    "ImageDataset",
    "RunFolder",
    "StepRecord",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "TrainingHook",
    "TrainingInterrupted",
    "active_dimensions",
    "choose_device",
    "encode_means",
    "evaluate",
    "kl_by_dimension",
    "kl_per_dimension",
    "load_dataset",
    "load_model",
    "open_run",
    "outputs_dir",
    "per_class_recon_error",
    "prepare_mnist",
    "read_checkpoint",
    "reconstruct",
    "smoke_mode",
    "to_model_input",
    "to_pixels",
    "train_step",
    "vae_loss",
]
