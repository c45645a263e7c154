"""What the latent space of a conditional model holds: one z decoded as every class, an image rewritten in every class
(encoded with its own label, decoded with each), how much of the class a latent space keeps, and a class guessed
from an image by the conditional model's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vae_lib.core.data import to_model_input
from vae_lib.core.evaluate import Images, encode_means, inference
from vae_lib.core.latent import check_latent_size, decode_latents
from vae_lib.core.model import ConditionalVAE
from vae_lib.core.objective import DEFAULT_ALPHA, kl_per_dimension, reconstruction_per_image


def _require_conditional(model: object, function_name: str) -> None:
    """Raise a TypeError naming the function unless `model` is a conditional VAE: one that takes labels
    (`needs_labels`) and says how many classes there are (`classes`), as ConditionalVAE does."""
    if not getattr(model, "needs_labels", False):
        raise TypeError(
            f"{function_name} needs a conditional VAE, which takes a label with each image (as the shipped 'cvae-2d' "
            f"does), got a {type(model).__name__}"
        )
    classes = getattr(model, "classes", None)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise TypeError(
            f"{function_name} decodes as every class of the model, and this {type(model).__name__} does not say how "
            f"many there are: give it classes = K, an int, as ConditionalVAE(..., classes=K) has (got {classes!r})"
        )


def decode_as_every_class(
    model: ConditionalVAE, latents: torch.Tensor, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Return N x K x 28 x 28 uint8 images: each of N latents (N x latent_dim) decoded as each of K classes (every
    class of the model unless `classes` names some), one row per latent."""
    _require_conditional(model, "decode_as_every_class")
    classes = list(range(model.classes)) if classes is None else [int(label) for label in classes]
    check_latent_size(model, latents)
    latents = latents.float().reshape(-1, model.latent_dim)
    labels = torch.tensor(classes).repeat(len(latents))
    images = decode_latents(model, latents.repeat_interleave(len(classes), dim=0), labels)
    return images.reshape(len(latents), len(classes), *images.shape[1:])


def rewrite_in_every_class(
    model: ConditionalVAE, images: Images, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """Return the latent means of labelled images (an ImageDataset or a Batch, each image encoded with its own label)
    and the N x K x 28 x 28 images those means decode to as each class: the same style written as every class."""
    means = encode_means(model, images)
    return means, decode_as_every_class(model, means, classes)


def neighbour_class_agreement(latent_means: torch.Tensor, labels: torch.Tensor, neighbours: int = 10) -> float:
    """Return the fraction of each image's `neighbours` nearest other images in the latent space that share its
    class, averaged over the images: near 1 when the space sorts images by class, near chance_agreement when the
    class cannot be read from it."""
    points = latent_means.double()
    if labels.shape != points.shape[:1]:
        raise ValueError(
            f"neighbour_class_agreement needs one label per latent mean: got {len(labels)} labels for "
            f"{len(points)} means"
        )
    if len(points) < 2:
        raise ValueError(f"an image's neighbours are the other images: give two or more, got {len(points)}")
    if not 0 < neighbours < len(points):
        raise ValueError(f"neighbours must lie in [1, {len(points) - 1}] for {len(points)} images, got {neighbours}")
    if not torch.isfinite(points).all():
        raise ValueError("the latent means contain NaN or infinite values (a diverged model?): give finite means")
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(float("inf"))  # an image is not its own neighbour
    nearest = distances.topk(neighbours, dim=1, largest=False).indices
    return (labels[nearest] == labels.view(-1, 1)).double().mean().item()


def chance_agreement(labels: torch.Tensor) -> float:
    """Return the agreement of neighbours drawn at random: the sum of the squared class frequencies."""
    if len(labels) == 0:
        raise ValueError("chance_agreement needs at least one label, got none")
    frequencies = torch.bincount(labels).double() / len(labels)
    return frequencies.pow(2).sum().item()


def class_losses(model: ConditionalVAE, images: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Return N x classes losses (reconstruction at z = mean + alpha KL, the model's training loss without noise) of
    each image encoded and decoded as each class: the smallest names the class the model finds likeliest."""
    _require_conditional(model, "class_losses (and likeliest_classes)")
    batch = to_model_input(images, model.channels)
    count, classes = len(batch), model.classes
    labels = torch.arange(classes).repeat(count)
    with inference(model) as device:
        repeated = batch.repeat_interleave(classes, dim=0).to(device)
        labels = labels.to(device)
        mean, log_var = model.encode(repeated, labels)
        recon = reconstruction_per_image(repeated, model.decoder_output(mean, labels), model.likelihood)
        # kl_per_dimension averages over its first axis: given one batch of N rows it returns each row's KL terms.
        kl = kl_per_dimension(mean.unsqueeze(0), log_var.unsqueeze(0)).sum(dim=1)
    return (recon + alpha * kl).view(count, classes).cpu()


def likeliest_classes(model: ConditionalVAE, images: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Return, for each image, the class whose loss is smallest (class_losses): the conditional model used as a
    classifier, every class equally likely beforehand."""
    return class_losses(model, images, alpha).argmin(dim=1)
