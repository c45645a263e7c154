"""Figures the notebooks show: image grids, latent scatter and manifold, reconstructions, metrics.

Every figure is a function a test can call; colours are colour-blind safe (tab10, viridis) and
axes are labelled.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from vae_lib.core.conditional import (
    chance_agreement,
    decode_as_every_class,
    neighbour_class_agreement,
    rewrite_in_every_class,
)
from vae_lib.core.config import is_whole_number, real_number
from vae_lib.core.data import Batch, ImageDataset, to_pixels
from vae_lib.core.datasets import legend_title
from vae_lib.core.evaluate import ACTIVE_UNIT_THRESHOLD, encode_means, reconstruct
from vae_lib.core.history import History
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.latent import LatentProjection, decode_grid, dimension_label, grid_extent, traversal_images
from vae_lib.core.model import IMAGE_SIZE, VAE, ConditionalVAE, LatentModel
from vae_lib.core.objective import likelihood_named

if TYPE_CHECKING:  # only for annotations: pictures do not depend on the trainer
    from vae_lib.core.train import Trainer

CLASS_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]  # matplotlib's tab10
KL_LABEL = "KL (nats)"


def as_array(values: torch.Tensor | np.ndarray | Sequence, dtype: type = float) -> np.ndarray:
    """Return numbers to draw as a NumPy array of `dtype`: a tensor is detached from autograd, taken to the CPU and
    read in fp32 first (NumPy has no bf16), so a model's outputs can be drawn as they come."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        values = values.float() if values.is_floating_point() else values
        values = values.numpy()
    return np.asarray(values, dtype=dtype)


def listed(items: object, function: str, what: str) -> list:
    """Return the things a figure draws (a list, tuple, array, generator, a dict's values(), ...) as a list, or raise
    saying what to give: a TypeError for what holds none of them, a ValueError for none at all."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise TypeError(f"{function} draws {what}: give a list of them, got a {type(items).__name__}")
    items = list(items)
    if not items:
        raise ValueError(f"{function} draws {what}: give at least one, got none")
    return items


def named(items: object, function: str, what: str) -> dict:
    """Return the named things a figure draws ({name: thing}, any mapping: a dict, a torch ModuleDict) as a dict,
    or raise saying what to give."""
    if isinstance(items, str | bytes) or not callable(getattr(items, "items", None)):
        raise TypeError(f"{function} draws {what}, given as {{name: ...}}: got a {type(items).__name__}")
    items = dict(items.items())
    if not items:
        raise ValueError(f"{function} draws {what}: give at least one, got none")
    return items


def refuse_conditional(model: object, function: str, instead: str) -> None:
    """Raise a ValueError for a model conditioned on labels given to a figure of a plain VAE's latent space, which
    decodes a latent without a class, naming the figure that draws such a model (`instead`)."""
    if getattr(model, "needs_labels", False):
        raise ValueError(
            f"{function} decodes latents without a class, as a plain VAE does; this model is conditioned on labels, so "
            f"each latent draws a different image per class: draw it with {instead}"
        )


def recon_label(likelihood: str = "gaussian") -> str:
    """Return how figures name the reconstruction term of a likelihood: 'reconstruction (0.5 MSE)' for gaussian."""
    term = likelihood_named(likelihood)
    return f"reconstruction ({term.recon_label}{', ' + term.units if term.units else ''})"


def check_reconstruction_scale(values: Sequence[float], likelihood: str, what: str) -> None:
    """Raise a ValueError if reconstruction figures cannot be of `likelihood`: a 0.5 MSE of images and
    reconstructions in [-1, 1] (the gaussian decoder's tanh) is at most 0.5 * 2**2 = 2, so larger figures are of
    another likelihood (a Bernoulli decoder's nats), which a figure would otherwise label as 0.5 MSE."""
    largest = max((value for value in values if math.isfinite(value)), default=0.0)
    if likelihood == "gaussian" and largest > 2:
        raise ValueError(
            f"{what} reaches a reconstruction of {largest:.4g}, more than a 0.5 MSE of images in [-1, 1] can be (2): "
            "it is of a model of another likelihood: pass likelihood=model.likelihood (e.g. 'bernoulli'), and draw "
            "runs of different likelihoods in separate figures"
        )


def total_label(likelihood: str = "gaussian") -> str:
    """Return how figures name the total loss of a likelihood: 'total loss (0.5 MSE + alpha KL)' for gaussian."""
    return f"total loss ({likelihood_named(likelihood).recon_label} + alpha KL)"


def class_colour(index: int) -> str:
    """Return the colour of class `index` in every scatter, bar chart and video."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def draw_class_scatter(
    axis: plt.Axes, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], marker_size: float = 3
) -> list[Line2D]:
    """Draw 2-D points coloured by class on `axis`; return one legend handle per class present.

    The points are drawn in a fixed shuffled order, not class after class, so no class hides under another.
    """
    order = np.random.default_rng(0).permutation(len(points))
    colours = [class_colour(int(label)) for label in labels[order]]
    axis.scatter(*points[order].T, s=marker_size, alpha=0.6, c=colours, linewidths=0)
    present = sorted(set(np.asarray(labels).tolist()))
    return [
        Line2D([], [], marker="o", linestyle="", markersize=5, color=class_colour(index), label=class_names[index])
        for index in present
    ]


def image_grid(images: np.ndarray, padding: int = 0) -> np.ndarray:
    """Tile rows x columns x H x W images into one (rows*H) x (columns*W) image."""
    rows, columns, height, width = images.shape
    if padding:
        padded = np.full((rows, columns, height + padding, width + padding), images.max(initial=0), dtype=images.dtype)
        padded[:, :, :height, :width] = images
        images, height, width = padded, height + padding, width + padding
    return images.transpose(0, 2, 1, 3).reshape(rows * height, columns * width)


def show_images(
    images: torch.Tensor | np.ndarray,
    columns: int = 10,
    titles: Sequence[str] | None = None,
    title: str = "",
    size: float = 1.0,
) -> Figure:
    """Return a figure showing images (uint8 or [-1, 1]) in rows of `columns`, with optional per-image titles."""
    pixels = to_pixels(images)
    if pixels.ndim != 3 or len(pixels) == 0:
        raise ValueError(
            f"show_images takes a batch of one image or more, N x 28 x 28 (or N x 1 x 28 x 28), got shape "
            f"{tuple(np.shape(images))}: for one image pass image.unsqueeze(0), or image[None]"
        )
    if not is_whole_number(columns, 1):
        raise ValueError(f"columns is the images per row, a whole number >= 1: got {columns!r}")
    if titles is not None:  # a tensor or array of labels reads as its numbers
        titles = [str(text) for text in (titles.tolist() if isinstance(titles, torch.Tensor | np.ndarray) else titles)]
    if titles is not None and len(titles) != len(pixels):
        raise ValueError(f"titles needs one text per image: got {len(titles)} for {len(pixels)} images")
    rows = int(np.ceil(len(pixels) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * size, rows * size * (1.25 if titles else 1.0)), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(pixels):
            axis.imshow(pixels[index], cmap="gray", vmin=0, vmax=255)
            if titles is not None:
                axis.set_title(titles[index], fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_latent_scatter(
    latent_means: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    axis: plt.Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Return a scatter of latent means coloured by class (a fixed PCA projection for more than 2 dimensions)."""
    means, labels = as_array(latent_means, np.float32), as_array(labels, None)
    if means.ndim != 2 or labels.shape != means.shape[:1]:
        raise ValueError(
            f"plot_latent_scatter needs N x latent_dim means and one label for each, got means of shape "
            f"{means.shape} and {labels.shape} labels"
        )
    if not np.isfinite(means).all():
        rows = np.flatnonzero(~np.isfinite(means).all(axis=1))
        raise ValueError(
            f"{len(rows)} of the {len(means)} latent means are NaN or infinite (the first, row {rows[0]}), which a "
            "scatter would leave out without a word: a diverged model's? Draw those of a model that trains"
        )
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)  # False and True: classes 0 and 1
    if labels.dtype.kind == "f" and np.array_equal(labels, np.round(labels)):
        labels = labels.astype(np.int64)  # 3.0: a class index all the same
    if labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels are class indices, whole numbers from 0, got {labels.dtype} ones such as {labels[:3]}"
        )
    if len(labels) and not (labels.min() >= 0 and labels.max() < len(class_names)):
        raise ValueError(
            f"labels must index the {len(class_names)} class names (0 to {len(class_names) - 1}), got labels from "
            f"{labels.min()} to {labels.max()}"
        )
    projection = LatentProjection.fit(means)
    points = projection(means)
    if axis is None:
        _, axis = plt.subplots(figsize=(6, 5.5))
    handles = draw_class_scatter(axis, points, labels, class_names)
    axis.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    xlabel, ylabel = projection.axis_labels
    axis.set(
        xlabel=xlabel,
        ylabel=ylabel,
        title=title
        or (
            "latent means of test images"
            if means.shape[1] <= 2
            else f"{means.shape[1]}-D latent means (PCA projection)"
        ),
    )
    axis.figure.tight_layout()
    return axis.figure


def plot_latent_manifold(
    model: VAE, grid_size: int = 20, limit: float = 2.5, dims: tuple[int, int] = (0, 1), axis: plt.Axes | None = None
) -> Figure:
    """Return the decoded latent manifold: images decoded on a grid over two latent dimensions (others 0)."""
    refuse_conditional(model, "plot_latent_manifold", "plot_class_grid(model, latents, class_names)")
    grid = decode_grid(model, grid_size, limit, dims)
    if axis is None:
        _, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(image_grid(grid), cmap="gray", vmin=0, vmax=255, extent=grid_extent(grid_size, limit))
    axis.set(
        xlabel=dimension_label(dims[0]),
        ylabel=dimension_label(dims[1]),
        title="decoded latent grid" + ("" if model.latent_dim == 2 else " (other dimensions 0)"),
    )
    axis.figure.tight_layout()
    return axis.figure


def plot_reconstructions(
    originals: torch.Tensor, reconstructions: dict[str, torch.Tensor], title: str = "", first_row: str = "original"
) -> Figure:
    """Return a figure with the originals in the top row, labelled `first_row`, and one row per named set of
    reconstructions."""
    if not isinstance(reconstructions, Mapping):
        raise TypeError(
            f"reconstructions is a dict of named rows, e.g. {{'2-D': images}}, got a {type(reconstructions).__name__}"
        )
    if first_row in reconstructions:
        raise ValueError(
            f"a row of reconstructions is named {first_row!r}, the name of the originals' row, which it would replace: "
            f"give it another name, or the originals another first_row"
        )
    shape = tuple(np.shape(originals))
    if len(shape) not in (3, 4) or shape[0] == 0:
        if len(shape) in (3, 4):
            advice = "no image: give at least one"
        elif shape == (IMAGE_SIZE, IMAGE_SIZE):
            advice = "one image: pass image.unsqueeze(0)"
        elif len(shape) == 2 and shape[1] == IMAGE_SIZE * IMAGE_SIZE:
            advice = "flattened rows: pass images.view(-1, 1, 28, 28)"
        else:
            advice = "give the images as they come from the dataset or the model"
        raise ValueError(
            f"plot_reconstructions takes a batch of one original or more, N x 28 x 28 (or N x 1 x 28 x 28), got shape "
            f"{shape}: {advice}"
        )
    rows = {first_row: originals, **reconstructions}
    columns = len(originals)
    uneven = {name: len(images) for name, images in rows.items() if len(images) != columns}
    if uneven:
        raise ValueError(
            f"each row needs one image per original ({columns}): "
            + ", ".join(f"{name!r} has {count}" for name, count in uneven.items())
        )
    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0), squeeze=False)
    for row, (name, images) in enumerate(rows.items()):
        pixels = to_pixels(images)
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(pixels[column], cmap="gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _test_label(epochs: Sequence) -> str:
    """Return the legend of the per-epoch test figures: how many test images they cover, read from every record
    (a record without a count, of an earlier version, covers every test image)."""
    return textwrap.fill(f"test ({covered_test_images(epochs)})", 36)  # a legend no wider than its panel


def covered_test_images(epochs: Sequence) -> str:
    """Return which test images epoch records cover, from their test_images counts (None, in records of earlier
    versions: every test image): "10,000 test images", "the first 2,000 test images, the last epoch on 10,000" (a run
    that evaluates a first part after each epoch but its last), "every test image, from epoch 41 on 10,000" (a run of
    an earlier version continued)."""

    def images(count: int | None, alone: bool) -> str:
        if count is None:
            return "every test image" if alone else "all"
        return f"{count:,} test images" if alone else f"{count:,}"

    counts = [record.test_images for record in epochs]
    runs = [index for index in range(len(counts)) if index == 0 or counts[index] != counts[index - 1]]
    if len(runs) == 1:
        return images(counts[0], alone=True)
    first = counts[0]
    text = "every test image" if first is None else f"the first {first:,} test images"
    for start in runs[1:]:
        where = "the last epoch" if start == len(counts) - 1 else f"from epoch {epochs[start].epoch}"
        text += f", {where} on {images(counts[start], alone=False)}"
    return text


def plot_metrics(history: History, title: str = "training metrics", likelihood: str = "gaussian") -> Figure:
    """Return total, reconstruction and KL against epochs: train (step records) and test (each epoch)."""
    if not isinstance(history, History):
        raise TypeError(f"plot_metrics takes a run's History (trainer.history), got {type(history).__name__}")
    steps, epochs = history.steps, history.epochs
    recon = [record.train_recon for record in steps] + [record.test_recon for record in epochs]
    check_reconstruction_scale(recon, likelihood, "the history")
    spoilt = [record.epoch for record in epochs if not math.isfinite(record.test_total)]
    if spoilt:
        raise ValueError(
            f"the test figures of epoch {spoilt[0]} are NaN or infinite: the run diverged there; plot the history of "
            "a run that trains (a Trainer stops a diverged run and keeps its last good epoch)"
        )
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    labels = (total_label(likelihood), recon_label(likelihood), KL_LABEL)
    for axis, name, label in zip(axes, ("total", "recon", "kl"), labels):
        if steps:
            axis.plot(
                [r.epoch for r in steps],
                [getattr(r, f"train_{name}") for r in steps],
                color="tab:blue",
                alpha=0.7,
                label="train",
            )
        if epochs:
            axis.plot(
                [r.epoch for r in epochs],
                [getattr(r, f"test_{name}") for r in epochs],
                "o-",
                color="tab:orange",
                markersize=3,
                label=_test_label(epochs),
            )
        axis.set(xlabel="epoch", ylabel=label, title=label)
        if name != "kl" and epochs:  # the axis shows the end of the run, where the curves are close
            low = min(getattr(r, f"test_{name}") for r in epochs)
            shown = [getattr(r, f"train_{name}") for r in steps] + [getattr(r, f"test_{name}") for r in epochs]
            bottom = min([low, *(value for value in shown if math.isfinite(value))])  # the train curve ends below
            top = low * 1.6
            axis.set_ylim(bottom * 0.95, top)
            above = sum(value > top for value in shown)
            if above:  # said under the axis, where no legend or curve covers it
                axis.set_xlabel(
                    f"epoch\n({above} of {len(shown)} points {'lies' if above == 1 else 'lie'} above the axis)"
                )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_time_to_quality(
    histories: dict[str, History], targets: Mapping[str, tuple[float, str]], likelihood: str = "gaussian"
) -> Figure:
    """Return test reconstruction against wall-clock minutes for each run, with its target (if any) dashed:
    `targets` gives a run's (test reconstruction, what it is), e.g. vae_lib.course.shipped.QUALITY_TARGETS."""
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("plot_time_to_quality takes the runs to draw as {name: History}, at least one")
    for name, history in histories.items():
        if not isinstance(history, History) or not history.epochs:
            what = "no epoch records" if isinstance(history, History) else f"a {type(history).__name__}, no History"
            raise ValueError(f"the run {name!r} has {what}: give a History of one epoch or more")
        check_reconstruction_scale([r.test_recon for r in history.epochs], likelihood, f"the history of {name!r}")
    for name, target in targets.items():
        if not (isinstance(target, tuple | list) and len(target) == 2):
            raise ValueError(
                f"targets maps a run's name to (test reconstruction, what it is), e.g. {{'2d': (0.0732, 'the "
                f"reference's best')}}: got {name!r}: {target!r}"
            )
    figure, axes = plt.subplots(1, len(histories), figsize=(6 * len(histories), 3.8), squeeze=False)
    for axis, (name, history) in zip(axes[0], histories.items()):
        minutes = [r.seconds / 60 for r in history.epochs]
        recon = [r.test_recon for r in history.epochs]
        axis.plot(minutes, recon, "o-", color="tab:blue", markersize=3, label="test reconstruction")
        target, target_label = targets.get(name, (None, ""))
        if target is not None:
            axis.axhline(target, color="tab:red", linestyle="--", label=f"{target_label} {target}")
            reached = history.seconds_to_target(target)
            if reached is not None:
                axis.axvline(reached / 60, color="0.4", linestyle=":", label=f"reached after {reached / 60:.1f} min")
        low, high = (min(recon), max(recon)) if target is None else (min(*recon, target), max(*recon, target))
        axis.set(
            xlabel="wall-clock minutes (training + test pass each epoch)",
            ylabel=f"test {recon_label(likelihood)}",
            title=f"{name.upper()} model: time to quality",
            ylim=(low * 0.95, high * 1.02),
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_kl_per_dimension(kl_values: torch.Tensor | np.ndarray, threshold: float = 0.1) -> Figure:
    """Return a bar chart of each latent dimension's KL; dimensions under `threshold` nats count as collapsed."""
    values = as_array(kl_values)
    given, threshold = threshold, real_number(threshold)
    if threshold is None or not 0 <= threshold < math.inf:
        raise ValueError(f"threshold is the KL in nats below which a dimension counts as collapsed, got {given!r}")
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError(
            f"plot_kl_per_dimension takes one finite KL per latent dimension (kl_per_dimension's), got shape "
            f"{values.shape}"
            + ("" if values.ndim != 1 else f" holding {np.count_nonzero(~np.isfinite(values))} NaN or infinite")
        )
    figure, axis = plt.subplots(figsize=(1 + 0.6 * len(values), 3.2))
    colours = ["tab:blue" if value >= threshold else "0.7" for value in values]
    axis.bar(np.arange(1, len(values) + 1), values, color=colours)
    axis.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"collapsed below {threshold} nats")
    axis.set(
        xlabel="latent dimension",
        ylabel="KL to the prior (nats)",
        title="how much each dimension is used",
        xticks=np.arange(1, len(values) + 1),
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_traversals(model: VAE, base: torch.Tensor | None = None, limit: float = 2.5, steps: int = 9) -> Figure:
    """Return one row per latent dimension: that dimension swept from -limit to +limit, the others held at `base`."""
    refuse_conditional(model, "plot_traversals", "plot_class_grid(model, latents, class_names)")
    if not is_whole_number(steps, 2):
        raise ValueError(f"steps is the images per traversal, a whole number >= 2: got {steps!r}")
    base = base if base is not None else torch.zeros(model.latent_dim)
    values = np.linspace(-limit, limit, steps)
    rows = np.stack([traversal_images(model, base, dim, values) for dim in range(model.latent_dim)])
    figure, axis = plt.subplots(figsize=(steps * 0.75, model.latent_dim * 0.8))
    axis.imshow(image_grid(rows), cmap="gray", vmin=0, vmax=255)
    centres = IMAGE_SIZE // 2
    axis.set_xticks(np.arange(steps) * IMAGE_SIZE + centres, [f"{v:+.1f}" for v in values], fontsize=8)
    axis.set_yticks(
        np.arange(model.latent_dim) * IMAGE_SIZE + centres, [dimension_label(d) for d in range(model.latent_dim)]
    )
    axis.set(xlabel="value of the traversed dimension", title="latent traversals (other dimensions held)")
    figure.tight_layout()
    return figure


def plot_per_class_error(
    errors: dict[str, torch.Tensor | np.ndarray], class_names: Sequence[str], likelihood: str = "gaussian"
) -> Figure:
    """Return grouped bars: each model's mean reconstruction error for each class."""
    errors = named(errors, "plot_per_class_error", "each model's error per class")
    errors = {name: as_array(values) for name, values in errors.items()}
    uneven = {name: values.shape for name, values in errors.items() if values.shape != (len(class_names),)}
    if uneven:
        raise ValueError(
            f"each model needs one error per class ({len(class_names)}, per_class_recon_error's): "
            + ", ".join(f"{name!r} has shape {shape}" for name, shape in uneven.items())
        )
    figure, axis = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(errors)
    positions = np.arange(len(class_names))
    for index, (name, values) in enumerate(errors.items()):
        axis.bar(
            positions + (index - (len(errors) - 1) / 2) * width,
            values,
            width,
            color=class_colour(index),
            label=name,
        )
    axis.set(
        xticks=positions,
        xlabel="class",
        ylabel=f"{recon_label(likelihood)}, z = mean",
        title="reconstruction error per class",
    )
    axis.set_xticklabels(class_names)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def show_video_frames(frames: Sequence[tuple[int, np.ndarray]], frame_count: int, title: str) -> Figure:
    """Return a figure of video frames one above the other, each captioned with its place in the video: `frames`
    are still_frames()'s (index, image) pairs of a video of `frame_count` frames (video_info()'s 'frames')."""
    if not frames or not all(isinstance(frame, tuple) and len(frame) == 2 for frame in frames):
        raise ValueError("show_video_frames takes still_frames(path, indices)'s (index, image) pairs, at least one")
    beyond = [index for index, _ in frames if not 0 <= index < frame_count]
    if beyond:
        raise ValueError(
            f"frame {beyond[0] + 1} is not among the video's {frame_count} frames: pass the video's own frame count, "
            "video_info(path)['frames']"
        )
    height, width = frames[0][1].shape[:2]
    figure, axes = plt.subplots(len(frames), 1, figsize=(10, 10 * height / width * len(frames) * 1.08), squeeze=False)
    for axis, (index, frame) in zip(axes[:, 0], frames):
        axis.imshow(frame)
        axis.set_axis_off()
        axis.set_title(f"frame {index + 1} of {frame_count}", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


# The most test images a live plot takes as a dataset: one given the whole test set would draw them all in a row.
LIVE_PLOT_MAX_IMAGES = 32


class LiveTrainingPlot(TrainingHook):
    """Redraws loss curves and reconstructions of fixed test images in the notebook while training runs: `images` a
    tensor of a few (test_data.images[:8]), or, for a model conditioned on labels, an ImageDataset or Batch of a few
    with their labels (test_data.subset(8)). The first drawing, when fit() starts, checks them against the model."""

    def __init__(self, images: torch.Tensor | ImageDataset | Batch, every: int = 200) -> None:
        pixels = images.images if isinstance(images, ImageDataset | Batch) else images
        if not isinstance(pixels, torch.Tensor) or pixels.dim() < 3 or len(pixels) == 0:
            given = (
                f"{type(images).__name__} of shape {tuple(pixels.shape)}"
                if isinstance(pixels, torch.Tensor)
                else type(images).__name__
            )
            raise TypeError(
                "LiveTrainingPlot takes a few test images to reconstruct, a tensor such as test_data.images[:8] (or, "
                f"for a model conditioned on labels, test_data.subset(8)), got {given}"
            )
        if isinstance(images, ImageDataset | Batch) and len(pixels) > LIVE_PLOT_MAX_IMAGES:
            raise ValueError(
                f"LiveTrainingPlot draws its images in one row: give it a few, test_data.subset(8), not "
                f"{len(pixels):,} (at most {LIVE_PLOT_MAX_IMAGES} as a dataset)"
            )
        if not is_whole_number(every, 1):
            raise ValueError(f"every is how many steps between redraws, a whole number >= 1: got {every!r}")
        self.images, self.pixels, self.every = images, pixels, every  # pixels: the images alone, to draw
        self.figure = plt.figure(figsize=(12, 3.4))
        grid = self.figure.add_gridspec(2, 2, width_ratios=[1.2, 1.6])
        self.loss_axis = self.figure.add_subplot(grid[:, 0])
        self.original_axis = self.figure.add_subplot(grid[0, 1])
        self.reconstruction_axis = self.figure.add_subplot(grid[1, 1])
        plt.close(self.figure)  # shown through a display handle only
        self.handle = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Draw the model as it starts, which checks the images against it before any step (a conditional model
        without their labels, images of another shape), and open a live display in the cell that called fit()."""
        from IPython.display import display

        self.draw(trainer)
        self.handle = display(self.figure, display_id=True)

    def draw(self, trainer: Trainer) -> None:
        """Redraw the figure for the trainer's current state."""
        steps = trainer.history.steps
        axis = self.loss_axis
        axis.clear()
        if steps:
            epochs = [r.epoch for r in steps]
            axis.plot(epochs, [r.train_recon for r in steps], color="tab:blue", label="train")
            axis.plot(epochs, [r.test_recon for r in steps], color="tab:orange", label="test")
            axis.legend(fontsize=8)
        axis.set(
            xlabel="epoch",
            ylabel=recon_label(trainer.model.likelihood),
            title=f"epoch {trainer.step / trainer.steps_per_epoch:.2f}, step {trainer.step}",
        )
        axis.grid(alpha=0.3)
        originals = to_pixels(self.pixels)
        reconstructions = to_pixels(reconstruct(trainer.evaluated_model, self.images))
        for image_axis, pixels, name in (
            (self.original_axis, originals, "test images"),
            (self.reconstruction_axis, reconstructions, "reconstructions"),
        ):
            image_axis.clear()
            image_axis.imshow(np.concatenate(list(pixels), axis=1), cmap="gray", vmin=0, vmax=255)
            image_axis.set_axis_off()
            image_axis.set_title(name, fontsize=9)
        if self.handle is not None:
            self.handle.update(self.figure)

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            self.draw(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.draw(trainer)


def weight_colours(alphas: Sequence[float]) -> dict[float, tuple]:
    """Return a viridis colour for each KL weight, from the smallest (dark) to the largest (yellow)."""
    ordered = sorted(alphas)
    return {alpha: plt.cm.viridis(index / max(len(ordered) - 1, 1)) for index, alpha in enumerate(ordered)}


def plot_rate_distortion(points: Sequence) -> Figure:
    """Return test distortion against rate (KL in nats), one point per KL weight and a line per latent size.

    `points` are sweep.SweepPoint-like: latent_dim, alpha, test_recon, test_kl.
    """
    points = listed(points, "plot_rate_distortion", "sweep points (load_sweep())")
    figure, axis = plt.subplots(figsize=(7.5, 4.6))
    markers = "osD^v"
    for index, latent_dim in enumerate(sorted({point.latent_dim for point in points})):
        chosen = sorted((point for point in points if point.latent_dim == latent_dim), key=lambda point: point.alpha)
        rates, distortions = [point.test_kl for point in chosen], [point.test_recon for point in chosen]
        axis.plot(
            rates,
            distortions,
            marker=markers[index % len(markers)],
            color=class_colour(index),
            label=f"{latent_dim}-D latent space",
        )
        for point in chosen:
            axis.annotate(
                f"α={point.alpha:g}",
                (point.test_kl, point.test_recon),
                textcoords="offset points",
                xytext=(4, 5),
                fontsize=7,
            )
    axis.set_xscale("symlog", linthresh=1)
    axis.set(
        xlabel="rate: test KL(q(z|x) ‖ p(z)), nats (symmetric log scale)",
        ylabel=f"distortion: test {recon_label(points[0].model.likelihood)}",
        title="rate against distortion as the KL weight alpha varies",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_sweep_training(points: Sequence) -> Figure:
    """Return each sweep point's test reconstruction after every epoch, a panel per latent size, a line per weight.

    `points` are sweep.SweepPoint-like: latent_dim, alpha, history. The records of the epochs before the last cover
    the run's first epoch_test_images test images (a line); the last epoch's covers every test image (a marker).
    """
    points = listed(points, "plot_sweep_training", "sweep points (load_sweep())")
    latent_dims = sorted({point.latent_dim for point in points})
    figure, axes = plt.subplots(1, len(latent_dims), figsize=(6.2 * len(latent_dims), 4.2), squeeze=False)
    for axis, latent_dim in zip(axes[0], latent_dims, strict=True):
        chosen = sorted((point for point in points if point.latent_dim == latent_dim), key=lambda point: point.alpha)
        for index, point in enumerate(chosen):
            *records, last = point.history.epochs
            colour = class_colour(index)
            axis.plot(
                [r.epoch for r in records], [r.test_recon for r in records], color=colour, label=f"α={point.alpha:g}"
            )
            axis.plot([last.epoch], [last.test_recon], marker="o", color=colour)
        axis.set_yscale("log")
        axis.set(
            xlabel="epoch",
            ylabel=f"test {recon_label(chosen[0].model.likelihood)} (log scale)",
            title=f"{latent_dim}-D, on {covered_test_images(chosen[0].history.epochs)} (the dot: the last epoch)",
        )
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_samples_and_scatter(
    points: Sequence,
    test_data: ImageDataset,
    sample_rows: int = 2,
    sample_columns: int = 8,
    scatter_images: int = 2000,
    seed: int = 0,
) -> Figure:
    """Return, for each point (a row), images decoded from prior samples beside the test images' latent means."""
    figure, axes = plt.subplots(
        len(points), 2, figsize=(10, 2.6 * len(points)), squeeze=False, gridspec_kw={"width_ratios": [1.6, 1]}
    )
    labels = test_data.labels[:scatter_images].numpy()
    for (sample_axis, scatter_axis), point in zip(axes, points):
        samples = point.model.sample(sample_rows * sample_columns, generator=torch.Generator().manual_seed(seed))
        grid = to_pixels(samples).reshape(sample_rows, sample_columns, IMAGE_SIZE, IMAGE_SIZE)
        sample_axis.imshow(image_grid(grid, padding=2), cmap="gray", vmin=0, vmax=255)
        sample_axis.set_axis_off()
        sample_axis.set_title(f"α = {point.alpha:g}: decoded from z ~ N(0, I)", fontsize=9)
        means = encode_means(point.model, test_data.images[:scatter_images]).numpy()
        projection = LatentProjection.fit(means)
        handles = draw_class_scatter(scatter_axis, projection(means), labels, test_data.class_names)
        if point.model.latent_dim == 2:  # where the prior puts 86 % of its samples: inside radius 2
            prior = plt.Circle((0, 0), 2, fill=False, linestyle="--", color="0.2", label="|z| = 2 (prior)")
            handles.append(scatter_axis.add_patch(prior))
        scatter_axis.set_aspect("equal", adjustable="datalim")
        xlabel, ylabel = projection.axis_labels
        scatter_axis.set(xlabel=xlabel, ylabel=ylabel, title=f"α = {point.alpha:g}: latent means of test images")
        scatter_axis.title.set_fontsize(9)
    figure.legend(handles=handles, fontsize=8, loc="center right", title=legend_title(test_data), frameon=False)
    figure.tight_layout(rect=(0, 0, 0.87, 1))
    return figure


def plot_kl_per_dimension_by_weight(points: Sequence) -> Figure:
    """Return grouped bars of each latent dimension's KL (nats) for every KL weight, with its active units (counted
    by active_dimensions at its default threshold, as load_sweep counts them)."""
    points = listed(points, "plot_kl_per_dimension_by_weight", "sweep points of one latent size")
    sizes = sorted({point.kl_per_dimension.numel() for point in points})
    if len(sizes) > 1:
        raise ValueError(
            f"plot_kl_per_dimension_by_weight draws points of one latent size, got sizes {sizes}: give the points of "
            "one, [point for point in points if point.latent_dim == 8]"
        )
    colours = weight_colours([point.alpha for point in points])
    latent_dim = points[0].kl_per_dimension.numel()
    width = 0.8 / len(points)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for index, point in enumerate(sorted(points, key=lambda point: point.alpha)):
        positions = np.arange(1, latent_dim + 1) + (index - (len(points) - 1) / 2) * width
        axis.bar(
            positions,
            point.kl_per_dimension.numpy(),
            width,
            color=colours[point.alpha],
            label=f"α = {point.alpha:g}: {point.active_units} of {latent_dim} active",
        )
    axis.set_yscale("symlog", linthresh=0.01)
    axis.set(
        xlabel="latent dimension",
        ylabel="KL to the prior, nats (symmetric log scale)",
        xticks=np.arange(1, latent_dim + 1),
        title=f"{latent_dim}-D models: KL of each dimension (active: variance of its mean > {ACTIVE_UNIT_THRESHOLD})",
    )
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def plot_log_likelihood_bounds(bounds: dict[str, dict[int, float]]) -> Figure:
    """Return the importance-sampled bound on log p(x) against the number of samples k, one line per model."""
    example = "e.g. {'Bernoulli VAE': {1: -86.9, 5000: -85.3}}"
    bounds = named(bounds, "plot_log_likelihood_bounds", f"one line per model of {{samples k: bound}}, {example}")
    for name, by_count in bounds.items():
        if not callable(getattr(by_count, "items", None)):
            raise TypeError(
                f"the bounds of {name!r} are a {type(by_count).__name__}: give them as {{samples k: bound}} "
                "(log_likelihood_bounds' dict), so the line knows each bound's k"
            )
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    for index, (name, by_count) in enumerate(bounds.items()):
        counts = sorted(by_count)
        axis.plot(counts, [by_count[count] for count in counts], "o-", color=class_colour(index), label=name)
    axis.set_xscale("log")
    axis.set(
        xlabel="importance samples k per image (k = 1: the ELBO)",
        ylabel="bound on log p(x), nats per image",
        title="the bound tightens as k grows",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_negative_log_likelihoods(
    nll: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], references: Mapping[str, float]
) -> Figure:
    """Return the per-image negative log-likelihoods (nats) as a histogram, with their mean and `references`
    (name: nats) marked, beside each class's mean. `nll` holds one number per test image (NumPy or torch), in the
    order of `labels`."""
    nll, labels = torch.as_tensor(nll).detach().float().cpu(), torch.as_tensor(labels).cpu()
    if nll.dim() != 1:
        advice = " (a bounds matrix: pass one column, the most samples' -bounds[:, -1])" if nll.dim() == 2 else ""
        raise ValueError(f"nll holds one number per test image, got shape {tuple(nll.shape)}{advice}")
    if len(nll) != len(labels) or len(nll) == 0:
        raise ValueError(
            f"nll and labels go together, one of each per test image: got {len(nll)} and {len(labels)} (the labels "
            "of the images bounded, test_data.labels[:count])"
        )
    if not torch.isfinite(nll).all():
        raise ValueError(
            f"{int((~torch.isfinite(nll)).sum())} of the {len(nll)} negative log-likelihoods are not finite (first "
            f"at image {int((~torch.isfinite(nll)).nonzero()[0])}): bound those images again"
        )
    figure, (spread, by_class) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    spread.hist(nll.numpy(), bins=80, color="0.6")
    spread.axvline(float(nll.mean()), color="black", label=f"this model's mean, {float(nll.mean()):.2f}")
    for index, (name, nats) in enumerate(references.items()):
        spread.axvline(nats, color=class_colour(index), linestyle="--", label=f"{name}, {nats:.2f}")
    spread.set(xlabel="negative log-likelihood of one test image, nats", ylabel="test images")
    spread.set_title("one bound per test image", fontsize=10)
    spread.set_ylim(top=spread.get_ylim()[1] * 1.45)  # room above the bars for the legend
    spread.legend(fontsize=8, loc="upper right")
    means = [float(nll[labels == index].mean()) for index in range(len(class_names))]
    by_class.bar(range(len(class_names)), means, color=[class_colour(index) for index in range(len(class_names))])
    by_class.set_xticks(range(len(class_names)), class_names)
    by_class.set(xlabel="class", ylabel="mean negative log-likelihood, nats")
    by_class.set_title("by class: a 1 has little ink to explain", fontsize=10)
    figure.tight_layout()
    return figure


def plot_latent_space_comparison(
    models: Mapping[str, LatentModel], test_data: ImageDataset, scatter_images: int = 2000, neighbours: int = 10
) -> Figure:
    """Return one scatter per model of the test images' latent means coloured by class, each titled with how often
    an image's nearest neighbours in that space share its class (a conditional model's need not keep the class)."""
    models = named(models, "plot_latent_space_comparison", "one scatter per model")
    subset = test_data.subset(min(scatter_images, len(test_data)))
    labels = subset.labels
    figure, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 5), squeeze=False)
    for axis, (name, model) in zip(axes[0], models.items()):
        means = encode_means(model, subset)
        agreement = neighbour_class_agreement(means, labels, neighbours)
        projection = LatentProjection.fit(means.numpy())
        handles = draw_class_scatter(axis, projection(means.numpy()), labels.numpy(), subset.class_names)
        xlabel, ylabel = projection.axis_labels
        title = f"{name}\n{agreement:.0%} of {neighbours} nearest neighbours share the class"
        axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
        axis.set_aspect("equal", adjustable="datalim")
    figure.legend(handles=handles, fontsize=8, loc="center right", title=legend_title(subset), frameon=False)
    figure.suptitle(
        f"latent means of {len(subset)} test images; neighbours picked at random would agree "
        f"{chance_agreement(labels):.0%} of the time"
    )
    figure.tight_layout(rect=(0, 0, 0.9, 1))
    return figure


def plot_every_class(
    images: np.ndarray,
    class_names: Sequence[str],
    row_labels: Sequence[str],
    originals: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """Return rows x classes images (rows x K x 28 x 28 uint8), the columns titled with the class names and each row
    labelled; `originals` (rows x 28 x 28), when given, fill a first column of their own."""
    rows, classes = images.shape[:2]
    if len(class_names) != classes or len(row_labels) != rows:
        raise ValueError(
            f"the figure has {classes} classes in {rows} rows: give one class name per class (got {len(class_names)}: "
            f"the dataset's class_names) and one label per row (got {len(row_labels)})"
        )
    columns = classes + (originals is not None)
    figure, axes = plt.subplots(rows, columns, figsize=(0.8 * columns + 1.4, 0.85 * rows + 0.6), squeeze=False)
    for row in range(rows):
        shown = ([originals[row]] if originals is not None else []) + list(images[row])
        for column, pixels in enumerate(shown):
            axis = axes[row, column]
            axis.imshow(pixels, cmap="gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(row_labels[row], rotation=0, ha="right", va="center", fontsize=8)
    titles = (["original"] if originals is not None else []) + [str(name) for name in class_names]
    for axis, name in zip(axes[0], titles):
        axis.set_title(name, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_class_grid(model: ConditionalVAE, latents: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """Return the grid of z x label: each latent (a row) decoded as every class (the columns)."""
    row_labels = [f"z = ({', '.join(f'{value:+.1f}' for value in latent)})" for latent in latents.tolist()]
    return plot_every_class(
        decode_as_every_class(model, latents),
        class_names,
        row_labels,
        title="one z per row, decoded with each label: the style stays, the class changes",
    )


def plot_rewrites(model: ConditionalVAE, images: ImageDataset | Batch, class_names: Sequence[str]) -> Figure:
    """Return labelled images (left) rewritten in every class: each encoded with its own label, its latent mean
    decoded with each label."""
    if isinstance(images, tuple) and len(images) == 2:
        images = Batch(*images)  # (images, labels)
    if not (hasattr(images, "images") and hasattr(images, "labels")):
        raise TypeError(
            f"plot_rewrites takes images with their labels, test_data.subset(6) or Batch(images, labels), got "
            f"{type(images).__name__}"
        )
    batch = Batch(images.images, images.labels)
    means, rewrites = rewrite_in_every_class(model, batch)
    row_labels = [
        f"{class_names[int(label)]}: z = ({', '.join(f'{value:+.1f}' for value in mean)})"
        for label, mean in zip(batch.labels.tolist(), means.tolist())
    ]
    return plot_every_class(
        rewrites,
        class_names,
        row_labels,
        originals=to_pixels(batch.images),
        title="each image encoded with its own label, then decoded with every label",
    )
