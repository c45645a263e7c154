"""The loss read as a likelihood: the KL weight as a decoder variance, and log p(x) in nats, bounded by the ELBO
and estimated by importance sampling (Burda, Grosse & Salakhutdinov 2016), which tightens as samples grow.

Under a Gaussian decoder these are densities of continuous images in [-1, 1]: they do not compare with the
figures papers report for binarised MNIST (about 80-90 nats), which a Bernoulli decoder gives: probabilities
of 0/1 pixels. The decoder's log-likelihood comes from vae_lib.core.objective.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from vae_lib.core.checkpoint import content_digest
from vae_lib.core.config import MAX_SEED, is_whole_number
from vae_lib.core.data import Batch, to_model_input
from vae_lib.core.evaluate import Images, batches, check_evaluated_model, inference, labelled
from vae_lib.core.files import CheckpointError, failure_reason, replaced_atomically
from vae_lib.core.model import IMAGE_SIZE, LatentModel, reparameterise
from vae_lib.core.objective import check_log_likelihood_settings, likelihood_named, log_likelihood


def decoder_variance(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the Gaussian decoder variance s^2 under which the loss 0.5 mean((x - x')^2) + alpha KL is the
    negative ELBO divided by a constant: 0.5 sum((x - x')^2) / s^2 + KL with s^2 = pixels * alpha."""
    _check_alpha_and_pixels(alpha, pixels, "a decoder variance needs alpha > 0", positive=True)
    return float(pixels * alpha)


def beta_of(alpha: float, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> float:
    """Return the weight beta on the KL that alpha amounts to for a unit-variance Gaussian decoder (pixels * alpha)."""
    _check_alpha_and_pixels(alpha, pixels, "alpha weighs the KL term, a number >= 0", positive=False)
    return float(pixels * alpha)


def _check_alpha_and_pixels(alpha: float, pixels: int, what: str, positive: bool) -> None:
    """Raise a ValueError unless alpha is a finite real number (> 0, or >= 0) and pixels a whole number >= 1."""
    if isinstance(alpha, bool) or not (
        isinstance(alpha, numbers.Real) and math.isfinite(alpha) and (alpha > 0 if positive else alpha >= 0)
    ):
        raise ValueError(f"{what}: got alpha = {alpha!r:.60}")
    if not is_whole_number(pixels, 1):
        raise ValueError(f"pixels is the number of values in an image (784 for MNIST), a whole number: got {pixels!r}")


def standard_normal_log_density(latents: torch.Tensor) -> torch.Tensor:
    """Return log N(latents | 0, I) summed over the last dimension."""
    return -0.5 * (latents.pow(2) + math.log(2 * math.pi)).sum(dim=-1)


def posterior_log_density(latents: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return log q(latents | x) = log N(latents | mean, exp(log_var)) summed over the last dimension."""
    return -0.5 * ((latents - mean).pow(2) / log_var.exp() + log_var + math.log(2 * math.pi)).sum(dim=-1)


# Latents decoded per call: small enough that each layer's activations stay in the CPU's cache (250 decoded 1.36x
# faster than 5,000 at once on a 2-core AMD EPYC), large enough to keep the convolutions efficient.
DECODE_CHUNK = 250


def _check_samples(samples: int) -> None:
    """Raise a ValueError unless `samples` is a number of draws per image: a positive whole number."""
    if not _integer(samples) or samples < 1:
        raise ValueError(f"samples is the number of z drawn per image, a positive whole number: got {samples!r}")


def _integer(value: object) -> bool:
    """Return True for an integer of Python's or NumPy's (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _sample_counts(sample_counts: Iterable[int], samples: int | None = None) -> list[int]:
    """Return the sample counts k as a list of Python ints after checking them: at least one, each a positive
    whole number and, given `samples`, one that divides it (its draws split into groups of k)."""
    if isinstance(sample_counts, numbers.Number | str | bytes):
        raise TypeError(f"sample_counts is a list of k, such as [1, 10, 100]; got {sample_counts!r}")
    counts = list(sample_counts)  # a generator is read once
    if not counts:
        raise ValueError("sample_counts is empty: give at least one k, such as [1, 10, 100] (k = 1 is the ELBO)")
    for count in counts:
        if not _integer(count) or count < 1:
            raise ValueError(f"each sample count k is a positive whole number, got {count!r} in {counts}")
        if samples is not None and samples % count:
            raise ValueError(
                f"{samples} samples per image do not split into groups of {count}: give sample counts that divide "
                "the samples"
            )
    return [int(count) for count in counts]


def check_bound_settings(
    samples: int, variance: float | None, seed: int, last_index: int
) -> tuple[int, float | None, int]:
    """Return (samples, variance, seed) as Python numbers after checking them, so that a file of saved bounds holds
    what torch.load(weights_only=True) reads back: the seed must be a whole number >= 0 whose per-image seeds, up to
    seed + `last_index`, torch's generators take."""
    _check_samples(samples)
    if not _integer(seed) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if seed + last_index > MAX_SEED:
        raise ValueError(
            f"image i draws its samples with seed + i, and seed {seed} + {last_index} is more than torch's generators "
            f"take (2**64 - 1): give a seed of at most {MAX_SEED - last_index}"
        )
    if variance is not None and not isinstance(variance, bool) and isinstance(variance, numbers.Real):
        variance = float(variance)
    return int(samples), variance, int(seed)


def check_binary_images(model: LatentModel, pixels: torch.Tensor) -> None:
    """Raise a ValueError if log p(x) of a likelihood over black-and-white images (the Bernoulli's) is asked of
    images with grey pixels: of those its log_prob is a cross-entropy, not the log of a probability. The images are
    read as the model reads them (to_model_input, whose own refusals come first): -1 and 1 are black and white."""
    if not likelihood_named(model.likelihood).binary or not isinstance(pixels, torch.Tensor):
        return
    model_input = to_model_input(pixels, model.channels)
    if not ((model_input == -1) | (model_input == 1)).all():
        raise ValueError(
            f"log p(x) of a {model.likelihood.capitalize()} decoder is a probability of black-and-white images, and "
            "these have grey pixels: binarise them first (vae_lib.core.data.binarised(test_data), the test set's "
            "fixed binarisation, on which a model trained with binarise=True is evaluated)"
        )


def _bound_inputs(
    model: LatentModel, images: Images, samples: int, variance: float | None, seed: int, first_index: int
) -> tuple[Batch, int, float | None, int]:
    """Return the images to bound as a Batch, and (samples, variance, seed) as Python numbers, after every check
    that comes before any work: the model, at least one image, the settings, the likelihood's log_prob and variance,
    black-and-white images where its log_prob needs them."""
    check_evaluated_model(model)
    pixels, labels = labelled(images)
    if len(pixels) == 0:
        raise ValueError("there are no images to bound: give at least one")
    samples, variance, seed = check_bound_settings(samples, variance, seed, first_index + len(pixels) - 1)
    check_log_likelihood_settings(model.likelihood, variance)
    check_binary_images(model, pixels)
    return Batch(pixels, labels), samples, variance, seed


def importance_log_weights(
    model: LatentModel,
    images: Images,
    samples: int,
    variance: float | None = None,
    seed: int = 0,
    progress: bool = False,
    first_index: int = 0,
) -> torch.Tensor:
    """Return log p(x | z) + log p(z) - log q(z | x) for `samples` draws z ~ q(z | x) per image (images x samples).

    Their mean is an estimate of the ELBO; their log-mean-exp, of log p(x) (an importance-sampled bound).
    log p(x | z) is the model's likelihood's: a Gaussian decoder needs its `variance` (decoder_variance).
    Image i draws its samples from a generator seeded with seed + first_index + i, where `first_index` is the
    position of the first image in its dataset: any split of a dataset into parts draws the same samples.
    `progress` shows a progress bar over the images.
    """
    batch, samples, variance, seed = _bound_inputs(model, images, samples, variance, seed, first_index)
    rows = []
    with inference(model) as device:
        for index, (image, label) in enumerate(
            tqdm(batches(model, batch, 1, device), total=len(batch.images), disable=not progress)
        ):
            generator = torch.Generator().manual_seed(seed + first_index + index)
            mean, log_var = (part.cpu() for part in model.encode(image, label))
            noise = torch.randn(samples, model.latent_dim, generator=generator)
            latents = reparameterise(mean, log_var, noise)
            labels = None if label is None else label.expand(DECODE_CHUNK)
            output = torch.cat(
                [
                    model.decoder_output(part.to(device), None if labels is None else labels[: len(part)]).cpu()
                    for part in latents.split(DECODE_CHUNK)
                ]
            )
            log_likelihoods = log_likelihood(image.cpu().expand_as(output), output, model.likelihood, variance)
            row = log_likelihoods + standard_normal_log_density(latents) - posterior_log_density(latents, mean, log_var)
            if not torch.isfinite(row).all():
                raise ValueError(
                    f"the log weights of image {first_index + index} are not finite (NaN or infinite): the model's "
                    "weights or outputs are not finite numbers; check them (torch.isfinite on model.parameters())"
                )
            rows.append(row)
    return torch.stack(rows)


def per_image_bounds(log_weights: torch.Tensor, sample_counts: Sequence[int]) -> torch.Tensor:
    """Return each image's importance-sampled bound on log p(x) for each k, images x len(sample_counts), in nats.

    The samples of each image are split into groups of k and the bounds of the groups averaged, so every
    k uses all samples; k = 1 is the ELBO. The bound rises towards log p(x) as k grows.
    """
    log_weights = torch.as_tensor(log_weights)  # a NumPy array too
    if log_weights.dim() != 2:
        raise ValueError(
            f"log_weights are images x samples (importance_log_weights'), got shape {tuple(log_weights.shape)}"
        )
    images, samples = log_weights.shape
    columns = []
    for count in _sample_counts(sample_counts, samples):
        groups = log_weights.double().view(images, samples // count, count)
        columns.append((torch.logsumexp(groups, dim=2) - math.log(count)).mean(dim=1))
    return torch.stack(columns, dim=1)


def log_likelihood_bounds(log_weights: torch.Tensor, sample_counts: Sequence[int]) -> dict[int, float]:
    """Return, for each k, the mean over images of per_image_bounds: the bound on log p(x) in nats per image."""
    sample_counts = _sample_counts(sample_counts)  # a generator is read once, here
    means = per_image_bounds(log_weights, sample_counts).mean(dim=0)
    return {count: float(mean) for count, mean in zip(sample_counts, means)}


BOUNDS_KIND = "vae_lib.log_likelihood_bounds"
# Images bounded per part of a long evaluation: a part is saved when it ends, so a stopped run loses at most one.
BOUND_PART = 50


def bound_images(
    model: LatentModel,
    images: Images,
    samples: int,
    sample_counts: Sequence[int],
    variance: float | None = None,
    seed: int = 0,
    save_to: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """Return per_image_bounds for every image (images x len(sample_counts), nats), 50 images at a time.

    The samples are those of importance_log_weights (image i seeded with seed + i), so the result does not depend on
    `workers` (processes, each on one thread) nor on stopping and continuing. With `save_to`, the bounds are written
    there after each part, and a run given a file of the same model, images and settings continues from it;
    `report`, if given, is told so.
    """
    (pixels, labels), samples, variance, seed = _bound_inputs(model, images, samples, variance, seed, 0)
    sample_counts = _sample_counts(sample_counts, samples)
    if not is_whole_number(workers, 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    settings = {"samples": samples, "sample_counts": sample_counts, "variance": variance, "seed": seed}
    key = bounds_key(model, images, settings)
    bounds = torch.full((len(pixels), len(sample_counts)), math.nan, dtype=torch.float64)
    path = None if save_to is None else Path(save_to)
    continuing = path is not None and path.exists()
    if continuing:
        bounds = _read_bounds(path, key)
    done = int((~bounds[:, 0].isnan()).sum())
    if continuing and report is not None:
        report(f"continuing from {path}: {done} of {len(pixels)} images done")
    starts = [start for start in range(0, len(pixels), BOUND_PART) if bounds[start, 0].isnan()]
    tasks = [(model, _part(pixels, labels, start), samples, sample_counts, variance, seed, start) for start in starts]
    with tqdm(total=len(pixels), initial=done, unit="image", disable=not progress) as bar:
        for start, part_bounds in _bounded_parts(tasks, workers):
            bounds[start : start + len(part_bounds)] = part_bounds
            if path is not None:
                _write_bounds(path, key, bounds)
            bar.update(len(part_bounds))
    return bounds


def bounds_key(model: LatentModel, images: Images, settings: dict) -> dict:
    """Return what a file of saved bounds is of: digests of the model's weights and of the images, and the
    `settings` (samples, sample counts, variance, seed). A run continues a file only if its key is the same."""
    pixels, labels = labelled(images)
    return {"model": content_digest(model.state_dict()), "images": content_digest([pixels, labels]), **settings}


def _part(pixels: torch.Tensor, labels: torch.Tensor | None, start: int) -> Batch:
    """Return the BOUND_PART images from `start` and their labels."""
    end = start + BOUND_PART
    return Batch(pixels[start:end], None if labels is None else labels[start:end])


def _bound_part(
    model: LatentModel,
    images: Batch,
    samples: int,
    sample_counts: Sequence[int],
    variance: float | None,
    seed: int,
    first_index: int,
) -> tuple[int, torch.Tensor]:
    """Return (first_index, per-image bounds) of one part of the images."""
    log_weights = importance_log_weights(model, images, samples, variance, seed, first_index=first_index)
    return first_index, per_image_bounds(log_weights, sample_counts)


def _bounded_parts(tasks: list[tuple], workers: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first index, bounds) of each task as it ends: in this process, or in `workers` processes."""
    if workers == 1:
        for task in tasks:
            yield _bound_part(*task)
        return
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        for future in as_completed([pool.submit(_bound_part, *task) for task in tasks]):
            yield future.result()


class SavedBounds(NamedTuple):
    """A --bounds-file's contents: what was bounded (model and images digests, samples, sample counts, variance,
    seed) and the bounds, images x len(sample_counts) nats, NaN for images not yet bounded."""

    key: dict
    bounds: torch.Tensor


def read_saved_bounds(path: str | Path) -> SavedBounds:
    """Return the bounds saved by bound_images; a CheckpointError, saying what to do, if the file is not one."""
    path = Path(path)
    try:
        saved = torch.load(path, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable file of saved bounds ({failure_reason(error)}): pass another path; "
            "the file is left as it is"
        ) from error
    if not isinstance(saved, dict) or saved.get("kind") != BOUNDS_KIND:
        raise CheckpointError(f"{path} is not a file of saved bounds: pass another path; the file is left as it is")
    return SavedBounds(saved["key"], saved["bounds"])


def bound_summary(bounds: torch.Tensor, sample_counts: Sequence[int]) -> dict[int, tuple[float, float]]:
    """Return, for each k, the mean bound over images (nats per image) and its standard error.

    `bounds` are bound_images' (images x len(sample_counts)); images not yet bounded (NaN) are refused.
    """
    if bounds.isnan().any():
        raise ValueError(f"{int(bounds.isnan().any(dim=1).sum())} images are not bounded yet: finish the run first")
    count = len(bounds)
    errors = bounds.std(dim=0) / math.sqrt(count) if count > 1 else torch.full((bounds.shape[1],), math.nan)
    return {k: (float(mean), float(error)) for k, mean, error in zip(sample_counts, bounds.mean(dim=0), errors)}


def _read_bounds(path: Path, key: dict) -> torch.Tensor:
    """Return the bounds saved in `path`; a CheckpointError if it is unreadable or for other images or settings."""
    saved = read_saved_bounds(path)
    if saved.key != key:
        changed = sorted(name for name in key if saved.key.get(name) != key[name])
        raise CheckpointError(
            f"{path} holds the bounds of another run (other {', '.join(changed)}): pass another path to bound these "
            "settings (the file keeps the bounds it holds)"
        )
    return saved.bounds


def _write_bounds(path: Path, key: dict, bounds: torch.Tensor) -> None:
    """Save the bounds so far (NaN rows are images not yet bounded) atomically."""
    with replaced_atomically(path) as temporary:
        torch.save({"kind": BOUNDS_KIND, "key": key, "bounds": bounds}, temporary)
