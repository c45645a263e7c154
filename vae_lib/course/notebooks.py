"""What the notebooks share: the data (prepared on first use), the run each training notebook makes
and the shipped checkpoints, so every notebook names them the same way. What these helpers tell the learner goes
to a `report` callable, print unless told otherwise.

A training notebook runs one of three ways: a short live run by default (a lab's few minutes), the shipped
model's full recipe when the notebook's switch asks for it, or a few seconds' run in smoke mode (for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vae_lib.core.config import RECIPES, TrainConfig
from vae_lib.core.data import ImageDataset
from vae_lib.core.datasets import DEFAULT_DATASET, Report, load_prepared
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.run_folder import clear_run
from vae_lib.core.settings import runs_dir, smoke_mode
from vae_lib.core.train import Trainer, open_run
from vae_lib.course.shipped import (
    QUALITY_TARGETS,
    SHIPPED_MODELS,
    shipped_checkpoint,
    shipped_epochs,
    shipped_history,
    shipped_video,
)

# The notebooks import the shipped models' names from here too.
__all__ = [
    "LIVE_SETTINGS",
    "QUALITY_TARGETS",
    "SHIPPED_MODELS",
    "SMOKE_SETTINGS",
    "load_mnist",
    "notebook_config",
    "notebook_run_dir",
    "notebook_trainer",
    "shipped_checkpoint",
    "shipped_epochs",
    "shipped_history",
    "shipped_video",
]

# Smoke mode: a few hundred steps on a slice of MNIST, so a notebook runs in seconds.
SMOKE_SETTINGS = {
    "train_subset": 2048,
    "test_subset": 1000,
    "epochs": 2,
    "log_every": 8,
    "step_test_images": 200,
    "keep_epochs": (),
}
# Default: a short live run (600 steps on a third of MNIST, a few minutes on a laptop CPU): long enough to watch the
# curves fall and the latent space form; the notebooks then go on with the shipped model. It trains in bf16 where
# the CPU computes it natively (about 1.5x faster), in fp32 elsewhere. Each step's gradient is clipped to norm 1: it
# is 0.2-0.5 in most steps, but a few of the first hundred reach 3-4 (8-D) or 2,700 (2-D), and at the full learning
# rate such a step can send the log-variances far down, the KL to hundreds of nats, and leave the short run with a
# KL it never sheds (the 8-D run on a 2-core Xeon, model 167: test KL 36 nats and total 0.0905 unclipped, 15.7 and
# 0.0679 clipped; the README's "The live runs clip the gradient" has the seeds measured).
LIVE_SETTINGS = {
    "train_subset": 19200,
    "epochs": 2,
    "log_every": 50,
    "keep_epochs": (),
    "precision": "auto",
    "max_grad_norm": 1.0,
}


def load_mnist(train: bool, report: Report = print) -> ImageDataset:
    """Return the course's dataset (MNIST), training or test images, fetching and checking the files first if
    they are missing."""
    return load_prepared(DEFAULT_DATASET, train=train, report=report)


def notebook_config(recipe: str, full_recipe: bool = False) -> TrainConfig:
    """Return the recipe a training notebook uses: the short live run, the shipped model's full recipe
    (`full_recipe`), or a tiny version in smoke mode, whatever `full_recipe` says."""
    config = RECIPES[recipe]
    if smoke_mode():
        return replace(config, **SMOKE_SETTINGS)
    return config if full_recipe else replace(config, **LIVE_SETTINGS)


def notebook_run_dir(recipe: str, full_recipe: bool = False) -> Path:
    """Return the run folder of a training notebook: one for the full recipe, one for short runs, one for smoke."""
    if smoke_mode():
        name = f"smoke_notebook_{recipe}"
    else:
        name = f"notebook_{recipe}" if full_recipe else f"live_notebook_{recipe}"
    return runs_dir() / name


def notebook_trainer(
    recipe: str, hooks: Sequence[TrainingHook] = (), full_recipe: bool = False, report: Report = print
) -> Trainer:
    """Return the notebook's trainer. A full-recipe run continues the notebook's earlier one if it was saved and
    is never overwritten; a short live run and a smoke run always start afresh. `report` says which it is."""
    run_dir = notebook_run_dir(recipe, full_recipe)
    if smoke_mode() or not full_recipe:
        clear_run(run_dir)  # refused while another process (another notebook's kernel) trains there
    trainer = open_run(notebook_config(recipe, full_recipe), run_dir, hooks=hooks)
    if trainer.epoch:
        report(f"continuing the run saved in {run_dir} at epoch {trainer.epoch}")
    return trainer
