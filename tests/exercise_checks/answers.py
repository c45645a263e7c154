"""Reference answers to the exercises that several test files use, and the assertion that a check failed."""

import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as distribution_kl

from vae_lib.course.exercises import CheckResult


def assert_fails_with(result: CheckResult, *phrases: str) -> None:
    assert not result.passed, f"the check passed: {result.details}"
    for phrase in phrases:
        assert phrase in result.details, result.details


def reparameterise(mean, log_var):
    return mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)


def kl(mean, log_var):
    return -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1).mean()


def loss(images, reconstruction, mean, log_var, alpha):
    recon = 0.5 * F.mse_loss(reconstruction, images)
    kl_term = kl(mean, log_var)
    return recon + alpha * kl_term, recon, kl_term


def kl_of_distributions(mean, log_var):
    posterior = Normal(mean, log_var.mul(0.5).exp())
    return distribution_kl(posterior, Normal(torch.zeros_like(mean), 1.0)).sum(dim=1).mean()


def interpolate(model, start_image, end_image, steps):
    means, _ = model.encode(torch.stack([start_image, end_image]))
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * means[0] + weights * means[1])


def decoder_input(latents, labels, classes):
    return torch.cat([latents, F.one_hot(labels, classes).float()], dim=1)
