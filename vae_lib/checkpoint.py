"""Checkpoint files: one plain dict (config, weights, optimizer, epoch, history, RNG state).

Written to a temporary file and renamed, so a file on disk is never half-written;
read with `torch.load(weights_only=True)`, so loading one cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from vae_lib.config import TrainConfig
from vae_lib.device import place_model
from vae_lib.model import VAE

CHECKPOINT_KIND = "vae_lib.checkpoint"
REQUIRED_KEYS = ("kind", "config", "model", "epoch", "step", "history")


class CheckpointError(RuntimeError):
    """A file is missing, not a vae_lib checkpoint, or for another model; the message says what to do."""


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
        raise CheckpointError(f"no checkpoint at {path}: train a model first (python -m vae_lib train ...) or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a vae_lib checkpoint (torch.load could not read it: {str(error).splitlines()[0]}); "
            "it may be truncated or another kind of file: use a checkpoint.pt written by vae_lib"
        ) from error
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path} is a torch file but not a vae_lib checkpoint: use a checkpoint.pt written by vae_lib")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete vae_lib checkpoint (missing {missing}); retrain or use another file")
    return state


def config_of(state: dict) -> TrainConfig:
    """Return the TrainConfig stored in a checkpoint dict."""
    return TrainConfig.from_dict(state["config"])


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
            f"{path} holds a {config.latent_dim}-D model, not the {latent_dim}-D one asked for: pick the matching checkpoint"
        )
    model = model_from_state(state, path)
    return place_model(model, device).eval()


def export_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Write a copy of a checkpoint for sharing: config, weights, epoch and history, without optimizer or RNG state."""
    state = read_checkpoint(source)
    shared = {key: value for key, value in state.items() if key not in ("kind", "optimizer", "rng")}
    return save_checkpoint(shared, target)
