from pathlib import Path

import numpy as np
import pytest

from vae_lib import TrainConfig, Trainer
from vae_lib.cli import main
from vae_lib.latent import LatentProjection
from vae_lib.snapshots import SnapshotRecorder, load_snapshots
from vae_lib.video import FRAME_SIZE, make_run_video, still_frames, video_info

CONFIG = TrainConfig(batch_size=64, log_every=4, step_test_images=64)


def _run(run_dir: Path, small_train, small_test, latent_dim: int = 2, epochs: int = 2) -> Trainer:
    config = TrainConfig(latent_dim=latent_dim, batch_size=64, log_every=4, step_test_images=64)
    recorder = SnapshotRecorder(run_dir, small_test, every=3, scatter_images=200, grid_size=6)
    trainer = Trainer(
        config,
        train_data=small_train,
        test_data=small_test,
        run_dir=run_dir,
        device="cpu",
        hooks=[recorder],
        progress=False,
    )
    trainer.fit(epochs)
    return trainer


def test_snapshots_are_taken_every_n_steps_and_at_each_epoch_end(tmp_path, small_train, small_test) -> None:
    _run(tmp_path, small_train, small_test)  # 8 steps per epoch, 2 epochs
    snapshots = load_snapshots(tmp_path)
    assert [s.step for s in snapshots] == [0, 3, 6, 8, 9, 12, 15, 16]
    last = snapshots[-1]
    assert last.epoch == 2.0 and last.latent_means.shape == (200, 2) and last.latent_means.dtype == np.float16
    assert last.grid.shape == (6, 6, 28, 28) and last.grid.dtype == np.uint8
    assert last.reconstructions.shape == last.originals.shape == (10, 28, 28)
    assert np.array_equal(last.labels, small_test.labels[:200].numpy())
    assert not np.isnan(last.losses["test_recon"])  # epoch-end snapshots carry the epoch's test metrics


def test_snapshots_from_a_resumed_run_continue_where_they_stopped(tmp_path, small_train, small_test) -> None:
    _run(tmp_path / "straight", small_train, small_test, epochs=2)
    _run(tmp_path / "halves", small_train, small_test, epochs=1)
    stale = tmp_path / "halves" / "snapshots" / "step_0000011.npz"  # left by a run killed mid-epoch 2
    stale.write_bytes((tmp_path / "halves" / "snapshots" / "step_0000003.npz").read_bytes())
    recorder = SnapshotRecorder(tmp_path / "halves", small_test, every=3, scatter_images=200, grid_size=6)
    resumed = Trainer.resume(
        tmp_path / "halves" / "checkpoint.pt",
        train_data=small_train,
        test_data=small_test,
        hooks=[recorder],
        progress=False,
    )
    resumed.fit(1)
    straight, halves = load_snapshots(tmp_path / "straight"), load_snapshots(tmp_path / "halves")
    assert [s.step for s in halves] == [s.step for s in straight] == [0, 3, 6, 8, 9, 12, 15, 16]
    for a, b in zip(straight, halves):
        assert np.array_equal(a.latent_means, b.latent_means) and np.array_equal(a.grid, b.grid)


@pytest.mark.parametrize("latent_dim", [2, 8])
def test_video_of_a_short_run_is_h264_with_one_frame_per_snapshot(
    tmp_path, small_train, small_test, latent_dim
) -> None:
    _run(tmp_path, small_train, small_test, latent_dim=latent_dim)
    result = make_run_video(tmp_path, fps=4, gif=True)
    info = video_info(result["mp4"])
    assert result["frames"] == 8
    assert info == {"codec": "h264", "pixel_format": "yuv420p", "size": FRAME_SIZE, "frames": 8}
    gif = result["gif"].read_bytes()
    assert gif[:6] == b"GIF89a" and 10_000 < len(gif) < 2_000_000


def test_the_8d_projection_is_fixed_and_deterministic() -> None:
    generator = np.random.default_rng(0)
    means = generator.normal(size=(500, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    first, second = LatentProjection.fit(means), LatentProjection.fit(means.copy())
    assert np.allclose(first.axes, second.axes)
    projected = first(means)
    assert projected.shape == (500, 2)
    # PCA keeps the two widest directions: variance along them ~ 25 and 9
    assert projected.var(axis=0) == pytest.approx([25, 9], rel=0.2)
    two_d = LatentProjection.fit(means[:, :2])
    assert np.array_equal(two_d(means[:, :2]), means[:, :2])


def test_video_command_and_its_errors(tmp_path, small_train, small_test, capsys) -> None:
    assert main(["video", str(tmp_path)]) == 2
    assert "no snapshots" in capsys.readouterr().err
    _run(tmp_path, small_train, small_test, epochs=1)
    assert main(["video", str(tmp_path), "--fps", "4"]) == 0
    assert "4 frames" in capsys.readouterr().out
    assert (tmp_path / "latent_evolution.mp4").stat().st_size > 10_000


def test_still_frames_are_the_video_frames_at_the_given_indices() -> None:
    video = Path(__file__).parent.parent / "outputs" / "videos" / "latent_2d.mp4"
    frames = still_frames(video, [0, 5, -1])
    assert [index for index, _ in frames] == [0, 5, video_info(video)["frames"] - 1]
    assert all(frame.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frame.dtype == np.uint8 for _, frame in frames)
    assert not np.array_equal(frames[0][1], frames[-1][1])
