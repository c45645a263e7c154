"""The VAE loss exactly as the seed defines it: 0.5 * MSE plus alpha times the closed-form KL.

With images in [-1, 1] this is not an ELBO in nats; it is the seed's scale, kept so numbers compare.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_ALPHA = 0.001


def kl_per_dimension(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return KL(q(z|x) || N(0, I)) for each latent dimension, averaged over the batch."""
    return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).mean(dim=0)


def vae_loss(
    images: torch.Tensor,
    reconstruction: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, reconstruction, kl) with total = reconstruction + alpha * kl.

    reconstruction = 0.5 * mean squared error over pixels and batch;
    kl = -0.5 * sum over latent dims of (1 + log_var - mean^2 - exp(log_var)), averaged over the batch.
    """
    _check_loss_inputs(images, reconstruction, mean, log_var, alpha)
    reconstruction_loss = 0.5 * F.mse_loss(reconstruction, images)
    kl = kl_per_dimension(mean, log_var).sum()
    return reconstruction_loss + alpha * kl, reconstruction_loss, kl


def _check_loss_inputs(
    images: torch.Tensor, reconstruction: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, alpha: float
) -> None:
    """Raise a ValueError naming the problem if vae_loss's inputs would give a silently wrong loss."""
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha weights the KL term and must be a finite number >= 0, got {alpha}")
    if not (images.is_floating_point() and reconstruction.is_floating_point()):
        raise ValueError(
            f"images and reconstruction must be float tensors in [-1, 1], got {images.dtype} and "
            f"{reconstruction.dtype}: convert uint8 images with vae_lib.to_model_input first"
        )
    if images.shape != reconstruction.shape:
        raise ValueError(
            f"images {tuple(images.shape)} and reconstruction {tuple(reconstruction.shape)} must have the same "
            "shape (the loss compares them pixel by pixel; broadcasting would compare the wrong pixels)"
        )
    if mean.shape != log_var.shape or mean.dim() != 2 or len(mean) != len(images):
        raise ValueError(
            f"mean {tuple(mean.shape)} and log_var {tuple(log_var.shape)} must both be batch x latent_dim, "
            f"with the images' batch size {len(images)}"
        )
