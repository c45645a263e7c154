"""Figures the notebooks show: image grids, latent scatter and manifold, reconstructions, metrics.

Every figure is a function a test can call; colours are colour-blind safe (tab10, viridis) and
axes are labelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
