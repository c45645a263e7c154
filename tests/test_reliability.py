"""Faults a run folder must survive: a second writer, a lock left by a killed process, a kill between the two
saves of a kept epoch, kill -9 at random moments, and a resume asked to change settings."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_lib import CheckpointError, History, TrainConfig, Trainer, open_run, read_checkpoint
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.run_folder import RunFolder, RunLock
from vae_lib.core.settings import REPO_ROOT
from vae_lib.core.train import TrainingInterrupted
from vae_lib.pictures.snapshots import SnapshotRecorder, load_snapshots
from vae_lib.tools.cli import main

# A narrow model on a few hundred images: each epoch takes a moment, so the faults are what the tests spend time on.
TINY = TrainConfig(widths=(4, 8, 8, 8), batch_size=32, log_every=2, step_test_images=32, keep_epochs=(1, 2))
TINY_OPTIONS = ["--train-subset", "256", "--test-subset", "128", "--widths", "4", "8", "8", "8", "--device", "cpu"]
HOLD_THE_LOCK = (
    "import sys\n"
    "from vae_lib.core.run_folder import RunFolder, RunLock\n"
    "with RunLock(RunFolder(sys.argv[1])):\n"
    "    print('holding', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def _python(*arguments: str, **options) -> subprocess.Popen:
    """Start this repository's vae_lib in a child Python with one thread, so every child computes alike."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *arguments], cwd=REPO_ROOT, env=environment, text=True, **options)


def _trainer(run_dir: Path, train_data, test_data, config: TrainConfig = TINY) -> Trainer:
    return Trainer(config, train_data=train_data, test_data=test_data, run_dir=run_dir, device="cpu", progress=False)


def _without_times(history: dict) -> dict:
    return {
        part: [{k: v for k, v in r.items() if k != "seconds"} for r in records] for part, records in history.items()
    }


def _assert_same_state(first: dict, second: dict) -> None:
    """Assert two checkpoints hold the same weights, optimizer state, counters and history, bit for bit."""
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    for index, moments in first["optimizer"]["state"].items():
        for name, tensor in moments.items():
            assert torch.equal(tensor, second["optimizer"]["state"][index][name]), (index, name)
    assert (first["epoch"], first["step"]) == (second["epoch"], second["step"])
    assert _without_times(first["history"]) == _without_times(second["history"])


def _dead_pid() -> int:
    """Return the id of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, small_train, small_test, capsys) -> None:
    out = tmp_path / "run"
    trainer = _trainer(out, small_train.subset(128), small_test)  # made before the other process began
    trainer.hooks.append(SnapshotRecorder(out, small_test, every=2))
    theirs = RunFolder(out).snapshot(9)  # a snapshot of the holder's run, which a new run's recorder would remove
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"the holder's snapshot")
    holder = _python("-c", HOLD_THE_LOCK, str(out), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "holding\n"
        assert main(["train", "--epochs", "1", "--out", str(out), *TINY_OPTIONS]) == 2
        error = capsys.readouterr().err
        assert f"is in use by process {holder.pid} on {socket.gethostname()} (started " in error
        assert error.count("\n") == 1 and not (out / "checkpoint.pt").exists()
        with pytest.raises(CheckpointError, match=f"in use by process {holder.pid}"):
            trainer.fit(1)
        assert trainer.epoch == 0 and not (out / "checkpoint.pt").exists() and theirs.exists()
    finally:
        holder.communicate("\n")
    assert holder.returncode == 0 and not RunFolder(out).lock.exists()
    trainer.hooks.clear()
    trainer.fit(1)  # the holder is gone: the folder is free again
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1 and not RunFolder(out).lock.exists()


def test_a_lock_left_by_a_killed_process_is_taken_over_and_its_leftovers_removed(tmp_path, caplog) -> None:
    run_folder = RunFolder(tmp_path)
    dead = {"pid": _dead_pid(), "host": socket.gethostname(), "started": "2024-05-01T10:00:00+00:00"}
    run_folder.lock.write_text(json.dumps(dead))
    run_folder.snapshots.mkdir()
    leftovers = [tmp_path / ".checkpoint.pt.k2j4x_.partial", run_folder.snapshots / ".step_0000004.npz.x1.partial"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")
    with RunLock(run_folder) as lock:
        assert lock.taken_over == dead
        assert json.loads(run_folder.lock.read_text())["pid"] == os.getpid()
        assert not any(leftover.exists() for leftover in leftovers)
    assert f"took over the lock of {tmp_path}: process {dead['pid']} (started 2024-05-01T10:00:00+00:00)" in caplog.text
    assert not run_folder.lock.exists()


def test_a_lock_this_process_left_by_an_interrupted_acquisition_is_stale_but_a_held_one_refuses(
    tmp_path, caplog
) -> None:
    run_folder = RunFolder(tmp_path)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-05-01T10:00:00+00:00"}
    run_folder.lock.write_text(json.dumps(mine))  # as Ctrl-C right after creating it would leave it, in a notebook
    with RunLock(run_folder) as lock:
        assert lock.taken_over == mine
        with pytest.raises(CheckpointError, match=f"in use by process {os.getpid()}"), RunLock(run_folder):
            pass
        assert run_folder.lock.exists()
    assert not run_folder.lock.exists()
    assert (
        f"process {os.getpid()} (started 2024-05-01T10:00:00+00:00) is this one, which was interrupted while taking "
        in (
            caplog.text  # it was said to be "no longer running"
        )
    )


def test_a_lock_held_on_another_host_is_not_taken_over(tmp_path) -> None:
    other = {"pid": _dead_pid(), "host": "another-host", "started": "2024-05-01T10:00:00+00:00"}
    RunFolder(tmp_path).lock.write_text(json.dumps(other))
    with (
        pytest.raises(CheckpointError, match=f"in use by process {other['pid']} on another-host"),
        RunLock(RunFolder(tmp_path)),
    ):
        pass
    assert json.loads(RunFolder(tmp_path).lock.read_text()) == other


class _Killed(BaseException):
    """Stands for a kill: nothing catches it, so the trainer stops where it is."""


def test_a_kill_between_the_two_saves_of_a_kept_epoch_loses_nothing(
    tmp_path, small_train, small_test, monkeypatch
) -> None:
    train_data = small_train.subset(128)
    straight = _trainer(tmp_path / "straight", train_data, small_test)
    straight.fit(2)
    renames, replace = [], os.replace

    def replace_then_die_at_the_third_checkpoint(source, target) -> None:
        replace(source, target)
        renames.append(Path(target).name)
        if len(renames) == 3:  # epoch 1's two files are written; epoch 2's first one is in
            raise _Killed

    monkeypatch.setattr(os, "replace", replace_then_die_at_the_third_checkpoint)
    with pytest.raises(_Killed):
        _trainer(tmp_path / "run", train_data, small_test).fit(2)
    monkeypatch.setattr(os, "replace", replace)
    assert renames == ["epoch_001.pt", "checkpoint.pt", "epoch_002.pt"]  # the checkpoint never gets ahead
    resumed = open_run(
        TINY, tmp_path / "run", train_data=train_data, test_data=small_test, device="cpu", progress=False
    )
    assert resumed.epoch == 1
    resumed.fit(1)
    for name in ("epoch_001.pt", "epoch_002.pt", "checkpoint.pt"):
        _assert_same_state(read_checkpoint(tmp_path / "straight" / name), read_checkpoint(tmp_path / "run" / name))


def test_a_resume_writes_a_kept_epoch_an_earlier_version_lost(tmp_path, small_train, small_test) -> None:
    data = {"train_data": small_train.subset(128), "test_data": small_test, "device": "cpu", "progress": False}
    _trainer(tmp_path, data["train_data"], small_test).fit(2)
    (tmp_path / "epoch_002.pt").unlink()
    changes = []
    open_run(TINY, tmp_path, report=changes.append, **data)
    assert changes == [f"wrote the missing {tmp_path / 'epoch_002.pt'} from the checkpoint"]
    assert (tmp_path / "epoch_002.pt").read_bytes() == (tmp_path / "checkpoint.pt").read_bytes()


def test_a_resume_names_a_damaged_kept_epoch_and_rewrites_the_current_one(tmp_path, small_train, small_test) -> None:
    data = {"train_data": small_train.subset(128), "test_data": small_test, "device": "cpu", "progress": False}
    _trainer(tmp_path, data["train_data"], small_test).fit(2)
    for name in ("epoch_001.pt", "epoch_002.pt"):  # truncated, as by a full disk or a copy cut short
        (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:1000])
    damaged_first = (tmp_path / "epoch_001.pt").read_bytes()
    changes = []
    open_run(TINY, tmp_path, report=changes.append, **data)
    assert len(changes) == 2
    assert changes[0].startswith(
        "warning: epoch_001.pt cannot be read and is left as it is: delete it, or retrain to that epoch in another "
        f"folder to have it again ({tmp_path / 'epoch_001.pt'} is not a vae_lib checkpoint"
    )
    assert changes[1].startswith(f"rewrote {tmp_path / 'epoch_002.pt'} from the checkpoint: it could not be read (")
    assert (tmp_path / "epoch_002.pt").read_bytes() == (tmp_path / "checkpoint.pt").read_bytes()
    assert (tmp_path / "epoch_001.pt").read_bytes() == damaged_first  # left for the user to decide


def test_resuming_with_other_settings_refuses_each_by_name_and_applies_the_resumable_ones(
    tmp_path: Path, capsys
) -> None:
    out, schedule = str(tmp_path / "run"), ["--lr-schedule", "cosine", "--log-every", "4", *TINY_OPTIONS]
    assert main(["train", "--epochs", "2", "--out", out, *schedule]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    changed = ["--epochs", "4", "--lr", "5e-3", "--alpha", "0.01", "--batch-size", "32", "--train-subset", "320"]
    assert main(["train", "--out", out, *schedule, *changed]) == 2  # the example
    error = capsys.readouterr().err
    for difference in ("learning_rate: 0.001 vs 0.005", "alpha: 0.001 vs 0.01", "batch_size: 64 vs 32"):
        assert difference in error
    assert "train_subset: 256 vs 320" in error and "epochs" not in error and error.count("\n") == 1
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    assert main(["train", "--epochs", "4", "--out", out, *schedule]) == 0
    printed = capsys.readouterr().out
    assert "changed on resume: epochs: 2 vs 4" in printed
    assert (
        "the cosine schedule now decays over 4 epochs instead of 2: the learning rate at step 8 is 0.00051" in printed
    )
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    shorter, longer = TrainConfig(lr_schedule="cosine", epochs=2), TrainConfig(lr_schedule="cosine", epochs=4)
    expected = [
        shorter.learning_rate_at(3, 4),
        shorter.learning_rate_at(7, 4),
        *(longer.learning_rate_at(s, 4) for s in (11, 15)),
    ]
    assert [record["lr"] for record in state["history"]["epochs"]] == pytest.approx(expected)
    assert expected[2] > 10 * shorter.learning_rate * shorter.final_lr_fraction  # epoch 3 is far above the floor


def test_kill_9_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    arguments = ["-m", "vae_lib", "train", "--epochs", "3", "--log-every", "2", "--keep-epochs", "1", "2", "3"]
    arguments += [*TINY_OPTIONS, "--seed", "1", "--out"]
    straight = _python(*arguments, str(tmp_path / "straight"), stdout=subprocess.DEVNULL)
    assert straight.wait() == 0
    run_folder, moments, killed = RunFolder(tmp_path / "killed"), random.Random(13), []
    for _ in range(3):
        run = _python(*arguments, str(run_folder.path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while run.poll() is None and not run_folder.lock.exists():  # the run has opened its folder
            time.sleep(0.02)
        time.sleep(moments.uniform(0.0, 2.5))
        run.send_signal(signal.SIGKILL)
        killed.append(run.wait() == -signal.SIGKILL)
    assert any(killed)
    final = _python(*arguments, str(run_folder.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed, errors = final.communicate()
    assert final.returncode == 0, errors
    for name in ("checkpoint.pt", "epoch_001.pt", "epoch_002.pt", "epoch_003.pt"):
        _assert_same_state(read_checkpoint(tmp_path / "straight" / name), read_checkpoint(run_folder.path / name))
    assert History.from_dict(read_checkpoint(run_folder.checkpoint)["history"]).epochs[-1].epoch == 3
    assert not run_folder.partial_files() and not run_folder.lock.exists()


def test_a_new_run_refuses_a_folder_holding_a_saved_run_and_leaves_it_as_it_was(
    tmp_path, small_train, small_test, capsys
) -> None:
    _trainer(tmp_path, small_train, small_test).fit(1)  # keeps epoch 1 beside the checkpoint
    run_folder = RunFolder(tmp_path)
    saved = {path.name: path.read_bytes() for path in (run_folder.checkpoint, run_folder.kept_epoch(1))}
    with pytest.raises(CheckpointError, match=r"already holds a saved run \(checkpoint.pt, epoch_001.pt\).*resume"):
        _trainer(tmp_path, small_train, small_test)
    run_folder.checkpoint.unlink()  # kept epochs alone cannot be continued, but must not be overwritten either
    with pytest.raises(CheckpointError, match=r"holds a saved run \(epoch_001.pt\).*has no checkpoint.pt"):
        _trainer(tmp_path, small_train, small_test)
    assert run_folder.kept_epoch(1).read_bytes() == saved["epoch_001.pt"]
    assert main(["train", "--out", str(tmp_path), "--epochs", "1", *TINY_OPTIONS]) == 2
    assert "holds a saved run (epoch_001.pt)" in capsys.readouterr().err
    assert run_folder.kept_epoch(1).read_bytes() == saved["epoch_001.pt"]


def test_resuming_into_another_folder_refuses_one_holding_a_saved_run(tmp_path, small_train, small_test) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _trainer(first, small_train, small_test).fit(1)
    _trainer(second, small_train, small_test).fit(1)
    second_checkpoint = RunFolder(second).checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match="already holds a saved run"):
        Trainer.resume(RunFolder(first).checkpoint, run_dir=second, train_data=small_train, test_data=small_test)
    assert RunFolder(second).checkpoint.read_bytes() == second_checkpoint
    moved = Trainer.resume(
        RunFolder(first).checkpoint, run_dir=tmp_path / "third", train_data=small_train, test_data=small_test
    )
    assert moved.epoch == 1 and moved.run_folder == RunFolder(tmp_path / "third")


def test_clear_run_removes_the_runs_files_only_and_not_while_another_writer_holds_the_folder(
    tmp_path, small_train, small_test
) -> None:
    from vae_lib.core.run_folder import clear_run

    recorder = SnapshotRecorder(tmp_path, small_test, every=4, scatter_images=32)
    Trainer(TINY, train_data=small_train, test_data=small_test, run_dir=tmp_path, hooks=[recorder], progress=False).fit(
        1
    )
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    run_folder = RunFolder(tmp_path)
    files = sorted(tmp_path.rglob("*"))
    assert run_folder.checkpoint in files and run_folder.kept_epoch(1) in files and run_folder.snapshot(4) in files
    with RunLock(run_folder), pytest.raises(CheckpointError, match="is in use by process"):
        clear_run(tmp_path)
    assert sorted(tmp_path.rglob("*")) == files
    assert clear_run(tmp_path) == tmp_path
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    _trainer(tmp_path, small_train, small_test).fit(1)  # a new run may start there now


def test_resuming_a_kept_epoch_in_its_own_folder_refuses_to_rewind_the_later_checkpoint(
    tmp_path, small_train, small_test
) -> None:
    _trainer(tmp_path, small_train, small_test).fit(2)  # keeps epochs 1 and 2; checkpoint.pt holds epoch 2
    run_folder = RunFolder(tmp_path)
    latest = run_folder.checkpoint.read_bytes()
    with pytest.raises(
        CheckpointError, match=r"already holds a saved run \(checkpoint.pt, epoch_001.pt, epoch_002.pt\)"
    ):
        Trainer.resume(run_folder.kept_epoch(1), train_data=small_train, test_data=small_test, progress=False)
    assert run_folder.checkpoint.read_bytes() == latest
    elsewhere = Trainer.resume(
        run_folder.kept_epoch(1), run_dir=tmp_path / "from_epoch_1", train_data=small_train, test_data=small_test
    )
    assert elsewhere.epoch == 1


class _StopAtEpochEnd(TrainingHook):
    """Presses Ctrl-C in the end-of-epoch hooks of the given epoch, as a notebook's stop button may."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_in_an_epoch_end_hook_keeps_the_finished_epoch_and_its_snapshot_is_taken_on_resume(
    tmp_path, small_train, small_test
) -> None:
    def recorder(run_dir: Path) -> SnapshotRecorder:
        return SnapshotRecorder(run_dir, small_test, every=3, scatter_images=32, grid_size=4)

    straight = Trainer(
        TINY,
        train_data=small_train,
        test_data=small_test,
        run_dir=tmp_path / "straight",
        hooks=[recorder(tmp_path / "straight")],
        progress=False,
    )
    straight.fit(2)
    stopped = tmp_path / "stopped"
    trainer = Trainer(
        TINY,
        train_data=small_train,
        test_data=small_test,
        run_dir=stopped,
        hooks=[_StopAtEpochEnd(1), recorder(stopped)],
        progress=False,
    )
    with pytest.raises(
        TrainingInterrupted, match=f"back at the end of epoch 1, saved in {RunFolder(stopped).checkpoint}"
    ):
        trainer.fit(2)
    assert trainer.epoch == 1 and read_checkpoint(stopped)["epoch"] == 1
    end_of_epoch_1 = RunFolder(stopped).snapshot(trainer.steps_per_epoch)
    assert not end_of_epoch_1.exists()  # the stop came before the recorder's turn
    resumed = Trainer.resume(
        RunFolder(stopped).checkpoint,
        train_data=small_train,
        test_data=small_test,
        hooks=[recorder(stopped)],
        progress=False,
    )
    resumed.fit(1)
    _assert_same_state(read_checkpoint(tmp_path / "straight"), read_checkpoint(stopped))
    ours, theirs = load_snapshots(stopped), load_snapshots(tmp_path / "straight")
    assert [snapshot.step for snapshot in ours] == [snapshot.step for snapshot in theirs]
    assert trainer.steps_per_epoch in [snapshot.step for snapshot in ours]
    for a, b in zip(ours, theirs):
        assert np.array_equal(a.latent_means, b.latent_means) and np.array_equal(a.grid, b.grid)
        assert np.array_equal(list(a.losses.values()), list(b.losses.values()), equal_nan=True)


class _DrawsRandomNumbers(TrainingHook):
    """A hook that samples, as one drawing from the prior at each epoch's end would."""

    def on_fit_start(self, trainer: Trainer) -> None:
        torch.rand(1000)

    def on_epoch_end(self, trainer: Trainer) -> None:
        torch.rand(10)  # unlike at fit start: a resumed run's extra fit start does not make up for these


def test_a_hook_that_draws_random_numbers_leaves_a_resumed_run_equal_to_an_uninterrupted_one(
    tmp_path, small_train, small_test
) -> None:
    def trainer(run_dir: Path) -> Trainer:
        return Trainer(
            TINY, train_data=small_train, test_data=small_test, run_dir=run_dir, hooks=[_DrawsRandomNumbers()]
        )

    trainer(tmp_path / "straight").fit(2)
    trainer(tmp_path / "halves").fit(1)
    Trainer.resume(
        tmp_path / "halves" / "checkpoint.pt",
        train_data=small_train,
        test_data=small_test,
        hooks=[_DrawsRandomNumbers()],
    ).fit(1)
    _assert_same_state(read_checkpoint(tmp_path / "straight"), read_checkpoint(tmp_path / "halves"))


def test_a_trainer_whose_folder_another_trainer_saved_to_since_is_refused_and_the_later_run_kept(
    tmp_path, small_train, small_test
) -> None:
    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    first = open_run(TINY, tmp_path, **data)
    first.fit(1)
    second = open_run(TINY, tmp_path, **data)  # a notebook cell run twice: a second trainer of the same folder
    first.fit(2)
    saved = RunFolder(tmp_path).checkpoint.read_bytes()
    with pytest.raises(
        CheckpointError, match=r"written by another trainer or process since this trainer \(at epoch 1\)"
    ):
        second.fit(1)
    assert RunFolder(tmp_path).checkpoint.read_bytes() == saved and read_checkpoint(tmp_path)["epoch"] == 3
    first.fit(1)  # the trainer that wrote it goes on
    assert read_checkpoint(tmp_path)["epoch"] == 4
    stale = _trainer(tmp_path / "fresh", small_train, small_test)  # made while the folder was empty
    writer = _trainer(tmp_path / "fresh", small_train, small_test)
    writer.fit(1)
    with pytest.raises(CheckpointError, match="written by another trainer or process"):
        stale.fit(1)
    assert read_checkpoint(tmp_path / "fresh")["epoch"] == 1
    RunFolder(tmp_path / "fresh").checkpoint.unlink()
    with pytest.raises(CheckpointError, match=r"has been removed since this trainer \(at epoch 1\)"):
        writer.fit(1)
    resumed = Trainer.resume(RunFolder(tmp_path).checkpoint, **data)  # what the message advises
    resumed.fit(1)
    assert read_checkpoint(tmp_path)["epoch"] == 5


def test_only_the_run_s_own_temporary_files_are_removed_and_a_folder_as_the_lock_is_named(tmp_path) -> None:
    run_folder = RunFolder(tmp_path)
    run_folder.snapshots.mkdir()
    mine = [tmp_path / "thesis_draft.partial", run_folder.snapshots / "figure.partial"]
    leftovers = [tmp_path / ".checkpoint.pt.k2j4x_.partial", run_folder.snapshots / ".step_0000004.npz.x1.partial"]
    for path in mine + leftovers:
        path.write_text("x")
    with RunLock(run_folder):
        pass
    assert all(path.exists() for path in mine) and not any(path.exists() for path in leftovers)
    run_folder.lock.mkdir()
    with (
        pytest.raises(CheckpointError, match=r"run.lock is a folder, where the run's lock file belongs"),
        RunLock(run_folder),
    ):
        pass
    assert run_folder.lock.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == [
        "run.lock",
        "snapshots",
        "thesis_draft.partial",
    ]


def test_a_save_while_a_trainer_is_resumed_is_not_taken_for_the_one_it_read_and_a_folder_resumes_into_itself(
    tmp_path, small_train, small_test, monkeypatch
) -> None:
    from vae_lib.core import train

    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    other = open_run(TINY, tmp_path, **data)
    other.fit(1)
    read = train.read_checkpoint

    def read_then_another_saves(path):
        state = read(path)
        other.fit(1)  # another process saves epoch 2 while this one builds its trainer from epoch 1
        return state

    monkeypatch.setattr(train, "read_checkpoint", read_then_another_saves)
    late = Trainer.resume(RunFolder(tmp_path).checkpoint, **data)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="written by another trainer or process"):
        late.fit(1)  # it overwrote epoch 2 with its own epoch 2 before
    assert read_checkpoint(tmp_path)["epoch"] == 2
    resumed = Trainer.resume(tmp_path, **data)  # the folder itself: it saved into the folder's parent before
    resumed.fit(1)
    assert resumed.run_folder == RunFolder(tmp_path) and read_checkpoint(tmp_path)["epoch"] == 3
    assert not (tmp_path.parent / "checkpoint.pt").exists()


def test_a_relative_run_folder_after_the_working_folder_changed_is_named_as_such(
    tmp_path, small_train, small_test, monkeypatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    trainer = _trainer(Path("run"), small_train, small_test)
    trainer.fit(1)
    monkeypatch.chdir(tmp_path / "elsewhere")  # a notebook cell's os.chdir
    with pytest.raises(
        CheckpointError,
        match=r"the run folder 'run' was .*/run when this trainer was made, and now "
        r"means .*/elsewhere/run: the working folder changed since",
    ):
        trainer.fit(1)  # it was told its checkpoint had been removed
    assert not (tmp_path / "elsewhere" / "run").exists() and read_checkpoint(tmp_path / "run")["epoch"] == 1
    monkeypatch.chdir(tmp_path)
    trainer.fit(1)  # back where it was made: it goes on
    assert read_checkpoint(tmp_path / "run")["epoch"] == 2
