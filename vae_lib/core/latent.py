"""The latent space's conventions, in one place: how it is projected onto the plane (and the axes named),
how a grid over two of its dimensions is laid out, and how traversals and interpolations are decoded.

Grid convention (every figure, snapshot and video uses it): columns run from -limit to +limit along the
first chosen dimension, rows from +limit (top) to -limit along the second, as on a y axis.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vae_lib.core.config import is_whole_number, real_number
from vae_lib.core.data import to_pixels
from vae_lib.core.evaluate import inference
from vae_lib.core.model import VAE


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

    @property
    def axis_labels(self) -> tuple[str, str]:
        """Return the names of the plane's two axes."""
        return latent_axis_labels(self.axes.shape[0])

    def __call__(self, latent_means: np.ndarray) -> np.ndarray:
        """Return N x 2 coordinates of N x latent_dim means."""
        return (latent_means - self.center) @ self.axes


def latent_axis_labels(latent_dim: int) -> tuple[str, str]:
    """Return the axis names of a latent scatter: z1 and z2 for a 2-D space, principal axes for more dimensions, z1
    and an axis of nothing for one (its points lie on a line at 0)."""
    if latent_dim == 1:
        return "$z_1$", "(a 1-D space: every point at 0)"
    return ("$z_1$", "$z_2$") if latent_dim == 2 else ("principal axis 1", "principal axis 2")


def dimension_label(dim: int) -> str:
    """Return the name of latent dimension `dim` (0-based) as figures write it."""
    return f"$z_{{{dim + 1}}}$"


def grid_latents(
    latent_dim: int, grid_size: int, limit: float, dims: tuple[int, int] = (0, 1), base: torch.Tensor | None = None
) -> torch.Tensor:
    """Return grid_size x grid_size x latent_dim latents on a grid over two dimensions (the module's convention).

    The other dimensions come from `base` (default 0).
    """
    if max(dims) >= latent_dim or min(dims) < 0:
        raise ValueError(f"grid dimensions {dims} do not exist in a {latent_dim}-D latent space")
    if dims[0] == dims[1]:
        raise ValueError(f"a grid varies two different dimensions, got {dims}: give two, e.g. (0, 1)")
    if not is_whole_number(grid_size, 2):
        raise ValueError(f"grid_size is the images per side of the grid, a whole number >= 2: got {grid_size!r}")
    reach = real_number(limit)
    if reach is None or not 0 < reach < math.inf:
        raise ValueError(f"limit is how far the grid reaches from 0 along each axis, a number > 0: got {limit!r}")
    values = torch.linspace(-reach, reach, grid_size)
    latents = (base.clone().float() if base is not None else torch.zeros(latent_dim)).repeat(grid_size, grid_size, 1)
    latents[..., dims[0]] = values.view(1, -1)
    latents[..., dims[1]] = values.flip(0).view(-1, 1)
    return latents


def grid_extent(grid_size: int, limit: float) -> tuple[float, float, float, float]:
    """Return the (left, right, bottom, top) latent values of a grid's tiled image (imshow's extent): its tiles are
    decoded at grid_size values from -limit to +limit, so the outer tiles' centres lie at +-limit and the image
    reaches half a tile beyond them."""
    half_tile = limit / (grid_size - 1)
    return (-limit - half_tile, limit + half_tile, -limit - half_tile, limit + half_tile)


def check_latent_size(model: VAE, latents: torch.Tensor) -> None:
    """Raise a ValueError unless `latents` (... x latent_dim) has the model's latent size in its last dimension."""
    if latents.dim() == 0 or latents.shape[-1] != model.latent_dim:
        size = "a number" if latents.dim() == 0 else f"latents of {latents.shape[-1]} numbers"
        raise ValueError(
            f"this model's latent space has {model.latent_dim} dimensions, got {size} (shape "
            f"{tuple(latents.shape)}): give each latent {model.latent_dim} numbers, or decode with the model they "
            "came from"
        )


def decode_latents(model: VAE, latents: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """Return uint8 images (... x 28 x 28) decoded from latents of any leading shape (... x latent_dim), each as the
    class `labels` gives it (one label per latent, that leading shape) for a model that needs labels."""
    latents = torch.as_tensor(latents)  # NumPy arrays and lists are taken too
    check_latent_size(model, latents)
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or infinite values, which decode to blank images: give finite latents")
    with inference(model) as device:
        flat_labels = None if labels is None else labels.reshape(-1).to(device)
        images = model.decode(latents.reshape(-1, model.latent_dim).float().to(device), flat_labels)
    return to_pixels(images).reshape(*latents.shape[:-1], *images.shape[-2:])


def decode_grid(
    model: VAE,
    grid_size: int = 20,
    limit: float = 2.5,
    dims: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Return grid_size x grid_size x 28 x 28 uint8 images decoded on a grid over two latent dimensions (the others
    at 0)."""
    return decode_latents(model, grid_latents(model.latent_dim, grid_size, limit, dims))


def traversal_images(model: VAE, base: torch.Tensor, dim: int, values: Sequence[float]) -> np.ndarray:
    """Return len(values) x 28 x 28 uint8 images decoded from `base` with dimension `dim` set to each value."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not 0 <= dim < model.latent_dim:
        raise ValueError(
            f"dimension {dim!r} does not exist in a {model.latent_dim}-D latent space (a whole number, 0 to "
            f"{model.latent_dim - 1})"
        )
    if len(values) == 0:
        raise ValueError("values is empty: give at least one value for the dimension to take")
    latents = torch.as_tensor(base).float().repeat(len(values), 1)
    latents[:, dim] = torch.tensor(list(values), dtype=torch.float32)
    return decode_latents(model, latents)


def interpolation_latents(start: torch.Tensor, end: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Return `steps` x latent_dim latents evenly spaced on the straight line from `start` to `end`, both included."""
    start, end = (torch.as_tensor(end_point).float() for end_point in (start, end))
    start, end = (point[0] if point.dim() == 2 and len(point) == 1 else point for point in (start, end))  # 1 x d rows
    if start.dim() != 1 or start.shape != end.shape:
        raise ValueError(
            f"start and end must be two latents of one size, each a row of latent_dim numbers, got shapes "
            f"{tuple(start.shape)} and {tuple(end.shape)}: take both from one model, e.g. means[0] and means[1]"
        )
    if not is_whole_number(steps, 2):
        raise ValueError(f"steps must be a whole number of at least 2 (both ends are included), got {steps!r}")
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return (1 - weights) * start + weights * end


def interpolation_images(model: VAE, start: torch.Tensor, end: torch.Tensor, steps: int = 10) -> np.ndarray:
    """Return `steps` x 28 x 28 uint8 images decoded along the straight line from latent `start` to `end`."""
    return decode_latents(model, interpolation_latents(start, end, steps))
