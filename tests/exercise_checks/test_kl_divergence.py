"""The closed-form KL check: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as distribution_kl

from vae_lib.core.objective import kl_per_dimension
from vae_lib.course.exercises import check_kl_divergence

from .answers import assert_fails_with, kl


def test_the_kl_reference_passes_and_a_pass_reads_as_one_line() -> None:
    result = check_kl_divergence(kl)
    assert result.passed and str(result).startswith("✅ closed-form KL: passed")
    assert check_kl_divergence(lambda mean, log_var: kl_per_dimension(mean, log_var).sum()).passed


@pytest.mark.parametrize(
    "right",
    [
        lambda m, v: distribution_kl(Normal(m, v.mul(0.5).exp()), Normal(torch.zeros_like(m), 1.0)).sum(1).mean(),
        lambda m, v: 0.5 * (m.pow(2) + v.exp() - v - 1).sum(-1).mean(),
        lambda m, v: (-0.5 * (1 + v - m * m - torch.exp(v))).mean(0).sum(),
    ],
    ids=["torch.distributions", "rearranged", "averaged over images first"],
)
def test_a_kl_written_another_way_passes(right) -> None:
    assert check_kl_divergence(right).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda m, v: -torch.sum(1 + v - m**2 - v.exp(), dim=1).mean(), "the factor ½ is missing"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp()), "summed over the batch instead of averaged"),
        (lambda m, v: -0.5 * torch.mean(1 + v - m**2 - v.exp()), "averaged over the latent dimensions"),
        (lambda m, v: 0.5 * torch.sum(1 + v - m**2 - v.exp(), dim=1).mean(), "the sign is wrong"),
        (lambda m, v: -0.5 * torch.sum(1 + torch.log(v**2) - m**2 - v**2, dim=1).mean(), "σ used where log σ²"),
        (lambda m, v: -0.5 * torch.sum(1 + torch.log(v) - m**2 - v, dim=1).mean(), "σ² used where log σ²"),
        (lambda m, v: -0.5 * torch.sum(1 + 2 * v - m**2 - (2 * v).exp(), dim=1).mean(), "log σ used where"),
        (lambda m, v: -0.5 * torch.sum(v - m**2 - v.exp(), dim=1).mean(), "the 1 inside the sum"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp(), dim=1), "one KL per image"),
        (lambda m, v: -0.5 * (1 + v - m**2 - v.exp()), "one value per image and dimension"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp(), dim=1).mean(), "μ is not squared"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m.abs() - v.exp(), dim=1).mean(), "grows like |μ|"),
        (lambda m, v: -0.5 * torch.sum(1 + v + m**2 - v.exp(), dim=1).mean(), "the μ² term has the wrong sign"),
        (lambda m, v: -0.5 * torch.sum(1 - m**2 - v.exp(), dim=1).mean(), "the log σ² (log_var) term is missing"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m**2, dim=1).mean(), "the σ² (exp(log_var)) term is missing"),
        (
            lambda m, v: -0.5 * torch.sum(1 - v - m**2 - v.exp(), dim=1).mean(),
            "the log σ² (log_var) term has the wrong",
        ),
        (lambda m, v: -0.25 * torch.sum(1 + v - m**2 - v.exp(), dim=1).mean(), "0.5 times the right value"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp(), dim=0).mean(), "summed over the batch"),
        (lambda m, v: kl(m, v).item(), "should be a tensor, got float"),
        (lambda m, v: kl(m, v).detach(), "carries no gradient"),
        (lambda m, v: kl(m, v).detach().numpy(), "should be a tensor, got ndarray"),
        (lambda m, v: kl(m.detach(), v), "the wrong gradient with respect to mean"),
    ],
)
def test_kl_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_kl_divergence(wrong), phrase)


@pytest.mark.parametrize(
    ("wrong", "where"),
    [
        (lambda m, v: -0.5 * torch.sum(1 + torch.log(v) - m**2 - v, dim=1).mean(), "negative or zero (σ² ≤ 1)"),
        (lambda m, v: -0.5 * torch.sum(1 + v - m**2 - torch.sqrt(v) ** 2, dim=1).mean(), "negative (σ² < 1)"),
    ],
    ids=["log of log_var", "square root of log_var"],
)
def test_a_kl_that_is_nan_for_negative_log_variances_is_told_so_first(wrong, where) -> None:
    # The cases and the probes have negative log-variances: no reduction can be judged from the NaN they give there.
    result = check_kl_divergence(wrong)
    looks_like = next(line for line in result.details.splitlines() if line.startswith("Looks like"))
    assert "NaN" in looks_like and f"where log_var is {where}" in looks_like, result.details
    assert "a log or square root taken of log_var" in looks_like
    assert "one image against many" not in result.details and "one dimension against many" not in result.details
    assert "nan, got nan" not in result.details


def test_a_kl_that_is_nan_for_negative_log_variances_keeps_the_hint_on_how_log_var_is_read() -> None:
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + torch.log(v) - m**2 - v, dim=1).mean())
    assert_fails_with(result, "And: σ² used where log σ² is expected")


def test_a_kl_that_divides_by_the_batch_size_less_one_is_told_of_a_division_by_zero() -> None:
    # infinite on the first case, one image: no log or square root is taken of anything
    result = check_kl_divergence(lambda m, v: -0.5 * (1 + v - m**2 - v.exp()).sum() / (len(m) - 1))
    assert_fails_with(result, "got inf", "is something divided by zero")
    assert "square root" not in result.details


def test_a_kl_that_sums_over_images_and_averages_over_dimensions_is_told_both() -> None:
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp(), dim=0).mean())
    assert_fails_with(result, "summed over the batch instead of averaged", "averaged over the latent dimensions")


def test_a_kl_returned_as_a_float_fails_because_the_loss_needs_its_gradient() -> None:
    result = check_kl_divergence(lambda m, v: kl(m, v).item())
    assert_fails_with(result, "cuts the gradient", "the loss backpropagates through the KL")


@pytest.mark.parametrize(
    "rounding",
    [torch.floor, torch.round, lambda value: value.long(), lambda value: value // 1],
    ids=["floor", "round", "long", "floor division"],
)
def test_a_kl_rounded_to_whole_numbers_is_told_so(rounding) -> None:
    # the check's own probe of μ divided by a rounded KL's zero growth and raised ZeroDivisionError
    result = check_kl_divergence(lambda m, v: rounding(kl(m, v)))
    assert_fails_with(result, "the KL comes out as whole numbers", "Keep it a floating-point tensor")


def test_a_kl_that_is_always_zero_is_not_told_it_is_rounded() -> None:
    result = check_kl_divergence(lambda m, v: 0 * kl(m, v))
    assert_fails_with(result, "the KL is 0 times the right value everywhere")
    assert "whole numbers" not in result.details


def test_the_kl_hint_on_an_unsquared_mean_quotes_what_mu_adds() -> None:
    # -½(1 + log σ² - μ - σ²) grows by μ/2 as μ moves from 0: -0.5 for μ = -1, +0.5 for μ = 1
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp(), dim=1).mean())
    assert_fails_with(result, "yours adds -0.5 and 0.5")


def test_a_kl_with_mean_and_log_var_swapped_is_told_so_not_that_mu_is_unsquared() -> None:
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + m - v.pow(2) - m.exp(), dim=1).mean())
    assert_fails_with(result, "Looks like: mean and log_var are swapped in your formula")
    assert "not squared" not in result.details


def test_a_kl_wrong_only_where_the_case_hides_it_is_caught_by_its_gradient() -> None:
    # In the first case log σ² = (ln 0.5, ln 2) sums to 0, so leaving log_var out gives the right value there.
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 - m**2 - v.exp(), dim=1).mean())
    assert_fails_with(result, "right value but the wrong gradient with respect to log_var", "log σ² (log_var) term")


def test_a_kl_clamped_far_from_the_prior_fails_and_is_told_so() -> None:
    # every case and probe had |μ| ≤ 2: a clamp at 3 passed, and its training step too
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m.clamp(-3, 3).pow(2) - v.exp(), dim=1).mean())
    assert_fails_with(result, "Case *one image far from the prior", "right near the prior, wrong far from it")


def test_a_failed_kl_check_says_which_case_and_expected_against_got() -> None:
    result = check_kl_divergence(lambda m, v: -torch.sum(1 + v - m**2 - v.exp(), dim=1).mean())
    # by hand: -½ (1 + ln 0.5 - 1 - 0.5) - ½ (1 + ln 2 - 4 - 2) = 0.25 + 2.5 = 2.75 (the logarithms cancel)
    assert "Case *one image, μ = (1, -2), σ² = (0.5, 2)*: the KL expected 2.75, got 5.5." in result.details
    assert "❌" in result._repr_markdown_()


def test_a_kl_divided_by_a_batch_size_written_in_is_told_so() -> None:
    # was told only "the KL is 0.007812 times the right value everywhere"
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp()) / 128)
    assert_fails_with(result, "the KL is 1/128 of the right value everywhere", "a batch size of 128?")


def test_a_kl_of_normals_given_the_variance_as_their_scale_is_told_the_scale_is_sigma() -> None:
    result = check_kl_divergence(
        lambda m, v: distribution_kl(Normal(m, v.exp()), Normal(torch.zeros_like(m), 1.0)).sum(1).mean()
    )
    assert_fails_with(result, "as Normal(mean, log_var.exp()) takes it: its scale is σ")


def test_a_kl_estimated_from_a_sample_of_z_is_told_it_changes_from_call_to_call() -> None:
    # was told "one image against many ... μ is not squared"
    def sampled(mean, log_var):
        posterior = Normal(mean, torch.exp(0.5 * log_var))
        z = posterior.rsample()
        return (posterior.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(dim=1).mean()

    result = check_kl_divergence(sampled)
    assert_fails_with(result, "Looks like: your KL changes from call to call with the same μ and log σ²")
    assert "not squared" not in result.details


def test_the_one_counted_once_per_image_instead_of_once_per_dimension_is_named() -> None:
    # told only that an image's KL is not the sum of its dimensions', with a probe's figures the learner never saw
    def one_counted_once(mean, log_var):
        return (-0.5 * (1 + log_var.sum(1) - mean.pow(2).sum(1) - log_var.exp().sum(1))).mean()

    assert_fails_with(check_kl_divergence(one_counted_once), "is counted once per image, where it is counted once per")


def test_a_kl_that_takes_a_spread_over_the_images_is_told_one_image_has_none() -> None:
    # NaN for one image was told to come from a log or square root of something negative
    result = check_kl_divergence(lambda m, v: (-0.5 * (1 + v - m**2 - v.exp())).sum(1).std())
    assert_fails_with(result, "NaN for every single image, and a number for a batch of 3", "(.std() or .var())")
    # torch's warning, quoted below the hint without where in torch's C++ it was raised
    assert result.details.splitlines()[-1].endswith("divided by output numel).")
