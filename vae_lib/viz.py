"""Figures the notebooks show: image grids, latent scatter and manifold, reconstructions, metrics.

Every figure is a function a test can call; colours are colour-blind safe (tab10, viridis) and
axes are labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from vae_lib.evaluate import inference, reconstruct
from vae_lib.model import VAE
from vae_lib.train import Trainer, TrainingHook, seconds_to_target

CLASS_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # matplotlib's tab10


def image_grid(images: np.ndarray, padding: int = 0) -> np.ndarray:
    """Tile rows x columns x H x W images into one (rows*H) x (columns*W) image."""
    rows, columns, height, width = images.shape
    if padding:
        padded = np.full((rows, columns, height + padding, width + padding), images.max(initial=0), dtype=images.dtype)
        padded[:, :, :height, :width] = images
        images, height, width = padded, height + padding, width + padding
    return images.transpose(0, 2, 1, 3).reshape(rows * height, columns * width)


@dataclass(frozen=True)
class LatentProjection:
    """A fixed linear map from the latent space to the plane: identity for 2-D, PCA axes otherwise."""

    center: np.ndarray  # latent_dim
    axes: np.ndarray  # latent_dim x 2

    @classmethod
    def fit(cls, latent_means: np.ndarray) -> LatentProjection:
        """Return the projection for these means: the identity for 2-D, their first two principal axes otherwise."""
        latent_dim = latent_means.shape[1]
        if latent_dim <= 2:
            return cls(np.zeros(latent_dim), np.eye(latent_dim, 2))
        center = latent_means.mean(axis=0)
        _, _, right_vectors = np.linalg.svd(latent_means - center, full_matrices=False)
        axes = right_vectors[:2].T
        # Fix each axis's sign (SVD may flip it) so the same means always give the same picture.
        axes = axes * np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
        return cls(center, axes)

    def __call__(self, latent_means: np.ndarray) -> np.ndarray:
        """Return N x 2 coordinates of N x latent_dim means."""
        return (latent_means - self.center) @ self.axes


def _pixels(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return N x 28 x 28 pixels in [0, 1] from uint8 images or model images in [-1, 1]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy() if images.dtype != torch.uint8 else images.numpy()
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    return images / 255.0 if images.dtype == np.uint8 else (np.clip(images, -1, 1) + 1) / 2


def show_images(images: torch.Tensor | np.ndarray, columns: int = 10, titles: Sequence[str] | None = None,
                title: str = "", size: float = 1.0) -> Figure:
    """Return a figure showing images (uint8 or [-1, 1]) in rows of `columns`, with optional per-image titles."""
    pixels = _pixels(images)
    rows = int(np.ceil(len(pixels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * (1.25 if titles else 1.0)),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(pixels):
            axis.imshow(pixels[index], cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                axis.set_title(titles[index], fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_latent_scatter(latent_means: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                        class_names: Sequence[str], projection: LatentProjection | None = None,
                        axis: plt.Axes | None = None, title: str | None = None) -> Figure:
    """Return a scatter of latent means coloured by class (a fixed PCA projection for more than 2 dimensions)."""
    means = np.asarray(latent_means, dtype=np.float32)
    projection = projection or LatentProjection.fit(means)
    points, labels = projection(means), np.asarray(labels)
    if axis is None:
        _, axis = plt.subplots(figsize=(6, 5.5))
    for index, name in enumerate(class_names):
        chosen = labels == index
        if chosen.any():
            axis.scatter(*points[chosen].T, s=3, alpha=0.6, color=CLASS_COLOURS[index % len(CLASS_COLOURS)], label=name)
    two_d = means.shape[1] == 2
    axis.set(xlabel="$z_1$" if two_d else "principal axis 1", ylabel="$z_2$" if two_d else "principal axis 2",
             title=title or ("latent means of test images" if two_d else f"{means.shape[1]}-D latent means (PCA projection)"))
    axis.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    axis.figure.tight_layout()
    return axis.figure


def decode_grid(model: VAE, grid_size: int = 20, limit: float = 2.5, dims: tuple[int, int] = (0, 1),
                base: torch.Tensor | None = None) -> np.ndarray:
    """Return a grid_size x grid_size x 28 x 28 array of images decoded on a grid over two latent dimensions.

    Rows go from +limit (top) to -limit, columns from -limit to +limit; other dimensions come from `base` (default 0).
    """
    values = torch.linspace(-limit, limit, grid_size)
    latents = (base.clone().float() if base is not None else torch.zeros(model.latent_dim)).repeat(grid_size, grid_size, 1)
    latents[..., dims[0]] = values.view(1, -1)
    latents[..., dims[1]] = values.flip(0).view(-1, 1)
    with inference(model) as device:
        images = model.decode(latents.view(-1, model.latent_dim).to(device)).cpu()
    return _pixels(images).reshape(grid_size, grid_size, 28, 28)


def plot_latent_manifold(model: VAE, grid_size: int = 20, limit: float = 2.5, dims: tuple[int, int] = (0, 1),
                         axis: plt.Axes | None = None) -> Figure:
    """Return the decoded latent manifold: images decoded on a grid over two latent dimensions (others 0)."""
    grid = decode_grid(model, grid_size, limit, dims)
    if axis is None:
        _, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(image_grid(grid), cmap="gray", vmin=0, vmax=1, extent=(-limit, limit, -limit, limit))
    axis.set(xlabel=f"$z_{{{dims[0] + 1}}}$", ylabel=f"$z_{{{dims[1] + 1}}}$",
             title="decoded latent grid" + ("" if model.latent_dim == 2 else " (other dimensions 0)"))
    axis.figure.tight_layout()
    return axis.figure


def plot_reconstructions(originals: torch.Tensor, reconstructions: dict[str, torch.Tensor], title: str = "") -> Figure:
    """Return a figure with the originals in the top row and one row per named set of reconstructions."""
    rows = {"original": originals, **reconstructions}
    columns = len(originals)
    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0), squeeze=False)
    for row, (name, images) in enumerate(rows.items()):
        pixels = _pixels(images)
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(pixels[column], cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_metrics(history: dict[str, list[dict]], title: str = "training metrics") -> Figure:
    """Return total, reconstruction and KL against epochs: train (step records) and test (each epoch)."""
    steps, epochs = history["steps"], history["epochs"]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, name, label in zip(axes, ("total", "recon", "kl"), ("total loss", "reconstruction (0.5 MSE)", "KL (nats)")):
        if steps:
            axis.plot([r["epoch"] for r in steps], [r[f"train_{name}"] for r in steps], color="tab:blue", alpha=0.7, label="train")
        if epochs:
            axis.plot([r["epoch"] for r in epochs], [r[f"test_{name}"] for r in epochs], "o-", color="tab:orange",
                      markersize=3, label="test (all 10,000 images)")
        axis.set(xlabel="epoch", ylabel=label, title=label)
        if name != "kl" and epochs:
            low = min(r[f"test_{name}"] for r in epochs)
            axis.set_ylim(low * 0.95, low * 1.6)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_time_to_quality(histories: dict[str, dict[str, list[dict]]], targets: dict[str, float]) -> Figure:
    """Return test reconstruction against wall-clock minutes for each run, with its target as a dashed line."""
    figure, axes = plt.subplots(1, len(histories), figsize=(6 * len(histories), 3.8), squeeze=False)
    for axis, (name, history) in zip(axes[0], histories.items()):
        minutes = [r["seconds"] / 60 for r in history["epochs"]]
        recon = [r["test_recon"] for r in history["epochs"]]
        axis.plot(minutes, recon, "o-", color="tab:blue", markersize=3, label="test reconstruction")
        axis.axhline(targets[name], color="tab:red", linestyle="--", label=f"seed's best {targets[name]}")
        reached = seconds_to_target(history, targets[name])
        if reached is not None:
            axis.axvline(reached / 60, color="0.4", linestyle=":", label=f"reached after {reached / 60:.1f} min")
        low = min(min(recon), targets[name])
        axis.set(xlabel="wall-clock minutes (training + test pass each epoch)", ylabel="test reconstruction (0.5 MSE)",
                 title=f"{name.upper()} model: time to quality", ylim=(low * 0.95, max(recon) * 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_kl_per_dimension(kl_values: torch.Tensor | np.ndarray, threshold: float = 0.1) -> Figure:
    """Return a bar chart of each latent dimension's KL; dimensions under `threshold` nats count as collapsed."""
    values = np.asarray(kl_values, dtype=float)
    figure, axis = plt.subplots(figsize=(1 + 0.6 * len(values), 3.2))
    colours = ["tab:blue" if value >= threshold else "0.7" for value in values]
    axis.bar(np.arange(1, len(values) + 1), values, color=colours)
    axis.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"collapsed below {threshold} nats")
    axis.set(xlabel="latent dimension", ylabel="KL to the prior (nats)", title="how much each dimension is used",
             xticks=np.arange(1, len(values) + 1))
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def traversal_images(model: VAE, base: torch.Tensor, dim: int, values: Sequence[float]) -> np.ndarray:
    """Return len(values) x 28 x 28 images decoded from `base` with dimension `dim` set to each value."""
    latents = base.float().repeat(len(values), 1)
    latents[:, dim] = torch.tensor(list(values), dtype=torch.float32)
    with inference(model) as device:
        images = model.decode(latents.to(device)).cpu()
    return _pixels(images)


def plot_traversals(model: VAE, base: torch.Tensor | None = None, limit: float = 2.5, steps: int = 9) -> Figure:
    """Return one row per latent dimension: that dimension swept from -limit to +limit, the others held at `base`."""
    base = base if base is not None else torch.zeros(model.latent_dim)
    values = np.linspace(-limit, limit, steps)
    rows = np.stack([traversal_images(model, base, dim, values) for dim in range(model.latent_dim)])
    figure, axis = plt.subplots(figsize=(steps * 0.75, model.latent_dim * 0.8))
    axis.imshow(image_grid(rows), cmap="gray", vmin=0, vmax=1)
    axis.set_xticks(np.arange(steps) * 28 + 14, [f"{v:+.1f}" for v in values], fontsize=8)
    axis.set_yticks(np.arange(model.latent_dim) * 28 + 14, [f"$z_{{{d + 1}}}$" for d in range(model.latent_dim)])
    axis.set(xlabel="value of the traversed dimension", title="latent traversals (other dimensions held)")
    figure.tight_layout()
    return figure


def plot_per_class_error(errors: dict[str, torch.Tensor | np.ndarray], class_names: Sequence[str]) -> Figure:
    """Return grouped bars: each model's mean reconstruction error for each class."""
    figure, axis = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(errors)
    positions = np.arange(len(class_names))
    for index, (name, values) in enumerate(errors.items()):
        axis.bar(positions + (index - (len(errors) - 1) / 2) * width, np.asarray(values, dtype=float), width,
                 color=CLASS_COLOURS[index % len(CLASS_COLOURS)], label=name)
    axis.set(xticks=positions, xlabel="class", ylabel="reconstruction error (0.5 MSE, z = mean)",
             title="reconstruction error per class")
    axis.set_xticklabels(class_names)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


class LiveTrainingPlot(TrainingHook):
    """Redraws loss curves and reconstructions of fixed test images in the notebook while training runs."""

    def __init__(self, images: torch.Tensor, every: int = 200) -> None:
        self.images, self.every = images, every
        self.figure = plt.figure(figsize=(12, 3.4))
        grid = self.figure.add_gridspec(2, 2, width_ratios=[1.2, 1.6])
        self.loss_axis = self.figure.add_subplot(grid[:, 0])
        self.original_axis = self.figure.add_subplot(grid[0, 1])
        self.reconstruction_axis = self.figure.add_subplot(grid[1, 1])
        plt.close(self.figure)  # shown through a display handle only
        self.handle = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open a live display in the cell that called fit()."""
        from IPython.display import display

        self.handle = display(self.figure, display_id=True)

    def draw(self, trainer: Trainer) -> None:
        """Redraw the figure for the trainer's current state."""
        steps = trainer.history["steps"]
        axis = self.loss_axis
        axis.clear()
        if steps:
            epochs = [r["epoch"] for r in steps]
            axis.plot(epochs, [r["train_recon"] for r in steps], color="tab:blue", label="train reconstruction")
            axis.plot(epochs, [r["test_recon"] for r in steps], color="tab:orange", label="test reconstruction")
            axis.legend(fontsize=8)
        axis.set(xlabel="epoch", ylabel="0.5 MSE", title=f"epoch {trainer.step / trainer.steps_per_epoch:.2f}, step {trainer.step}")
        axis.grid(alpha=0.3)
        originals = _pixels(self.images)
        reconstructions = _pixels(reconstruct(trainer.model, self.images))
        for image_axis, pixels, name in ((self.original_axis, originals, "test images"),
                                         (self.reconstruction_axis, reconstructions, "reconstructions")):
            image_axis.clear()
            image_axis.imshow(np.concatenate(list(pixels), axis=1), cmap="gray", vmin=0, vmax=1)
            image_axis.set_axis_off()
            image_axis.set_title(name, fontsize=9)
        if self.handle is not None:
            self.handle.update(self.figure)

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            self.draw(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.draw(trainer)
