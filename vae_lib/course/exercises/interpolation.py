"""The check of exercise 6 (notebook 04), interpolating between two images: decoded on the straight line between
their posterior means, end points included, in eval mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import torch

from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import VAE, ModelInputError
from vae_lib.course.exercises.checking import (
    CheckResult,
    _as_tensor,
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
                (
                    "these are blends of the two decoded end images: decode each code on the line between the means "
                    "instead, so every image is the decoder's own.",
                    (1 - weights) * expected[:1] + weights * expected[-1:],
                ),
                (
                    "these are the path's codes z, one row of the latent size per step, not images: decode them, "
                    "model.decode(z), and return the images.",
                    interpolation_latents(means[0], means[1], steps),
                ),
                (
                    "the images are rescaled to [0, 1], (x + 1) / 2: return the decoder's images in [-1, 1] as they "
                    "are (rescale only to display them).",
                    (expected + 1) / 2,
                ),
                (
                    "the images are clamped to [0, 1], which turns every pixel below 0 black: return the decoder's "
                    "images in [-1, 1] as they are.",
                    expected.clamp(0, 1),
                ),
                (
                    "the end points are the two input images themselves: decode the means at both ends too, so the "
                    "path shows what the model makes of them.",
                    torch.cat([start.unsqueeze(0), expected[1:-1], end.unsqueeze(0)]),
                ),
            ]
        statistics = _running_statistics(model)
        with _recording_latents(model) as decoded:
            got = _call(
                name,
                interpolate,
                model,
                start,
                end,
                steps,
                hints=partial(_interpolation_error_hints, steps, latent_dim),
            )
        converted = _converted_model_failure(name, model)
        if converted:
            yield converted
            return
        left_training = model.training
        model.eval()
        training_mode = not torch.equal(statistics, _running_statistics(model))
        diagnose = partial(_interpolation_hints, training_mode, decoded, means, log_vars, steps, got, expected)
        failure = _compare(name, "the images", got, expected, mistakes, diagnose)
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor):
            again = _call(name, interpolate, model, start, end, steps)
            if isinstance(again, torch.Tensor) and not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: z is sampled, so the path changes each time: use the means of q(z|x)."
        yield failure or (_left_in_training_mode_failure(name) if left_training else "")


def _rescaled_hints(got: object, expected: torch.Tensor) -> list[str]:
    """Return a hint when the learner's images are the decoder's rescaled, a · image + b (within one grey level of
    256, as images made integers are), say to [0, 255] for display; else []."""
    values = _as_tensor(got)
    if values is None or values.shape != expected.shape or not torch.isfinite(values).all():
        return []
    values, decoded = values.flatten(), expected.detach().double().cpu().flatten()
    design = torch.stack([decoded, torch.ones_like(decoded)], dim=1)
    scale, offset = torch.linalg.lstsq(design, values.unsqueeze(1)).solution.flatten().tolist()
    spread = abs(scale) * 2  # the decoder's [-1, 1] in the learner's units
    if spread == 0 or (values - (scale * decoded + offset)).abs().max().item() > spread / 256 + 1e-6:
        return []
    if abs(scale - 1) < 0.25:
        return []  # the decoder's own images computed less exactly (in bf16), or squashed (a tanh): no rescaling
    shift = f" {'+' if offset > 0 else '-'} {abs(offset):.4g}" if abs(offset) > 1e-6 * abs(scale) else ""
    made = f", made {got.dtype}" if isinstance(got, torch.Tensor) and not got.dtype.is_floating_point else ""
    return [
        f"your images are the decoder's rescaled, {scale:.4g} · image{shift}{made} (to [0, 255] for display?): return "
        "the decoder's images in [-1, 1] as they are, float, and rescale only to show them."
    ]


def _interpolation_error_hints(steps: int, latent_dim: int, error: Exception) -> list[str]:
    """Return the hint on an error the usual shape slips raise: the weights t a row where a column is needed, or one
    image given to the model where it takes a batch."""
    text = str(error)
    if "must match the size of tensor" in text and f"({steps})" in text and f"({latent_dim})" in text:
        return [
            f"the {steps} weights t, of shape ({steps},), meet a code of {latent_dim} values: make t a column, "
            "torch.linspace(0, 1, steps).unsqueeze(1), so that row i of (1 - t)·μ_start + t·μ_end is the i-th code."
        ]
    names_the_size = str(latent_dim) in text or f"input of size {steps * latent_dim}" in text  # a view: steps · 8
    two_wide = isinstance(error, ModelInputError) and error.given is not None and error.given[-1:] == (2,)
    if latent_dim != 2 and (two_wide or _TWO_AGAINST_THE_LATENT_SIZE.search(text) and names_the_size):
        return [
            f"the 2-D case passed, and this model's codes have {latent_dim} values, where your code has 2: a size "
            "written in (torch.zeros(steps, 2), means[:, :2], .expand(steps, 2), .view(steps, 2))? Take it from the "
            "model, model.latent_dim, or from the means, means.shape[1]."
        ]
    one_image = isinstance(error, ModelInputError) and len(error.expected) == 4  # the encoder's, N x C x 28 x 28
    if one_image and error.given in (error.expected[1:], error.expected[2:]):
        return [
            "the model takes a batch of images, N × 1 × 28 × 28, and start_image and end_image are one image each, 1 "
            "× 28 × 28: encode torch.stack([start_image, end_image]), or each with .unsqueeze(0)."
        ]
    return []


# torch's messages where a tensor of 2 latent values meets the 8-D model's 8 (a matrix product, broadcasting, an
# expand, a copy into a row, a view): the 2 as it appears in each.
_TWO_AGAINST_THE_LATENT_SIZE = re.compile(r"\(2\)|\[2\]|x2 and |, 2\]'")


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
    training_mode: bool,
    decoded: Sequence[torch.Tensor],
    means: torch.Tensor,
    log_vars: torch.Tensor,
    steps: int,
    got: object,
    expected: torch.Tensor,
) -> list[str]:
    """Return what the learner's interpolation did wrong beyond the listed mistakes: the mode, else the path, else
    the images rescaled."""
    return (
        _interpolation_mode_hints(training_mode)
        or _path_hints(decoded, means, log_vars, steps)
        or _rescaled_hints(got, expected)
    )


def _path_hints(decoded: Sequence[torch.Tensor], means: torch.Tensor, log_vars: torch.Tensor, steps: int) -> list[str]:
    """Return a hint on the one batch of codes the learner decoded, where it is not `steps` codes evenly spaced on the
    straight line from the start mean to the end mean: codes sampled around the means, a path μ_start + t·μ_end, a
    curve between the means (a spherical interpolation), or points of the line at other t; else []."""
    latent_dim = means.shape[1]
    if len(decoded) != 1 or decoded[0].dim() != 2 or decoded[0].shape[1] != latent_dim or len(decoded[0]) < 2:
        return []
    path, (start, end) = decoded[0].double(), means.double()
    length = (end - start).norm().item()
    if length == 0:
        return []
    evenly = torch.linspace(0, 1, steps, dtype=torch.float64)
    along, off_line = _on_line(path, start, end)
    if off_line <= 1e-4 * length:
        if len(path) == steps and _close(along, evenly, rtol=1e-5, atol=1e-5):  # float32 codes: about 1e-7
            return []
        off = f" (up to {(along - evenly).abs().max().item():.2g} off)" if len(path) == steps else ""
        return [
            f"the codes lie on the line through the means, but at t = {_numbers(along.tolist())}{off} (0 is the "
            f"start's mean, 1 the end's), where the path is t = torch.linspace(0, 1, steps): {steps} codes, both "
            "means included, evenly spaced."
        ]
    if len(path) == steps and _close(path, start + evenly.unsqueeze(1) * end, rtol=1e-3, atol=1e-4):
        return ["the codes are μ_start + t·μ_end: the line between the means is (1 - t)·μ_start + t·μ_end."]
    if not path.any():
        return [
            "every code is 0, the centre of the prior, not a point between the two means: the path is "
            "(1 - t)·μ_start + t·μ_end, from the means model.encode gives."
        ]
    both = start + end
    if both.norm() > 0:
        weights = path @ both / (both @ both)  # each code's weight on μ_start + μ_end, where it lies on that ray
        if _close(path, weights.unsqueeze(1) * both, rtol=1e-3, atol=1e-4):
            return [
                f"each code is w·(μ_start + μ_end), one weight on both means (w = {_numbers(weights.tolist())}): the "
                "line weighs them 1 - t and t, which add up to 1, (1 - t)·μ_start + t·μ_end."
            ]
    columns = means.double().T  # means[:, 0], means[:, 1], ...: a latent dimension of both images each
    if latent_dim == 2 and len(path) == steps:  # only then do two columns make codes of the latent size
        crossed = (1 - evenly.unsqueeze(1)) * columns[0] + evenly.unsqueeze(1) * columns[1]
        if _close(path, crossed, rtol=1e-3, atol=1e-4):
            return [
                "the path runs from means[:, 0] to means[:, 1], the first and the second latent dimension of both "
                "images: the two images' means are the rows, means[0] and means[1]."
            ]
    if _close(path[0], start) and _close(path[-1], end):
        return [
            f"the path starts and ends at the two means, but its codes leave the straight line between them (the "
            f"farthest by {off_line / length:.0%} of the distance between the means): a spherical interpolation "
            "(slerp) or another curve? The exercise's path is the straight line (1 - t)·μ_start + t·μ_end."
        ]
    ends = _ends_in_whole_means(path, start, end)
    own_length = (path[-1] - path[0]).norm().item()
    if ends and own_length > 0 and _on_line(path, path[0], path[-1])[1] <= 1e-4 * own_length:
        return [
            f"the path is a straight line from {ends[0]} to {ends[1]}, where it runs from μ_start to μ_end: "
            "(1 - t)·μ_start + t·μ_end, whose weights add up to 1 at every t."
        ]
    ends_off = torch.stack([path[0] - start, path[-1] - end]) / log_vars.double().mul(0.5).exp()
    if own_length > 0 and _on_line(path, path[0], path[-1])[1] <= 1e-4 * own_length and ends_off.abs().max() < 5:
        return [
            "the path is a straight line, but between codes a few σ from the two means, not the means themselves: "
            "is z sampled (reparameterise, or model(images)), σ added, or are the images changed before encoding? "
            "The path runs between model.encode(images)[0] of the two images as they are given."
        ]
    return []


def _ends_in_whole_means(path: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> tuple[str, str] | None:
    """Return the path's two end codes as sums of whole multiples of the means ('0', 'μ_start', '2·μ_start + μ_end'),
    where each is one (a term left out or added twice, as no sampled code is), else None."""
    basis = torch.stack([start, end], dim=1)
    if torch.linalg.matrix_rank(basis) < 2:
        return None
    words = []
    for code in (path[0], path[-1]):
        whole = torch.linalg.lstsq(basis, code.unsqueeze(1)).solution.squeeze(1).round()
        if not _close(code, basis @ whole, rtol=1e-3, atol=1e-4) or whole.abs().max() > 9:
            return None
        text = ""
        for k, name in zip(whole.tolist(), ("μ_start", "μ_end")):
            if k:
                term = name if abs(k) == 1 else f"{abs(k):g}·{name}"
                if text:
                    text += f" {'-' if k < 0 else '+'} {term}"
                else:
                    text = f"-{term}" if k < 0 else term
        words.append(text or "0")
    return words[0], words[1]


def _on_line(path: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Return each code's position t on the line from `start` (t = 0) to `end` (t = 1), and the largest distance of
    a code from that line."""
    direction = end - start
    along = (path - start) @ direction / direction.norm() ** 2
    return along, (path - start - along.unsqueeze(1) * direction).norm(dim=1).max().item()


def _interpolation_mode_hints(training_mode: bool) -> list[str]:
    """Return a hint when the learner's interpolation ran BatchNorm in training mode (its running averages moved)."""
    if not training_mode:
        return []
    return [
        "the model ran in training mode (model.train()), where BatchNorm normalises with the batch's own statistics "
        "and moves its running averages: use the model in eval mode, as it is given."
    ]
