"""The exercise checks: the reference passes, and each named mistake is recognised by its hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as distribution_kl

from vae_lib import VAE, active_dimensions, train_step, vae_loss
from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import ConditionalVAE
from vae_lib.core.objective import kl_per_dimension
from vae_lib.course.exercises import (
    CheckResult,
    check_active_units,
    check_bernoulli_reconstruction,
    check_decoder_input,
    check_interpolate,
    check_kl_divergence,
    check_loss,
    check_reparameterise,
    check_sample_prior,
    check_training_step,
)


def assert_fails_with(result: CheckResult, *phrases: str) -> None:
    assert not result.passed
    for phrase in phrases:
        assert phrase in result.details, result.details


# --- reparameterisation ---


def reparameterise(mean, log_var):
    return mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)


def test_the_reparameterisation_reference_passes_also_when_the_noise_is_drawn_another_way() -> None:
    assert check_reparameterise(VAE.reparameterise).passed
    assert check_reparameterise(reparameterise).passed
    assert check_reparameterise(lambda mean, log_var: mean + torch.randn(mean.shape) * log_var.mul(0.5).exp()).passed


@pytest.mark.parametrize(
    "right",
    [
        lambda mean, log_var: Normal(mean, torch.exp(0.5 * log_var)).rsample(),
        lambda mean, log_var: mean + log_var.exp().sqrt() * torch.normal(torch.zeros_like(mean), 1.0),
    ],
    ids=["Normal.rsample", "sqrt of the variance, torch.normal noise"],
)
def test_a_reparameterisation_written_another_way_passes(right) -> None:
    assert check_reparameterise(right).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var.exp(), "scaled by the variance"),
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var, "log_var is used as σ"),
        (lambda mean, log_var: mean + torch.randn_like(mean), "not scaled by σ"),
        (lambda mean, log_var: mean + 0 * log_var, "z is not random"),
        (lambda mean, log_var: mean + torch.randn(1) * log_var.mul(0.5).exp(), "one ε is shared"),
        (lambda mean, log_var: torch.randn_like(mean) * log_var.mul(0.5).exp(), "the mean is not added"),
        (lambda mean, log_var: torch.normal(mean.detach(), log_var.mul(0.5).exp().detach()), "no gradient"),
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var.mul(0.5).exp().detach(), "dz/dlog_var"),
        (lambda mean, log_var: mean + torch.rand_like(mean) * log_var.mul(0.5).exp(), "ε is uniform"),
        # the right mean and spread, the wrong distribution: only the shape of ε's distribution tells
        (lambda mean, log_var: mean + (torch.rand_like(mean) - 0.5) * 12**0.5 * log_var.mul(0.5).exp(), "ε is uniform"),
        (lambda mean, log_var: mean + (torch.randn_like(mean) + 1) * log_var.mul(0.5).exp(), "not 0: ε ~ N(0, I)"),
        (lambda mean, log_var: 2 * mean + torch.randn_like(mean) * log_var.mul(0.5).exp(), "the average z is 2·μ"),
        (lambda mean, log_var: mean + 2 * torch.randn_like(mean) * log_var.mul(0.5).exp(), "z spreads 2 times σ"),
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var.mul(0.25).exp(), "σ to the power 0.5"),
        (lambda mean, log_var: mean + torch.randn(len(mean), 1) * log_var.mul(0.5).exp(), "share one ε"),
        (lambda mean, log_var: mean + torch.randn(mean.shape[1]) * log_var.mul(0.5).exp(), "shared by all the images"),
        (lambda mean, log_var: (torch.manual_seed(0), reparameterise(mean, log_var))[1], "a seed is set inside"),
        (lambda mean, log_var: mean, "z is not random"),
        # a little off, each in one property only: the check's tolerances are tighter than these
        (lambda mean, log_var: mean + (torch.randn_like(mean) + 0.1) * log_var.mul(0.5).exp(), "not 0: ε ~ N(0, I)"),
        (lambda mean, log_var: mean + 1.1 * torch.randn_like(mean) * log_var.mul(0.5).exp(), "z spreads 1.1 times σ"),
        (
            lambda mean, log_var: (
                mean
                + (0.7**0.5 * torch.randn_like(mean) + 0.3**0.5 * torch.randn(len(mean), 1)) * log_var.mul(0.5).exp()
            ),
            "z's dimensions move together over the draws (correlation 0.3",
        ),
        (lambda mean, log_var: reparameterise(mean, log_var).detach().numpy(), "should be a tensor, got ndarray"),
    ],
)
def test_reparameterisation_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_reparameterise(wrong), phrase)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda mean, log_var: mean + torch.randn_like(mean) * torch.sqrt(log_var),
        lambda mean, log_var: mean + torch.randn_like(mean) * torch.log(log_var),
    ],
    ids=["square root of log_var", "log of log_var"],
)
def test_a_square_root_or_log_of_log_var_is_told_it_gives_nan_for_negative_log_variances(wrong) -> None:
    # σ² = 0.25 has log σ² = -1.39: its dimension of z is NaN, which no distance from a normal distribution measures
    result = check_reparameterise(wrong)
    assert_fails_with(
        result, "z is NaN in the dimensions with σ² = 0.25", "negative log-variances", "exp(0.5 · log_var)"
    )
    assert "Kolmogorov-Smirnov" not in result.details and "nan" not in result.details


@pytest.mark.parametrize("bound", [1.0, 2.0, 3.0])
def test_clipped_noise_is_named_as_clipped_even_where_its_spread_and_distribution_pass(bound) -> None:
    # at ±1 the draws looked uniform, at ±2 only their spread was off, at ±3 the check passed
    result = check_reparameterise(
        lambda mean, log_var: mean + torch.randn_like(mean).clamp(-bound, bound) * log_var.mul(0.5).exp()
    )
    assert_fails_with(result, "Looks like: ε is clipped", "sit at exactly the same lowest or highest value")
    assert "uniform" not in result.details


def test_a_standard_deviation_shared_by_the_dimensions_is_named() -> None:
    result = check_reparameterise(
        lambda mean, log_var: mean + torch.randn_like(mean) * log_var.mul(0.5).exp().mean(dim=1, keepdim=True)
    )
    assert_fails_with(result, "z spreads the same in every dimension (≈ 1.83) where σ differs", "elementwise")
    assert "to the power" not in result.details


def test_a_standard_deviation_without_its_exp_is_told_the_exp_is_forgotten() -> None:
    result = check_reparameterise(lambda mean, log_var: mean + torch.randn_like(mean) * 0.5 * log_var)
    assert_fails_with(result, "Looks like: σ is taken as 0.5 · log_var", "with the exp forgotten")
    assert "log_var is used as σ" not in result.details


def test_noise_of_the_wrong_distribution_is_measured_by_its_distance_from_a_normal_one() -> None:
    result = check_reparameterise(lambda mean, log_var: mean + torch.rand_like(mean) * log_var.mul(0.5).exp())
    # U(0, 1) standardised against N(0, 1): the largest gap of the two distribution functions is about 0.059
    distance = float(result.details.split("Kolmogorov-Smirnov distance ")[1].split(" ")[0])
    assert 0.05 < distance < 0.07


def test_the_checks_leave_the_global_random_state_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_reparameterise(reparameterise)
    assert torch.equal(torch.rand(3), expected)


# --- closed-form KL ---


def kl(mean, log_var):
    return -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1).mean()


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


def test_the_kl_hint_on_an_unsquared_mean_quotes_what_mu_adds() -> None:
    # -½(1 + log σ² - μ - σ²) grows by μ/2 as μ moves from 0: -0.5 for μ = -1, +0.5 for μ = 1
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp(), dim=1).mean())
    assert_fails_with(result, "yours adds -0.5 and 0.5")


def test_a_kl_wrong_only_where_the_case_hides_it_is_caught_by_its_gradient() -> None:
    # In the first case log σ² = (ln 0.5, ln 2) sums to 0, so leaving log_var out gives the right value there.
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 - m**2 - v.exp(), dim=1).mean())
    assert_fails_with(result, "right value but the wrong gradient with respect to log_var", "log σ² (log_var) term")


def test_a_failed_kl_check_says_which_case_and_expected_against_got() -> None:
    result = check_kl_divergence(lambda m, v: -torch.sum(1 + v - m**2 - v.exp(), dim=1).mean())
    # by hand: -½ (1 + ln 0.5 - 1 - 0.5) - ½ (1 + ln 2 - 4 - 2) = 0.25 + 2.5 = 2.75 (the logarithms cancel)
    assert "Case *one image, μ = (1, -2), σ² = (0.5, 2)*: the KL expected 2.75, got 5.5." in result.details
    assert "❌" in result._repr_markdown_()


# --- the loss ---


def loss(images, reconstruction, mean, log_var, alpha):
    recon = 0.5 * F.mse_loss(reconstruction, images)
    kl_term = kl(mean, log_var)
    return recon + alpha * kl_term, recon, kl_term


def test_the_loss_reference_passes() -> None:
    assert check_loss(loss).passed
    assert check_loss(vae_loss).passed


def _kl_of_distributions(mean, log_var):
    posterior = Normal(mean, log_var.mul(0.5).exp())
    return distribution_kl(posterior, Normal(torch.zeros_like(mean), 1.0)).sum(dim=1).mean()


@pytest.mark.parametrize(
    "right",
    [
        lambda x, y, m, v, a: [0.5 * F.mse_loss(x, y) + a * kl(m, v), 0.5 * F.mse_loss(x, y), kl(m, v)],
        lambda x, y, m, v, a: (
            ((x - y) ** 2).mean() / 2 + _kl_of_distributions(m, v) * a,
            ((x - y) ** 2).mean() / 2,
            _kl_of_distributions(m, v),
        ),
    ],
    ids=["a list, the arguments of mse_loss swapped", "by hand, torch.distributions"],
)
def test_a_loss_written_another_way_passes(right) -> None:
    assert check_loss(right).passed


def _loss_with(recon_of=None, total_of=None, kl_of=kl, order=(0, 1, 2)):
    def wrong(images, reconstruction, mean, log_var, alpha):
        recon = (recon_of or (lambda x, y: 0.5 * F.mse_loss(y, x)))(images, reconstruction)
        kl_term = kl_of(mean, log_var)
        total = (total_of or (lambda r, k, a: r + a * k))(recon, kl_term, alpha)
        return tuple((total, recon, kl_term)[index] for index in order)

    return wrong


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_loss_with(recon_of=lambda x, y: 0.5 * (x - y).pow(2).flatten(1).sum(1).mean()), "summed over pixels"),
        (_loss_with(recon_of=lambda x, y: 0.5 * F.mse_loss(y, x, reduction="sum")), "summed over pixels and images"),
        (_loss_with(recon_of=lambda x, y: F.mse_loss(y, x)), "the factor ½ is missing"),
        (_loss_with(recon_of=lambda x, y: -0.5 * F.mse_loss(y, x)), "the sign is wrong"),
        (_loss_with(total_of=lambda r, k, a: -(r + a * k)), "the wrong sign"),
        (_loss_with(total_of=lambda r, k, a: r - a * k), "the KL is subtracted"),
        (_loss_with(total_of=lambda r, k, a: r + k), "alpha is missing"),
        (_loss_with(total_of=lambda r, k, a: a * r + k), "alpha weighs the reconstruction"),
        (_loss_with(kl_of=lambda m, v: -0.5 * torch.sum(1 + v - m**2 - v.exp())), "Check your KL"),
        (_loss_with(order=(1, 2, 0)), "yours returns (reconstruction, kl, total)"),
        (_loss_with(order=(0, 2, 1)), "yours returns (total, kl, reconstruction)"),
        (_loss_with(total_of=lambda r, k, a: r + 0.001 * k), "alpha is ignored: the KL is weighted by 0.001"),
        (_loss_with(total_of=lambda r, k, a: r + a * a * k), "the KL's weight in the total is 1e-06, 0.25"),
        (_loss_with(total_of=lambda r, k, a: 2 * (r + a * k)), "the total is multiplied by 2"),
        (_loss_with(recon_of=lambda x, y: 0.5 * (x - y).abs().mean()), "the error is not squared"),
        (_loss_with(recon_of=lambda x, y: 0.5 * ((x - y) ** 4).mean()), "multiplied the term by 16, not 4"),
        (_loss_with(recon_of=lambda x, y: F.mse_loss(y, x, reduction="sum") / len(x)), "pixels, the factor ½ missing"),
        (_loss_with(recon_of=lambda x, y: 0.5 * ((x - y) ** 2).sum() / 784), "summed over the batch"),
        (_loss_with(total_of=lambda r, k, a: (r + a * k).item()), "the total should be a tensor, got float"),
        (_loss_with(total_of=lambda r, k, a: (r + a * k).detach()), "the total carries no gradient"),
        (_loss_with(recon_of=lambda x, y: 0.5 * F.mse_loss(y, x).item()), "the reconstruction should be a tensor"),
        (_loss_with(kl_of=lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp(), dim=1).mean()), "μ is not squared"),
        (_loss_with(total_of=lambda r, k, a: r.detach() + a * k), "wrong gradient with respect to reconstruction"),
    ],
)
def test_loss_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_loss(wrong), phrase)


def test_a_reconstruction_term_right_only_on_28_by_28_images_gets_a_hint_with_no_empty_part() -> None:
    # 784 written in: right on the probes' 28 × 28 images, wrong on the 2 × 2 case, where every probe agrees
    result = check_loss(_loss_with(recon_of=lambda x, y: 0.5 * ((x - y) ** 2).sum() / (len(x) * 784)))
    assert_fails_with(result, "Case *one 2 × 2 image", "is a size written in, such as 784 pixels")
    assert "Looks like: :" not in result.details and ": :" not in result.details


@pytest.mark.parametrize(
    ("recon_of", "phrase"),
    [
        (lambda x, y: 0.5 * F.mse_loss(y, (x + 1) / 2), "the images are rescaled to [0, 1], (x + 1) / 2"),
        (lambda x, y: 0.5 * F.mse_loss((y + 1) / 2, x), "the reconstruction is rescaled to [0, 1], (x̂ + 1) / 2"),
        (lambda x, y: 0.5 * F.mse_loss((y + 1) / 2, (x + 1) / 2), "0.25 times the right size (x and x̂ both rescaled"),
        (lambda x, y: 0.5 * F.mse_loss(y, x) + 0.01, "a constant 0.01 is added to the term"),
        (lambda x, y: 0.5 * F.mse_loss(y, x) * 0, "the term is 0 where the reconstruction differs from the image"),
    ],
    ids=["images rescaled", "reconstruction rescaled", "both rescaled", "an offset", "always 0"],
)
def test_a_reconstruction_term_of_rescaled_pixels_or_not_0_at_a_perfect_reconstruction_is_named(recon_of, phrase):
    # the first two were told to square the error; the last raised ZeroDivisionError in the check
    result = check_loss(_loss_with(recon_of=recon_of))
    assert_fails_with(result, f"Looks like: {phrase}")
    assert "square the error" not in result.details


def test_an_absolute_error_is_told_by_what_doubling_the_error_does() -> None:
    result = check_loss(_loss_with(recon_of=lambda x, y: 0.5 * (x - y).abs().mean()))
    assert_fails_with(result, "doubling every pixel's error doubled the term instead of multiplying it by 4")


def test_a_loss_that_returns_one_number_is_told_to_return_three() -> None:
    assert_fails_with(check_loss(lambda *args: vae_loss(*args)[0]), "expected three values")


# --- the training step ---


def step(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_loop_of_a_few_hundred_learner_steps_matches_train_step(small_train) -> None:
    assert check_training_step(step, small_train.images, steps=200).passed


def step_by_hand_zeroing_at_the_end(model, optimizer, batch, alpha):
    model.train()
    reconstruction, mean, log_var = model(batch)
    recon = ((reconstruction - batch) ** 2).mean() / 2
    kl_term = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(dim=1).mean()
    total = recon + alpha * kl_term
    total.backward()
    optimizer.step()
    model.zero_grad(set_to_none=False)
    return total.detach(), recon.detach(), kl_term.detach()


def test_a_step_written_another_way_with_zero_grad_at_the_end_passes(small_train) -> None:
    assert check_training_step(step_by_hand_zeroing_at_the_end, small_train.images, steps=200).passed


def _step_with(*, zero_grad=True, optimizer_step=True, loss_of=None, detach=True, alpha_of=None, steps=1):
    def wrong(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha_of or alpha)
        minimised = loss_of(total, recon, kl_term, alpha) if loss_of else total
        if zero_grad:
            optimizer.zero_grad()
        minimised.backward()
        for _ in range(steps if optimizer_step else 0):
            optimizer.step()
        return (minimised, recon, kl_term) if not detach else (minimised.detach(), recon.detach(), kl_term.detach())

    return wrong


def _step_in_eval_mode(model, optimizer, batch, alpha):
    model.eval()
    return step(model, optimizer, batch, alpha)


def _forward_in_eval_mode(model, optimizer, batch, alpha):
    model.eval()
    reconstruction, mean, log_var = model(batch)
    model.train()
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _zero_grad_between_backward_and_step(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    total.backward()
    optimizer.zero_grad()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _two_forward_passes(model, optimizer, batch, alpha):
    model(batch)
    return train_step(model, optimizer, batch, alpha)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_with(zero_grad=False), "optimizer.zero_grad() is missing"),
        (_step_with(optimizer_step=False), "optimizer.step() is missing"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon), "the KL term is left out"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon + kl_term), "alpha is missing"),
        (_step_with(detach=False), "still carry their graph"),
        (_step_in_eval_mode, "model.eval() is called in the training step"),
        (_forward_in_eval_mode, "the forward pass ran in eval mode"),
        (_step_with(steps=2), "optimizer.step() was called 2 times for one batch"),
        (_step_with(alpha_of=0.001), "alpha is ignored: the KL is weighted by 0.001"),
        (_step_with(alpha_of=0.01), "alpha is ignored: the KL is weighted by 0.01"),  # the alpha the long run uses
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: -total), "the wrong sign"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon - alpha * kl_term), "the KL is subtracted"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: alpha * recon + kl_term), "alpha weighs the recon"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: 2 * total), "the minimised loss is multiplied by 2"),
        (_zero_grad_between_backward_and_step, "zero_grad() is called between backward() and step()"),
        (_two_forward_passes, "or a loss from another forward pass"),
        (
            lambda model, optimizer, batch, alpha: train_step(model, optimizer, batch, alpha)[::-1],
            "yours returns (kl, reconstruction, total)",
        ),
    ],
)
def test_training_step_mistakes_are_named(wrong, phrase, small_train) -> None:
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def _step_with_its_own_optimizer(model, optimizer, batch, alpha):
    return step(model, torch.optim.Adam(model.parameters(), lr=1e-3), batch, alpha)


def test_a_step_that_makes_its_own_optimizer_is_told_to_use_the_one_it_is_given(small_train) -> None:
    # its weights change, but the check's probe sees only the optimizer it passes in never step
    result = check_training_step(_step_with_its_own_optimizer, small_train.images, steps=5)
    assert_fails_with(result, "the weights changed", "must use the optimizer it is given, not make its own")
    assert "did not change" not in result.details and "optimizer.step() is missing" not in result.details


def _forward_without_gradients(model, optimizer, batch, alpha):
    with torch.no_grad():
        reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()  # raises: no graph was recorded
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _loss_detached_before_backward(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.detach().backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_forward_pass_under_no_grad_fails_the_check_and_says_so(small_train) -> None:
    result = check_training_step(_forward_without_gradients, small_train.images, steps=5)
    assert_fails_with(result, "Case *step 1*: your function raised RuntimeError", "must not be under torch.no_grad()")
    assert "cut from the model's graph" not in result.details


def test_a_loss_detached_before_backward_is_not_blamed_on_no_grad(small_train) -> None:
    result = check_training_step(_loss_detached_before_backward, small_train.images, steps=5)
    assert_fails_with(result, "your function raised RuntimeError", "the loss is cut from the model's graph")
    assert "torch.no_grad()" not in result.details


def test_a_step_that_departs_late_is_caught_at_the_step_it_departs(small_train) -> None:
    calls = []

    def drifting(model, optimizer, batch, alpha):
        calls.append(1)
        if len(calls) == 4:
            torch.randn(1)  # consumes noise, so this step and later ones draw other z
        return train_step(model, optimizer, batch, alpha)

    assert_fails_with(check_training_step(drifting, small_train.images, steps=6), "Case *step 4*")


def test_a_step_that_departs_only_at_the_last_step_is_caught_by_the_weights_it_leaves(small_train) -> None:
    calls = []

    def stepping_twice_at_the_end(model, optimizer, batch, alpha):
        calls.append(1)
        losses = train_step(model, optimizer, batch, alpha)
        if len(calls) == 6:  # the losses it returns are right; the weights it leaves are not
            optimizer.step()
        return losses

    result = check_training_step(stepping_twice_at_the_end, small_train.images, steps=6)
    assert_fails_with(
        result, "Step 6: the weights moved differently from train_step's", "optimizer.step() called twice"
    )


# --- sampling from the prior ---


def test_the_sampling_reference_passes() -> None:
    assert check_sample_prior(lambda model, count, generator: model.sample(count, generator=generator)).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda model, count, g: torch.randn(count, model.latent_dim, generator=g), "these are the latents"),
        (lambda model, count, g: model.decode(torch.rand(count, model.latent_dim, generator=g)), "torch.rand"),
        (lambda model, count, g: model.decode(torch.randn(count, model.latent_dim)), "the generator is not used"),
        (
            lambda model, count, g: model.train().decode(torch.randn(count, model.latent_dim, generator=g)),
            "training mode",
        ),
    ],
)
def test_sampling_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_sample_prior(wrong), phrase)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, count, g: model.decode(2 * torch.randn(count, model.latent_dim, generator=g)),
            "the decoder is given 2·z",
        ),
        (
            lambda model, count, g: model.decode(0.5 * torch.randn(count, model.latent_dim, generator=g)),
            "the decoder is given 0.5·z",
        ),
        (lambda model, count, g: model.decode(torch.zeros(count, model.latent_dim)), "every sample decodes z = 0"),
    ],
    ids=["2·z", "0.5·z", "zeros"],
)
def test_latents_that_are_not_drawn_from_the_standard_normal_are_named(wrong, phrase) -> None:
    result = check_sample_prior(wrong)
    assert_fails_with(result, "Case *2-D model", f"Looks like: {phrase}")
    assert "the generator is not used" not in result.details


def test_a_latent_size_written_in_fails_the_check_on_the_other_model_and_says_so() -> None:
    result = check_sample_prior(lambda model, count, g: model.decode(torch.randn(count, 2, generator=g)))
    assert_fails_with(
        result,
        "Case *8-D model, 4 samples, generator seeded 1*: your function raised RuntimeError",
        "z has 2 values per sample, where this model's latent space has 8",
        "model.latent_dim",
    )


def _raises(*_):
    raise ValueError("a mistake of the learner's")


@pytest.mark.parametrize(
    ("check", "case"),
    [
        (check_reparameterise, "20000 draws"),
        (check_kl_divergence, "one image, μ = (1, -2)"),
        (check_loss, "3 images of 28 × 28"),
        (check_sample_prior, "2-D model, 6 samples"),
        (check_interpolate, "2-D model, 5 steps"),
        (check_active_units, "500 images"),
        (check_bernoulli_reconstruction, "four binarised images"),
        (check_decoder_input, "4 latents of 2-D"),
    ],
)
def test_an_exception_in_the_learners_code_is_a_failed_check_that_names_the_case(check, case) -> None:
    result = check(_raises)
    assert_fails_with(result, f"Case *{case}", "your function raised ValueError: a mistake of the learner's")


# --- latent interpolation ---


def interpolate(model, start_image, end_image, steps):
    means, _ = model.encode(torch.stack([start_image, end_image]))
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * means[0] + weights * means[1])


def test_the_interpolation_reference_passes() -> None:
    assert check_interpolate(interpolate).passed


def _encode_pair(model, start_image, end_image):
    return model.encode(torch.stack([start_image, end_image]))[0]


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, a, b, steps: (lambda w: (1 - w) * a + w * b)(torch.linspace(0, 1, steps).view(-1, 1, 1, 1)),
            "blends of the two images' pixels",
        ),
        (lambda model, a, b, steps: interpolate(model, b, a, steps), "from end to start"),
        (
            lambda model, a, b, steps: model.decode(interpolation_latents(*_encode_pair(model, a, b), steps + 2)[1:-1]),
            "the two end points are left out",
        ),
        (
            lambda model, a, b, steps: model.decode(interpolation_latents(*_encode_pair(model, a, b), steps + 1)[:-1]),
            "the end point is left out",
        ),
        (
            lambda model, a, b, steps: model.decode(
                interpolation_latents(*VAE.reparameterise(*model.encode(torch.stack([a, b]))), steps)
            ),
            "z is sampled",
        ),
    ],
)
def test_interpolation_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_interpolate(wrong), phrase)


def _slerp(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    angle = torch.acos(F.cosine_similarity(start, end, dim=0).clamp(-1, 1))
    return model.decode((torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / angle.sin())


def _interpolate_unevenly(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).pow(2).view(-1, 1)
    return model.decode((1 - weights) * start + weights * end)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_slerp, "Looks like: the path starts and ends at the two means, but its codes leave the straight line"),
        (_interpolate_unevenly, "Looks like: the codes lie on the line between the means, but at t = 0, 0.0625,"),
    ],
    ids=["slerp", "uneven straight line"],
)
def test_a_path_off_the_straight_line_or_uneven_along_it_is_named(wrong, phrase) -> None:
    # a spherical interpolation passed the 2-D case: a random model's means pointed almost the same way
    assert_fails_with(check_interpolate(wrong), "Case *2-D model, 5 steps*", phrase)


def _interpolate_in_training_mode(model, start_image, end_image, steps):
    model.train()
    return interpolate(model, start_image, end_image, steps)


def _interpolate_the_log_variances(model, start_image, end_image, steps):
    _, log_vars = model.encode(torch.stack([start_image, end_image]))
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * log_vars[0] + weights * log_vars[1])


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_interpolate_in_training_mode, "the model ran in training mode (model.train())"),
        (_interpolate_the_log_variances, "the path runs between the log-variances"),
    ],
    ids=["training mode", "log-variances"],
)
def test_an_interpolation_in_training_mode_or_between_log_variances_is_named(wrong, phrase) -> None:
    result = check_interpolate(wrong)
    assert_fails_with(result, f"Looks like: {phrase}")
    assert "z is sampled" not in result.details


# --- active units ---


def test_active_dimensions_is_the_variance_of_the_means_over_images() -> None:
    means = torch.tensor([[0.0, 5.0, 1.0], [0.2, 5.0, 1.05], [-0.2, 5.0, 0.95]])  # variances 0.04, 0, 0.0025
    assert active_dimensions(means).tolist() == [True, False, False]
    assert active_dimensions(means, threshold=0.002).tolist() == [True, False, True]


def test_the_active_units_reference_passes() -> None:
    assert check_active_units(lambda means, threshold=0.01: active_dimensions(means, threshold)).passed
    assert check_active_units(lambda means, threshold=0.01: means.var(dim=0) > threshold).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda means, threshold=0.01: means.mean(dim=0) > threshold, "the mean is used instead of the variance"),
        (lambda means, threshold=0.01: means.std(dim=0) > threshold, "the standard deviation is used"),
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


# --- the conditional decoder's input ---


def decoder_input(latents, labels, classes):
    return torch.cat([latents, F.one_hot(labels, classes).float()], dim=1)


def test_the_decoder_input_reference_passes_and_is_what_the_conditional_model_decodes() -> None:
    assert check_decoder_input(decoder_input).passed
    torch.manual_seed(0)
    model = ConditionalVAE(latent_dim=2, widths=(4, 8, 8, 16)).eval()
    latents, labels = torch.randn(5, 2), torch.tensor([0, 3, 9, 3, 1])
    features = model.from_latent(decoder_input(latents, labels, 10)).view(-1, *model.feature_shape)
    assert torch.equal(model.decoder(features), model.decoder_output(latents, labels))


@pytest.mark.parametrize(
    "right",
    [
        lambda z, y, classes: torch.cat((z, torch.eye(classes)[y]), 1),
        lambda z, y, classes: torch.hstack([z, torch.zeros(len(y), classes).scatter_(1, y.view(-1, 1), 1.0)]),
        lambda z, y, classes: torch.cat([z, F.one_hot(y, classes)], dim=-1),  # long one-hot: cat promotes to float
    ],
    ids=["rows of an identity", "scatter into zeros", "long one-hot, dim -1"],
)
def test_a_decoder_input_written_another_way_passes(right) -> None:
    assert check_decoder_input(right).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda z, y, classes: torch.cat([z, y.view(-1, 1).float()], dim=1), "appended as one number"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y).float()], dim=1), "as wide as the batch's largest label"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).float()]), "along dim 0, the batch"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).float()], dim=0), "along dim 0, the batch"),
        (lambda z, y, classes: z, "the label is left out"),
        (lambda z, y, classes: F.one_hot(y, classes).float(), "z is left out"),
        (lambda z, y, classes: torch.cat([F.one_hot(y, classes).float(), z], dim=1), "the label comes first"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y.float(), classes)], dim=1), "do not turn them into floats"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes - 1).float()], dim=1), "needs 10, one per class"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, 3).float()], dim=1), "narrower than the labels"),
        (lambda z, y, classes: decoder_input(z.detach(), y, classes), "carries no gradient"),
        (lambda z, y, classes: decoder_input(z, (y + 1) % classes, classes), "each 1 sits one place after its label"),
        (lambda z, y, classes: decoder_input(z, (y - 1) % classes, classes), "each 1 sits one place before its label"),
        (lambda z, y, classes: decoder_input(z, y + 1, classes), "each 1 sits one place after its label"),
        (lambda z, y, classes: decoder_input(z, y - 1, classes), "a label became negative (labels - 1?)"),
        (lambda z, y, classes: decoder_input(z, y, classes).tolist(), "should be a tensor"),
    ],
)
def test_decoder_input_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_decoder_input(wrong), phrase)


def test_a_failed_decoder_input_check_says_which_case_and_expected_against_got() -> None:
    result = check_decoder_input(lambda z, y, classes: torch.cat([z, F.one_hot(y).float()], dim=1))
    assert result.details.startswith("Case *4 latents of 2-D, labels 3, 0, 2, 1 of 10 classes*: the decoder input ")
    assert "expected shape (4, 12)" in result.details and "got shape (4, 6)" in result.details


def test_an_unfinished_exercise_raises_not_implemented_error() -> None:
    def unfinished(mean, log_var):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_kl_divergence(unfinished)
    with pytest.raises(NotImplementedError):  # although the decoder-input check turns a RuntimeError into a hint
        check_decoder_input(lambda latents, labels, classes: unfinished(latents, labels))


# --- the Bernoulli reconstruction term (notebook 07) ------------------------------------------------------


def _bce_sum(images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    targets = (images + 1) / 2
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=(1, 2, 3)).mean()


@pytest.mark.parametrize(
    "answer",
    [
        _bce_sum,
        lambda x, logits: (
            -torch.distributions.Bernoulli(logits=logits, validate_args=False)
            .log_prob((x + 1) / 2)
            .flatten(1)
            .sum(1)
            .mean()
        ),
        lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="sum") / len(x),
        lambda x, logits: (F.softplus(logits) - logits * (x + 1) / 2).flatten(1).sum(1).mean(),
    ],
    ids=["bce with logits", "torch.distributions", "sum then divide", "softplus rearranged"],
)
def test_right_bernoulli_terms_written_in_other_ways_pass(answer) -> None:
    result = check_bernoulli_reconstruction(answer)
    assert result.passed, result.details


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda x, logits: _bce_sum(x, logits) / 784, "a mean over pixels"),
        (lambda x, logits: -_bce_sum(x, logits), "the sign"),
        (lambda x, logits: _bce_sum(x, logits) * len(x), "summed over images"),
        (lambda x, logits: _bce_sum(x, torch.sigmoid(logits)), "probabilities passed as logits"),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean(),
            "the targets",
        ),
        (lambda x, logits: _bce_sum(x, logits).item(), "turned into a Python number"),
        (lambda x, logits: _bce_sum(x, logits.detach()), "carries no gradient"),
        (
            lambda x, logits: (F.softplus(logits.detach()) - logits * (x + 1) / 2).flatten(1).sum(1).mean(),
            "the right value but the wrong gradient with respect to logits",
        ),
        # not among the listed mistakes: an average over pixels taken with torch.mean over everything
        (lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2), "a mean over pixels"),
    ],
    ids=[
        "pixel mean",
        "sign",
        "image sum",
        "probabilities",
        "targets in [-1, 1]",
        "float",
        "detached",
        "softplus detached",
        "mean all",
    ],
)
def test_wrong_bernoulli_terms_get_a_hint_that_names_the_mistake(answer, hint: str) -> None:
    result = check_bernoulli_reconstruction(answer)
    assert not result.passed and hint in result.details, result.details


# --- answers of the wrong dtype, of the wrong kind, or returning the wrong value in the right place ---


@pytest.mark.parametrize(
    ("wrong", "dtype"),
    [
        (lambda mean, log_var: mean + torch.from_numpy(np.random.randn(*mean.shape)) * log_var.mul(0.5).exp(), "64"),
        (lambda mean, log_var: reparameterise(mean, log_var).half(), "16"),
    ],
    ids=["numpy noise, float64", "half"],
)
def test_a_z_of_another_dtype_than_mean_fails_and_says_so(wrong, dtype) -> None:
    # numpy's noise is float64: the check crashed on it (Float did not match Double); half failed on its gradient
    result = check_reparameterise(wrong)
    assert_fails_with(result, f"z is torch.float{dtype}, where mean is torch.float32", "keep mean's dtype")
    assert "σ is not computed" not in result.details


def test_a_decoder_input_of_float64_fails_because_the_decoder_takes_float32() -> None:
    result = check_decoder_input(lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).double()], dim=1))
    assert_fails_with(result, "the decoder input is torch.float64, where z is torch.float32")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, optimizer, batch, alpha: (lambda t, r, k: (t, t, t))(
                *train_step(model, optimizer, batch, alpha)
            ),
            "Case *step 1*: the reconstruction loss expected",
        ),
        (
            lambda model, optimizer, batch, alpha: (lambda t, r, k: (t, r, alpha * k))(
                *train_step(model, optimizer, batch, alpha)
            ),
            "Looks like: this is alpha · KL",
        ),
    ],
    ids=["the total three times", "alpha times the KL"],
)
def test_a_step_that_returns_a_wrong_reconstruction_or_kl_fails(wrong, phrase, small_train) -> None:
    # it trains exactly as train_step does; only the losses it reports are wrong (the check compared the total only)
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def _loss_adding_the_kl_to_the_reconstruction_in_place(images, reconstruction, mean, log_var, alpha):
    recon = 0.5 * F.mse_loss(reconstruction, images)
    kl_term = kl(mean, log_var)
    recon += alpha * kl_term
    return recon, recon, kl_term


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda x, y, m, v, a: (loss(x, y, m, v, a)[0], loss(x, y, m, v, a)[1], a * kl(m, v)),
            "Looks like: this is alpha · KL: return the KL itself",
        ),
        (_loss_adding_the_kl_to_the_reconstruction_in_place, "Looks like: this is the total loss (after an in-place"),
        (
            _loss_with(recon_of=lambda x, y: 0.5 * ((x - y) ** 2).mean(dim=(1, 2, 3))),
            "for 2 images it has shape (2,)",
        ),
    ],
    ids=["alpha times the KL", "recon += alpha * kl", "one term per image"],
)
def test_a_loss_returning_the_wrong_value_in_a_place_is_not_told_a_size_is_written_in(wrong, phrase) -> None:
    result = check_loss(wrong)
    assert_fails_with(result, phrase)
    assert "a size written in" not in result.details and "Check your KL" not in result.details


@pytest.mark.parametrize(
    ("check", "answer", "phrase"),
    [
        (check_reparameterise, lambda mean, log_var: None, "returns None: is its `return` line missing?"),
        (check_kl_divergence, lambda m, v: (kl(m, v), kl_per_dimension(m, v)), "a tuple of 2 values; the KL should"),
        (check_loss, lambda *args: None, "returns None"),
        (check_interpolate, lambda model, a, b, steps: list(interpolate(model, a, b, steps)), "a list of 5 values"),
        (check_decoder_input, lambda z, y, classes: (z, F.one_hot(y, classes)), "a tuple of 2 values"),
    ],
    ids=["None", "tuple", "loss None", "list of images", "tuple of tensors"],
)
def test_nothing_or_several_values_returned_is_told_so_not_blamed_on_numpy(check, answer, phrase) -> None:
    result = check(answer)
    assert_fails_with(result, phrase)
    assert ".numpy()" not in result.details


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, logits: 0.5 * ((torch.tanh(logits) - x) ** 2).flatten(1).sum(1).mean(),
        lambda x, logits: _bce_sum(torch.sigmoid(x) * 2 - 1, logits),
    ],
    ids=["a squared error", "sigmoid of the images as targets"],
)
def test_a_term_that_is_not_the_bernoulli_one_is_not_blamed_on_targets_in_minus_one_to_one(wrong) -> None:
    result = check_bernoulli_reconstruction(wrong)
    assert_fails_with(result, "a pixel's term is not the Bernoulli's −log p", "softplus(2) = 2.127")
    assert "not the images in [-1, 1]" not in result.details


def test_a_kl_that_divides_by_the_batch_size_less_one_is_told_of_a_division_by_zero() -> None:
    # infinite on the first case, one image: no log or square root is taken of anything
    result = check_kl_divergence(lambda m, v: -0.5 * (1 + v - m**2 - v.exp()).sum() / (len(m) - 1))
    assert_fails_with(result, "got inf", "is something divided by zero")
    assert "square root" not in result.details


def _step_clipping_its_gradients(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_step_that_clips_its_gradients_is_told_they_are_rescaled_not_given_wrong_weights(small_train) -> None:
    result = check_training_step(_step_clipping_its_gradients, small_train.images, steps=5)
    assert_fails_with(result, "Looks like: the gradients point as those of reconstruction + alpha · KL do", "clipped")
    assert "the reconstruction's weight" not in result.details


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


def _one_sample_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


def _decoded_one_by_one(model, count, g):
    latents = torch.randn(count, model.latent_dim, generator=g)
    return torch.cat([model.decode(z.unsqueeze(0)) for z in latents])


def _one_more_decoded_the_last_dropped(model, count, g):
    return model.decode(torch.randn(count + 1, model.latent_dim, generator=g))[:count]


@pytest.mark.parametrize(
    "right",
    [
        _one_sample_at_a_time,
        lambda model, count, g: model.decode(torch.randn(model.latent_dim, count, generator=g).T),
        lambda model, count, g: model.decode(torch.normal(0.0, 1.0, (count, model.latent_dim), generator=g)),
        _decoded_one_by_one,
        _one_more_decoded_the_last_dropped,
    ],
    ids=["one sample at a time", "transposed", "torch.normal", "decoded one by one", "one more decoded, one dropped"],
)
def test_a_prior_sample_drawn_with_the_generator_another_way_passes(right) -> None:
    result = check_sample_prior(right)
    assert result.passed, result.details


def _global_one_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.randn(model.latent_dim) for _ in range(count)]))


def _doubled_one_at_a_time(model, count, g):
    return model.decode(torch.stack([2 * torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


def _uniform_one_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.rand(model.latent_dim, generator=g) * 2 - 1 for _ in range(count)]))


def _same_draw_for_every_sample(model, count, g):
    return model.decode(torch.randn(1, model.latent_dim, generator=g).expand(count, -1))


def _one_more_decoded_the_first_repeated(model, count, g):
    images = model.decode(torch.randn(count + 1, model.latent_dim, generator=g))
    return torch.cat([images[:1], images[: count - 1]])


def _own_generator_one_at_a_time(model, count, g):
    own = torch.Generator().manual_seed(0)
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=own) for _ in range(count)]))


def _one_value_for_every_dimension(model, count, g):
    return model.decode(torch.randn(count, 1, generator=g).repeat(1, model.latent_dim))


def _training_mode_one_at_a_time(model, count, g):
    model.train()
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


@pytest.mark.parametrize(
    "wrong",
    [
        _global_one_at_a_time,
        _doubled_one_at_a_time,
        _uniform_one_at_a_time,
        _same_draw_for_every_sample,
        _one_more_decoded_the_first_repeated,
        _own_generator_one_at_a_time,
        _one_value_for_every_dimension,
        _training_mode_one_at_a_time,
    ],
    ids=[
        "global generator",
        "2·z",
        "uniform",
        "one z for all",
        "one more decoded, the first repeated",
        "a generator of its own",
        "one value for every dimension",
        "training mode",
    ],
)
def test_a_prior_sample_drawn_another_way_still_fails_when_it_is_wrong(wrong) -> None:
    assert_fails_with(check_sample_prior(wrong), "-D model, ", " samples, generator seeded ")


# --- a third pass: answers that crashed a check, got the wrong verdict or a false hint ---


def _noise_scaled_in_place(mean, log_var):
    sigma = torch.exp(0.5 * log_var)
    sigma.mul_(torch.randn_like(sigma))  # exp's output, which its backward needs
    return mean + sigma


def _kl_in_place(mean, log_var):
    terms = log_var.exp()
    terms.sub_(log_var).sub_(1).add_(mean.pow(2))
    return 0.5 * terms.sum(dim=1).mean()


def _bernoulli_clamped_in_place(images, logits):
    probabilities = torch.sigmoid(logits)
    probabilities.clamp_(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(probabilities, (images + 1) / 2, reduction="sum") / len(images)


def _backward_inside(function):
    def answer(*arguments):
        result = function(*arguments)
        (result[0] if isinstance(result, tuple) else result).sum().backward()
        return result

    return answer


@pytest.mark.parametrize(
    ("check", "answer", "phrase"),
    [
        (
            check_reparameterise,
            _noise_scaled_in_place,
            "a tensor autograd saved for the backward pass is changed in place",
        ),
        (check_kl_divergence, _kl_in_place, "a tensor autograd saved for the backward pass is changed in place"),
        (
            check_bernoulli_reconstruction,
            _bernoulli_clamped_in_place,
            "a tensor autograd saved for the backward pass is changed in place",
        ),
        (check_reparameterise, _backward_inside(reparameterise), "backward() is already called inside your function"),
        (check_kl_divergence, _backward_inside(kl), "backward() is already called inside your function"),
        (check_loss, _backward_inside(loss), "backward() is already called inside your function"),
    ],
    ids=["reparameterise", "kl", "bernoulli", "reparameterise, backward", "kl, backward", "loss, backward"],
)
def test_a_result_whose_backward_fails_is_a_failed_check_that_says_why(check, answer, phrase) -> None:
    # the checks' gradient comparison raised the learner's RuntimeError
    assert_fails_with(check(answer), "fails:", f"Looks like: {phrase}")


def test_a_loss_whose_total_is_nan_where_its_terms_are_not_is_told_so() -> None:
    # the hint's least-squares fit raised on the NaN total
    nan_kl = lambda m, v: -0.5 * torch.sum(1 + torch.log(v) - m**2 - v, dim=1).mean()  # noqa: E731
    result = check_loss(lambda x, y, m, v, a: (loss(x, y, m, v, a)[0] + a * nan_kl(m, v), *loss(x, y, m, v, a)[1:]))
    assert_fails_with(result, "the total is NaN or infinite where your reconstruction and KL terms are numbers")


def test_a_step_minimising_a_nan_loss_is_told_its_gradients_are_nan(small_train) -> None:
    def nan_step(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
        optimizer.zero_grad()
        (recon + alpha * (kl_term - 1e9).sqrt()).backward()
        optimizer.step()
        return total.detach(), recon.detach(), kl_term.detach()

    assert_fails_with(check_training_step(nan_step, small_train.images, steps=5), "used are NaN or infinite")


def _closure_step(model, optimizer, batch, alpha):
    losses = []

    def closure():
        optimizer.zero_grad()
        losses[:] = vae_loss(batch, *model(batch), alpha)
        losses[0].backward()
        return losses[0]

    optimizer.step(closure)
    return tuple(value.detach() for value in losses)


def _step_in_float64(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch.double(), reconstruction.double(), mean.double(), log_var.double(), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_with_the_kl_of_distributions(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    recon = 0.5 * F.mse_loss(reconstruction, batch)
    kl_term = _kl_of_distributions(mean, log_var)
    total = recon + alpha * kl_term
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_returning_numpy(model, optimizer, batch, alpha):
    total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.detach().numpy(), np.float32(recon.item()), kl_term.detach().numpy()


@pytest.mark.parametrize(
    "right",
    [_closure_step, _step_in_float64, _step_with_the_kl_of_distributions, _step_returning_numpy],
    ids=["closure", "float64", "KL", "numpy"],
)
def test_a_right_step_written_another_way_passes_over_200_steps(right, small_train) -> None:
    # the closure's gradients were read before Adam called it; float rounding that differs grew to a few percent
    # of a single step's KL by step 30-200, which the step-by-step comparison failed; NumPy's 0-d arrays and
    # numbers were "not a tensor" where .item()'s floats passed
    result = check_training_step(right, small_train.images, steps=200)
    assert result.passed, result.details


def _step_returning_numpy_arrays_of_one_value(model, optimizer, batch, alpha):
    total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return tuple(loss.detach().reshape(1).numpy() for loss in (total, recon, kl_term))


def test_a_step_returning_numpy_arrays_of_one_value_is_told_they_are_not_tensors(small_train) -> None:
    assert_fails_with(
        check_training_step(_step_returning_numpy_arrays_of_one_value, small_train.images, steps=1),
        "should be a tensor, got ndarray",
    )


def test_a_step_that_stops_training_after_a_while_fails_at_the_step_it_stops(small_train) -> None:
    def stalling(model, optimizer, batch, alpha):
        steps_taken = max((int(state["step"]) for state in optimizer.state.values()), default=0)
        if steps_taken < 20:  # the check's single-call probes start from fresh optimizers
            return train_step(model, optimizer, batch, alpha)
        with torch.no_grad():  # stops training after step 20, returning the losses of a forward pass
            return vae_loss(batch, *model(batch), alpha)

    assert_fails_with(check_training_step(stalling, small_train.images, steps=60), "Step 21: the weights moved")


def _step_with_the_kl_clamped_at_three(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    kl_term = -0.5 * torch.sum(1 + log_var - mean.clamp(-3, 3).pow(2) - log_var.exp(), dim=1).mean()
    recon = 0.5 * F.mse_loss(reconstruction, batch)
    total = recon + alpha * kl_term
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_decaying_the_learning_rate(model, optimizer, batch, alpha):
    for group in optimizer.param_groups:
        group["lr"] *= 0.999
    return train_step(model, optimizer, batch, alpha)


def _step_decaying_the_learning_rate_after_it(model, optimizer, batch, alpha):
    losses = train_step(model, optimizer, batch, alpha)
    for group in optimizer.param_groups:
        group["lr"] *= 0.999
    return losses


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_with_the_kl_clamped_at_three, "the KL loss expected"),
        (_step_decaying_the_learning_rate, "Step 1: the weights moved differently from train_step's"),
        (_step_decaying_the_learning_rate_after_it, "Step 2: the weights moved differently from train_step's"),
    ],
    ids=["KL clamped at |μ| = 3", "learning rate 0.1 % lower each step", "learning rate lowered after each step"],
)
def test_a_step_slightly_off_is_caught_at_the_step_it_departs_however_late(wrong, phrase, small_train) -> None:
    # the first 20 steps were compared exactly and later ones by windowed means within 2-10 %: the clamped KL,
    # right until |μ| passes 3, stayed within 9.9 % and passed; each step is now compared from the learner's weights,
    # with the learning rate the check set
    assert_fails_with(check_training_step(wrong, small_train.images, steps=200), phrase)


def test_a_decoder_input_cut_from_z_and_made_a_leaf_again_fails() -> None:
    result = check_decoder_input(lambda z, y, c: decoder_input(z.detach(), y, c).requires_grad_())
    assert_fails_with(result, "the right value but the wrong gradient with respect to latents")


def test_a_decoder_input_in_half_precision_is_told_its_dtype() -> None:
    result = check_decoder_input(lambda z, y, c: decoder_input(z, y, c).half())
    assert_fails_with(result, "the decoder input is torch.float16, where z is torch.float32")


def test_answers_that_change_their_inputs_in_place_fail_naming_the_input() -> None:
    # the checks computed the expected values from the images the answer had changed; then, given copies, passed
    # answers whose change of μ in place would corrupt the KL computed after them
    def reparameterise_in_place(mean, log_var):
        return mean.add_(torch.exp(0.5 * log_var) * torch.randn_like(mean))

    def bernoulli_in_place(images, logits):
        images += 1
        images /= 2
        return F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(dim=(1, 2, 3)).mean()

    def loss_in_place(images, reconstruction, mean, log_var, alpha):
        difference = images.sub_(reconstruction)
        recon = 0.5 * difference.pow(2).mean()
        return recon + alpha * kl(mean, log_var), recon, kl(mean, log_var)

    for result, name in (
        (check_reparameterise(reparameterise_in_place), "`mean`"),
        (check_bernoulli_reconstruction(bernoulli_in_place), "`images`"),
        (check_loss(loss_in_place), "`images`"),
    ):
        assert_fails_with(result, f"your function changed its input {name} in place", "compute new tensors instead")


def test_a_sample_that_seeds_the_generator_again_fails_and_is_told_so() -> None:
    # seeded from the generator's initial seed, it drew the same z at every call, and passed
    def reseeding(model, count, generator):
        torch.manual_seed(generator.initial_seed())
        return model.decode(torch.randn(count, model.latent_dim))

    assert_fails_with(check_sample_prior(reseeding), "the first draws of a generator seeded 0 afresh")


def test_a_dimension_of_z_without_noise_is_named_not_called_clipped() -> None:
    result = check_reparameterise(lambda m, v: m + torch.randn_like(m) * torch.sqrt(v).nan_to_num())
    assert_fails_with(result, "z does not vary over the draws in the dimensions with σ² = 0.25", "σ is 0 where")
    assert "clipped" not in result.details and "nan" not in result.details


def test_a_z_cut_from_its_inputs_and_made_a_leaf_again_is_told_it_is_detached() -> None:
    result = check_reparameterise(lambda m, v: reparameterise(m, v).detach().requires_grad_())
    assert_fails_with(result, "z has no gradient with respect to mean or log_var", ".detach().requires_grad_()")


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32])
def test_active_units_of_the_right_dimensions_in_another_dtype_are_told_to_keep_the_booleans(dtype) -> None:
    result = check_active_units(lambda means, threshold: (means.var(dim=0) > threshold).to(dtype))
    assert_fails_with(result, f"the right dimensions, made {dtype}: return the comparison's booleans")


def test_a_loss_or_step_returning_none_in_one_place_is_told_which() -> None:
    result = check_loss(lambda x, y, m, v, a: (*loss(x, y, m, v, a)[:2], None))
    assert_fails_with(result, "the kl returned is None", "return each loss itself in its place")
    assert "`return` line missing" not in result.details


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (check_kl_divergence, lambda m, v: {"kl": kl(m, v)}),
        (check_decoder_input, lambda z, y, c: {"codes": decoder_input(z, y, c)}),
    ],
    ids=["kl", "decoder input"],
)
def test_a_dict_returned_is_told_so(check, answer) -> None:
    assert_fails_with(check(answer), "your function returns a dict")


def test_a_step_with_its_own_wrong_kl_is_pointed_at_the_formula_checks(small_train) -> None:
    def wrong_kl_step(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        recon = 0.5 * F.mse_loss(reconstruction, batch)
        kl_term = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.mul(0.5).exp(), dim=1).mean()  # σ for σ²
        optimizer.zero_grad()
        (recon + alpha * kl_term).backward()
        optimizer.step()
        return (recon + alpha * kl_term).item(), recon.item(), kl_term.item()

    result = check_training_step(wrong_kl_step, small_train.images, steps=5)
    assert_fails_with(result, "a loss or KL formula of your own that differs (check_loss and check_kl_divergence")


def test_a_bernoulli_term_of_torch_distributions_refusing_grey_targets_is_told_validate_args() -> None:
    from torch.distributions import Bernoulli

    def validated(images, logits):
        return -Bernoulli(logits=logits).log_prob((images + 1) / 2).sum(dim=(1, 2, 3)).mean()

    def unvalidated(images, logits):
        return -Bernoulli(logits=logits, validate_args=False).log_prob((images + 1) / 2).sum(dim=(1, 2, 3)).mean()

    assert_fails_with(check_bernoulli_reconstruction(validated), "raised ValueError", "pass validate_args=False")
    assert check_bernoulli_reconstruction(unvalidated).passed


def test_a_kl_with_mean_and_log_var_swapped_is_told_so_not_that_mu_is_unsquared() -> None:
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + m - v.pow(2) - m.exp(), dim=1).mean())
    assert_fails_with(result, "Looks like: mean and log_var are swapped in your formula")
    assert "not squared" not in result.details


def test_bernoulli_targets_thresholded_instead_of_rescaled_are_named() -> None:
    def thresholded(images, logits):
        targets = (images > 0).float()
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(images)

    assert_fails_with(
        check_bernoulli_reconstruction(thresholded), "Looks like: the targets are thresholded, images > 0"
    )


# --- a fourth pass: what the third pass's changes let through, and older gaps it found ---


@pytest.mark.parametrize(
    "clamped",
    [lambda m, v: (m, v.clamp(min=-2.5)), lambda m, v: (m, v.clamp(-2, 2)), lambda m, v: (m.clamp(-3, 3), v)],
    ids=["log σ² ≥ -2.5", "|log σ²| ≤ 2", "|μ| ≤ 3"],
)
def test_a_loss_with_a_kl_clamped_far_from_the_prior_fails_and_is_told_so(clamped) -> None:
    # every case of the loss check was near the prior, where these clamps change nothing
    def loss_with_a_clamped_kl(images, reconstruction, mean, log_var, alpha):
        recon = 0.5 * F.mse_loss(reconstruction, images)
        kl_term = kl(*clamped(mean, log_var))
        return recon + alpha * kl_term, recon, kl_term

    assert_fails_with(check_loss(loss_with_a_clamped_kl), "far from the prior", "is μ or log σ² clamped")


def test_a_kl_clamped_far_from_the_prior_fails_and_is_told_so() -> None:
    # every case and probe had |μ| ≤ 2: a clamp at 3 passed, and its training step too
    result = check_kl_divergence(lambda m, v: -0.5 * torch.sum(1 + v - m.clamp(-3, 3).pow(2) - v.exp(), dim=1).mean())
    assert_fails_with(result, "Case *one image far from the prior", "right near the prior, wrong far from it")


def test_a_sample_copying_the_generators_state_fails_because_calls_repeat() -> None:
    def copying(model, count, generator):
        copy = torch.Generator()
        copy.set_state(generator.get_state())
        return model.decode(torch.randn(count, model.latent_dim, generator=copy))

    assert_fails_with(check_sample_prior(copying), "two calls with the same generator gave the same images")


def test_a_kl_that_is_always_zero_is_not_told_it_is_rounded() -> None:
    result = check_kl_divergence(lambda m, v: 0 * kl(m, v))
    assert_fails_with(result, "the KL is 0 times the right value everywhere")
    assert "whole numbers" not in result.details


def test_a_bernoulli_of_the_raw_images_is_told_the_targets_are_minus_one_and_one() -> None:
    from torch.distributions import Bernoulli

    result = check_bernoulli_reconstruction(
        lambda x, logits: -Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3)).mean()
    )
    assert_fails_with(result, "a binarised image's pixels are -1 and 1")
    assert "validate_args" not in result.details


def test_a_reconstruction_term_with_a_constant_added_is_told_the_constant() -> None:
    from torch.distributions import Normal

    result = check_loss(_loss_with(recon_of=lambda x, y: -Normal(y, 1.0).log_prob(x).mean()))
    assert_fails_with(result, "Looks like: a constant 0.9189 is added to the term (½ log 2π")


@pytest.mark.parametrize(
    "noise",
    [lambda mean: torch.randn_like(mean).sign(), lambda mean: torch.randint(-3, 4, mean.shape) / 2],
    ids=["sign", "randint"],
)
def test_noise_of_few_values_is_named_not_called_clipped(noise) -> None:
    result = check_reparameterise(lambda m, v: m + noise(m) * v.mul(0.5).exp())
    assert_fails_with(result, "Looks like: ε takes few values")
    assert "clipped" not in result.details


def test_noise_left_out_of_a_dimension_by_position_is_told_apart_from_a_relu_of_log_var() -> None:
    def sliced(mean, log_var):
        z = mean.clone()
        z[:, 1:] = mean[:, 1:] + torch.exp(0.5 * log_var[:, 1:]) * torch.randn_like(mean[:, 1:])
        return z

    result = check_reparameterise(sliced)
    assert_fails_with(result, "z's dimension 0 stays still wherever its σ² is")
    assert "relu" not in result.details


def test_torchs_own_not_implemented_error_is_a_failed_check_not_an_unfinished_exercise() -> None:
    # torch raises NotImplementedError for bool subtraction; only the stub's bare one stops a check cell
    def bool_targets(images, logits):
        return F.binary_cross_entropy_with_logits(logits, images > 0, reduction="sum") / len(images)

    assert_fails_with(check_bernoulli_reconstruction(bool_targets), "your function raised NotImplementedError")
    with pytest.raises(NotImplementedError):
        check_bernoulli_reconstruction(lambda images, logits: (_ for _ in ()).throw(NotImplementedError))


def test_a_step_check_of_one_step_runs(small_train) -> None:
    assert check_training_step(step, small_train.images, steps=1).passed


def _sample_then_train(model, count, generator):
    images = model.decode(torch.randn(count, model.latent_dim, generator=generator))
    model.train()
    return images


def _interpolate_then_train(model, start_image, end_image, steps):
    images = interpolate(model, start_image, end_image, steps)
    model.train()
    return images


@pytest.mark.parametrize(
    ("check", "answer"),
    [(check_sample_prior, _sample_then_train), (check_interpolate, _interpolate_then_train)],
    ids=["sample_prior", "interpolate"],
)
def test_an_answer_leaving_the_model_in_training_mode_fails_though_its_images_are_right(check, answer) -> None:
    assert_fails_with(check(answer), "the images are right, but your function leaves the model in training mode")
