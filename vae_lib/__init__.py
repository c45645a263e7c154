"""vae_lib: a small convolutional VAE for teaching, with the tools the notebooks call.

The package comes in four groups, each built only on the ones before it:

- `vae_lib.core`: the model (`model`), the objective (`objective`), the data (`data`, `datasets`, `download`),
  the configuration (`config`), training (`train`, `hooks`), checkpoints (`checkpoint`, `run_folder`, `files`)
  and the measurements (`evaluate`, `latent`, `likelihood`);
- `vae_lib.pictures`: figures (`viz`), snapshots and videos of training (`snapshots`, `video`), the explorer
  widget (`explorer`);
- `vae_lib.course`: what the notebooks share (`notebooks`), the shipped models and quality targets (`shipped`),
  the exercises' checks (`exercises`) and the student-notebook generator (`student`);
- `vae_lib.tools`: the command line (`cli`) and what only it runs (`reproduce`, `benchmark`, `sweep`).

The names below are the public API; notebooks also import from the submodules above.
"""

from vae_lib.core.checkpoint import load_model, read_checkpoint
from vae_lib.core.config import RECIPES, TrainConfig
from vae_lib.core.data import Batch, DataError, ImageDataset, to_model_input, to_pixels
from vae_lib.core.datasets import DATASETS, DatasetEntry, load_dataset, prepare_dataset
from vae_lib.core.device import choose_device
from vae_lib.core.evaluate import (
    active_dimensions,
    encode_means,
    evaluate,
    kl_by_dimension,
    per_class_recon_error,
    reconstruct,
)
from vae_lib.core.files import CheckpointError
from vae_lib.core.history import EpochRecord, History, StepRecord
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.model import VAE, LatentModel, ModelInputError, reparameterise
from vae_lib.core.objective import LIKELIHOODS, kl_per_dimension, reconstruction_loss, vae_loss
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import outputs_dir, smoke_mode
from vae_lib.core.train import Trainer, TrainingDivergedError, TrainingInterrupted, open_run, train_step

__all__ = [
    "DATASETS",
    "LIKELIHOODS",
    "RECIPES",
    "VAE",
    "Batch",
    "CheckpointError",
    "DataError",
    "DatasetEntry",
    "EpochRecord",
    "History",
    "ImageDataset",
    "LatentModel",
    "ModelInputError",
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
    "prepare_dataset",
    "read_checkpoint",
    "reconstruct",
    "reparameterise",
    "reconstruction_loss",
    "smoke_mode",
    "to_model_input",
    "to_pixels",
    "train_step",
    "vae_loss",
]
