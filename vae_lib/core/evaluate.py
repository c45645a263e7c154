"""Test metrics computed the reference implementation's way (z sampled with a fixed seed, every image counted), and the
per-image quantities the notebooks look at: latent means, reconstructions, per-class error, per-dimension KL
and the active dimensions. Every function takes images alone, an ImageDataset or a Batch (but
per_class_recon_error, which needs a dataset's classes); a model that needs labels (LatentModel.needs_labels) must be
given them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from vae_lib.core.config import is_whole_number
from vae_lib.core.data import Batch, ImageDataset, as_batch, check_image_shape, to_model_input
from vae_lib.core.model import LatentModel, autocast_on, dtype_name
from vae_lib.core.objective import (
    DEFAULT_ALPHA,
    kl_per_dimension,
    reconstruction_loss,
    reconstruction_per_image,
    vae_loss,
)

Images = torch.Tensor | ImageDataset | Batch


@contextmanager
def inference(model: LatentModel) -> Iterator[torch.device]:
    """Run a block with the model in eval mode and without gradients; restore its mode after. Yields its device.

    The model must be a torch module with float32 weights, or weights autocast casts to: these functions give it
    float32 images (to_model_input); check_evaluated_model says what to do otherwise.
    """
    check_evaluated_model(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def check_evaluated_model(model: object) -> None:
    """Raise a TypeError unless `model` is a torch module (a SweepPoint, a Trainer or a path is not: the message
    says what to pass), and a ValueError if its weights are not float32 and no autocast casts the float32 images
    the evaluation gives it."""
    if not isinstance(model, torch.nn.Module):
        name = type(model).__name__
        if isinstance(getattr(model, "evaluated_model", None), torch.nn.Module):  # a Trainer's weights on record
            hint = f": pass {name.lower()}.evaluated_model, the weights its history and checkpoint are of"
        elif getattr(model, "model", None) is not None:
            hint = f": it holds one as .model, pass that ({name.lower()}.model)"
        else:
            hint = ""
        raise TypeError(f"model must be a VAE (a torch.nn.Module), got a {name}{hint}")
    weight = next(model.parameters(), None)
    if weight is not None and weight.dtype != torch.float32 and not autocast_on(weight.device.type):
        raise ValueError(
            f"the model's weights are {dtype_name(weight.dtype)}, and evaluation gives it float32 "
            "images (to_model_input converts them): turn it back with model.float()"
        )


def check_labels_given(model: LatentModel, labels: torch.Tensor | None, what_to_pass: str) -> None:
    """Raise a ValueError saying to pass `what_to_pass` if a model that needs labels was given images alone."""
    if model.needs_labels and labels is None:
        raise ValueError(f"this model is conditioned on labels: pass {what_to_pass}, not images alone")


def labelled(images: Images | tuple[torch.Tensor, torch.Tensor]) -> Batch:
    """Return images as a Batch of uint8 or model images and their labels (None where there are none): an
    ImageDataset, a Batch or an (images, labels) pair; labels of any integer sequence become a tensor, one per
    image."""
    if isinstance(images, ImageDataset):
        return Batch(images.images, images.labels)
    if not isinstance(images, tuple):
        return Batch(images)
    pixels, labels = as_batch(images)
    if labels is None:
        return Batch(pixels)
    labels = torch.as_tensor(labels)  # NumPy arrays and lists too
    if isinstance(pixels, torch.Tensor) and pixels.dim() >= 3 and labels.shape != (len(pixels),):
        raise ValueError(
            f"give one label per image: got labels of shape {tuple(labels.shape)} for {len(pixels)} images"
        )
    return Batch(pixels, labels)


def batches(
    model: LatentModel, images: Images, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (model input, labels) on `device`, `batch_size` images at a time; a model that needs labels and is
    given none gets a ValueError that says what to pass."""
    _check_batch_size(batch_size)
    pixels, labels = labelled(images)
    if isinstance(pixels, torch.Tensor):  # the whole tensor's shape, before any batch of it is cut
        check_image_shape(pixels, model.channels)
    check_labels_given(model, labels, "an ImageDataset or a Batch(images, labels)")
    for start in range(0, len(pixels), batch_size):
        part = to_model_input(pixels[start : start + batch_size], model.channels).to(device)
        yield part, None if labels is None else labels[start : start + batch_size].to(device)


def _check_batch_size(batch_size: int) -> None:
    """Raise a ValueError unless batch_size is a positive integer."""
    if not is_whole_number(batch_size, 1):
        raise ValueError(f"batch_size must be a positive integer (images per batch), got {batch_size!r}")


def evaluate(
    model: LatentModel,
    images: Images,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Return {'total', 'recon', 'kl', 'recon_at_mean'} averaged over every image.

    total, recon and kl use z sampled from q(z|x) with noise from `seed` (the reference implementation's way);
    recon_at_mean decodes z = mean, the deterministic reconstruction error. The reconstruction term is the
    model's likelihood's. The global random state is left as it was, so evaluating never changes a training run.
    """
    if not is_whole_number(seed, 0):
        raise ValueError(f"seed must be a whole number of at least 0, got {seed!r}")
    count = len(labelled(images).images)
    if count == 0:
        raise ValueError("evaluate needs at least one image")
    recon_sum = kl_sum = recon_at_mean_sum = 0.0
    with inference(model) as device:
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            for batch, labels in batches(model, images, batch_size, device):
                output, mean, log_var = model(batch, labels)
                _, recon, kl = vae_loss(batch, output, mean, log_var, alpha, model.likelihood)
                recon_at_mean = reconstruction_loss(batch, model.decoder_output(mean, labels), model.likelihood)
                recon_sum += recon.item() * len(batch)
                kl_sum += kl.item() * len(batch)
                recon_at_mean_sum += recon_at_mean.item() * len(batch)
    recon, kl = recon_sum / count, kl_sum / count
    return {"total": recon + alpha * kl, "recon": recon, "kl": kl, "recon_at_mean": recon_at_mean_sum / count}


def _require_images(images: Images, function_name: str) -> None:
    """Raise a ValueError naming the function when it is given no images, whose mean or concatenation is undefined."""
    if len(labelled(images).images) == 0:
        raise ValueError(f"{function_name} needs at least one image, got an empty batch or dataset (0 images)")


def encode_means(model: LatentModel, images: Images, batch_size: int = 256) -> torch.Tensor:
    """Return the posterior means (N x latent_dim) of images, on the CPU."""
    _require_images(images, "encode_means")
    with inference(model) as device:
        return torch.cat(
            [model.encode(batch, labels)[0].cpu() for batch, labels in batches(model, images, batch_size, device)]
        )


def reconstruct(model: LatentModel, images: Images, batch_size: int = 256) -> torch.Tensor:
    """Return the deterministic reconstructions (z = mean) of images, N x C x 28 x 28 in [-1, 1], on the CPU."""
    _require_images(images, "reconstruct")
    with inference(model) as device:
        return torch.cat(
            [
                model.decode(model.encode(batch, labels)[0], labels).cpu()
                for batch, labels in batches(model, images, batch_size, device)
            ]
        )


def per_class_recon_error(model: LatentModel, dataset: ImageDataset, batch_size: int = 256) -> torch.Tensor:
    """Return the mean reconstruction term (z = mean, the model's likelihood's) of each class, one value per class:
    NaN for a class without images (a subset may lack some), which a bar chart leaves out rather than draw as 0."""
    if not isinstance(dataset, ImageDataset):
        raise TypeError(
            f"per_class_recon_error needs an ImageDataset, whose class names say what the classes are, got "
            f"{type(dataset).__name__}: pass load_dataset(...) or a subset of one"
        )
    _require_images(dataset, "per_class_recon_error")
    with inference(model) as device:
        errors = torch.cat(
            [
                reconstruction_per_image(
                    batch, model.decoder_output(model.encode(batch, labels)[0], labels), model.likelihood
                ).cpu()
                for batch, labels in batches(model, dataset, batch_size, device)
            ]
        )
    class_count = len(dataset.class_names)
    sums = torch.zeros(class_count, dtype=torch.float64).index_add_(0, dataset.labels, errors.double())
    counts = torch.bincount(dataset.labels, minlength=class_count).double()
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)


def kl_by_dimension(model: LatentModel, images: Images, batch_size: int = 256) -> torch.Tensor:
    """Return each latent dimension's KL to the prior, averaged over images: near 0 means the dimension is unused."""
    _require_images(images, "kl_by_dimension")
    total = torch.zeros(model.latent_dim, dtype=torch.float64)
    with inference(model) as device:
        for batch, labels in batches(model, images, batch_size, device):
            mean, log_var = model.encode(batch, labels)
            total += kl_per_dimension(mean, log_var).double().cpu() * len(batch)
    return total / len(labelled(images).images)


# A dimension is active when its posterior mean's variance over the images exceeds this (Burda et al. 2016).
ACTIVE_UNIT_THRESHOLD = 0.01


def active_dimensions(latent_means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> torch.Tensor:
    """Return one bool per latent dimension: True where its posterior mean varies over images by more than
    `threshold` (variance over the images, Burda et al. 2016's active units). `latent_means` is N x latent_dim,
    as encode_means returns them, over two images or more."""
    if not isinstance(latent_means, torch.Tensor):
        raise TypeError(
            f"active_dimensions takes the posterior means, a tensor N x latent_dim (encode_means(model, images)), "
            f"got {type(latent_means).__name__}"
        )
    if latent_means.dim() != 2 or len(latent_means) < 2:
        raise ValueError(
            f"active_dimensions needs the posterior means of two images or more, N x latent_dim, got shape "
            f"{tuple(latent_means.shape)}: a variance over fewer images says nothing"
        )
    if not torch.isfinite(latent_means).all():
        raise ValueError("the posterior means contain NaN or infinite values: the model or its images are broken")
    return latent_means.double().var(dim=0) > threshold
