"""The objective in one place: the KL to the prior, the decoder's likelihood p(x|z) (its reconstruction term and
its log-likelihood in nats), and the loss that weighs the two. Training, evaluation and the likelihood bounds
all take them from here.

The likelihoods are the entries of `LIKELIHOODS`: `gaussian`, the reference implementation's 0.5 * MSE on images in
[-1, 1] (a Gaussian of fixed variance up to a constant and a scale: not in nats; its log-likelihood needs the
variance, likelihood.decoder_variance), and `bernoulli`, binary cross-entropy with logits on pixels in [0, 1], summed
over pixels (nats per image). A new likelihood is one more entry; without a `log_prob` it trains and is evaluated,
and log p(x) is refused for it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ALPHA = 0.001


@dataclass(frozen=True)
class Likelihood:
    """A decoder's likelihood: what its last layer outputs, how that output becomes an image in [-1, 1], the
    reconstruction term the loss minimises, per image and averaged over a batch, and log p(x | z) in nats.

    Each callable takes (images in [-1, 1], the decoder's output) but `head` (no arguments) and `to_images` (the
    output). `log_prob` also takes the decoder's variance, None unless `needs_variance`; a likelihood without one
    (None) has no log p(x) the bounds could estimate.
    """

    name: str
    recon_label: str  # how figures and tables name the reconstruction term
    units: str  # the term's units, where it has any ("nats per image" only where it is -log p(x | z))
    head: Callable[[], nn.Module]  # the decoder's last layer
    to_images: Callable[[torch.Tensor], torch.Tensor]  # the output as images in [-1, 1], what decode() returns
    per_image: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_mean: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    log_prob: Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor] | None = None
    needs_variance: bool = False  # log_prob reads a decoder variance (the Gaussian's, which alpha sets)
    binary: bool = False  # log_prob is a probability of black-and-white images alone (the Bernoulli's)


def _gaussian_per_image(images: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Return 0.5 * the mean squared error over each image's pixels."""
    return 0.5 * (output - images).pow(2).flatten(1).mean(dim=1)


def _gaussian_batch_mean(images: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Return 0.5 * the mean squared error over pixels and batch: the reference implementation's reconstruction term."""
    return 0.5 * F.mse_loss(output, images)


def _bernoulli_per_image(images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Return -log Bernoulli(x | sigmoid(logits)) summed over each image's pixels (nats), x = (images + 1) / 2."""
    targets = (images + 1) / 2  # [-1, 1] -> [0, 1]; binarised images are exactly 0 and 1
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(dim=1)


def _bernoulli_to_images(logits: torch.Tensor) -> torch.Tensor:
    """Return the decoder's mean image, 2 * sigmoid(logits) - 1, in [-1, 1]."""
    return torch.sigmoid(logits) * 2 - 1


def gaussian_log_likelihood(images: torch.Tensor, reconstructions: torch.Tensor, variance: float) -> torch.Tensor:
    """Return log N(images | reconstructions, variance I) in nats, one value per image."""
    pixels = images[0].numel()
    squared_error = (images - reconstructions).pow(2).flatten(1).sum(dim=1)
    return -0.5 * squared_error / variance - 0.5 * pixels * math.log(2 * math.pi * variance)


LIKELIHOODS = {
    "gaussian": Likelihood(
        "gaussian",
        "0.5 MSE",
        "",
        nn.Tanh,
        lambda output: output,
        _gaussian_per_image,
        _gaussian_batch_mean,
        gaussian_log_likelihood,
        needs_variance=True,
    ),
    "bernoulli": Likelihood(
        "bernoulli",
        "BCE",
        "nats per image",
        nn.Identity,
        _bernoulli_to_images,
        _bernoulli_per_image,
        lambda images, logits: _bernoulli_per_image(images, logits).mean(),
        lambda images, logits, variance: -_bernoulli_per_image(images, logits),
        binary=True,
    ),
}


def likelihood_named(name: str) -> Likelihood:
    """Return the likelihood called `name`, or a ValueError listing the ones there are."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}: choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[name]


def kl_per_dimension(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return KL(q(z|x) || N(0, I)) for each latent dimension, averaged over the batch."""
    return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).mean(dim=0)


def reconstruction_loss(images: torch.Tensor, output: torch.Tensor, likelihood: str = "gaussian") -> torch.Tensor:
    """Return the reconstruction term of `likelihood` averaged over the batch (decoder output against images)."""
    return likelihood_named(likelihood).batch_mean(images, output)


def reconstruction_per_image(images: torch.Tensor, output: torch.Tensor, likelihood: str = "gaussian") -> torch.Tensor:
    """Return the reconstruction term of `likelihood` for each image (N values)."""
    return likelihood_named(likelihood).per_image(images, output)


def vae_loss(
    images: torch.Tensor,
    reconstruction: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    likelihood: str = "gaussian",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, reconstruction, kl) with total = reconstruction + alpha * kl.

    reconstruction: the likelihood's term averaged over the batch (gaussian: 0.5 * mean squared error over
    pixels and batch; bernoulli: BCE with logits summed over pixels); `reconstruction` is the decoder's output
    (images for gaussian, logits for bernoulli).
    kl = -0.5 * sum over latent dims of (1 + log_var - mean^2 - exp(log_var)), averaged over the batch.
    """
    _check_loss_inputs(images, reconstruction, mean, log_var, alpha)
    reconstruction_term = reconstruction_loss(images, reconstruction, likelihood)
    kl = kl_per_dimension(mean, log_var).sum()
    return reconstruction_term + alpha * kl, reconstruction_term, kl


def check_log_likelihood_settings(likelihood: str, variance: float | None) -> None:
    """Raise a ValueError unless log p(x | z) of `likelihood` can be computed with `variance`: the likelihood gives
    a log_prob, and a variance > 0 where it needs one (the Gaussian's), None where it does not."""
    entry = likelihood_named(likelihood)
    if entry.log_prob is None:
        raise ValueError(
            f"the {likelihood} likelihood has no log-likelihood in nats (its entry in objective.LIKELIHOODS gives no "
            "log_prob), so log p(x) cannot be bounded for it: give it a log_prob(images, output, variance)"
        )
    if entry.needs_variance:
        if variance is None:
            raise ValueError(
                f"a {likelihood.capitalize()} decoder's log-likelihood needs its variance (likelihood.decoder_variance)"
            )
        if isinstance(variance, bool) or not (
            isinstance(variance, numbers.Real) and math.isfinite(variance) and variance > 0
        ):
            raise ValueError(
                f"the {likelihood.capitalize()} decoder's variance must be a number > 0 (and finite), got {variance!r}"
            )
    elif variance is not None:
        raise ValueError(f"a {likelihood} decoder has no variance: leave variance out (got {variance!r})")


def log_likelihood(
    images: torch.Tensor, output: torch.Tensor, likelihood: str, variance: float | None = None
) -> torch.Tensor:
    """Return log p(x | z) in nats, one value per image: a Gaussian needs its `variance`, a Bernoulli none."""
    check_log_likelihood_settings(likelihood, variance)
    return likelihood_named(likelihood).log_prob(images, output, variance)


def _check_loss_inputs(
    images: torch.Tensor, reconstruction: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, alpha: float
) -> None:
    """Raise a ValueError naming the problem if vae_loss's inputs would give a silently wrong loss (a TypeError for
    an alpha that is no number: text, a bool; a NumPy number or a one-element tensor, a KL warm-up's weight, is one)."""
    if isinstance(alpha, bool | str | bytes) or not (
        isinstance(alpha, numbers.Real) or (isinstance(alpha, torch.Tensor) and alpha.numel() == 1)
    ):
        raise TypeError(f"alpha, the KL term's weight, is a number, got {type(alpha).__name__} {alpha!r}")
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
