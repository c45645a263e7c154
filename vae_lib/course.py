"""What the notebooks share: the data (prepared on first use), the run each training notebook makes
(shrunk in smoke mode) and the shipped checkpoints, so every notebook names them the same way.
These helpers may print: they speak to the learner.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vae_lib.config import RECIPES, TrainConfig
from vae_lib.data import ImageDataset, load_dataset
from vae_lib.prepare_data import mnist_problems, prepare_mnist
from vae_lib.settings import outputs_dir, smoke_mode
from vae_lib.train import Trainer, TrainingHook, open_run

SHIPPED_MODELS = {"2d": "vae_2d.pt", "8d": "vae_8d.pt"}
# Smoke mode: a few hundred steps on a slice of MNIST, so a notebook runs in seconds.
SMOKE_SETTINGS = {
    "train_subset": 2048,
    "test_subset": 1000,
    "epochs": 2,
    "log_every": 8,
    "step_test_images": 200,
    "keep_epochs": (),
}


def load_mnist(train: bool) -> ImageDataset:
    """Return MNIST's training or test images, downloading and checking the files first if they are missing."""
    if mnist_problems():
        print("MNIST is not prepared yet: fetching and checking it (once, about a minute)")
        prepare_mnist(log=print)
    return load_dataset("mnist", train=train)


def notebook_config(recipe: str) -> TrainConfig:
    """Return the recipe a training notebook uses: the shipped model's settings, or a tiny version in smoke mode."""
    config = RECIPES[recipe]
    return replace(config, **SMOKE_SETTINGS) if smoke_mode() else config


def notebook_run_dir(recipe: str) -> Path:
    """Return the run folder of a training notebook (a separate one in smoke mode)."""
    return outputs_dir() / "runs" / (f"smoke_notebook_{recipe}" if smoke_mode() else f"notebook_{recipe}")


def notebook_trainer(recipe: str, hooks: Sequence[TrainingHook] = ()) -> Trainer:
    """Return the notebook's trainer: resuming the notebook's earlier run if one was saved, else a new one.

    A smoke run always starts afresh; a real run is never overwritten, only continued.
    """
    run_dir = notebook_run_dir(recipe)
    if smoke_mode():
        shutil.rmtree(run_dir, ignore_errors=True)
    trainer = open_run(notebook_config(recipe), run_dir, hooks=hooks)
    if trainer.epoch:
        print(f"continuing the run saved in {run_dir} at epoch {trainer.epoch}")
    return trainer


def remaining_epochs(trainer: Trainer) -> int:
    """Return how many epochs the trainer still has to go to finish its schedule (at least 0)."""
    return max(0, trainer.config.epochs - trainer.epoch)


def shipped_checkpoint(name: str, epoch: int | None = None) -> Path:
    """Return the path of a shipped model ('2d' or '8d'), or of its checkpoint kept at `epoch`."""
    final = outputs_dir() / "checkpoints" / SHIPPED_MODELS[name]
    return final if epoch is None else final.with_name(f"{final.stem}_epoch_{epoch:03d}.pt")


def shipped_epochs(name: str) -> list[int]:
    """Return the epochs at which a shipped model's checkpoints were kept (the recipes keep the last one too)."""
    final = shipped_checkpoint(name)
    return sorted(int(path.stem.rsplit("_", 1)[1]) for path in final.parent.glob(f"{final.stem}_epoch_*.pt"))
