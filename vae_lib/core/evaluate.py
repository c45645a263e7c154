"""Test metrics computed the seed's way (z sampled with a fixed seed, every image counted), and the
per-image quantities the notebooks look at: latent means, reconstructions, per-class error, per-dimension KL
and the active dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from vae_lib.core.data import ImageDataset, to_model_input
from vae_lib.core.model import VAE
from vae_lib.core.objective import DEFAULT_ALPHA, kl_per_dimension, vae_loss


@contextmanager
def inference(model: VAE) -> Iterator[torch.device]:
    """Run a block with the model in eval mode and without gradients; restore its mode after. Yields its device."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def _images_of(images: torch.Tensor | ImageDataset) -> torch.Tensor:
    return images.images if isinstance(images, ImageDataset) else images


def _check_batch_size(batch_size: int) -> None:
    """Raise a ValueError unless batch_size is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (images per batch), got {batch_size!r}")


def evaluate(
    model: VAE,
    images: torch.Tensor | ImageDataset,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Return {'total', 'recon', 'kl', 'recon_at_mean'} averaged over every image.

    total, recon and kl use z sampled from q(z|x) with noise from `seed` (the seed's way);
    recon_at_mean decodes z = mean, the deterministic reconstruction error.
    The global random state is left as it was, so evaluating never changes a training run.
    """
    _check_batch_size(batch_size)
    images = _images_of(images)
    count = int(images.shape[0])
    if count == 0:
        raise ValueError("evaluate needs at least one image")
    recon_sum = kl_sum = recon_at_mean_sum = 0.0
    with inference(model) as device:
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            for start in range(0, count, batch_size):
                batch = to_model_input(images[start : start + batch_size], model.channels).to(device)
                mean, log_var = model.encode(batch)
                reconstruction = model.decode(model.reparameterise(mean, log_var))
                _, recon, kl = vae_loss(batch, reconstruction, mean, log_var, alpha)
                recon_at_mean = 0.5 * torch.nn.functional.mse_loss(model.decode(mean), batch)
                recon_sum += recon.item() * len(batch)
                kl_sum += kl.item() * len(batch)
                recon_at_mean_sum += recon_at_mean.item() * len(batch)
    recon, kl = recon_sum / count, kl_sum / count
    return {"total": recon + alpha * kl, "recon": recon, "kl": kl, "recon_at_mean": recon_at_mean_sum / count}


def encode_means(model: VAE, images: torch.Tensor | ImageDataset, batch_size: int = 256) -> torch.Tensor:
    """Return the posterior means (N x latent_dim) of images, on the CPU."""
    _check_batch_size(batch_size)
    with inference(model) as device:
        return torch.cat(
            [
                model.encode(to_model_input(part, model.channels).to(device))[0].cpu()
                for part in _images_of(images).split(batch_size)
            ]
        )


def reconstruct(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """Return the deterministic reconstructions (z = mean) of images, N x C x 28 x 28 in [-1, 1], on the CPU."""
    with inference(model) as device:
        return model.decode(model.encode(to_model_input(images, model.channels).to(device))[0]).cpu()


def per_class_recon_error(model: VAE, dataset: ImageDataset, batch_size: int = 256) -> torch.Tensor:
    """Return the mean reconstruction error 0.5 * MSE (z = mean) of each class, one value per class."""
    _check_batch_size(batch_size)
    errors = torch.cat(
        [
            0.5 * (reconstruct(model, part) - to_model_input(part, model.channels)).pow(2).flatten(1).mean(dim=1)
            for part in dataset.images.split(batch_size)
        ]
    )
    class_count = len(dataset.class_names)
    sums = torch.zeros(class_count, dtype=torch.float64).index_add_(0, dataset.labels, errors.double())
    counts = torch.bincount(dataset.labels, minlength=class_count).double()
    return sums / counts.clamp(min=1)


def kl_by_dimension(model: VAE, images: torch.Tensor | ImageDataset, batch_size: int = 256) -> torch.Tensor:
    """Return each latent dimension's KL to the prior, averaged over images: near 0 means the dimension is unused."""
    _check_batch_size(batch_size)
    images = _images_of(images)
    total = torch.zeros(model.latent_dim, dtype=torch.float64)
    with inference(model) as device:
        for part in images.split(batch_size):
            mean, log_var = model.encode(to_model_input(part, model.channels).to(device))
            total += kl_per_dimension(mean, log_var).double().cpu() * len(part)
    return total / len(images)


def active_dimensions(latent_means: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Return one bool per latent dimension: True where its posterior mean varies over images by more than
    `threshold` (variance over the images, Burda et al. 2016's active units)."""
    return latent_means.double().var(dim=0) > threshold
