"""A run folder's layout (checkpoint, kept epochs, snapshots, videos, lock) and its lock: one process at a time
writes a run folder, holding the folder's lock file (RunLock) while it trains.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vae_lib.core.files import PARTIAL_SUFFIX, CheckpointError, failure_reason

logger = logging.getLogger(__name__)
# The lock files this process holds now: a lock naming this process but not listed here was left by an
# acquisition that was interrupted (Ctrl-C in a notebook), and is stale like a dead process's.
_held_here: set[Path] = set()


KEPT_EPOCH_PREFIX = "epoch_"
SNAPSHOT_PREFIX = "step_"


def kept_epoch_stem(epoch: int) -> str:
    """Return how a checkpoint kept for `epoch` is named, without its suffix: 'epoch_001'."""
    return f"{KEPT_EPOCH_PREFIX}{epoch:03d}"


def epoch_of_kept(path: Path) -> int:
    """Return the epoch a kept checkpoint's file name (one of RunFolder.kept_epochs) says: 1 for epoch_001.pt."""
    return int(path.stem.removeprefix(KEPT_EPOCH_PREFIX))


def _numbered(paths: list[Path], prefix: str) -> list[Path]:
    """Return the files named `prefix` and a number (epoch_001.pt, step_0000200.npz), in the number's order; others
    (a copy 'epoch_001 (copy).pt', 'step_x.npz') are none of the run's."""
    numbers = {path: path.stem.removeprefix(prefix) for path in paths if path.stem.startswith(prefix)}
    numbered = [path for path, number in numbers.items() if number.isascii() and number.isdigit()]
    return sorted(numbered, key=lambda path: int(numbers[path]))


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
        return self.path / f"{kept_epoch_stem(epoch)}.pt"

    @property
    def snapshots(self) -> Path:
        """Return the folder of latent-space snapshots (vae_lib.pictures.snapshots)."""
        return self.path / "snapshots"

    def snapshot(self, step: int) -> Path:
        """Return the file of the snapshot taken after `step` steps."""
        return self.snapshots / f"{SNAPSHOT_PREFIX}{step:07d}.npz"

    def snapshot_step(self, path: Path) -> int:
        """Return the step a snapshot file was taken at (the inverse of snapshot())."""
        return int(path.stem.removeprefix(SNAPSHOT_PREFIX))

    def snapshot_files(self) -> list[Path]:
        """Return the run's snapshot files in step order (step_ and a number: a copy of one is not the run's)."""
        return _numbered(list(self.snapshots.glob(f"{SNAPSHOT_PREFIX}*.npz")), SNAPSHOT_PREFIX)

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

    def kept_epochs(self) -> list[Path]:
        """Return the checkpoints kept for single epochs (TrainConfig.keep_epochs), in epoch order (epoch_ and a
        number: a copy of one is not the run's)."""
        return _numbered(list(self.path.glob(f"{KEPT_EPOCH_PREFIX}*.pt")), KEPT_EPOCH_PREFIX)

    def saved_run_files(self) -> list[Path]:
        """Return the files that hold a saved run's state (its checkpoint and kept epochs): a new run must not
        write over them."""
        return [path for path in [self.checkpoint, *self.kept_epochs()] if path.exists()]

    def run_files(self) -> list[Path]:
        """Return every file and folder a run writes here (checkpoints, snapshots, videos); the lock aside."""
        named = [self.checkpoint, *self.kept_epochs(), self.snapshots, self.video, self.gif, *self.partial_files()]
        return [path for path in named if path.exists()]

    def partial_files(self) -> list[Path]:
        """Return the temporary files of writes that never completed (a process killed while saving): hidden files
        ending in .partial, as files.replaced_atomically and RunLock name them; a visible one is the user's."""
        pattern = f".*{PARTIAL_SUFFIX}"
        return sorted([*self.path.glob(pattern), *self.snapshots.glob(pattern)])

    def checkpoint_stamp(self) -> tuple[int, int, int] | None:
        """Return what identifies the checkpoint file now on disk (inode, modification time in ns, size), or None
        without one: every save replaces the file by a new one, so a stamp that changed means another save."""
        try:
            status = self.checkpoint.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size


def clear_run(run_dir: str | Path) -> Path:
    """Remove the files of the run saved in run_dir (run_files: checkpoints, snapshots, videos), so a new run can
    start there, and return run_dir. Other files are left; a folder another process trains in is refused."""
    run_folder = RunFolder(run_dir)
    if run_folder.path.is_dir():
        with RunLock(run_folder):
            for path in run_folder.run_files():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return run_folder.path


def refuse_saved_run(run_folder: RunFolder) -> None:
    """Raise a CheckpointError if run_folder holds a saved run's files, which a new run would write over."""
    saved = run_folder.saved_run_files()
    if not saved:
        return
    names = ", ".join(path.name for path in saved)
    if run_folder.checkpoint.exists():
        advice = (
            f"continue it with Trainer.resume('{run_folder.checkpoint}') or open_run (the train command does), "
            "choose another folder, or remove that run first (run_folder.clear_run)"
        )
    else:
        advice = (
            f"it has no {run_folder.checkpoint.name}, so it cannot be continued as it is: move those files out or "
            f"choose another folder (to continue from a kept epoch, copy it to {run_folder.checkpoint})"
        )
    raise CheckpointError(
        f"{run_folder.path} already holds a saved run ({names}), which a new run would overwrite: {advice}"
    )


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
        if self.run_folder.lock.is_dir():
            raise CheckpointError(
                f"{self.run_folder.lock} is a folder, where the run's lock file belongs: move it out of the run "
                "folder, or choose another folder for the run"
            )
        try:
            self.run_folder.path.mkdir(parents=True, exist_ok=True)
            while not self._create():
                self._take_over_or_refuse()
            _held_here.add(self.run_folder.lock.resolve())
        except OSError as error:
            raise CheckpointError(
                f"cannot write to the run folder {self.run_folder.path} ({failure_reason(error)}): "
                "choose a writable folder"
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
        gone = (
            "is this one, which was interrupted while taking it"
            if self.taken_over["pid"] == os.getpid()
            else "is no longer running"
        )
        logger.warning(
            "took over the lock of %s: process %s (started %s) %s",
            self.run_folder.path,
            self.taken_over["pid"],
            self.taken_over["started"],
            gone,
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
