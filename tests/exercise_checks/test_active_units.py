"""The active-units check: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch

from vae_lib import active_dimensions
from vae_lib.course.exercises import check_active_units

from .answers import assert_fails_with


def test_the_active_units_reference_passes() -> None:
    assert check_active_units(lambda means, threshold=0.01: active_dimensions(means, threshold)).passed
    assert check_active_units(lambda means, threshold=0.01: means.var(dim=0) > threshold).passed


def test_active_dimensions_is_the_variance_of_the_means_over_images() -> None:
    means = torch.tensor([[0.0, 5.0, 1.0], [0.2, 5.0, 1.05], [-0.2, 5.0, 0.95]])  # variances 0.04, 0, 0.0025
    assert active_dimensions(means).tolist() == [True, False, False]
    assert active_dimensions(means, threshold=0.002).tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold=0.01: means.mean(dim=0) > threshold, "the mean is used instead of the variance"),
        (lambda means, threshold=0.01: means.mean(dim=0).abs() > threshold, "|mean of μ over the images|"),
        (
            lambda means, threshold=0.01: means.std(dim=0) > threshold,
            "the standard deviation is compared with the threshold",
        ),
        (lambda means, threshold=0.01: means.var(dim=1) > threshold, "the variance is taken over dimensions"),
        (lambda means, threshold=0.01: means.var(dim=0) > 0.01, "the threshold argument is ignored"),
        (lambda means, threshold=0.01: means.var(dim=0), "one True/False per dimension"),
    ],
)
def test_active_units_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_active_units(wrong), phrase)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda means, threshold=0.01: means.var(dim=0) < threshold,
        lambda means, threshold=0.01: means.var(0) <= threshold,
    ],
    ids=["<", "<="],
)
def test_an_inverted_comparison_of_the_variance_is_named(wrong) -> None:
    assert_fails_with(check_active_units(wrong), "Looks like: the comparison is the wrong way round")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold=0.01: torch.nonzero(means.var(dim=0) > threshold).flatten(), "these are the indices"),
        (lambda means, threshold=0.01: (means.var(dim=0) > threshold).sum(), "this is how many dimensions are active"),
    ],
    ids=["indices", "count"],
)
def test_active_units_returned_as_indices_or_a_count_are_named(wrong, phrase) -> None:
    assert_fails_with(check_active_units(wrong), f"Looks like: {phrase}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32])
def test_active_units_of_the_right_dimensions_in_another_dtype_are_told_to_keep_the_booleans(dtype) -> None:
    result = check_active_units(lambda means, threshold: (means.var(dim=0) > threshold).to(dtype))
    assert_fails_with(result, f"the right dimensions, made {dtype}: return the comparison's booleans")


@pytest.mark.parametrize(
    "wrong",
    [
        lambda means, threshold: (means**2).var(dim=0) > threshold,
        lambda means, threshold: (means**2).mean(dim=0) > threshold,
    ],
    ids=["variance of μ²", "mean of μ²"],
)
def test_an_answer_that_a_shift_of_the_means_changes_is_told_the_variance_does_not_change(wrong) -> None:
    # the variance of μ² picked the dimensions "threshold ignored" picks at threshold 0.5, and was told so
    result = check_active_units(wrong)
    assert_fails_with(result, "your answer changes when 3 is added to every image's mean")
    assert "threshold argument is ignored" not in result.details


def test_a_threshold_written_in_other_than_the_default_is_told_the_answer_never_changes() -> None:
    result = check_active_units(lambda means, threshold: means.var(dim=0) > 0.001)  # was given no hint
    assert_fails_with(result, "your answer is the same at every threshold from 0.001 to 2.5")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold: means.var(dim=0) / means.var(dim=0).max() > threshold, "stays the same when"),
        (lambda means, threshold: means.var(dim=0) / means.var(dim=0).sum() > threshold, "stays the same when"),
        (lambda means, threshold: torch.round(means.var(dim=0), decimals=2) > threshold, "the variances are rounded"),
    ],
    ids=["divided by the largest variance", "a share of the sum", "rounded"],
)
def test_variances_rescaled_or_rounded_fail_on_means_further_apart(wrong, phrase) -> None:
    # each passed: the cases' largest variance was 1, and none lay near a threshold
    assert_fails_with(check_active_units(wrong), "Case *the means 3 times as far apart, threshold 0.02*", phrase)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold: ((means - means.mean(0)) ** 2).sum(0) > threshold, "counted 10 times"),
        (lambda means, threshold: means.var(dim=0) / len(means) > threshold, "counted 10 times"),
        (lambda means, threshold: means.max(0).values - means.min(0).values > threshold, "the range (largest minus"),
        (lambda means, threshold: [bool(v > threshold) for v in means.var(0)], "returns a Python list"),
        (lambda means, threshold: means.var(0).numpy() > threshold, "returns NumPy's result"),
    ],
    ids=["sum of squares", "divided by the count twice", "range", "a list", "NumPy"],
)
def test_active_units_of_the_sum_of_squares_the_range_or_not_a_tensor_are_named(wrong, phrase) -> None:
    # each failed with no hint
    result = check_active_units(wrong)
    assert_fails_with(result, phrase)
    assert "Looks like:" in result.details


def test_an_answer_returning_a_sparse_or_meta_tensor_on_the_probes_alone_is_a_failed_check() -> None:
    # the probes' comparison raised NotImplementedError out of the check
    for odd in (lambda active: active.to_sparse(), lambda active: torch.empty_like(active, device="meta")):

        def odd_on_probes(means, threshold, odd=odd):
            active = means.std(dim=0) > threshold  # wrong: the standard deviation
            return active if len(means) == 500 and threshold in (0.01, 0.5, 0.02) else odd(active)

        assert_fails_with(check_active_units(odd_on_probes), "Case *500 images")


def test_a_comparison_that_counts_a_variance_equal_to_the_threshold_fails_on_a_dimension_that_never_varies() -> None:
    # passed: no case had a variance equal to its threshold
    result = check_active_units(lambda means, threshold: means.var(dim=0) >= threshold)
    assert_fails_with(result, "Case *a dimension that never varies, threshold 0*", "variance > threshold, not >=")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold: (means - means.mean(0)).abs().mean(0) > threshold, "the mean absolute deviation"),
        (
            lambda means, threshold: ((means - means.mean(0)).abs() > threshold).any(0),
            "a dimension is called active when any one image deviates",
        ),
        (lambda means, threshold: means.var(dim=0).log() > threshold, "the logarithm of the variance"),
        (
            lambda means, threshold: means[:100].var(dim=0) > threshold,
            "your answer changes when the images are put in another order",
        ),
        (
            lambda means, threshold: means.var(dim=0) > threshold**0.5,
            "the variance is compared with the square root of the threshold",
        ),
    ],
    ids=["mean absolute deviation", "any image deviates", "log of the variance", "the first 100 images", "√threshold"],
)
def test_other_measures_of_spread_and_a_part_of_the_images_are_named(wrong, phrase) -> None:
    # were told "the standard deviation is used", "the same at every threshold", or nothing
    result = check_active_units(wrong)
    assert_fails_with(result, f"Looks like: {phrase}")
    assert "standard deviation is used" not in result.details


def test_an_answer_that_never_changes_is_told_so_rather_than_that_it_ignores_a_scale() -> None:
    result = check_active_units(lambda means, threshold: torch.zeros(means.shape[1], dtype=torch.bool))
    assert_fails_with(result, "your answer is the same at every threshold")


@pytest.mark.parametrize(
    "scaled",
    [
        lambda means, threshold: 1.2 * means.var(dim=0) > threshold,
        lambda means, threshold: means.diff(dim=0).var(dim=0) > threshold,
        lambda means, threshold: ((means[:, None] - means[None]) ** 2).mean(dim=(0, 1)) > threshold,
    ],
    ids=["variance × 1.2", "variance of neighbours' differences", "pairs without their ½"],
)
def test_a_variance_scaled_up_is_caught_near_the_threshold_and_named(scaled) -> None:
    # each passed: the cases' variances lay 4 times or more from their thresholds
    assert_fails_with(check_active_units(scaled), "Case *the same means, threshold 0.1*", "is the variance scaled up")


@pytest.mark.parametrize(
    "subset",
    [
        lambda means, threshold: means[::2].var(dim=0) > threshold,
        lambda means, threshold: means[100:].var(0) > threshold,
    ],
    ids=["every other image", "all but the first 100"],
)
def test_images_left_out_are_caught_and_named(subset) -> None:
    # each passed: a subset's variances lay as far from the thresholds as the whole's
    assert_fails_with(check_active_units(subset), "Case *one image far from the others", "are some images left out")


def test_the_variance_against_the_threshold_squared_is_named_with_the_standard_deviation() -> None:
    # told only that the standard deviation was used, which this code does not compute
    result = check_active_units(lambda means, threshold: means.var(dim=0) > threshold**2)
    assert_fails_with(result, "(or the variance with the threshold squared)")
