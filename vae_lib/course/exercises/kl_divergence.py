"""The check of exercise 2 (notebook 01), the closed-form KL(q(z|x) || N(0, I)): probed with only μ changing,
only σ² changing and one image against many, so the hint names the wrong part of the formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial

import torch

from vae_lib.core.objective import kl_per_dimension
from vae_lib.course.exercises.checking import (
    CheckResult,
    _as_number,
    _as_tensor,
    _call,
    _close,
    _compare,
    _gradient_failure,
    _kind_failure,
    _near,
    _numbers,
    _probing,
    _result,
)

# The probes of a KL's parts: a batch of three images of two dimensions, one image of three dimensions, and single
# elements where only μ varies (σ² = 2: every reading of log_var as σ, σ² or log σ is defined there) or only σ².
KL_PROBE_BATCH = ([[1.0, -0.5], [-2.0, 0.3], [0.5, 1.5]], [[0.7, -0.5], [0.2, 1.0], [-1.2, 0.4]])
KL_PROBE_IMAGE = ([[1.0, -2.0, 0.5]], [[0.7, -0.5, 1.2]])
KL_PROBE_POINTS = ((1.0, 0.7), (-2.0, -0.5), (0.5, 2.0), (1.5, -1.5))
KL_PROBE_MEANS = (-2.0, -1.0, 1.0, 2.0)
KL_PROBE_LOG_VARIANCE = math.log(2.0)
KL_PROBE_VARIANCES = (0.25, 0.5, 2.0, 4.0)
# Single elements on either side of 0 in μ and in log σ²: the KL is a number at each; a log or square root of an
# input that can be negative or zero is not, and where it is not tells which input.
KL_PROBE_SIGNED_MEANS = (-1.0, 1.0)
KL_PROBE_SIGNED_LOG_VARIANCES = (-1.0, 0.0, 1.0)
KL_WHY = "the loss backpropagates through the KL to train the encoder: build it from mean and log_var"


def _kl_of_one(mean: float, log_var: float) -> float:
    """Return the closed-form KL of one latent dimension of one image."""
    return -0.5 * (1 + log_var - mean**2 - math.exp(log_var))


# Far from the prior, where a clamp of μ or log σ² (to keep the KL small) changes the KL; the other cases and the
# probes stay within |μ| ≤ 2.
KL_FAR_CASE = "one image far from the prior, μ = (5, -6), log σ² = (4, -5)"
KL_CLAMP_HINT = (
    "right near the prior, wrong far from it: is μ or log σ² clamped or clipped? The KL grows without bound as q "
    "moves away from N(0, I), and the loss needs all of it."
)


def kl_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return the KL check's cases, name -> (mean, log_var)."""
    generator = torch.Generator().manual_seed(0)
    return {
        "one image, μ = (1, -2), σ² = (0.5, 2)": (torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]]).log()),
        "a batch of 4 images, 3 dimensions": (
            torch.randn(4, 3, generator=generator),
            torch.rand(4, 3, generator=generator) * 3 - 2,
        ),
        "q equal to the prior N(0, I)": (torch.zeros(2, 2), torch.zeros(2, 2)),
        KL_FAR_CASE: (
            torch.tensor([[5.0, -6.0]]),
            torch.tensor([[4.0, -5.0]]),
        ),
    }


def check_kl_divergence(kl_divergence: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check KL(q(z|x) || N(0, I)) summed over latent dimensions and averaged over the batch, and its gradient."""
    return _result(
        "closed-form KL", _kl_failures(kl_divergence), "KL = -½ Σ (1 + log σ² - μ² - σ²), averaged over the batch."
    )


def _kl_failures(kl_divergence: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's KL is not a tensor of the right value and gradient."""
    probed = _probing(kl_divergence)
    for name, (mean, log_var) in kl_cases().items():
        leaves = {"mean": mean.clone().requires_grad_(), "log_var": log_var.clone().requires_grad_()}
        got = _call(name, kl_divergence, leaves["mean"], leaves["log_var"])
        expected = kl_per_dimension(leaves["mean"], leaves["log_var"]).sum()
        if not isinstance(got, torch.Tensor):
            yield _kind_failure(name, "the KL", got, KL_WHY)
            return
        yield _compare(name, "the KL", got, expected, diagnose=partial(_kl_case_hints, probed, name == KL_FAR_CASE))
        yield _kind_failure(name, "the KL", got, KL_WHY)
        yield _gradient_failure(name, "the KL", got, leaves, expected, diagnose=lambda: _kl_hints(probed))


def _kl_case_hints(kl_divergence: Callable[[torch.Tensor, torch.Tensor], object], far: bool) -> list[str]:
    """Return _kl_hints' hints, or on the case far from the prior, where no probe finds a mistake, a clamp's."""
    hints = _kl_hints(kl_divergence)
    if hints or not far:
        return hints
    return [KL_CLAMP_HINT]


def _kl_hints(kl_divergence: Callable[[torch.Tensor, torch.Tensor], object]) -> list[str]:
    """Return what is wrong with a KL function, found part by part: where it is not a number, its shape, its two
    reductions, μ's part, σ²'s part.

    Each part is probed on its own: one image against many, one dimension against many, single elements where only
    μ or only σ² changes; a mistake nobody listed is still named by the part it is in. A KL that is NaN or infinite
    on some inputs is told so first, and no part is judged from those values.
    """
    batch = _as_tensor(kl_divergence(*map(torch.tensor, KL_PROBE_BATCH)))
    non_finite = _kl_non_finite_hints(kl_divergence, batch)
    if batch is None:
        return non_finite
    again = _as_tensor(kl_divergence(*map(torch.tensor, KL_PROBE_BATCH)))
    if again is not None and not _close(again, batch, rtol=0, atol=0):
        return non_finite + [
            "your KL changes from call to call with the same μ and log σ²: is it estimated from a sample of z (log "
            "q(z|x) - log p(z) at a drawn z)? Use the closed form, -½ Σ (1 + log σ² - μ² - σ²), exact and the same "
            "every time."
        ]
    if batch.numel() != 1:
        return non_finite + [_kl_shape_hint(tuple(batch.shape))]
    rounded = _kl_rounded_hints(kl_divergence)
    if rounded:  # no part of the formula can be judged from whole numbers
        return non_finite + rounded
    means, log_vars = map(torch.tensor, KL_PROBE_BATCH)
    swapped = _as_tensor(kl_divergence(log_vars, means))
    if (
        swapped is not None
        and swapped.numel() == 1
        and _near(swapped.item(), kl_per_dimension(means, log_vars).sum().item())
    ):
        return non_finite + [
            "mean and log_var are swapped in your formula: it gives the right KL when called with (log_var, mean). "
            "The first argument is μ, the second log σ²."
        ]

    def element(mean: float, log_var: float) -> float:
        return _as_number(kl_divergence(torch.tensor([[mean]]), torch.tensor([[log_var]])))

    return non_finite + _kl_reduction_hints(kl_divergence, batch.item()) + _kl_element_hints(element)


def _kl_rounded_hints(kl_divergence: Callable[[torch.Tensor, torch.Tensor], object]) -> list[str]:
    """Return a hint when the KL comes out as whole numbers (an integer tensor, or rounded) on single elements
    whose right KL has a fraction."""
    got, expected = [], []
    for mean, log_var in KL_PROBE_POINTS:
        value = _as_tensor(kl_divergence(torch.tensor([[mean]]), torch.tensor([[log_var]])))
        if value is None or value.numel() != 1 or not torch.isfinite(value).all():
            return []
        got.append(value.double().item())
        expected.append(_kl_of_one(mean, log_var))
    if len(set(got)) == 1:  # the same everywhere (0, a placeholder): not rounding, and the factor hint names it
        return []
    if not all(value == round(value) for value in got) or all(value == round(value) for value in expected):
        return []
    return [
        f"the KL comes out as whole numbers: {_numbers(got)} where the right values are {_numbers(expected)}. Is it "
        "rounded or made an integer (round, floor, int(), .long(), //)? Keep it a floating-point tensor."
    ]


def _kl_non_finite_hints(
    kl_divergence: Callable[[torch.Tensor, torch.Tensor], object], batch: torch.Tensor | None
) -> list[str]:
    """Return a hint when the KL of a single element is NaN or infinite somewhere, where the right KL is a number:
    at which sign of log σ² or of μ, and the log or square root that usually makes it so; `batch` is the learner's KL
    of KL_PROBE_BATCH (a number there, where every single image gives NaN, names a statistic over the images)."""
    bad = []
    for mean in KL_PROBE_SIGNED_MEANS:
        for log_var in KL_PROBE_SIGNED_LOG_VARIANCES:
            value = _as_tensor(kl_divergence(torch.tensor([[mean]]), torch.tensor([[log_var]])))
            if value is not None and not torch.isfinite(value).all():
                bad.append((mean, log_var, bool(torch.isnan(value).any())))
    if not bad:
        return []
    nans = {is_nan for _, _, is_nan in bad}
    what = "NaN" if nans == {True} else "infinite" if nans == {False} else "NaN or infinite"
    places = {(mean, log_var) for mean, log_var, _ in bad}
    log_vars = sorted({log_var for _, log_var in places})
    means = sorted({mean for mean, _ in places})
    by_log_var = {
        (-1.0,): "negative (σ² < 1)",
        (-1.0, 0.0): "negative or zero (σ² ≤ 1)",
        (0.0,): "zero (σ² = 1)",
    }
    if (
        places == {(mean, log_var) for mean in KL_PROBE_SIGNED_MEANS for log_var in log_vars}
        and tuple(log_vars) in by_log_var
    ):
        return [
            f"your KL is {what} where log_var is {by_log_var[tuple(log_vars)]}, though the KL is a number for every "
            "μ and log σ²: is a log or square root taken of log_var? `log_var` is log σ² already, and it is negative "
            "whenever σ² < 1: σ² = exp(log_var), and log σ² is log_var itself."
        ]
    if places == {(mean, log_var) for mean in means for log_var in KL_PROBE_SIGNED_LOG_VARIANCES} and means == [-1.0]:
        return [
            f"your KL is {what} where μ is negative, though the KL is a number for every μ and log σ²: is a log or "
            "square root taken of mean? The μ term is mean.pow(2)."
        ]
    every_place = {(mean, log_var) for mean in KL_PROBE_SIGNED_MEANS for log_var in KL_PROBE_SIGNED_LOG_VARIANCES}
    if places == every_place and batch is not None and torch.isfinite(batch).all():
        cause = (
            "is something divided by zero, a count less one such as len(mean) - 1 (0 for one image)?"
            if nans == {False}
            else "is a statistic taken over the images that needs two of them (.std() or .var())?"
        )
        return [
            f"your KL is {what} for every single image, and a number for a batch of {len(KL_PROBE_BATCH[0])}: "
            f"{cause} The KL sums over dimensions, then averages over images, .mean()."
        ]
    inputs = ", ".join(f"({mean:g}, {log_var:g})" for mean, log_var in sorted(places))
    cause = (  # an infinity with no NaN comes from a division by zero more often than from a log of zero
        "is something divided by zero (a count less one, such as len(mean) - 1, is 0 for one image) or a log taken "
        "of something that can be zero?"
        if nans == {False}
        else "is a log or square root taken of something that can be negative or zero?"
    )
    return [f"your KL is {what} for (μ, log σ²) = {inputs}, though the KL is a number for every μ and log σ²: {cause}"]


def _kl_shape_hint(shape: tuple[int, ...]) -> str:
    """Return the hint for a KL that is not one number, from its shape (3 images of 2 dimensions went in)."""
    images, dimensions = len(KL_PROBE_BATCH[0]), len(KL_PROBE_BATCH[0][0])
    return {
        (images,): "one KL per image: average them over the batch.",
        (dimensions,): "one KL per latent dimension: sum them over dimensions.",
        (images, dimensions): "one value per image and dimension: sum over dimensions, average over images.",
    }.get(shape, f"the KL should be one number; for {images} images of {dimensions} dimensions it has shape {shape}.")


def _kl_reduction_hints(kl_divergence: Callable, batch: float) -> list[str]:
    """Return hints on how the learner's KL combines images (an average) and dimensions (a sum).

    A comparison with a NaN or infinite KL in it says nothing about the reductions, so it is left out.
    """
    hints = []
    means, log_vars = KL_PROBE_BATCH
    images = [_as_number(kl_divergence(torch.tensor([m]), torch.tensor([v]))) for m, v in zip(means, log_vars)]
    if all(map(math.isfinite, [batch, *images])) and not _near(batch, sum(images) / len(images)):
        if _near(batch, sum(images)):
            hints.append("summed over the batch instead of averaged: take .mean() over images.")
        else:
            hints.append(
                f"one image against many: a batch's KL should be the average of its images' KLs, "
                f"{sum(images) / len(images):.4g}, got {batch:.4g}: sum over dimensions, then .mean() over images."
            )
    (image_means,), (image_log_vars,) = KL_PROBE_IMAGE
    whole = _as_number(kl_divergence(*map(torch.tensor, KL_PROBE_IMAGE)))
    dimensions = [
        _as_number(kl_divergence(torch.tensor([[m]]), torch.tensor([[v]]))) for m, v in zip(image_means, image_log_vars)
    ]
    if all(map(math.isfinite, [whole, *dimensions])) and not _near(whole, sum(dimensions)):
        once = 0.5 * (len(dimensions) - 1)  # what a 1 counted once instead of once per dimension adds
        if _near(whole, sum(dimensions) / len(dimensions)):
            hints.append("averaged over the latent dimensions: sum over dimensions, average over images.")
        elif _near(whole - sum(dimensions), once):
            hints.append(
                f"one dimension against many: on a probe image of {len(dimensions)} dimensions your KL is "
                f"{whole:.4g}, the sum of its dimensions' KLs {sum(dimensions):.4g}, {once:g} less: the 1 of "
                "-½ Σ (1 + log σ² - μ² - σ²) is counted once per image, where it is counted once per dimension "
                "(add it before summing over the dimensions)."
            )
        else:
            hints.append(
                f"one dimension against many: an image's KL should be the sum of its dimensions' KLs, "
                f"{sum(dimensions):.4g}, got {whole:.4g}."
            )
    return hints


def _kl_element_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return hints on the learner's KL of a single element: an overall factor, the part in μ, the part in σ²."""
    got = [element(mean, log_var) for mean, log_var in KL_PROBE_POINTS]
    expected = [_kl_of_one(mean, log_var) for mean, log_var in KL_PROBE_POINTS]
    if _near(got, expected):
        return []
    ratios = [value / right for value, right in zip(got, expected)]
    if all(math.isfinite(ratio) for ratio in ratios) and _near(ratios, ratios[0]):
        factor = ratios[0]
        named = {
            2.0: "the factor ½ is missing: KL = -½ Σ (1 + log σ² - μ² - σ²).",
            -1.0: "the sign is wrong: a KL is never negative.",
            -2.0: "the sign is wrong and the factor ½ is missing: KL = -½ Σ (1 + log σ² - μ² - σ²).",
        }
        default = f"the KL is {factor:.4g} times the right value everywhere: KL = -½ Σ (1 + log σ² - μ² - σ²)."
        divisor = round(1 / factor) if factor > 0 else 0
        if divisor >= 8 and _near(1 / factor, divisor):  # batch sizes; a factor ½ or ¼ is a formula's
            default = (
                f"the KL is 1/{divisor} of the right value everywhere: is it divided by a number written in (a batch "
                f"size of {divisor}?, where .mean() over the images divides by the batch's own size), or weighted "
                "(alpha weighs the KL in the loss, not here)?"
            )
        return [next((hint for value, hint in named.items() if _near(factor, value)), default)]
    return _kl_mean_hints(element) + _kl_variance_hints(element)


def _kl_mean_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return a hint when the KL does not grow by ½μ² as μ moves away from 0 with σ² fixed."""
    fixed = KL_PROBE_LOG_VARIANCE
    growth = [element(mean, fixed) - element(0.0, fixed) for mean in KL_PROBE_MEANS]
    expected = [0.5 * mean**2 for mean in KL_PROBE_MEANS]
    if _near(growth, expected) or not all(map(math.isfinite, growth)):  # a NaN or infinite KL is told on its own
        return []
    if not _near(growth, growth[::-1]):  # KL_PROBE_MEANS is symmetric: μ and -μ must give the same KL
        return [
            f"μ is not squared: with σ² fixed, μ = -1 and μ = 1 must give the same KL (½μ² more than μ = 0), "
            f"yours adds {growth[1]:.4g} and {growth[2]:.4g}: use mean.pow(2)."
        ]
    weights = [value / mean**2 for value, mean in zip(growth, KL_PROBE_MEANS)]
    if _near(weights, weights[0]):
        if _near(weights[0], -0.5):
            return ["the μ² term has the wrong sign: -½(1 + log σ² - μ² - σ²) adds +½μ² to the KL."]
        return [f"the μ² term has weight {weights[0]:.4g}: the KL grows by ½μ² as μ moves from 0."]
    if growth[2] != 0 and _near(growth[3] / growth[2], 2.0):
        return ["the KL grows like |μ|, not like μ²: use mean.pow(2)."]
    return [
        f"the part in μ is wrong: with σ² fixed, μ = {_numbers(KL_PROBE_MEANS)} should add "
        f"{_numbers(expected)} to the KL (½μ²), yours adds {_numbers(growth)}."
    ]


def _kl_variance_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return hints when the KL with μ = 0 is not ½(σ² - log σ² - 1): how log_var is read, or which term is off."""
    log_vars = torch.tensor(KL_PROBE_VARIANCES, dtype=torch.float64).log()
    got = torch.tensor([element(0.0, log_var) for log_var in log_vars.tolist()], dtype=torch.float64)
    expected = -0.5 * (1 + log_vars - log_vars.exp())
    if _close(got, expected, rtol=1e-3):
        return []
    readings = {  # log_var read as something it is not, and what the KL with μ = 0 becomes
        "σ used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).": -0.5
        * (1 + torch.log(log_vars**2) - log_vars**2),
        "σ² used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).": -0.5
        * (1 + torch.log(log_vars) - log_vars),
        "log σ used where log σ² is expected (σ = exp(log_var), as Normal(mean, log_var.exp()) takes it: its scale "
        "is σ): σ² = exp(log_var), σ = exp(0.5 · log_var).": -0.5 * (1 + 2 * log_vars - (2 * log_vars).exp()),
        "σ used where σ² is expected in the last term: σ² = exp(log_var).": -0.5
        * (1 + log_vars - (0.5 * log_vars).exp()),
    }
    named = [hint for hint, wrong in readings.items() if _close(got, wrong, rtol=1e-3)]
    if named:
        return named
    if not torch.isfinite(got).all():
        return []  # a NaN or infinite KL is told on its own
    # The KL with μ = 0 is a · 1 + b · log σ² + c · σ², with (a, b, c) = (-½, -½, ½): find the learner's.
    basis = torch.stack([torch.ones_like(log_vars), log_vars, log_vars.exp()], dim=1)
    weights = torch.linalg.lstsq(basis, got.unsqueeze(1)).solution.squeeze(1)
    if _close(basis @ weights, got, rtol=1e-3, atol=1e-5):
        return _kl_term_hints(weights.tolist())
    return [
        f"the part in σ² is wrong: with μ = 0 the KL should be ½(σ² - log σ² - 1), for σ² = "
        f"{_numbers(KL_PROBE_VARIANCES)}: {_numbers(expected.tolist())}; yours: {_numbers(got.tolist())}."
    ]


def _kl_term_hints(weights: list[float]) -> list[str]:
    """Return a hint for each term of -½(1 + log σ² - σ²) whose weight in the learner's KL is not the right one."""
    constant, log_variance, variance = weights
    hints = []
    if not _near(constant, -0.5, rtol=1e-2, atol=1e-4):
        if _near(constant, 0.0, rtol=1e-2, atol=1e-4):
            hints.append("the 1 inside the sum is missing: when q equals the prior N(0, I) the KL must be 0.")
        else:
            hints.append(
                f"the constant term is off: when q equals the prior N(0, I) the KL must be 0, not {constant + 0.5:.4g}."
            )
    for weight, right, term in ((log_variance, -0.5, "log σ² (log_var)"), (variance, 0.5, "σ² (exp(log_var))")):
        if _near(weight, right, rtol=1e-2, atol=1e-4):
            continue
        if _near(weight, 0.0, rtol=1e-2, atol=1e-4):
            hints.append(f"the {term} term is missing.")
        elif _near(weight, -right, rtol=1e-2, atol=1e-4):
            hints.append(f"the {term} term has the wrong sign.")
        else:
            hints.append(f"the {term} term has weight {weight:.4g} in the KL, expected {right:g}.")
    return hints
