"""The check of exercise 6 (notebook 04), interpolating between two images: decoded on the straight line between
their posterior means, end points included, in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial

import torch

from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import VAE
from vae_lib.course.exercises.checking import (
    CheckResult,
    _call,
    _close,
    _compare,
    _converted_model_failure,
    _left_in_training_mode_failure,
    _numbers,
    _recording_latents,
    _result,
    _small_model,
)
from vae_lib.course.exercises.training_step import (
    _running_statistics,
)


def check_interpolate(
    interpolate: Callable[[VAE, torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> CheckResult:
    """Check images = interpolate(model, start_image, end_image, steps): decoded on the line between the means."""
    return _result("latent interpolation", _interpolation_failures(interpolate), "a straight line between the means.")


def _interpolation_failures(interpolate: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's path differs from the reference."""
    for latent_dim, steps, seed in ((2, 5, 0), (8, 7, 1)):
        name = f"{latent_dim}-D model, {steps} steps"
        generator = torch.Generator().manual_seed(seed)
        start, end = torch.rand(2, 1, 28, 28, generator=generator) * 2 - 1
        model = _interpolation_model(latent_dim, seed, torch.stack([start, end]))
        with torch.no_grad():
            means, log_vars = model.encode(torch.stack([start, end]))
            expected = model.decode(interpolation_latents(means[0], means[1], steps))
            weights = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
            mistakes = [
                (
                    "these are blends of the two images' pixels: interpolate between their latent means, then decode.",
                    (1 - weights) * start + weights * end,
                ),
                ("the path runs from end to start.", expected.flip(0)),
                (
                    "the two end points are left out: torch.linspace(0, 1, steps) includes both.",
                    model.decode(interpolation_latents(means[0], means[1], steps + 2)[1:-1]),
                ),
                (
                    "the end point is left out: torch.linspace(0, 1, steps) includes both ends.",
                    model.decode(interpolation_latents(means[0], means[1], steps + 1)[:-1]),
                ),
                (
                    "the path runs between the log-variances: model.encode returns (mean, log_var); interpolate "
                    "between the means, the first.",
                    model.decode(interpolation_latents(log_vars[0], log_vars[1], steps)),
                ),
            ]
        statistics = _running_statistics(model)
        with _recording_latents(model) as decoded:
            got = _call(name, interpolate, model, start, end, steps)
        converted = _converted_model_failure(name, model)
        if converted:
            yield converted
            return
        left_training = model.training
        model.eval()
        training_mode = not torch.equal(statistics, _running_statistics(model))
        diagnose = partial(_interpolation_hints, training_mode, decoded, means[0], means[1], steps)
        failure = _compare(name, "the images", got, expected, mistakes, diagnose)
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor):
            again = _call(name, interpolate, model, start, end, steps)
            if isinstance(again, torch.Tensor) and not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: z is sampled, so the path changes each time: use the means of q(z|x)."
        yield failure or (_left_in_training_mode_failure(name) if left_training else "")


def _interpolation_model(latent_dim: int, seed: int, images: torch.Tensor) -> VAE:
    """Return a small VAE whose posterior means of `images` lie far apart, in directions far apart: the means of
    noise images under a random model all point one way, 0.01 from each other, and a curved path between two of
    them hardly differs from the straight line. Its mean head is centred on other noise images and scaled up."""
    model = _small_model(latent_dim, seed)
    others = torch.rand(16, *images.shape[1:], generator=torch.Generator().manual_seed(100 + seed)) * 2 - 1
    with torch.no_grad():
        mean_bias, mean_weight = model.to_latent.bias[:latent_dim], model.to_latent.weight[:latent_dim]
        mean_bias -= model.encode(others)[0].mean(dim=0)
        scale = 2.0 / model.encode(images)[0].norm(dim=1).max()  # the farther mean 2 from the origin
        mean_bias *= scale
        mean_weight *= scale
    return model


def _interpolation_hints(
    training_mode: bool, decoded: Sequence[torch.Tensor], start: torch.Tensor, end: torch.Tensor, steps: int
) -> list[str]:
    """Return what the learner's interpolation did wrong beyond the listed mistakes: the mode, else the path."""
    return _interpolation_mode_hints(training_mode) or _path_hints(decoded, start, end, steps)


def _path_hints(decoded: Sequence[torch.Tensor], start: torch.Tensor, end: torch.Tensor, steps: int) -> list[str]:
    """Return a hint when the learner decoded one path of `steps` codes from the start mean to the end mean that
    leaves the straight line between them (a spherical interpolation) or runs along it unevenly, else []."""
    if len(decoded) != 1 or decoded[0].shape != (steps, start.numel()):
        return []
    path, direction = decoded[0].double(), (end - start).double()
    length = direction.norm().item()
    if length == 0 or not (_close(path[0], start.double()) and _close(path[-1], end.double())):
        return []
    along = (path - start.double()) @ direction / length**2  # each code's position t on the line, 0 at the start
    off_line = (path - start.double() - along.unsqueeze(1) * direction).norm(dim=1).max().item()
    if off_line > 1e-4 * length:
        return [
            f"the path starts and ends at the two means, but its codes leave the straight line between them (the "
            f"farthest by {off_line / length:.0%} of the distance between the means): a spherical interpolation "
            "(slerp) or another curve? The exercise's path is the straight line (1 - t)·μ_start + t·μ_end."
        ]
    evenly = torch.linspace(0, 1, steps, dtype=torch.float64)
    if not _close(along, evenly, rtol=1e-3, atol=1e-4):
        return [
            f"the codes lie on the line between the means, but at t = {_numbers(along.tolist())} instead of evenly "
            "spaced: t = torch.linspace(0, 1, steps)."
        ]
    return []


def _interpolation_mode_hints(training_mode: bool) -> list[str]:
    """Return a hint when the learner's interpolation ran BatchNorm in training mode (its running averages moved)."""
    if not training_mode:
        return []
    return [
        "the model ran in training mode (model.train()), where BatchNorm normalises with the batch's own statistics "
        "and moves its running averages: use the model in eval mode, as it is given."
    ]
