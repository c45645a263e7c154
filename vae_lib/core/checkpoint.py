"""The checkpoint format: one plain dict (config, weights, optimizer, epoch, history, RNG state) with a sha256 of
its contents, written atomically and read with `torch.load(weights_only=True)`, so loading one cannot run code;
and what is read from one: its config, its history, its model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from vae_lib.core.config import TrainConfig, is_whole_number
from vae_lib.core.device import place_model
from vae_lib.core.files import CheckpointError, failure_reason, replaced_atomically
from vae_lib.core.history import History
from vae_lib.core.model import VAE, ConditionalVAE
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import REPO_ROOT

CHECKPOINT_KIND = "vae_lib.checkpoint"
REQUIRED_KEYS = ("kind", "config", "model", "epoch", "step", "history")
# What an exported checkpoint leaves out (with TRAINED_WEIGHTS_KEY): it can be used and shared, not continued.
TRAINING_ONLY_KEYS = ("optimizer", "rng")
# With a weight average (TrainConfig.ema_decay), "model" holds the average, which is what the run produced, and
# this key the weights the optimizer trains, which only continuing the run needs.
TRAINED_WEIGHTS_KEY = "trained_model"
# A training checkpoint's sums of the step losses since the last step record, so that a record spanning the end of
# an epoch (log_every not dividing its steps) averages the same steps in a resumed run as in an uninterrupted one.
# Checkpoints written before it existed have none: a run resumed from one starts the sums afresh.
RUNNING_LOSSES_KEY = "running_losses"
# The sha256 of a checkpoint's other contents; training checkpoints written before it existed have none.
CHECKSUM_KEY = "checksum"
# The module and class of a model of the user's own class (Trainer(config, model=...)), absent for the classes a
# config builds (VAE, ConditionalVAE): where the config's model cannot take its weights, loading names the class.
MODEL_CLASS_KEY = "model_class"


def own_model_class(model: object) -> str | None:
    """Return 'module.Class' of a model of a class of the user's own, or None for one a config builds."""
    if type(model) in (VAE, ConditionalVAE):
        return None
    return f"{type(model).__module__}.{type(model).__qualname__}"


def own_model_class_refusal(state: dict, source: str | Path) -> CheckpointError | None:
    """Return the CheckpointError for a checkpoint of a model of the user's own class that its config cannot rebuild
    (its weights do not fit the model the config builds), or None: a subclass keeping VAE's weights loads as one."""
    saved = state.get(MODEL_CLASS_KEY)
    if saved is None:
        return None
    try:
        config_of(state).build_model().load_state_dict(state["model"])
    except RuntimeError:
        return CheckpointError(
            f"{source} holds the weights of a model of your own class, {saved}, which its config cannot rebuild: "
            "build one as you did for training and load them, model.load_state_dict(read_checkpoint(path)['model']); "
            "to continue its training, Trainer.resume(path, model=YourClass(...))"
        )
    return None


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
    """Write `state` and its checksum to `path` atomically (temporary file, then rename); return the path."""
    path = Path(path)
    contents = {"kind": CHECKPOINT_KIND, **{key: value for key, value in state.items() if key != CHECKSUM_KEY}}
    with replaced_atomically(path) as temporary, open(temporary, "wb") as stream:
        torch.save({**contents, CHECKSUM_KEY: content_digest(contents)}, stream)
        stream.flush()
        os.fsync(stream.fileno())
    return path


def save_epoch(state: dict, run_folder: RunFolder, keep: bool) -> None:
    """Write an epoch's state: first its kept copy (if `keep`), then the checkpoint a run resumes from.

    In this order the checkpoint is never ahead of the kept epochs: a process killed between the two writes
    resumes from the epoch before, and retraining the epoch writes the same state again.
    """
    if keep:
        save_checkpoint(state, run_folder.kept_epoch(state["epoch"]))
    save_checkpoint(state, run_folder.checkpoint)


def content_digest(value: object) -> str:
    """Return the sha256 (hex) of a checkpoint's contents: tensors by dtype, shape and bytes, the rest by value."""
    digest = hashlib.sha256()
    for chunk in _content_chunks(value):
        digest.update(chunk)
    return digest.hexdigest()


def _content_chunks(value: object) -> Iterator[bytes]:
    """Yield the bytes a digest of `value` is taken over, recursing into dicts (keys sorted), lists and tuples."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)  # the same bytes whatever the memory layout
        yield f"tensor {tensor.dtype} {tuple(value.shape)};".encode()
        yield tensor.view(torch.uint8).numpy().tobytes()
    elif isinstance(value, dict):
        yield f"dict {len(value)};".encode()
        for key in sorted(value, key=repr):
            yield from _content_chunks(key)
            yield from _content_chunks(value[key])
    elif isinstance(value, list | tuple):
        yield f"sequence {len(value)};".encode()
        for item in value:
            yield from _content_chunks(item)
    else:
        yield f"{type(value).__name__} {value!r};".encode()


def read_checkpoint(path: str | Path) -> dict:
    """Return a checkpoint's dict after checking that the file is one of ours, intact, with finite weights; `path`
    may also be a run folder, for its checkpoint.pt. A shipped model's file that fails is met with how to restore it."""
    path = Path(path)
    if path.is_dir() and (in_folder := RunFolder(path).checkpoint).is_file():  # a run folder: its latest checkpoint
        path = in_folder
    if not path.is_file():
        folder = RunFolder(path)
        kept = folder.kept_epochs() if path.is_dir() else []
        if kept:
            names = ", ".join(p.name for p in kept)
            advice = f"it holds no {folder.checkpoint.name}, but the kept epochs {names}: pass one of them"
        elif path.is_dir() and path.suffix == ".pt":
            advice = "that is a folder where a checkpoint file belongs: move it out of the way (or rename it)"
        else:
            advice = _advice(path, "train a model first (python -m vae_lib train ...) or check the path")
        raise CheckpointError(f"no checkpoint at {path}: {advice}")
    if path.stat().st_size == 0:
        advice = _advice(path, "delete it and retrain, or use another checkpoint")
        raise CheckpointError(f"{path} is empty (0 bytes): {advice}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive, whose directory sits at the file's end
        raise CheckpointError(
            f"{path} is not a vae_lib checkpoint: it is not the zip archive torch.save writes (truncated, or another "
            f"kind of file); {_advice(path, 'use a checkpoint.pt written by vae_lib')}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a vae_lib checkpoint (torch.load could not read it: {failure_reason(error)}); "
            f"it may be truncated or another kind of file: {_advice(path, 'use a checkpoint.pt written by vae_lib')}"
        ) from error
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{path} is a torch file but not a vae_lib checkpoint: "
            f"{_advice(path, 'use a checkpoint.pt written by vae_lib')}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is an incomplete vae_lib checkpoint (missing {missing}); "
            f"{_advice(path, 'retrain or use another file')}"
        )
    not_tables = [key for key in ("config", "model", "history") if not isinstance(state[key], dict)]
    if not_tables:
        raise CheckpointError(
            f"{path} is not a usable vae_lib checkpoint: "
            f"{', '.join(f'its {key} is a {type(state[key]).__name__}' for key in not_tables)}, not the table vae_lib "
            f"writes; {_advice(path, 'use a checkpoint.pt written by vae_lib')}"
        )
    check_intact(state, path)
    return state


# What a missing or damaged shipped file is told it is, before how to get it back, and the repository's folder of them.
SHIPPED_FILE = "it is one of the files shipped with the repository"
SHIPPED_FOLDER = Path("outputs", "checkpoints")


def tracked_file_advice(path: Path) -> str | None:
    """Return how to restore a file that the repository's git tracks in outputs/checkpoints/ (a shipped model, kept
    epoch or sweep point) when it is missing or damaged; None for any other file (a notebook or figure given where a
    checkpoint belongs is not damaged: restoring it would throw away its edits), or where git cannot tell."""
    try:
        relative = (path.parent.resolve() / path.name).relative_to(REPO_ROOT)  # the folder resolved, not a link
        if relative.parent != SHIPPED_FOLDER:
            return None
        tracked = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "--error-unmatch", "--", str(relative)],
            capture_output=True,
            timeout=30,
        )
    except (ValueError, OSError, subprocess.SubprocessError):  # outside the repository, no git, no answer
        return None
    if tracked.returncode != 0:
        return None
    return f"{SHIPPED_FILE}: restore it (git -C {REPO_ROOT} checkout -- {relative})"


def _advice(path: Path, otherwise: str) -> str:
    """Return what to do about a checkpoint that cannot be used: restore it if it was shipped, else `otherwise`, and
    for a run folder's checkpoint.pt with kept epochs beside it, how to go on from the last of them."""
    shipped = tracked_file_advice(path)
    if shipped:
        return shipped
    folder = RunFolder(path.parent)
    kept = folder.kept_epochs() if path.name == folder.checkpoint.name else []
    if not kept:
        return otherwise
    names = ", ".join(p.name for p in kept)
    return f"{otherwise}; the run folder keeps {names}: to go on from the last, copy {kept[-1]} to {path}"


def check_intact(state: dict, path: Path) -> None:
    """Raise a CheckpointError if a checkpoint's contents differ from its checksum or its weights are not finite.

    The checksum is taken out of `state`. An exported checkpoint (the shipped kind: no optimizer state) must carry
    one; a training checkpoint without one was written by an earlier vae_lib, and only its weights are checked.
    """
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is None and not all(key in state for key in TRAINING_ONLY_KEYS):
        raise CheckpointError(
            f"{path} is an exported checkpoint without a checksum, so a changed byte in it could not be told: "
            "export it again from its run (vae_lib.core.checkpoint.export_checkpoint), or retrain"
        )
    if stored is not None and stored != content_digest(state):
        raise CheckpointError(
            f"{path} is corrupt: its contents no longer match the checksum written with them "
            "(the file changed on disk); "
            f"{_advice(path, 'use another checkpoint, e.g. a kept epoch_NNN.pt, or retrain')}"
        )
    weights = [state[key] for key in ("model", TRAINED_WEIGHTS_KEY) if isinstance(state.get(key), dict)]
    broken = [
        name
        for part in weights
        for name, tensor in part.items()
        if tensor.is_floating_point() and not tensor.isfinite().all()
    ]
    if broken:
        raise CheckpointError(
            f"{path} holds NaN or infinite weights ({', '.join(broken)}): the file is corrupt; "
            f"{_advice(path, 'use another checkpoint')}"
        )


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
        if (refusal := own_model_class_refusal(state, source)) is not None:
            raise refusal from error
        details = "; ".join(line.strip() for line in str(error).splitlines()[1:] if line.strip()) or str(error)
        raise CheckpointError(
            f"the weights in {source} do not fit the model its config describes ({details}): the file was changed "
            "after vae_lib wrote it; use a checkpoint.pt written by vae_lib"
        ) from error
    return model


def load_model(path: str | Path, device: torch.device | str = "cpu", latent_dim: int | None = None) -> VAE:
    """Return the trained VAE stored at `path`, in eval mode; `latent_dim`, if given, must match it."""
    if latent_dim is not None and not is_whole_number(latent_dim, 1):
        raise ValueError(f"latent_dim must be a whole number of at least 1, got {latent_dim!r}")
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
    left_out = ("kind", *TRAINING_ONLY_KEYS, TRAINED_WEIGHTS_KEY, RUNNING_LOSSES_KEY)
    shared = {key: value for key, value in state.items() if key not in left_out}
    return save_checkpoint(shared, target)
