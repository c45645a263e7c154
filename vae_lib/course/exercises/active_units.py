"""The check of exercise 7 (notebook 06), active units: the latent dimensions whose posterior mean varies over the
images by more than a threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch

from vae_lib.core.evaluate import active_dimensions
from vae_lib.course.exercises.checking import (
    CheckResult,
    _as_tensor,
    _call,
    _close,
    _compare,
    _probing,
    _result,
    _show,
    _with_hints_instead,
)

NEAR_THRESHOLD_CASE = "the same means, threshold 0.1"
ONE_IMAGE_CASE = "one image far from the others in the first dimension, threshold 0.1"
# What an answer that passed the cases before these gets wrong in them: the first dimension each case's hint names.
CASE_HINTS = {
    NEAR_THRESHOLD_CASE: (
        1,
        "the second dimension, whose variance over the images (0.09) lies just below the threshold (0.1), is marked "
        "active: is the variance scaled up (twice it, as the variance of the differences between neighbouring images "
        "or a mean over pairs of images without its ½, gives)? Compare the variance itself, means.var(dim=0) > "
        "threshold.",
    ),
    ONE_IMAGE_CASE: (
        0,
        "the first dimension, which only the second image moves (10, where every other image's is 0: a variance of "
        "0.2), is not marked active: are some images left out (a slice such as means[::2] or means[100:])? Take the "
        "variance over every image.",
    ),
}


def active_unit_cases() -> dict[str, tuple[torch.Tensor, float]]:
    """Return the active-units check's cases, name -> (latent_means, threshold).

    Each dimension's spread and offset are chosen so that each common mistake gives another answer. In the third, the
    means are 3 times as far apart: the largest variance is 9, not 1 (so variances divided by it or by their sum
    differ), and one variance, 0.0225, lies just above the threshold (so rounded variances differ). In the fourth,
    the last dimension is 0.5 in every image, whose variance is exactly 0 however it is summed, and the threshold is
    0: that dimension is not active, so variance >= threshold differs from variance > threshold. In the fifth, the
    second dimension's variance, 0.09, lies just below the threshold, 0.1, so a variance more than 1.11 times too large
    (of the differences between images, or of pairs without their ½) differs. In the sixth, one dimension varies only
    through the second image, 10 where the others are 0 (variance 0.2): an answer that leaves images out differs.
    """
    generator = torch.Generator().manual_seed(0)
    spreads = torch.tensor([1.0, 0.3, 0.05, 0.02, 0.003, 0.0])
    offsets = torch.tensor([-0.5, 2.0, 0.5, -1.0, 3.0, 0.02])
    noise = torch.randn(500, len(spreads), generator=generator)
    standardised = (noise - noise.mean(dim=0)) / noise.std(dim=0)
    latent_means = standardised * spreads + offsets
    return {
        "500 images, 6 dimensions, threshold 0.01": (latent_means, 0.01),
        "the same means, threshold 0.5": (latent_means, 0.5),
        "the means 3 times as far apart, threshold 0.02": (3 * latent_means, 0.02),
        "a dimension that never varies, threshold 0": (
            torch.cat([latent_means[:, :-1], torch.full((500, 1), 0.5)], 1),
            0.0,
        ),
        NEAR_THRESHOLD_CASE: (latent_means, 0.1),
        ONE_IMAGE_CASE: (
            torch.cat([torch.zeros(500, 1).index_fill(0, torch.tensor([1]), 10.0), latent_means[:, 1:]], 1),
            0.1,
        ),
    }


def _differs_at(got: object, expected: torch.Tensor, dimension: int) -> bool:
    """Return whether an answer of the right shape marks `dimension` otherwise than `expected` does."""
    values = _as_tensor(got)
    return (
        values is not None and values.shape == expected.shape and bool(values[dimension]) != bool(expected[dimension])
    )


def check_active_units(active_units: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check active = active_units(latent_means, threshold): the variance over images of each dimension > threshold."""
    return _result("active units", _active_unit_failures(active_units), "a dimension is active when its mean varies.")


def _active_unit_failures(active_units: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's answer differs from active_dimensions."""
    for name, (latent_means, threshold) in active_unit_cases().items():
        got = _call(name, active_units, latent_means, threshold)
        expected = active_dimensions(latent_means, threshold)
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and got.shape == expected.shape:
            if torch.equal(got.double(), expected.double()):
                hint = f"the right dimensions, made {got.dtype}: return the comparison's booleans as they are."
            else:
                hint = "compare each dimension's variance with the threshold: variance > threshold."
            yield (
                f"Case *{name}*: expected one True/False per dimension, got {got.dtype} values {_show(got.double())}."
                f"\nLooks like: {hint}"
            )
            return
        mistakes = [
            (
                "these are the indices of the active dimensions: return one True/False per dimension, "
                "variance > threshold, without torch.nonzero or torch.where.",
                expected.nonzero().flatten(),
            ),
            ("this is how many dimensions are active: return one True/False per dimension.", expected.sum()),
        ]
        diagnose = partial(_active_unit_hints, _probing(active_units), latent_means, threshold)
        failure = _compare(
            name,
            "the active dimensions",
            got,
            expected.double(),
            [(hint, wrong.double()) for hint, wrong in mistakes],
            diagnose,
        )
        dimension, hint = CASE_HINTS.get(name, (None, ""))
        if failure and hint and _differs_at(got, expected, dimension):  # the cases before passed: this one's hint
            failure = _with_hints_instead(failure, [hint])
        yield failure


# Thresholds each named mistake is confirmed at: an answer that agrees with a mistake at the case's threshold alone
# may compute something else that happens to pick the same dimensions there. None is near a mean, a standard
# deviation or a variance of the cases' dimensions, where float rounding would decide; 0.85 lies between the first
# dimension's mean absolute deviation (0.81) and its standard deviation (1), 0.1 between the fourth's largest
# deviation from its mean (0.079) and its range (0.134). (The fourth case's own threshold, 0, is its constant
# dimension's variance on purpose; only an answer that passed the other three cases is probed there.)
PROBE_THRESHOLDS = (0.001, 0.01, 0.1, 0.7, 0.85, 2.5)

# Named mistakes: what each computes in place of variance > threshold.
MISTAKES: list[tuple[str, Callable[[torch.Tensor, float], torch.Tensor]]] = [
    ("the mean is used instead of the variance over images.", lambda means, threshold: means.mean(dim=0) > threshold),
    (
        "the size of each dimension's average, |mean of μ over the images|, is compared with the threshold: where the "
        "means sit says nothing of how they vary from image to image, which is what makes a dimension active.",
        lambda means, threshold: means.mean(dim=0).abs() > threshold,
    ),
    (
        "the standard deviation is compared with the threshold (or the variance with the threshold squared): compare "
        "the variance itself with the threshold, means.var(dim=0) > threshold.",
        lambda means, threshold: means.var(dim=0).sqrt() > threshold,
    ),
    (
        "the variance is taken over dimensions (one value per image): take it over images, dim=0.",
        lambda means, threshold: means.var(dim=1) > threshold,
    ),
    ("the threshold argument is ignored.", lambda means, threshold: means.var(dim=0) > 0.01),
    (
        "the comparison is the wrong way round: these are the dimensions whose variance is below the threshold; a "
        "dimension is active when its variance is above it, variance > threshold.",
        lambda means, threshold: means.var(dim=0) < threshold,
    ),
    (
        "the range (largest minus smallest mean) is used instead of the variance over images.",
        lambda means, threshold: means.max(dim=0).values - means.min(dim=0).values > threshold,
    ),
    (
        "the variances are rounded before the comparison: compare them as they are.",
        lambda means, threshold: means.var(dim=0).round(decimals=2) > threshold,
    ),
    (
        "the mean absolute deviation (the average of |μ - its mean|) is used instead of the variance (the average of "
        "the squared deviations).",
        lambda means, threshold: (means - means.mean(dim=0)).abs().mean(dim=0) > threshold,
    ),
    (
        "a dimension is called active when any one image deviates from its mean by more than the threshold: compare "
        "the variance, the average of the squared deviations over all images, with it.",
        lambda means, threshold: (means - means.mean(dim=0)).abs().amax(dim=0) > threshold,
    ),
    (
        "the logarithm of the variance is compared with the threshold (a log-variance, as the encoder outputs): "
        "compare the variance itself.",
        lambda means, threshold: means.var(dim=0).log() > threshold,
    ),
    (
        "the variance is compared with the square root of the threshold: compare it with the threshold itself.",
        lambda means, threshold: means.var(dim=0) > threshold**0.5,
    ),
    (
        "a dimension whose variance equals the threshold is counted as active: a dimension is active when its "
        "variance is above the threshold, variance > threshold, not >=.",
        lambda means, threshold: means.var(dim=0) >= threshold,
    ),
]


def _active_unit_hints(
    active_units: Callable[[torch.Tensor, float], object], latent_means: torch.Tensor, threshold: float
) -> list[str]:
    """Return the named mistake the learner's answer agrees with at every probe threshold (for the means as given and
    3 times as far apart), else what shifting the means, counting each image 10 times or putting the images in
    another order (which leave the variances as they were), scaling the means or changing the threshold shows about
    what it computes."""
    thresholds = (threshold, *PROBE_THRESHOLDS)
    probed = {
        "as given": latent_means,
        "shifted": latent_means + 3.0,
        "counted 10 times": latent_means.repeat(10, 1),
        "sorted": latent_means[latent_means[:, 0].argsort()],
        "scaled": 3.0 * latent_means,
    }
    answers = {name: [_as_tensor(active_units(means, probe)) for probe in thresholds] for name, means in probed.items()}
    if any(answer is None for answers_of_means in answers.values() for answer in answers_of_means):
        return []

    def agrees(name: str, expected: list[torch.Tensor]) -> bool:
        return all(_close(answer, right.double()) for answer, right in zip(answers[name], expected))

    as_given = answers["as given"]
    for hint, mistake in MISTAKES:
        if all(agrees(name, [mistake(probed[name], probe) for probe in thresholds]) for name in ("as given", "scaled")):
            return [hint]
    if not agrees("shifted", as_given):
        return [
            "your answer changes when 3 is added to every image's mean, which leaves each dimension's variance over "
            "the images as it was: is something other than μ itself taken before the variance (μ², |μ|), or the "
            "second moment mean(μ²) instead of it? Use means.var(dim=0) > threshold."
        ]
    if not agrees("counted 10 times", as_given):
        return [
            "your answer changes when every image is counted 10 times, which leaves the variance over the images as "
            "it was (within 0.2 %): is the sum of squared deviations taken without dividing by the number of images, "
            "or divided by it twice? The variance is their mean, means.var(dim=0)."
        ]
    if not agrees("sorted", as_given):
        return [
            "your answer changes when the images are put in another order (sorted by their first dimension), which "
            "leaves each dimension's variance over the images as it was: is only some of the images used (say the "
            "first 100, means[:100])? Take the variance over all of them, means.var(dim=0)."
        ]
    if all(_close(answer, as_given[0]) for answer in as_given):
        return [
            f"your answer is the same at every threshold from {PROBE_THRESHOLDS[0]:g} to {PROBE_THRESHOLDS[-1]:g}: "
            "compare with the threshold argument."
        ]
    if agrees("scaled", as_given):
        return [
            "your answer stays the same when every mean is multiplied by 3, which multiplies each variance by 9: are "
            "the variances divided by one of them or by their sum (a share, or standardised)? Compare each variance "
            "itself with the threshold."
        ]
    return []
