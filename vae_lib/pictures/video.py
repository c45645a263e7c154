"""Videos of the latent space evolving during training: matplotlib draws, imageio-ffmpeg encodes.

Each frame shows the test images' latent means coloured by class, the decoded latent grid and the
loss curves so far. The figure is built once and only its data changes from frame to frame,
which keeps drawing fast; axis limits are fixed across frames (the losses on a log scale that holds all of them).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from vae_lib.core.checkpoint import config_of, history_of, read_checkpoint
from vae_lib.core.config import MAX_FPS, TrainConfig, is_whole_number
from vae_lib.core.datasets import DATASETS
from vae_lib.core.files import CheckpointError, last_error_line, replaced_atomically
from vae_lib.core.history import StepRecord
from vae_lib.core.latent import LatentProjection, dimension_label, grid_extent
from vae_lib.core.run_folder import RunFolder
from vae_lib.pictures.snapshots import Snapshot, check_checkpoint_took_snapshots, load_snapshots
from vae_lib.pictures.viz import class_colour, image_grid, total_label

FRAME_SIZE = (1280, 448)  # pixels; both divisible by 16 so H.264 needs no padding


class FrameRenderer:
    """Draws Snapshots into RGB frames of FRAME_SIZE, reusing one figure."""

    def __init__(
        self,
        snapshots: Sequence[Snapshot],
        history_steps: Sequence[StepRecord],
        class_names: Sequence[str],
        likelihood: str = "gaussian",
    ) -> None:
        final = snapshots[-1]
        latent_dim = final.latent_means.shape[1]
        self.projection = LatentProjection.fit(final.latent_means.astype(np.float32))
        all_points = np.concatenate([self.projection(s.latent_means.astype(np.float32)) for s in snapshots])
        low, high = np.percentile(all_points, [0.5, 99.5], axis=0)
        margin = 0.05 * (high - low)
        self.figure = Figure(figsize=(FRAME_SIZE[0] / 100, FRAME_SIZE[1] / 100), dpi=100)
        FigureCanvasAgg(self.figure)
        scatter_axes, grid_axes, loss_axes = self.figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.15, 1, 1.25]})
        self.figure.subplots_adjust(left=0.05, right=0.985, bottom=0.12, top=0.86, wspace=0.28)

        colours = [class_colour(label) for label in final.labels.tolist()]
        self.scatter = scatter_axes.scatter(
            *all_points[: len(final.labels)].T, c=colours, s=4, alpha=0.75, linewidths=0
        )
        scatter_axes.set_xlim(low[0] - margin[0], high[0] + margin[0])
        scatter_axes.set_ylim(low[1] - margin[1], high[1] + margin[1])
        xlabel, ylabel = self.projection.axis_labels
        scatter_axes.set(
            xlabel=xlabel,
            ylabel=ylabel,
            title="latent means of test images"
            if latent_dim == 2
            else f"{latent_dim}-D latent means, fixed PCA projection",
        )
        present = sorted(set(final.labels.tolist()))
        handles = [Line2D([], [], marker="o", linestyle="", color=class_colour(c), markersize=5) for c in present]
        scatter_axes.legend(
            handles,
            [class_names[c] for c in present],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=7,
            frameon=False,
            handletextpad=0.1,
            borderaxespad=0.2,
        )

        limit = float(final.grid_values.max())
        dim_x, dim_y = final.grid_dims
        self.grid_image = grid_axes.imshow(
            image_grid(final.grid), cmap="gray", vmin=0, vmax=255, extent=grid_extent(len(final.grid_values), limit)
        )
        grid_axes.set(xlabel=dimension_label(dim_x), ylabel=dimension_label(dim_y))
        self.grid_axes, self.class_names = grid_axes, list(class_names)
        self.grid_title = "decoded latent grid" + ("" if latent_dim == 2 else " (other dims 0)")
        self._title_grid(final)

        steps = np.array([record.step for record in history_steps], dtype=float)
        self.history_steps = steps
        (self.train_line,) = loss_axes.plot([], [], color="tab:blue", label="train total")
        (self.test_line,) = loss_axes.plot([], [], color="tab:orange", label="test total")
        self.marker = loss_axes.axvline(0, color="0.3", linestyle=":", linewidth=1)
        self.train_values = np.array([record.train_total for record in history_steps])
        self.test_values = np.array([record.test_total for record in history_steps])
        last_step = max(snapshots[-1].step, int(steps.max()) if len(steps) else 1)
        loss_axes.set_xlim(0, last_step)
        values = np.concatenate([self.train_values, self.test_values])
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):  # every loss of the run in every frame: a log scale keeps the late ones apart
            loss_axes.set_yscale("log")
            loss_axes.set_ylim(values.min() / 1.05, values.max() * 1.05)
            loss_axes.yaxis.set_major_locator(FixedLocator(loss_ticks(values.min(), values.max())))
            loss_axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.10g}"))
            loss_axes.yaxis.set_minor_locator(NullLocator())
        loss_axes.set(xlabel="step", ylabel=total_label(likelihood), title="loss so far")
        loss_axes.legend(loc="upper right", fontsize=8)
        loss_axes.grid(alpha=0.3)
        self.title = self.figure.suptitle("")

    def _title_grid(self, snapshot: Snapshot) -> None:
        """Title the grid with the class a conditional model's snapshot decoded it as (a resumed run may change it)."""
        if snapshot.grid_class is None:
            self.grid_axes.set_title(self.grid_title)
            return
        names = self.class_names
        name = names[snapshot.grid_class] if snapshot.grid_class < len(names) else str(snapshot.grid_class)
        self.grid_axes.set_title(f"{self.grid_title}, as class {name}")

    def render(self, snapshot: Snapshot) -> np.ndarray:
        """Return the frame for one snapshot as H x W x 3 uint8."""
        self.scatter.set_offsets(self.projection(snapshot.latent_means.astype(np.float32)))
        self.grid_image.set_data(image_grid(snapshot.grid))
        self._title_grid(snapshot)
        shown = self.history_steps <= snapshot.step
        self.train_line.set_data(self.history_steps[shown], self.train_values[shown])
        self.test_line.set_data(self.history_steps[shown], self.test_values[shown])
        self.marker.set_xdata([snapshot.step, snapshot.step])
        losses = snapshot.losses
        numbers = (
            ""
            if np.isnan(losses["test_recon"])
            else f"   test recon {losses['test_recon']:.4f}   KL {losses['test_kl']:.2f}"
            f"   total {losses['test_total']:.4f}"
        )
        self.title.set_text(f"epoch {snapshot.epoch:.2f}   step {snapshot.step}{numbers}")
        self.figure.canvas.draw()
        return np.asarray(self.figure.canvas.buffer_rgba())[..., :3].copy()


def loss_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Return about `count` ticks spread evenly on a log scale from `low` to `high`, each rounded to the fewest
    significant digits (2 or more) that keep them apart: 0.073, 0.11, 0.16, ... or 88, 110, 130, ..."""
    # np.geomspace goes through log and exp, whose last bit differs between CPUs: geomspace(0.2, 0.2) gives
    # 0.20000000000000004 beside 0.2 on an AVX2 AMD EPYC. Ticks that agree to 12 digits are one tick.
    spread = sorted({float(f"{tick:.12g}") for tick in np.geomspace(low, high, count)})
    for digits in range(2, 12):
        ticks = sorted({float(f"{tick:.{digits}g}") for tick in spread})
        if len(ticks) == len(spread):
            return ticks
    return spread


def frames_of_run(run_dir: str | Path) -> tuple[list[Snapshot], FrameRenderer]:
    """Return a run's snapshots and a renderer set up with its history and class names."""
    snapshots = load_snapshots(run_dir)
    checkpoint = RunFolder(run_dir).checkpoint
    state = read_checkpoint(checkpoint) if checkpoint.exists() else None
    history_steps = history_of(state).steps if state is not None else []
    config = config_of(state) if state is not None else TrainConfig()
    if state is not None:
        check_checkpoint_took_snapshots(snapshots, config, checkpoint)
    dataset = DATASETS.get(config.dataset) if state is not None else None
    label_count = int(max(s.labels.max() for s in snapshots)) + 1
    class_names = list(dataset.class_names) if dataset is not None else [str(label) for label in range(label_count)]
    return snapshots, FrameRenderer(snapshots, history_steps, class_names, config.likelihood)


def write_mp4(frames: Iterator[np.ndarray], path: str | Path, fps: int = 12) -> Path:
    """Encode RGB frames as H.264 / yuv420p mp4 (plays in browsers and JupyterLab); return the path.

    The video is encoded into a temporary file that replaces `path` only when every frame is in, so a failure
    or a kill half-way never leaves a shorter video in place of a good one.
    """
    path = Path(path)
    with replaced_atomically(path) as temporary:
        writer = imageio_ffmpeg.write_frames(
            str(temporary),
            FRAME_SIZE,
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=7,
            output_params=["-f", "mp4", "-movflags", "+faststart"],  # -f: the temporary name has no .mp4
            ffmpeg_log_level="error",
            macro_block_size=16,
        )
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    return path


def mp4_to_gif(mp4_path: str | Path, gif_path: str | Path, width: int = 640, fps: int = 6) -> Path:
    """Convert an mp4 into a palette-optimised GIF (for READMEs) with ffmpeg, written as write_mp4 writes; return
    the GIF's path."""
    palette_filter = (  # eof_action=pass: a video shorter than one GIF frame still gives its frames, not none
        f"fps={fps}:eof_action=pass,scale={width}:-1:flags=lanczos,split[a][b];"
        "[a]palettegen=max_colors=128[p];[b][p]paletteuse=dither=bayer:bayer_scale=4"
    )
    gif_path = Path(gif_path)
    with replaced_atomically(gif_path) as temporary:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(mp4_path),
            "-vf",
            palette_filter,
            "-f",
            "gif",
            str(temporary),
        ]
        made = subprocess.run(command, capture_output=True, text=True)
        if made.returncode != 0:
            raise CheckpointError(
                f"ffmpeg could not make {gif_path} from {mp4_path} ({last_error_line(made.stderr)}); the GIF was left "
                "as it was: the mp4 "
                "is the video"
            )
    return gif_path


def make_run_video(run_dir: str | Path, fps: int = 12, gif: bool = False) -> dict[str, Path | float | int]:
    """Render a run's snapshots into run_dir/latent_evolution.mp4 (and .gif); return paths, frame count, seconds."""
    if not is_whole_number(fps, 1) or fps > MAX_FPS:
        raise ValueError(f"fps must be a whole number from 1 to {MAX_FPS} (frames a second), got {fps!r}")
    started = time.perf_counter()
    run_folder = RunFolder(run_dir)
    snapshots, renderer = frames_of_run(run_dir)
    mp4_path = write_mp4((renderer.render(snapshot) for snapshot in snapshots), run_folder.video, fps)
    result: dict[str, Path | float | int] = {"mp4": mp4_path, "frames": len(snapshots)}
    if gif:
        result["gif"] = mp4_to_gif(mp4_path, run_folder.gif)
    result["seconds"] = time.perf_counter() - started
    return result


# How to get a readable video in place of one that is not.
UNREADABLE_VIDEO = (
    "make it again with python -m vae_lib video RUN_FOLDER, or restore a shipped one with git checkout -- "
    "outputs/videos"
)


def video_info(path: str | Path) -> dict[str, object]:
    """Return codec, pixel format, size and the number of frames decoded back from a video file."""
    metadata, frames = _decoded(path)
    frame_count = sum(1 for _ in frames)
    probe = _probe(path)
    _refuse_cut_short(path, frame_count, probe)
    stream = next(line for line in probe.splitlines() if "Video:" in line)
    codec = stream.split("Video:")[1].split()[0].rstrip(",")  # "gif," for a GIF, whose codec has no profile
    pixel_format = stream.split("Video:")[1].split(",")[1].strip().split("(")[0]
    return {"codec": codec, "pixel_format": pixel_format, "size": tuple(metadata["size"]), "frames": frame_count}


def still_frames(path: str | Path, indices: Sequence[int]) -> list[tuple[int, np.ndarray]]:
    """Return the frames of a video at `indices` (negative ones count from the end) as (index, H x W x 3 uint8)."""
    metadata, decoded = _decoded(path)
    width, height = metadata["size"]
    frames = [np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3) for frame in decoded]
    _refuse_cut_short(path, len(frames), _probe(path))
    outside = [index for index in indices if not -len(frames) <= index < len(frames)]
    if outside:
        raise ValueError(
            f"{Path(path).name} has {len(frames)} frames (indices 0 to {len(frames) - 1}, or -1 for the last): "
            f"{', '.join(map(str, outside))} lie outside"
        )
    return [(index % len(frames), frames[index]) for index in indices]


def _decoded(path: str | Path) -> tuple[dict, Iterator[bytes]]:
    """Return a video's metadata and an iterator over its decoded frames, or raise a ValueError saying how to get a
    readable one for a file that is no video ffmpeg can open (damaged, empty, something else)."""
    _require_video_file(path)
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        metadata = reader.__next__()
    except (OSError, StopIteration, RuntimeError) as error:
        raise ValueError(
            f"{path} is not a video ffmpeg can read (empty, damaged or another kind of file): {UNREADABLE_VIDEO}"
        ) from error
    return metadata, reader


def _probe(path: str | Path) -> str:
    """Return what ffmpeg says of a video file's streams (its stderr without the banner)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)]
    return subprocess.run(command, capture_output=True, text=True).stderr


def _refuse_cut_short(path: str | Path, decoded: int, probe: str) -> None:
    """Raise a ValueError if far fewer frames decode than the video's header announces (its duration times its frame
    rate): a file cut short in a copy or a download, which ffmpeg reads as a shorter video without a word."""
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", probe)
    rate = re.search(r"Video:.*?, (\d+(?:\.\d+)?) fps", probe)
    if duration is None or rate is None:
        return
    hours, minutes, seconds = (float(part) for part in duration.groups())
    announced = round((hours * 3600 + minutes * 60 + seconds) * float(rate.group(1)))
    if decoded < 0.9 * announced - 1:
        raise ValueError(
            f"{path} decodes to {decoded} frames of the {announced} its header announces: the file was cut short "
            f"(copied or downloaded in part): {UNREADABLE_VIDEO}"
        )


def _require_video_file(path: str | Path) -> None:
    """Raise a FileNotFoundError saying how to get a video that is not there (ffmpeg's own error is a banner)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"no video at {path}: make it with python -m vae_lib video RUN_FOLDER (the shipped ones are "
            "outputs/videos/latent_2d.mp4 and latent_8d.mp4)"
        )
