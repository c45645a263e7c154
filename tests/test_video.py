from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from PIL import Image

from vae_lib import Batch, CheckpointError, RunFolder, TrainConfig, Trainer
from vae_lib.core.evaluate import encode_means
from vae_lib.core.history import StepRecord
from vae_lib.core.latent import LatentProjection, decode_grid, decode_latents, grid_latents
from vae_lib.course.shipped import shipped_video
from vae_lib.pictures.snapshots import Snapshot, SnapshotRecorder, load_snapshots, save_snapshot
from vae_lib.pictures.video import (
    FRAME_SIZE,
    FrameRenderer,
    frames_of_run,
    loss_ticks,
    make_run_video,
    mp4_to_gif,
    still_frames,
    video_info,
    write_mp4,
)
from vae_lib.pictures.viz import class_colour, image_grid
from vae_lib.tools.cli import main

CONFIG = TrainConfig(batch_size=64, log_every=4, step_test_images=64)


def _run(run_dir: Path, small_train, small_test, latent_dim: int = 2, epochs: int = 2, seed: int = 0) -> Trainer:
    config = TrainConfig(latent_dim=latent_dim, batch_size=64, log_every=4, step_test_images=64, seed=seed)
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
    trainer = _run(tmp_path, small_train, small_test)  # 8 steps per epoch, 2 epochs
    snapshots = load_snapshots(tmp_path)
    assert [s.step for s in snapshots] == [0, 3, 6, 8, 9, 12, 15, 16]
    last = snapshots[-1]
    assert last.epoch == 2.0 and last.latent_means.shape == (200, 2) and last.latent_means.dtype == np.float16
    assert last.grid.shape == (6, 6, 28, 28) and last.grid.dtype == np.uint8
    assert last.reconstructions.shape == last.originals.shape == (10, 28, 28)
    assert np.array_equal(last.labels, small_test.labels[:200].numpy())
    assert not np.isnan(last.losses["test_recon"])  # epoch-end snapshots carry the epoch's test metrics
    # what the last one holds is the trained model's, recomputed here: latent means, the grid, the reconstructions
    model = trainer.evaluated_model
    means = encode_means(model, small_test.images[:200])
    assert np.allclose(last.latent_means, means.numpy(), rtol=1e-3, atol=1e-3)  # stored as float16
    assert np.array_equal(last.grid, decode_grid(model, 6, float(last.grid_values[-1]), tuple(last.grid_dims)))
    assert np.array_equal(last.reconstructions, decode_latents(model, means[:10]))
    assert np.array_equal(last.originals, small_test.images[:10].numpy())


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
    rotation, _ = np.linalg.qr(generator.normal(size=(8, 8)))  # the widest directions: its first two columns
    spread = generator.normal(size=(500, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    means = spread @ rotation.T + np.arange(8.0)
    first, reordered = LatentProjection.fit(means), LatentProjection.fit(means[::-1].copy())
    assert np.allclose(first.axes, reordered.axes)  # the same means in another order: the same picture
    assert np.abs(first.axes.T @ rotation[:, :2]) == pytest.approx(np.eye(2), abs=0.05)
    largest = np.abs(first.axes).argmax(axis=0)
    assert (first.axes[largest, [0, 1]] > 0).all()  # each axis points where its largest component is positive
    projected = first(means)
    assert projected.shape == (500, 2)
    assert projected.mean(axis=0) == pytest.approx([0, 0], abs=1e-9)  # centred on the means' centre
    # PCA keeps the two widest directions: variance along them ~ 25 and 9
    assert projected.var(axis=0) == pytest.approx([25, 9], rel=0.15)
    two_d = LatentProjection.fit(means[:, :2])
    assert np.array_equal(two_d(means[:, :2]), means[:, :2])


def test_video_command_and_its_errors(tmp_path, small_train, small_test, capsys) -> None:
    assert main(["video", str(tmp_path)]) == 2
    assert "no snapshots" in capsys.readouterr().err
    _run(tmp_path, small_train, small_test, epochs=1)
    assert main(["video", str(tmp_path), "--fps", "4"]) == 0
    assert "4 frames" in capsys.readouterr().out
    assert (tmp_path / "latent_evolution.mp4").stat().st_size > 10_000
    assert main(["video", str(tmp_path / "snapshots")]) == 2  # "no snapshots in .../snapshots/snapshots" before
    assert f"snapshots folder of a run: give the run's folder, {tmp_path}\n" in capsys.readouterr().err


def test_a_corrupt_snapshot_is_named_and_the_good_video_is_kept(tmp_path, small_train, small_test, capsys) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    make_run_video(tmp_path, fps=4)
    good_video = (tmp_path / "latent_evolution.mp4").read_bytes()
    snapshot = tmp_path / "snapshots" / "step_0000003.npz"
    intact = snapshot.read_bytes()
    middle = len(intact) // 2
    damaged = {
        "truncated": intact[:middle],
        "bit-flipped": intact[:middle] + bytes([intact[middle] ^ 0x10]) + intact[middle + 1 :],
        "empty": b"",
    }
    for content in damaged.values():
        snapshot.write_bytes(content)
        assert main(["video", str(tmp_path), "--fps", "4"]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: {snapshot} is not a readable snapshot (") and error.count("\n") == 1
        assert (tmp_path / "latent_evolution.mp4").read_bytes() == good_video


def test_a_snapshot_of_latent_values_that_are_not_finite_is_named(tmp_path, small_train, small_test) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    snapshot = load_snapshots(tmp_path)[1]
    save_snapshot(replace(snapshot, latent_means=np.full_like(snapshot.latent_means, np.nan)), tmp_path)
    with pytest.raises(CheckpointError) as refusal:
        make_run_video(tmp_path)
    assert str(refusal.value) == (
        f"{tmp_path / 'snapshots' / 'step_0000003.npz'} holds latent values that are not finite (NaN or infinite): the "
        "run had diverged when it was taken, or the file was changed; delete it and make the video from the others"
    )  # matplotlib's "Axis limits cannot be NaN or Inf", naming no file, before


def test_a_run_folder_that_is_missing_or_a_file_is_named_as_such(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    for given, what in [
        (tmp_path / "no_run", "does not exist"),
        (tmp_path / "notes.txt", "is a file, not a run folder"),
    ]:
        assert main(["video", str(given)]) == 2
        assert capsys.readouterr().err == f"error: {given} {what}: give the folder of a run trained with snapshots\n"


def test_a_snapshot_of_another_run_is_named_before_the_video_is_touched(tmp_path, small_train, small_test) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    snapshots = load_snapshots(tmp_path)
    stranger = replace(snapshots[1], step=5, grid=snapshots[1].grid[:3, :3])  # a 3 x 3 grid among 6 x 6 ones
    save_snapshot(stranger, tmp_path)
    with pytest.raises(CheckpointError, match=r"^step_0000005.npz in .* do not fit the run's other snapshots"):
        make_run_video(tmp_path)
    assert not (tmp_path / "latent_evolution.mp4").exists()


def test_a_snapshot_of_another_run_of_the_same_shapes_is_named_by_the_settings_that_differ(
    tmp_path, small_train, small_test
) -> None:
    _run(tmp_path / "ours", small_train, small_test, epochs=1)
    _run(tmp_path / "theirs", small_train, small_test, epochs=1, seed=5)
    ours = load_snapshots(tmp_path / "ours")
    assert ours[0].run_settings["seed"] == 0 and ours[-1].run_settings == ours[0].run_settings
    foreign = tmp_path / "ours" / "snapshots" / "step_0000005.npz"
    foreign.write_bytes((tmp_path / "theirs" / "snapshots" / "step_0000003.npz").read_bytes())
    with pytest.raises(
        CheckpointError, match=r"^step_0000005.npz in .* were taken by another run \(seed 5 \(most snapshots': 0\)\)"
    ):
        make_run_video(tmp_path / "ours")
    assert not (tmp_path / "ours" / "latent_evolution.mp4").exists()
    foreign.rename(foreign.with_name("step_0000099.npz"))  # the newest: the run's own are still not blamed
    with pytest.raises(CheckpointError, match=r"^step_0000099.npz in .* were taken by another run \(seed 5 "):
        make_run_video(tmp_path / "ours")
    foreign.with_name("step_0000099.npz").unlink()
    older = replace(ours[1], step=5, run_settings=None)  # written before snapshots carried their run's settings
    save_snapshot(older, tmp_path / "ours")
    assert [snapshot.step for snapshot in load_snapshots(tmp_path / "ours")] == [0, 3, 5, 6, 8]


def test_another_runs_checkpoint_beside_the_snapshots_is_refused_and_the_video_kept(
    tmp_path, small_train, small_test
) -> None:
    _run(tmp_path / "ours", small_train, small_test, epochs=1)
    _run(tmp_path / "theirs", small_train, small_test, epochs=1, latent_dim=3)
    make_run_video(tmp_path / "ours", fps=4)
    good_video = (tmp_path / "ours" / "latent_evolution.mp4").read_bytes()
    checkpoint = tmp_path / "ours" / "checkpoint.pt"
    checkpoint.write_bytes((tmp_path / "theirs" / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError) as refusal:
        make_run_video(tmp_path / "ours", fps=4)
    assert str(refusal.value) == (
        f"{checkpoint} is another run's than the snapshots beside it (latent_dim 3 (snapshots: 2)): put back the "
        "checkpoint of the run that took them, or move it out of the folder to make the video without a loss curve"
    )
    assert (tmp_path / "ours" / "latent_evolution.mp4").read_bytes() == good_video
    checkpoint.unlink()  # as the error says: the video is made from the snapshots alone
    assert make_run_video(tmp_path / "ours", fps=4)["frames"] == 4


def test_a_resumed_run_with_more_epochs_keeps_its_snapshots_one_run(tmp_path, small_train, small_test) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    recorder = SnapshotRecorder(tmp_path, small_test, every=3, scatter_images=200, grid_size=6)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", train_data=small_train, test_data=small_test, hooks=[recorder])
    resumed.config = replace(resumed.config, epochs=resumed.config.epochs + 5, log_every=2)  # resumable settings
    resumed.fit(1)
    assert [snapshot.step for snapshot in load_snapshots(tmp_path)] == [0, 3, 6, 8, 9, 12, 15, 16]


def test_a_video_that_fails_half_way_leaves_the_previous_one_and_no_temporary_file(
    tmp_path, small_train, small_test, monkeypatch
) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    make_run_video(tmp_path, fps=4)
    good_video = (tmp_path / "latent_evolution.mp4").read_bytes()
    frames, render = [], FrameRenderer.render

    def render_then_fail(renderer: FrameRenderer, snapshot) -> np.ndarray:
        frames.append(snapshot.step)
        if len(frames) == 3:
            raise MemoryError("out of memory at the third frame")
        return render(renderer, snapshot)

    monkeypatch.setattr(FrameRenderer, "render", render_then_fail)
    with pytest.raises(MemoryError):
        make_run_video(tmp_path, fps=4)
    assert (tmp_path / "latent_evolution.mp4").read_bytes() == good_video
    assert not RunFolder(tmp_path).partial_files()


def test_still_frames_are_the_video_frames_at_the_given_indices() -> None:
    video = shipped_video("2d")
    frames = still_frames(video, [0, 5, -1])
    assert [index for index, _ in frames] == [0, 5, video_info(video)["frames"] - 1]
    assert all(frame.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frame.dtype == np.uint8 for _, frame in frames)
    assert not np.array_equal(frames[0][1], frames[-1][1])


def test_a_conditional_runs_snapshots_encode_and_decode_with_the_labels(tmp_path, small_train, small_test) -> None:
    config = TrainConfig(latent_dim=2, conditional=True, widths=(4, 8, 8, 16), log_every=4, step_test_images=64)
    recorder = SnapshotRecorder(tmp_path, small_test, every=4, scatter_images=100, grid_size=4, grid_class=7)
    trainer = Trainer(
        config, train_data=small_train, test_data=small_test, run_dir=tmp_path, hooks=[recorder], progress=False
    )
    trainer.fit(1)
    model = trainer.evaluated_model
    with torch.no_grad():  # make the label count: after one epoch of a narrow model it hardly does
        model.from_latent.weight[:, 2:] *= 200
    recorder.record(trainer)
    last = load_snapshots(tmp_path)[-1]
    means = encode_means(model, Batch(small_test.images[:100], small_test.labels[:100]))
    assert np.abs(last.latent_means.astype(np.float32) - means.numpy()).max() < 1e-2
    expected = decode_latents(model, means[:10], small_test.labels[:10])
    assert np.abs(last.reconstructions.astype(int) - expected.astype(int)).max() <= 1
    as_other_class = decode_latents(model, means[:10], (small_test.labels[:10] + 1) % 10)
    assert np.abs(last.reconstructions.astype(int) - as_other_class.astype(int)).max() > 20
    sevens, zeros = (decode_latents(model, grid_latents(2, 4, 2.5), torch.full((4, 4), c)) for c in (7, 0))
    assert np.abs(last.grid.astype(int) - sevens.astype(int)).max() <= 1
    assert np.abs(last.grid.astype(int) - zeros.astype(int)).max() > 20
    assert last.grid_class == 7  # the video's grid title says which class it draws ("decoded latent grid" before)
    _, renderer = frames_of_run(tmp_path)
    assert renderer.grid_image.axes.get_title() == "decoded latent grid, as class 7"


def test_snapshots_of_a_1d_latent_space_are_refused_before_training(tmp_path, small_train, small_test) -> None:
    config = TrainConfig(latent_dim=1, log_every=4, step_test_images=64)
    recorder = SnapshotRecorder(tmp_path, small_test, every=4)
    trainer = Trainer(
        config, train_data=small_train, test_data=small_test, run_dir=tmp_path, hooks=[recorder], progress=False
    )
    with pytest.raises(ValueError, match=r"grid over latent dimensions \(0, 1\), which a 1-D latent space"):
        trainer.fit(1)
    assert trainer.step == 0 and not RunFolder(tmp_path).checkpoint.exists()


def test_grid_dimensions_a_2d_space_lacks_are_told_which_it_has(tmp_path, small_train, small_test) -> None:
    recorder = SnapshotRecorder(tmp_path, small_test, every=4, grid_dims=(0, 5))
    trainer = Trainer(CONFIG, train_data=small_train, test_data=small_test, hooks=[recorder], progress=False)
    with pytest.raises(
        ValueError, match=r"\(0, 5\), which a 2-D latent space does not have: choose grid_dims among 0 to 1$"
    ):
        trainer.fit(1)  # it said to use "a model with 2 or more latent dimensions", which this is


def _snapshot(step: int, spread: float, seed: int) -> Snapshot:
    generator = np.random.default_rng(seed)
    labels = np.arange(60, dtype=np.uint8) % 10
    return Snapshot(
        step=step,
        epoch=step / 10,
        losses={"test_total": 0.25 + step, "test_recon": 0.125 + step, "test_kl": 12.5 + step},
        latent_means=(generator.normal(size=(60, 2)) * spread).astype(np.float16),
        labels=labels,
        grid=generator.integers(30, 200, size=(3, 3, 28, 28), dtype=np.uint8),  # shown in 0-255 all the same
        grid_values=np.linspace(-2.0, 2.0, 3, dtype=np.float32),
        grid_dims=(0, 1),
        originals=np.zeros((2, 28, 28), np.uint8),
        reconstructions=np.zeros((2, 28, 28), np.uint8),
    )


def _record(step: int) -> StepRecord:
    return StepRecord(step, step / 10, 1.0, 2.0 - step / 20, 1.0, 30.0, 3.0 - step / 40, 1.5, 40.0)


def test_every_frame_keeps_the_axis_limits_colours_and_grey_range_and_draws_its_own_data() -> None:
    # the first snapshot is spread widest: limits from the last one alone would cut it off
    snapshots = [_snapshot(0, 4.0, 0), _snapshot(10, 2.0, 1), _snapshot(20, 1.0, 2)]
    history = [_record(step) for step in range(2, 21, 2)]
    renderer = FrameRenderer(snapshots, history, [f"class {c}" for c in range(10)])
    scatter_axes, grid_axes, loss_axes = renderer.figure.axes[:3]
    every_point = np.concatenate([s.latent_means.astype(np.float32) for s in snapshots])
    low, high = np.percentile(every_point, [0.5, 99.5], axis=0)
    margin = 0.05 * (high - low)
    losses = [2.0 - step / 20 for step in range(2, 21, 2)] + [3.0 - step / 40 for step in range(2, 21, 2)]
    for snapshot in snapshots:
        frame = renderer.render(snapshot)
        assert frame.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frame.dtype == np.uint8
        assert scatter_axes.get_xlim() == pytest.approx((low[0] - margin[0], high[0] + margin[0]))
        assert scatter_axes.get_ylim() == pytest.approx((low[1] - margin[1], high[1] + margin[1]))
        assert np.array_equal(renderer.scatter.get_offsets(), snapshot.latent_means.astype(np.float32))
        colours = [to_hex(colour) for colour in renderer.scatter.get_facecolors()]
        assert colours == [class_colour(label) for label in snapshot.labels.tolist()]
        # the grid in grey from 0 to 255 whatever its frame holds, row 0 at the top, at z2 = +2
        assert renderer.grid_image.get_cmap().name == "gray"
        assert (renderer.grid_image.norm.vmin, renderer.grid_image.norm.vmax) == (0, 255)
        assert np.array_equal(renderer.grid_image.get_array(), image_grid(snapshot.grid))
        # the 3 tiles a side decoded at -2, 0 and +2 are centred there: the image reaches half a tile (1) beyond
        assert renderer.grid_image.get_extent() == [-3, 3, -3, 3] and renderer.grid_image.origin == "upper"
        assert grid_axes.get_ylim() == (-3, 3) and grid_axes.get_title() == "decoded latent grid"  # a plain model's
        # the loss curves up to this snapshot's step, the marker at it, the axes fixed for the whole run
        shown = [record for record in history if record.step <= snapshot.step]
        assert list(renderer.train_line.get_xdata()) == [record.step for record in shown]
        assert list(renderer.train_line.get_ydata()) == [record.train_total for record in shown]
        assert list(renderer.test_line.get_ydata()) == [record.test_total for record in shown]
        assert list(renderer.marker.get_xdata()) == [snapshot.step, snapshot.step]
        assert loss_axes.get_xlim() == (0, 20)
        # every loss of the run, the first ones too (the axis was cut at the 98th percentile), on a log scale
        assert loss_axes.get_yscale() == "log"
        assert loss_axes.get_ylim() == pytest.approx((min(losses) / 1.05, max(losses) * 1.05))
        ticks = loss_axes.get_yticks()
        loss_low, loss_high = loss_axes.get_ylim()
        assert len(ticks) >= 4 and loss_low <= ticks.min() and ticks.max() <= loss_high  # labels over the whole range
        assert renderer.title.get_text() == (
            f"epoch {snapshot.step / 10:.2f}   step {snapshot.step}   test recon {0.125 + snapshot.step:.4f}"
            f"   KL {12.5 + snapshot.step:.2f}   total {0.25 + snapshot.step:.4f}"
        )
    legend = scatter_axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [f"class {c}" for c in range(10)]
    assert [to_hex(handle.get_color()) for handle in legend.legend_handles] == [class_colour(c) for c in range(10)]


def test_the_video_plays_at_the_frame_rate_asked_for_and_the_gif_has_the_width_asked_for(tmp_path) -> None:
    frames = [np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 40 * index, np.uint8) for index in range(6)]
    video = write_mp4(iter(frames), tmp_path / "six.mp4", fps=3)
    metadata = next(imageio_ffmpeg.read_frames(str(video)))
    assert metadata["fps"] == 3 and metadata["duration"] == pytest.approx(2.0, abs=0.05)
    assert video_info(video)["frames"] == 6
    for width in (640, 320):
        with Image.open(mp4_to_gif(video, tmp_path / f"six_{width}.gif", width=width)) as gif:
            assert gif.size == (width, width * FRAME_SIZE[1] // FRAME_SIZE[0])


@pytest.mark.parametrize("fps, count", [(48, 3), (13, 1)])
def test_a_video_shorter_than_one_gif_frame_still_makes_a_gif_of_its_frames(tmp_path, fps: int, count: int) -> None:
    frames = [np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 200, np.uint8) for _ in range(count)]
    video = write_mp4(iter(frames), tmp_path / "short.mp4", fps=fps)  # 1/16 and 1/13 s: the GIF runs at 6 fps
    with Image.open(mp4_to_gif(video, tmp_path / "short.gif")) as gif:
        assert gif.n_frames >= 1 and np.asarray(gif.convert("L")).mean() == pytest.approx(200, abs=3)


def test_a_gif_ffmpeg_cannot_make_is_an_error_that_leaves_the_gif_as_it_was(tmp_path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "latent.gif").write_bytes(b"the GIF made before")
    with pytest.raises(CheckpointError, match=r"^ffmpeg could not make .*latent.gif from .*broken.mp4 \(.+\); the GIF"):
        mp4_to_gif(tmp_path / "broken.mp4", tmp_path / "latent.gif")
    assert (tmp_path / "latent.gif").read_bytes() == b"the GIF made before"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.mp4", "latent.gif"]


def test_a_new_run_refuses_a_folder_holding_another_runs_snapshots_and_deletes_none(
    tmp_path, small_train, small_test
) -> None:
    _run(tmp_path, small_train, small_test, epochs=1, seed=5)
    make_run_video(tmp_path, fps=4)
    RunFolder(tmp_path).checkpoint.unlink()  # only the snapshots and the video are left of that run
    theirs = {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()}
    with pytest.raises(
        CheckpointError,
        match=r"^step_0000000.npz, step_0000003.npz, step_0000006.npz, step_0000008.npz in .* were taken by another "
        r"run \(seed 5 \(this run's: 0\)\), which this one would delete: move them out or train in another folder",
    ):
        _run(tmp_path, small_train, small_test, epochs=1)
    assert {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()} == theirs
    _run(tmp_path, small_train, small_test, epochs=1, seed=5)  # the same run's leftovers are replaced as before
    assert [snapshot.step for snapshot in load_snapshots(tmp_path)] == [0, 3, 6, 8]


def test_copies_of_a_runs_files_are_not_taken_for_its_own(tmp_path, small_train, small_test) -> None:
    _run(tmp_path, small_train, small_test, epochs=1)
    snapshots = tmp_path / "snapshots"
    for copy in ("step_0000003 (copy).npz", "step_x.npz", "step_.npz"):
        (snapshots / copy).write_bytes((snapshots / "step_0000003.npz").read_bytes())
    for name in ("epoch_001.pt", "epoch_001 (copy).pt", "epoch_999.pt", "epoch_1000.pt", "epoch_².pt"):
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in RunFolder(tmp_path).kept_epochs()] == [
        "epoch_001.pt",
        "epoch_999.pt",
        "epoch_1000.pt",
    ]
    assert [snapshot.step for snapshot in load_snapshots(tmp_path)] == [0, 3, 6, 8]
    for name in ("epoch_001.pt", "epoch_999.pt", "epoch_1000.pt"):
        (tmp_path / name).unlink()
    recorder = SnapshotRecorder(tmp_path, small_test, every=3, scatter_images=200, grid_size=6)
    Trainer.resume(tmp_path / "checkpoint.pt", train_data=small_train, test_data=small_test, hooks=[recorder]).fit(1)
    assert [snapshot.step for snapshot in load_snapshots(tmp_path)] == [0, 3, 6, 8, 9, 12, 15, 16]
    assert (snapshots / "step_0000003 (copy).npz").exists()  # not the run's: left where it is


def test_a_missing_video_or_a_frame_it_lacks_is_named(tmp_path) -> None:
    frames = [np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 40 * index, np.uint8) for index in range(3)]
    video = write_mp4(iter(frames), tmp_path / "three.mp4", fps=3)
    with pytest.raises(ValueError, match=r"^three.mp4 has 3 frames \(indices 0 to 2, or -1 for the last\): 5, -4 lie"):
        still_frames(video, [0, 5, -4])  # an IndexError before
    for read in (video_info, lambda path: still_frames(path, [0])):  # ffmpeg's banner before
        with pytest.raises(FileNotFoundError, match=r"no video at .*missing.mp4: make it with python -m vae_lib video"):
            read(tmp_path / "missing.mp4")
    gif = mp4_to_gif(video, tmp_path / "three.gif")
    assert video_info(gif)["codec"] == "gif"  # "gif," before


def test_ticks_that_differ_only_in_the_last_bit_of_geomspace_are_one_tick(monkeypatch) -> None:
    # on an AVX2 AMD EPYC np.geomspace(0.2, 0.2, 6) gave 0.20000000000000004 beside 0.2: two "different" ticks
    last_bit = [0.2, 0.20000000000000004, 0.20000000000000004, 0.20000000000000004, 0.20000000000000004, 0.2]
    monkeypatch.setattr(np, "geomspace", lambda low, high, count: np.array(last_bit))
    assert loss_ticks(0.2, 0.2) == [0.2]
    apart = [1.0, 1.0000001, 1.0000002, 1.0000003, 1.0000004, 1.0000005]  # ticks 1e-7 apart stay apart
    monkeypatch.setattr(np, "geomspace", lambda low, high, count: np.array(apart))
    assert loss_ticks(1.0, 1.0000005) == apart


def test_the_loss_ticks_spread_over_the_range_in_plain_numbers_that_differ() -> None:
    # a Bernoulli run's nats were labelled 1.1e+02, 1.3e+02, ...; a narrow range got one label for all its ticks
    assert loss_ticks(0.0726, 0.48) == [0.073, 0.11, 0.15, 0.23, 0.33, 0.48]
    assert loss_ticks(86.0, 250.0) == [86, 110, 130, 160, 200, 250]
    narrow = loss_ticks(0.1, 0.1002)
    assert len(narrow) == 6 and narrow[0] == 0.1 and narrow[-1] == 0.1002
    assert loss_ticks(0.2, 0.2) == [0.2]
    history = [
        StepRecord(step, step / 10, 1.0, 250.0 - step, 1.0, 30.0, 200.0 - step, 1.5, 40.0) for step in range(2, 21, 2)
    ]
    renderer = FrameRenderer([_snapshot(0, 1.0, 0), _snapshot(20, 1.0, 1)], history, [f"class {c}" for c in range(10)])
    loss_axes = renderer.figure.axes[2]
    renderer.render(_snapshot(20, 1.0, 1))
    labels = [label.get_text() for label in loss_axes.get_yticklabels()]
    assert labels == ["180", "190", "200", "220", "230", "250"] and not any("e+" in label for label in labels)


@pytest.mark.parametrize("fps", [0, 61, 1000000, 2.5])
def test_a_frame_rate_no_screen_shows_is_refused_before_anything_is_drawn(tmp_path, fps) -> None:
    from vae_lib.pictures.video import make_run_video

    with pytest.raises(ValueError, match=r"fps must be a whole number from 1 to 60 \(frames a second\)"):
        make_run_video(tmp_path, fps=fps)  # 1,000,000 wrote a 0-second mp4 before
    assert not any(tmp_path.iterdir())


def test_snapshot_settings_the_model_cannot_draw_are_refused_before_a_snapshot_is_removed(
    tmp_path, small_train, small_test
) -> None:
    config = TrainConfig(latent_dim=2, conditional=True, widths=(4, 8, 8, 16), log_every=4, step_test_images=64)

    def fit(recorder: SnapshotRecorder) -> None:
        Trainer(
            config, train_data=small_train, test_data=small_test, run_dir=tmp_path, hooks=[recorder], progress=False
        ).fit(1)

    fit(SnapshotRecorder(tmp_path, small_test, every=4, scatter_images=100, grid_size=4))
    RunFolder(tmp_path).checkpoint.unlink()  # the same run starting again replaces its snapshots, once it can draw
    kept = {path: path.read_bytes() for path in RunFolder(tmp_path).snapshot_files()}
    steps = [snapshot.step for snapshot in load_snapshots(tmp_path)]
    assert len(steps) >= 3
    with pytest.raises(ValueError, match="12"):  # a class the 10-class model does not have
        fit(SnapshotRecorder(tmp_path, small_test, every=4, scatter_images=100, grid_size=4, grid_class=12))
    assert {path: path.read_bytes() for path in RunFolder(tmp_path).snapshot_files()} == kept
    fit(SnapshotRecorder(tmp_path, small_test, every=4, scatter_images=100, grid_size=4, grid_class=3))
    assert [snapshot.step for snapshot in load_snapshots(tmp_path)] == steps
    assert {path: path.read_bytes() for path in RunFolder(tmp_path).snapshot_files()} != kept  # taken anew, of class 3


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"every": 1.5}, r"every must be a whole number >= 1, got 1.5"),
        ({"every": "10"}, r"every must be a whole number >= 1, got '10'"),
        ({"scatter_images": -5}, r"scatter_images must be a whole number >= 1, got -5"),
        ({"reconstruction_count": -1}, r"reconstruction_count must be a whole number >= 0, got -1"),
        ({"grid_size": 1}, r"grid_size must be a whole number >= 2, got 1"),
        ({"grid_class": -1}, r"grid_class must be a whole number >= 0, got -1"),
        ({"grid_limit": 0}, r"grid_limit is how far the grid reaches from 0, a number > 0: got 0"),
        ({"grid_limit": float("nan")}, r"a number > 0: got nan"),
        ({"grid_dims": (1, 1)}, r"a grid varies two different dimensions, got \(1, 1\)"),
        ({"grid_dims": 1}, r"grid_dims names the two latent dimensions the grid varies, e.g. \(0, 1\): got 1"),
        ({"grid_dims": (0, -1)}, r"grid_dims are latent dimensions, whole numbers from 0: got \(0, -1\)"),
    ],
)
def test_snapshot_settings_that_are_no_counts_or_grids_are_refused_when_the_recorder_is_made(
    tmp_path, small_test, setting, message
) -> None:
    with pytest.raises(ValueError, match=message):
        SnapshotRecorder(tmp_path, small_test, **setting)
    assert not tmp_path.joinpath("snapshots").exists()


def test_a_video_file_ffmpeg_cannot_read_or_one_cut_short_is_named_with_what_to_do(tmp_path) -> None:
    shipped = shipped_video("2d")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(shipped.read_bytes()[: shipped.stat().st_size // 3])  # a copy or download that stopped
    empty, pointer = tmp_path / "empty.mp4", tmp_path / "pointer.mp4"
    empty.write_bytes(b"")
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 5621204\n")
    for read in (video_info, lambda path: still_frames(path, [0])):
        with pytest.raises(
            ValueError, match=r"decodes to \d+ frames of the 228 its header announces: the file was cut"
        ):
            read(cut)  # read as a 57-frame video without a word before
        for unreadable in (empty, pointer):
            with pytest.raises(ValueError, match=r"is not a video ffmpeg can read .*: make it again with python -m"):
                read(unreadable)  # ffmpeg's OSError and its banner before
    assert video_info(shipped)["frames"] == 228


def test_snapshot_settings_are_taken_as_numpy_or_torch_numbers_and_a_resume_takes_no_snapshot_it_keeps(
    tmp_path, small_train, small_test
) -> None:
    taken = []

    class Counting(SnapshotRecorder):
        def _take(self, trainer):
            taken.append(trainer.step)
            return super()._take(trainer)

    def fit(epochs: int) -> Trainer:
        recorder = Counting(
            tmp_path,
            small_test,
            every=np.int64(4),
            scatter_images=np.int64(50),
            grid_size=torch.tensor(4),
            grid_limit=np.float32(2.4),
            grid_dims=np.array([1, 0]),
        )  # refused before: "every must be a whole number >= 1, got np.int64(4)"
        trainer = (
            Trainer.resume(tmp_path, train_data=small_train, test_data=small_test, hooks=[recorder], progress=False)
            if epochs > 1
            else Trainer(
                CONFIG, train_data=small_train, test_data=small_test, run_dir=tmp_path, hooks=[recorder], progress=False
            )
        )
        trainer.fit(1)
        return trainer

    first = fit(1)
    assert taken[0] == 0 and load_snapshots(tmp_path)[0].grid_dims == (1, 0)
    taken.clear()
    fit(2)
    assert first.step not in taken  # the resumed step's snapshot is on disk: not taken again only to be thrown away


def test_each_frame_names_the_class_its_conditional_grid_was_decoded_as() -> None:
    # a conditional run resumed with another grid_class: frames 1-2 decoded as class 7, frame 3 as class 3
    snapshots = [replace(_snapshot(step, 1.0, step), grid_class=c) for step, c in ((0, 7), (10, 7), (20, 3))]
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    renderer = FrameRenderer(snapshots, [_record(step) for step in range(2, 21, 2)], names)
    titles = []
    for snapshot in snapshots:
        renderer.render(snapshot)
        titles.append(renderer.grid_axes.get_title())
    assert titles == ["decoded latent grid, as class seven"] * 2 + ["decoded latent grid, as class three"]
    # without a checkpoint the names come from the scatter's labels alone, which may stop short of the grid's class
    beyond = FrameRenderer([replace(snapshots[0], grid_class=12)], [], names)
    assert beyond.grid_axes.get_title() == "decoded latent grid, as class 12"  # "as class None" before
