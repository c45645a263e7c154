"""A run folder's layout (checkpoint, kept epochs, snapshots, videos, lock), its lock, and the checkpoint files in it.

A checkpoint is one plain dict (config, weights, optimizer, epoch, history, RNG state) with a sha256 of its
contents, written to a temporary file and renamed, so a file on disk is never half-written, and read with
`torch.load(weights_only=True)`, so loading one cannot run code. One process at a time writes a run folder:
it holds the folder's lock file (RunLock) while it trains.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import torch
from torch import nn

from vae_lib.core.config import TrainConfig
from vae_lib.core.device import place_model
from vae_lib.core.history import History
from vae_lib.core.model import VAE

CHECKPOINT_KIND = "vae_lib.checkpoint"
REQUIRED_KEYS = ("kind", "config", "model", "epoch", "step", "history")
# What an exported checkpoint leaves out (with TRAINED_WEIGHTS_KEY): it can be used and shared, not continued.
TRAINING_ONLY_KEYS = ("optimizer", "rng")
# With a weight average (TrainConfig.ema_decay), "model" holds the average, which is what the run produced, and
# this key the weights the optimizer trains, which only continuing the run needs.
TRAINED_WEIGHTS_KEY = "trained_model"
# The sha256 of a checkpoint's other contents; files written before it existed have none and are still read.
CHECKSUM_KEY = "checksum"
# How a file being written is named until it is complete; a name ending so is a leftover when no one holds the lock.
PARTIAL_SUFFIX = ".partial"

logger = logging.getLogger(__name__)
# The lock files this process holds now: a lock naming this process but not listed here was left by an
# acquisition that was interrupted (Ctrl-C in a notebook), and is stale like a dead process's.
_held_here: set[Path] = set()


class CheckpointError(RuntimeError):
    """A run folder's file is missing, unreadable, corrupt, unwritable, for another model or in use by another
    process; the message names the file and says what to do."""


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
        """Return the folder of latent-space snapshots (vae_lib.pictures.snapshots)."""
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
        """Return the mp4 of the latent space evolving (vae_lib.pictures.video)."""
        return self.path / "latent_evolution.mp4"

    @property
    def gif(self) -> Path:
        """Return the GIF version of the video, for READMEs."""
        return self.path / "latent_evolution.gif"

    @property
    def lock(self) -> Path:
        """Return the lock file naming the process that writes this folder now (RunLock)."""
        return self.path / "run.lock"

    def partial_files(self) -> list[Path]:
        """Return the temporary files of writes that never completed (a process killed while saving)."""
        return sorted([*self.path.glob(f"*{PARTIAL_SUFFIX}"), *self.snapshots.glob(f"*{PARTIAL_SUFFIX}")])


class RunLock:
    """Makes one process at a time the writer of a run folder: `with RunLock(folder):` holds its lock file.

    The lock file is created with O_CREAT | O_EXCL, so of two processes only one can create it, and names its
    holder: process id, host and start time. A lock whose process is no longer running on this host (it was
    killed) is stale: it is taken over, with a warning. Entering also removes the temporary files that writes
    killed half-way left behind, and fails at once, before any training, if the folder cannot be written.
    """

    def __init__(self, run_folder: RunFolder) -> None:
        self.run_folder = run_folder
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        self.taken_over: dict | None = None  # the stale lock this one replaced, if any

    def __enter__(self) -> RunLock:
        if self.run_folder.path.exists() and not self.run_folder.path.is_dir():
            raise CheckpointError(f"{self.run_folder.path} is a file, not a run folder: choose a folder for the run")
        try:
            self.run_folder.path.mkdir(parents=True, exist_ok=True)
            while not self._create():
                self._take_over_or_refuse()
            _held_here.add(self.run_folder.lock.resolve())
        except OSError as error:
            raise CheckpointError(
                f"cannot write to the run folder {self.run_folder.path} ({_reason(error)}): choose a writable folder"
            ) from error
        for leftover in self.run_folder.partial_files():
            leftover.unlink(missing_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if _read_holder(self.run_folder.lock) == self.holder:
            self.run_folder.lock.unlink(missing_ok=True)
        _held_here.discard(self.run_folder.lock.resolve())

    def _create(self) -> bool:
        """Create the lock file naming this process; return False if it already exists."""
        try:
            descriptor = os.open(self.run_folder.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(descriptor, "w") as stream:
                stream.write(json.dumps(self.holder))
        except BaseException:
            self.run_folder.lock.unlink(missing_ok=True)  # a lock naming no one would hold the folder for nothing
            raise
        return True

    def _take_over_or_refuse(self) -> None:
        """Remove the existing lock if its process is dead; otherwise raise a CheckpointError naming the holder."""
        lock = self.run_folder.lock
        holder = _read_holder(lock)
        if holder is None:  # maybe being written this instant: look again before calling it stale
            time.sleep(0.2)
            holder = _read_holder(lock)
        if holder is not None and not _is_stale(holder, lock):
            raise CheckpointError(
                f"{self.run_folder.path} is in use by process {holder['pid']} on {holder['host']} "
                f"(started {holder['started']}): wait for it to finish or choose another run folder; "
                f"if that process is gone, delete {lock}"
            )
        moved = lock.with_name(f".{lock.name}.{os.getpid()}.stale{PARTIAL_SUFFIX}")
        try:
            os.rename(lock, moved)  # atomic: of two processes taking over, one moves the stale lock
        except FileNotFoundError:
            return
        if _read_holder(moved) != holder:  # a live lock created meanwhile was moved: put it back
            os.rename(moved, lock)
            return
        moved.unlink()
        self.taken_over = holder or {"pid": "unknown", "host": "unknown", "started": "unknown"}
        logger.warning(
            "took over the lock of %s: process %s (started %s) is no longer running",
            self.run_folder.path,
            self.taken_over["pid"],
            self.taken_over["started"],
        )


def _now() -> str:
    """Return the time now, to the second, in the local time zone (ISO 8601)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _read_holder(lock: Path) -> dict | None:
    """Return the process a lock file names, or None if the file is gone, empty or unreadable."""
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and {"pid", "host", "started"} <= set(holder) else None


def _is_stale(holder: dict, lock: Path) -> bool:
    """Return True if a lock's process ran on this host and is no longer running (or is this one, not holding it)."""
    if holder["host"] != socket.gethostname():
        return False  # another machine's process cannot be checked from here
    if holder["pid"] == os.getpid():
        return lock.resolve() not in _held_here
    try:
        os.kill(int(holder["pid"]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    return False


def _reason(error: BaseException) -> str:
    """Return the one-line cause of a failed read or write: the OSError's text if there is one in the chain."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block succeeds it replaces `path` in one rename.

    If the block fails, the temporary file is removed and `path` is left as it was; a failed write (disk full,
    no permission) becomes a CheckpointError naming the file.
    """
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
        os.close(descriptor)
        temporary = Path(name)
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(temporary, path)
    except BaseException as error:
        _discard(temporary)
        if isinstance(error, OSError | RuntimeError) and not isinstance(error, CheckpointError):
            raise CheckpointError(
                f"could not write {path} ({_reason(error)}); nothing was overwritten: free some space or fix "
                "the folder, then run again"
            ) from error
        raise


def _discard(temporary: Path | None) -> None:
    """Remove a temporary file if there is one."""
    if temporary is not None:
        temporary.unlink(missing_ok=True)


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

    @property
    def evaluated_model(self) -> nn.Module:
        """The model the checkpoint's "model" weights are of: a weight average, or `model` itself."""


def capture_training_state(run: TrainingRun) -> dict:
    """Return (a copy of) what a training checkpoint holds: everything needed to continue the run exactly."""
    rng = {
        "torch": torch.get_rng_state(),
        "shuffle": run.shuffle_generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    parts = {"model": run.evaluated_model.state_dict(), "optimizer": run.optimizer.state_dict(), "rng": rng}
    if run.evaluated_model is not run.model:
        parts[TRAINED_WEIGHTS_KEY] = run.model.state_dict()
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
    averaging = run.evaluated_model is not run.model
    if averaging != (TRAINED_WEIGHTS_KEY in state):
        saved, here = ("without", "with") if averaging else ("with", "without")
        raise CheckpointError(
            f"this state was saved by a run {saved} a weight average (ema_decay) and cannot continue in a trainer "
            f"{here} one: resume it with the config it holds (Trainer.resume)"
        )
    run.evaluated_model.load_state_dict(state["model"])
    if averaging:
        run.model.load_state_dict(state[TRAINED_WEIGHTS_KEY])
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
    """Return a checkpoint's dict after checking that the file is one of ours, intact, with finite weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train a model first (python -m vae_lib train ...) or check the path"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): delete it and retrain, or use another checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a vae_lib checkpoint (torch.load could not read it: {_reason(error)}); "
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
    check_intact(state, path)
    return state


def check_intact(state: dict, path: Path) -> None:
    """Raise a CheckpointError if a checkpoint's contents differ from its checksum or its weights are not finite.

    The checksum is taken out of `state`. A file without one was written by an earlier vae_lib: only its weights
    are checked.
    """
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is not None and stored != content_digest(state):
        raise CheckpointError(
            f"{path} is corrupt: its contents no longer match the checksum written with them "
            "(the file changed on disk); use another checkpoint, e.g. a kept epoch_NNN.pt, or retrain"
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
            f"{path} holds NaN or infinite weights ({', '.join(broken)}): the file is corrupt, use another checkpoint"
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
    left_out = ("kind", *TRAINING_ONLY_KEYS, TRAINED_WEIGHTS_KEY)
    shared = {key: value for key, value in state.items() if key not in left_out}
    return save_checkpoint(shared, target)
