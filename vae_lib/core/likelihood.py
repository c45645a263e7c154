"""The loss read as a likelihood: the KL weight as a decoder variance, and log p(x) in nats, bounded by the ELBO
and estimated by importance sampling (Burda, Grosse & Salakhutdinov 2016), which tightens as samples grow.

These are densities of continuous images in [-1, 1] under a Gaussian decoder: they do not compare with the
figures papers report for binarised MNIST (about 80-90 nats), which are probabilities of 0/1 pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from vae_lib.core.data import to_model_input
from vae_lib.core.evaluate import inference
from vae_lib.core.model import IMAGE_SIZE, VAE


def decoder_variance(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the Gaussian decoder variance s^2 under which the loss 0.5 mean((x - x')^2) + alpha KL is the
    negative ELBO divided by a constant: 0.5 sum((x - x')^2) / s^2 + KL with s^2 = pixels * alpha."""
    return pixels * alpha


def beta_of(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the weight beta on the KL that alpha amounts to for a unit-variance Gaussian decoder (pixels * alpha)."""
    return pixels * alpha


def gaussian_log_likelihood(images: torch.Tensor, reconstructions: torch.Tensor, variance: float) -> torch.Tensor:
    """Return log N(images | reconstructions, variance I) in nats, one value per image."""
    pixels = images[0].numel()
    squared_error = (images - reconstructions).pow(2).flatten(1).sum(dim=1)
    return -0.5 * squared_error / variance - 0.5 * pixels * math.log(2 * math.pi * variance)


def standard_normal_log_density(latents: torch.Tensor) -> torch.Tensor:
    """Return log N(latents | 0, I) summed over the last dimension."""
    return -0.5 * (latents.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


def posterior_log_density(latents: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return log q(latents | x) = log N(latents | mean, exp(log_var)) summed over the last dimension."""
    return -0.5 * ((latents - mean).pow(2) / log_var.exp() + log_var + math.log(2 * math.pi)).sum(dim=-1)


def importance_log_weights(
    model: VAE, images: torch.Tensor, samples: int, variance: float, seed: int = 0
) -> torch.Tensor:
    """Return log p(x | z) + log p(z) - log q(z | x) for `samples` draws z ~ q(z | x) per image (images x samples).

    Their mean is an estimate of the ELBO; their log-mean-exp, of log p(x) (an importance-sampled bound).
    """
    rows = []
    generator = torch.Generator().manual_seed(seed)
    with inference(model) as device:
        for image in to_model_input(images, model.channels):
            mean, log_var = (part.cpu() for part in model.encode(image[None].to(device)))
            noise = torch.randn(samples, model.latent_dim, generator=generator)
            latents = mean + noise * (0.5 * log_var).exp()
            decoded = model.decode(latents.to(device)).cpu()
            log_likelihood = gaussian_log_likelihood(image.expand_as(decoded), decoded, variance)
            rows.append(
                log_likelihood + standard_normal_log_density(latents) - posterior_log_density(latents, mean, log_var)
            )
    return torch.stack(rows)


def log_likelihood_bounds(log_weights: torch.Tensor, sample_counts: Sequence[int]) -> dict[int, float]:
    """Return, for each k, the mean importance-sampled bound log (1/k) sum_k w on log p(x), in nats per image.

    The samples of each image are split into groups of k and the bounds of the groups averaged, so every
    k uses all samples; k = 1 is the ELBO. The bound rises towards log p(x) as k grows.
    """
    images, samples = log_weights.shape
    bounds = {}
    for count in sample_counts:
        if samples % count:
            raise ValueError(f"{samples} samples per image do not split into groups of {count}")
        groups = log_weights.double().view(images, samples // count, count)
        bounds[count] = float((torch.logsumexp(groups, dim=2) - math.log(count)).mean())
    return bounds
