"""The loss read as a likelihood: the KL weight as a decoder variance, and log p(x) in nats, bounded by the ELBO
and estimated by importance sampling (Burda, Grosse & Salakhutdinov 2016), which tightens as samples grow.

Under a Gaussian decoder these are densities of continuous images in [-1, 1]: they do not compare with the
figures papers report for binarised MNIST (about 80-90 nats), which a Bernoulli decoder gives: probabilities
of 0/1 pixels. The decoder's log-likelihood comes from vae_lib.core.objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from vae_lib.core.evaluate import Images, batches, inference, labelled
from vae_lib.core.model import IMAGE_SIZE, LatentModel, reparameterise
from vae_lib.core.objective import log_likelihood


def decoder_variance(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the Gaussian decoder variance s^2 under which the loss 0.5 mean((x - x')^2) + alpha KL is the
    negative ELBO divided by a constant: 0.5 sum((x - x')^2) / s^2 + KL with s^2 = pixels * alpha."""
    return pixels * alpha


def beta_of(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the weight beta on the KL that alpha amounts to for a unit-variance Gaussian decoder (pixels * alpha)."""
    return pixels * alpha


def standard_normal_log_density(latents: torch.Tensor) -> torch.Tensor:
    """Return log N(latents | 0, I) summed over the last dimension."""
    return -0.5 * (latents.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


def posterior_log_density(latents: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return log q(latents | x) = log N(latents | mean, exp(log_var)) summed over the last dimension."""
    return -0.5 * ((latents - mean).pow(2) / log_var.exp() + log_var + math.log(2 * math.pi)).sum(dim=-1)


def importance_log_weights(
    model: LatentModel,
    images: Images,
    samples: int,
    variance: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Return log p(x | z) + log p(z) - log q(z | x) for `samples` draws z ~ q(z | x) per image (images x samples).

    Their mean is an estimate of the ELBO; their log-mean-exp, of log p(x) (an importance-sampled bound).
    log p(x | z) is the model's likelihood's: a Gaussian decoder needs its `variance` (decoder_variance).
    `progress` shows a progress bar over the images.
    """
    rows = []
    generator = torch.Generator().manual_seed(seed)
    with inference(model) as device:
        for image, label in tqdm(
            batches(model, images, 1, device), total=len(labelled(images).images), disable=not progress
        ):
            mean, log_var = (part.cpu() for part in model.encode(image, label))
            noise = torch.randn(samples, model.latent_dim, generator=generator)
            latents = reparameterise(mean, log_var, noise)
            labels = None if label is None else label.expand(samples)
            output = model.decoder_output(latents.to(device), labels).cpu()
            log_likelihoods = log_likelihood(image.cpu().expand_as(output), output, model.likelihood, variance)
            rows.append(
                log_likelihoods + standard_normal_log_density(latents) - posterior_log_density(latents, mean, log_var)
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
