"""Test metrics computed the seed's way: z sampled (with a fixed seed), every image counted."""

from __future__ import annotations

import torch

from vae_lib.data import ImageDataset, to_model_input
from vae_lib.loss import DEFAULT_ALPHA, vae_loss
from vae_lib.model import VAE


@torch.no_grad()
def evaluate(
    model: VAE,
    images: torch.Tensor | ImageDataset,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Return {'total', 'recon', 'kl', 'recon_at_mean'} averaged over every image.

    total, recon and kl use z sampled from q(z|x) with noise from `seed` (the seed's way);
    recon_at_mean decodes z = mean, the deterministic reconstruction error.
    The global random state is left as it was, so evaluating never changes a training run.
    """
    if isinstance(images, ImageDataset):
        images = images.images
    count = int(images.shape[0])
    if count == 0:
        raise ValueError("evaluate needs at least one image")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    recon_sum = kl_sum = recon_at_mean_sum = 0.0
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
    model.train(was_training)
    recon, kl = recon_sum / count, kl_sum / count
    return {"total": recon + alpha * kl, "recon": recon, "kl": kl, "recon_at_mean": recon_at_mean_sum / count}
