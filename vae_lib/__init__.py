"""vae_lib: a small convolutional VAE for teaching, with the tools the notebooks call.

The names below are the public API. Beside them, notebooks use a few submodules, each for one kind of
thing: `vae_lib.pictures.viz` (figures), `vae_lib.core.latent` (grids, traversals, interpolation), `vae_lib.pictures.explorer`
(the widget), `vae_lib.course.notebooks` (the notebooks' shared data, runs and shipped checkpoints), `vae_lib.pictures.video` and
`vae_lib.pictures.snapshots` (training videos), `vae_lib.course.exercises` (the checks of the exercises), and for notebook 06
`vae_lib.tools.sweep` (the KL-weight sweep) and `vae_lib.core.likelihood` (alpha as a decoder variance, bounds on log p(x)).
"""

from vae_lib.core.config import RECIPES, TrainConfig
from vae_lib.core.data import ImageDataset, load_dataset, to_model_input, to_pixels
from vae_lib.core.device import choose_device
from vae_lib.core.download import DataError, prepare_mnist
from vae_lib.core.evaluate import (
    active_dimensions,
    encode_means,
    evaluate,
    kl_by_dimension,
    per_class_recon_error,
    reconstruct,
)
from vae_lib.core.history import EpochRecord, History, StepRecord
from vae_lib.core.model import VAE
from vae_lib.core.objective import kl_per_dimension, vae_loss
from vae_lib.core.run_folder import CheckpointError, RunFolder, load_model, read_checkpoint
from vae_lib.core.settings import outputs_dir, smoke_mode
from vae_lib.core.train import Trainer, TrainingDivergedError, TrainingHook, TrainingInterrupted, open_run, train_step

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
