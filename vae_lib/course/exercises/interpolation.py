"""The check of exercise 6 (notebook 04), interpolating between two images: decoded on the straight line between
their posterior means, end points included, in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch

from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import VAE
from vae_lib.course.exercises.checking import (
    CheckResult,
    _call,
    _compare,
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
        model = _small_model(latent_dim, seed)
        generator = torch.Generator().manual_seed(seed)
        start, end = torch.rand(2, 1, 28, 28, generator=generator) * 2 - 1
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
        got = _call(name, interpolate, model, start, end, steps)
        training_mode = not torch.equal(statistics, _running_statistics(model))
        failure = _compare(
            name, "the images", got, expected, mistakes, partial(_interpolation_mode_hints, training_mode)
        )
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor):
            again = _call(name, interpolate, model, start, end, steps)
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: z is sampled, so the path changes each time: use the means of q(z|x)."
        yield failure


def _interpolation_mode_hints(training_mode: bool) -> list[str]:
    """Return a hint when the learner's interpolation ran BatchNorm in training mode (its running averages moved)."""
    if not training_mode:
        return []
    return [
        "the model ran in training mode (model.train()), where BatchNorm normalises with the batch's own statistics "
        "and moves its running averages: use the model in eval mode, as it is given."
    ]
