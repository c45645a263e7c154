"""A run folder's layout (checkpoint, kept epochs, snapshots, videos) and the checkpoint files in it.

A checkpoint is one plain dict (config, weights, optimizer, epoch, history, RNG state), written to a
temporary file and renamed, so a file on disk is never half-written, and read with
`torch.load(weights_only=True)`, so loading one cannot run code.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from vae_lib.config import TrainConfig
from vae_lib.device import place_model
from vae_lib.history import History
from vae_lib.model import VAE

CHECKPOINT_KIND = "vae_lib.checkpoint"
REQUIRED_KEYS = ("kind", "config", "model", "epoch", "step", "history")
# What an exported checkpoint leaves out: it can be used and shared, not continued.
TRAINING_ONLY_KEYS = ("optimizer", "rng")


class CheckpointError(RuntimeError):
    """A file is missing, not a vae_lib checkpoint, or for another model; the message says what to do."""


@dataclass(frozen=True)
class RunFolder:
    """Where a training run keeps its files; every module finds them through this class."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def checkpoint(self) -> Path:
        """Return the checkpoint of the last complete epoch, the one a run resumes from."""
        return self.path / "checkpoint.pt"

    def kept_epoch(self, epoch: int) -> Path:
        """Return the file a checkpoint kept for `epoch` (TrainConfig.keep_epochs) is written to."""
        return self.path / f"epoch_{epoch:03d}.pt"

    @property
    def snapshots(self) -> Path:
        """Return the folder of latent-space snapshots (vae_lib.snapshots)."""
        return self.path / "snapshots"

    def snapshot(self, step: int) -> Path:
        """Return the file of the snapshot taken after `step` steps."""
        return self.snapshots / f"step_{step:07d}.npz"

    def snapshot_step(self, path: Path) -> int:
        """Return the step a snapshot file was taken at (the inverse of snapshot())."""
        return int(path.stem.removeprefix("step_"))

    def snapshot_files(self) -> list[Path]:
        """Return the run's snapshot files in step order."""
        return sorted(self.snapshots.glob("step_*.npz"))

    @property
    def video(self) -> Path:
        """Return the mp4 of the latent space evolving (vae_lib.video)."""
        return self.path / "latent_evolution.mp4"

    @property
    def gif(self) -> Path:
        """Return the GIF version of the video, for READMEs."""
        return self.path / "latent_evolution.gif"


class TrainingRun(Protocol):
    """What a training checkpoint is captured from and restored into (a Trainer)."""

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle_generator: torch.Generator
    epoch: int
    step: int
    train_seconds: float
    history: History


def capture_training_state(run: TrainingRun) -> dict:
    """Return (a copy of) what a training checkpoint holds: everything needed to continue the run exactly."""
    rng = {
        "torch": torch.get_rng_state(),
        "shuffle": run.shuffle_generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    parts = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "rng": rng}
    counters = {"epoch": run.epoch, "step": run.step, "train_seconds": run.train_seconds}
    return copy.deepcopy({"config": run.config.to_dict(), **parts, **counters, "history": run.history.to_dict()})


def restore_training_state(run: TrainingRun, state: dict) -> None:
    """Load a captured state into a run: weights, optimizer, counters, history and random state."""
    missing = [key for key in TRAINING_ONLY_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"this checkpoint was exported without {' and '.join(missing)} state, so it cannot continue training; "
            "load it with vae_lib.load_model to use the model, or retrain"
        )
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.epoch, run.step, run.train_seconds = state["epoch"], state["step"], state["train_seconds"]
    run.history = History.from_dict(state["history"])
    torch.set_rng_state(state["rng"]["torch"])
    run.shuffle_generator.set_state(state["rng"]["shuffle"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def continued_config(checkpoint: Path, requested: TrainConfig) -> tuple[TrainConfig, TrainConfig]:
    """Return the (saved, continued) configs of a run resumed with `requested` settings.

    Refuses, with a CheckpointError naming each differing setting, another model or a change that is not resumable.
    """
    saved = config_of(read_checkpoint(checkpoint))
    if saved.differences(requested):
        raise CheckpointError(
            f"{checkpoint} belongs to another model ({'; '.join(saved.differences(requested))}): "
            "choose another run folder, or match its settings to continue it"
        )
    try:
        return saved, saved.continued_as(requested)
    except ValueError as error:
        raise CheckpointError(
            f"{checkpoint} was trained with other settings ({error}): choose another run folder, "
            "or give the run's own settings to continue it"
        ) from error


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` to `path` atomically (temporary file in the same folder, then rename); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            torch.save({"kind": CHECKPOINT_KIND, **state}, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; checkpoints are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Return a checkpoint's dict after checking that the file is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train a model first (python -m vae_lib train ...) or check the path"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{path} is not a vae_lib checkpoint (torch.load could not read it: {first_line}); "
            "it may be truncated or another kind of file: use a checkpoint.pt written by vae_lib"
        ) from error
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{path} is a torch file but not a vae_lib checkpoint: use a checkpoint.pt written by vae_lib"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is an incomplete vae_lib checkpoint (missing {missing}); retrain or use another file"
        )
    return state


def config_of(state: dict) -> TrainConfig:
    """Return the TrainConfig stored in a checkpoint dict."""
    return TrainConfig.from_dict(state["config"])


def history_of(state: dict) -> History:
    """Return the History stored in a checkpoint dict."""
    return History.from_dict(state["history"])


def model_from_state(state: dict, source: str | Path = "checkpoint") -> VAE:
    """Return the VAE a checkpoint dict describes, with its weights loaded."""
    model = config_of(state).build_model()
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"the weights in {source} do not fit the model its config describes: {error}") from error
    return model


def load_model(path: str | Path, device: torch.device | str = "cpu", latent_dim: int | None = None) -> VAE:
    """Return the trained VAE stored at `path`, in eval mode; `latent_dim`, if given, must match it."""
    state = read_checkpoint(path)
    config = config_of(state)
    if latent_dim is not None and config.latent_dim != latent_dim:
        raise CheckpointError(
            f"{path} holds a {config.latent_dim}-D model, not the {latent_dim}-D one asked for: "
            "pick the matching checkpoint"
        )
    model = model_from_state(state, path)
    return place_model(model, device).eval()


def export_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Write a copy of a checkpoint for sharing: config, weights, epoch and history, without optimizer or RNG state."""
    state = read_checkpoint(source)
    shared = {key: value for key, value in state.items() if key not in ("kind", *TRAINING_ONLY_KEYS)}
    return save_checkpoint(shared, target)
