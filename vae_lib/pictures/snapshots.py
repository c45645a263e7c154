"""Snapshots of the latent space during training, stored compactly beside a run's checkpoints.

Every `every` steps and at the end of each epoch, SnapshotRecorder saves the latent means of a fixed
set of test images, a decoded latent grid and a few reconstructions, so videos can be made later
without retraining.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vae_lib.core.config import RESUMABLE_FIELDS, TrainConfig, real_number, whole_number
from vae_lib.core.data import Batch, ImageDataset, to_pixels
from vae_lib.core.evaluate import encode_means
from vae_lib.core.files import CheckpointError, replaced_atomically
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.latent import decode_latents, grid_latents
from vae_lib.core.run_folder import RunFolder

if TYPE_CHECKING:  # only for annotations: pictures do not depend on the trainer
    from vae_lib.core.train import Trainer

_LOSS_NAMES = ("train_total", "train_recon", "train_kl", "test_total", "test_recon", "test_kl")
# Training steps between snapshots (a video frame each), as the shipped videos were recorded.
SNAPSHOT_EVERY = 200
# What reading a truncated or corrupt snapshot file raises.
UNREADABLE = (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class Snapshot:
    """One moment of training: where test images sit in latent space and what the decoder draws."""

    step: int
    epoch: float
    losses: dict[str, float]
    latent_means: np.ndarray  # float16, images x latent_dim
    labels: np.ndarray  # uint8, images
    grid: np.ndarray  # uint8, rows x columns x 28 x 28: decoded latent grid
    grid_values: np.ndarray  # float32, the latent values along each grid axis (see vae_lib.core.latent)
    grid_dims: tuple[int, int]  # the two latent dimensions the grid varies (others held at 0)
    originals: np.ndarray  # uint8, count x 28 x 28
    reconstructions: np.ndarray  # uint8, count x 28 x 28 (decoded from the mean)
    run_settings: dict[str, object] | None = None  # run_settings() of the run that took it; None in older files
    grid_class: int | None = None  # the class a conditional model's grid is decoded as; None for a plain model's


def run_settings(config: TrainConfig) -> dict[str, object]:
    """Return the settings that make a run the run it is (its config but for the RESUMABLE_FIELDS, which a resumed
    run may change), as JSON stores them: every snapshot of one run carries the same."""
    settings = {name: value for name, value in config.to_dict().items() if name not in RESUMABLE_FIELDS}
    return json.loads(json.dumps(settings))


def take_snapshot(
    trainer: Trainer,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    grid_size: int,
    grid_limit: float,
    grid_dims: tuple[int, int],
    reconstruction_count: int,
    grid_class: int = 0,
) -> Snapshot:
    """Return a Snapshot of the trainer's evaluated model now (its weight average, if it keeps one); the model's
    training mode is left as it was. A model conditioned on labels encodes and reconstructs each test image with
    its own label, and decodes the grid as class `grid_class`."""
    model = trainer.evaluated_model
    labels = test_labels if model.needs_labels else None
    means = encode_means(model, Batch(test_images, labels))
    grid = grid_latents(model.latent_dim, grid_size, grid_limit, grid_dims)
    grid_labels = torch.full(grid.shape[:-1], grid_class) if model.needs_labels else None
    latest = trainer.history.steps[-1] if trainer.history.steps else None
    losses = {name: float(getattr(latest, name)) if latest else np.nan for name in _LOSS_NAMES}
    epoch_records = trainer.history.epochs
    if epoch_records and epoch_records[-1].step == trainer.step:
        losses.update({name: getattr(epoch_records[-1], name) for name in ("test_total", "test_recon", "test_kl")})
    return Snapshot(
        step=trainer.step,
        epoch=trainer.step / trainer.steps_per_epoch,
        losses=losses,
        latent_means=means.numpy().astype(np.float16),
        labels=test_labels.numpy().astype(np.uint8),
        grid=decode_latents(model, grid, grid_labels),
        grid_values=np.linspace(-grid_limit, grid_limit, grid_size, dtype=np.float32),
        grid_dims=grid_dims,
        originals=to_pixels(test_images[:reconstruction_count]),
        reconstructions=decode_latents(
            model, means[:reconstruction_count], None if labels is None else labels[:reconstruction_count]
        ),
        run_settings=run_settings(trainer.config),
        grid_class=grid_class if model.needs_labels else None,
    )


def save_snapshot(snapshot: Snapshot, run_dir: Path) -> Path:
    """Write a snapshot as a compressed .npz (temporary file, then rename) and return its path."""
    path = RunFolder(run_dir).snapshot(snapshot.step)
    buffer = io.BytesIO()
    settings = {} if snapshot.run_settings is None else {"run_settings": np.array(json.dumps(snapshot.run_settings))}
    if snapshot.grid_class is not None:
        settings["grid_class"] = np.array(snapshot.grid_class)
    np.savez_compressed(
        buffer,
        **settings,
        step=snapshot.step,
        epoch=snapshot.epoch,
        losses=np.array([snapshot.losses[name] for name in _LOSS_NAMES], dtype=np.float64),
        latent_means=snapshot.latent_means,
        labels=snapshot.labels,
        grid=snapshot.grid,
        grid_values=snapshot.grid_values,
        grid_dims=np.array(snapshot.grid_dims),
        originals=snapshot.originals,
        reconstructions=snapshot.reconstructions,
    )
    with replaced_atomically(path) as temporary:
        temporary.write_bytes(buffer.getvalue())
    return path


def load_snapshot(path: Path) -> Snapshot:
    """Return the snapshot stored in one file; a truncated or corrupt file raises a CheckpointError naming it."""
    try:
        with np.load(path) as stored:
            snapshot = Snapshot(
                step=int(stored["step"]),
                epoch=float(stored["epoch"]),
                losses=dict(zip(_LOSS_NAMES, stored["losses"].tolist(), strict=True)),
                latent_means=stored["latent_means"],
                labels=stored["labels"],
                grid=stored["grid"],
                grid_values=stored["grid_values"],
                grid_dims=tuple(int(d) for d in stored["grid_dims"]),
                originals=stored["originals"],
                reconstructions=stored["reconstructions"],
                run_settings=_settings_in(stored),
                grid_class=int(stored["grid_class"]) if "grid_class" in stored else None,
            )
    except UNREADABLE as error:
        raise CheckpointError(
            f"{path} is not a readable snapshot ({type(error).__name__}: {error}); it is truncated or corrupt: "
            "delete it and make the video from the others"
        ) from error
    if not (np.isfinite(snapshot.latent_means).all() and np.isfinite(snapshot.grid_values).all()):
        raise CheckpointError(
            f"{path} holds latent values that are not finite (NaN or infinite): the run had diverged when it was "
            "taken, or the file was changed; delete it and make the video from the others"
        )
    return snapshot


def load_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """Return a run's snapshots in step order, after checking that each is readable, fits the others and was taken
    by a run of the same settings as most of them (files written before snapshots carried their settings pass).
    A snapshot that differs from most is named, whichever its step, so deleting what the error names keeps the run's
    own snapshots."""
    run_folder = RunFolder(run_dir)
    if not run_folder.path.is_dir():
        what = "is a file, not a run folder" if run_folder.path.exists() else "does not exist"
        raise FileNotFoundError(f"{run_folder.path} {what}: give the folder of a run trained with snapshots")
    paths = run_folder.snapshot_files()
    if not paths and RunFolder(run_folder.path.parent).snapshot_files() and run_folder.path.name == "snapshots":
        raise FileNotFoundError(
            f"{run_folder.path} is the snapshots folder of a run: give the run's folder, {run_folder.path.parent}"
        )
    if not paths:
        raise FileNotFoundError(
            f"no snapshots in {run_folder.snapshots}: train with a SnapshotRecorder "
            f"(python -m vae_lib train --snapshot-every {SNAPSHOT_EVERY})"
        )
    snapshots = [load_snapshot(path) for path in paths]
    every_shapes = [_shapes(snapshot) for snapshot in snapshots]
    shapes = _most_common(every_shapes)
    misfits = [(path.name, other) for path, other in zip(paths, every_shapes) if other != shapes]
    if misfits:
        raise CheckpointError(
            f"{_listed([name for name, _ in misfits])} in {run_folder.snapshots} do not fit the run's other snapshots "
            f"(arrays {misfits[0][1]}, most snapshots' {shapes}): they belong to another run; delete them and make "
            "the video again"
        )
    settings = _most_common([snapshot.run_settings for snapshot in snapshots if snapshot.run_settings is not None])
    strangers = [
        (path.name, snapshot.run_settings)
        for path, snapshot in zip(paths, snapshots)
        if snapshot.run_settings not in (None, settings)  # None: written before snapshots carried their settings
    ]
    if strangers:
        differences = _differences(strangers[0][1], settings, "most snapshots'")
        raise CheckpointError(
            f"{_listed([name for name, _ in strangers])} in {run_folder.snapshots} were taken by another run "
            f"({differences}): delete them and make the video again"
        )
    return snapshots


def check_checkpoint_took_snapshots(snapshots: list[Snapshot], config: TrainConfig, checkpoint: Path) -> None:
    """Raise a CheckpointError if the run whose checkpoint (of `config`) a video draws its loss curve from is not the
    run that took the snapshots (their run settings differ; snapshots written before they carried settings pass)."""
    settings = _most_common([snapshot.run_settings for snapshot in snapshots if snapshot.run_settings is not None])
    ours = run_settings(config)
    if settings is not None and settings != ours:
        differences = _differences(ours, settings, "snapshots")
        raise CheckpointError(
            f"{checkpoint} is another run's than the snapshots beside it ({differences}): "
            "put back the checkpoint of the run that took them, or move it out of the folder to make the video "
            "without a loss curve"
        )


def _differences(theirs: dict[str, object], ours: dict[str, object], whose: str) -> str:
    """Return the settings in which two runs differ, in words: 'seed 5 (most snapshots': 0)'."""
    return ", ".join(
        f"{name} {theirs.get(name)!r} ({whose}: {ours.get(name)!r})"
        for name in sorted(set(theirs) | set(ours))
        if theirs.get(name) != ours.get(name)
    )


def _stored_settings(path: Path) -> dict[str, object] | None:
    """Return the run settings a snapshot file carries, without reading its arrays; None if it carries none or cannot
    be read (load_snapshots names an unreadable file when a video is made)."""
    try:
        with np.load(path) as stored:
            return _settings_in(stored)
    except UNREADABLE:
        return None


def _settings_in(stored: Any) -> dict[str, object] | None:
    """Return the run settings an open snapshot file (np.load's NpzFile) carries; None in files written before
    snapshots carried them."""
    return json.loads(str(stored["run_settings"])) if "run_settings" in stored.files else None


def _most_common(values: list) -> Any:
    """Return the value that occurs most often (the first of those when several do; None for no values)."""
    if not values:
        return None
    keys = [json.dumps(value, sort_keys=True, default=str) for value in values]
    return values[keys.index(Counter(keys).most_common(1)[0][0])]  # ties: the first counted, the earliest value


def _listed(names: list[str]) -> str:
    """Return file names as an error lists them: all of them up to five, else the first five and how many more."""
    shown = ", ".join(names[:5])
    return shown if len(names) <= 5 else f"{shown} and {len(names) - 5} more"


def _shapes(snapshot: Snapshot) -> dict[str, tuple[int, ...]]:
    """Return the shape of each of a snapshot's arrays: the same in every snapshot of one run."""
    names = ("labels", "grid", "grid_values", "originals", "reconstructions")
    return {"latent_means": snapshot.latent_means.shape, **{name: getattr(snapshot, name).shape for name in names}}


class SnapshotRecorder(TrainingHook):
    """Saves a Snapshot every `every` steps and at the end of each epoch into run_dir/snapshots/.

    The same fixed test images are used in every snapshot (the first `scatter_images` of the test
    set), so frames of a video are comparable. On fit start, snapshots newer than the trainer's step
    (left by an interrupted run) are removed, so a resumed run continues the sequence cleanly, and the snapshot of
    the epoch it resumes from is taken if a stop during that epoch's end skipped it; another run's snapshots (other
    settings) are refused, not removed. A model conditioned on labels has its grid decoded as class `grid_class`.
    """

    def __init__(
        self,
        run_dir: str | Path,
        test_data: ImageDataset,
        every: int = SNAPSHOT_EVERY,
        scatter_images: int = 2000,
        grid_size: int = 12,
        grid_limit: float = 2.5,
        grid_dims: tuple[int, int] = (0, 1),
        reconstruction_count: int = 10,
        grid_class: int = 0,
    ) -> None:
        counts = {"every": (every, 1), "scatter_images": (scatter_images, 1), "grid_size": (grid_size, 2)}
        counts |= {"reconstruction_count": (reconstruction_count, 0), "grid_class": (grid_class, 0)}
        given = {name: whole_number(value) for name, (value, _) in counts.items()}  # each as an int, or None
        for name, (value, least) in counts.items():
            if given[name] is None or given[name] < least:
                raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
        limit = real_number(grid_limit)
        if limit is None or not 0 < limit < math.inf:
            raise ValueError(f"grid_limit is how far the grid reaches from 0, a number > 0: got {grid_limit!r}")
        dims = tuple(grid_dims) if isinstance(grid_dims, Sequence | np.ndarray | torch.Tensor) else None
        if dims is None or len(dims) != 2:
            raise ValueError(
                f"grid_dims names the two latent dimensions the grid varies, e.g. (0, 1): got {grid_dims!r}"
            )
        dims = tuple(whole_number(dim) for dim in dims)
        if None in dims or min(dims) < 0:
            raise ValueError(f"grid_dims are latent dimensions, whole numbers from 0: got {grid_dims!r}")
        if dims[0] == dims[1]:
            raise ValueError(f"a grid varies two different dimensions, got {dims}: give two, e.g. (0, 1)")
        self.run_folder = RunFolder(run_dir)
        self.images = test_data.images[: given["scatter_images"]]
        self.labels = test_data.labels[: given["scatter_images"]]
        self.every = given["every"]
        self.grid_size, self.grid_limit, self.grid_dims = given["grid_size"], limit, dims
        self.reconstruction_count, self.grid_class = given["reconstruction_count"], given["grid_class"]

    def record(self, trainer: Trainer) -> None:
        """Take and save a snapshot of the trainer now."""
        save_snapshot(self._take(trainer), self.run_folder.path)

    def _take(self, trainer: Trainer) -> Snapshot:
        return take_snapshot(
            trainer,
            self.images,
            self.labels,
            self.grid_size,
            self.grid_limit,
            self.grid_dims,
            self.reconstruction_count,
            self.grid_class,
        )

    def on_fit_start(self, trainer: Trainer) -> None:
        latent_dim = trainer.evaluated_model.latent_dim
        if max(self.grid_dims) >= latent_dim:
            advice = (
                f"choose grid_dims among 0 to {latent_dim - 1}"
                if latent_dim >= 2
                else "record snapshots of a model with 2 or more latent dimensions, or train this one without them"
            )
            raise ValueError(
                f"snapshots draw a grid over latent dimensions {self.grid_dims}, which a {latent_dim}-D latent space "
                f"does not have: {advice}"
            )
        # A new run replaces every snapshot; a resumed one those after its step, left by a run stopped mid-epoch.
        replaced = [
            path
            for path in self.run_folder.snapshot_files()
            if trainer.step == 0 or self.run_folder.snapshot_step(path) > trainer.step
        ]
        self._refuse_another_runs(replaced, trainer)
        missing = not self.run_folder.snapshot(trainer.step).exists()
        if not (replaced or missing):
            return
        # Taken before any file is removed: a setting the model cannot draw (a grid_class it does not have) is
        # refused while the folder's snapshots are still there.
        first = self._take(trainer)
        for path in replaced:
            path.unlink()
        if not self.run_folder.snapshot(trainer.step).exists():  # missing, or replaced: a new run's step 0
            save_snapshot(first, self.run_folder.path)  # step 0: every video's first frame; else a skipped epoch end

    def _refuse_another_runs(self, snapshots: list[Path], trainer: Trainer) -> None:
        """Raise a CheckpointError, before any is removed, if snapshots this run would replace were taken by a run of
        other settings (a folder holding another run's snapshots but no checkpoint to resume)."""
        ours = run_settings(trainer.config)
        strangers = [
            (path.name, theirs) for path in snapshots if (theirs := _stored_settings(path)) not in (None, ours)
        ]
        if strangers:
            differences = _differences(strangers[0][1], ours, "this run's")
            raise CheckpointError(
                f"{_listed([name for name, _ in strangers])} in {self.run_folder.snapshots} were taken by another run "
                f"({differences}), which this one would delete: move them out or train in another folder"
            )

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0 and trainer.step % trainer.steps_per_epoch != 0:
            self.record(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.record(trainer)
