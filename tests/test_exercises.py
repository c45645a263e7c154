"""The exercise checks: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch
import torch.nn.functional as F

from vae_lib import VAE, active_dimensions, train_step, vae_loss
from vae_lib.core.latent import interpolation_latents
from vae_lib.core.objective import kl_per_dimension
from vae_lib.course.exercises import (
    CheckResult,
    check_active_units,
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
    ],
)
def test_reparameterisation_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_reparameterise(wrong), phrase)


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
    ],
)
def test_kl_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_kl_divergence(wrong), phrase)


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


def _loss_with(recon_of=None, total_of=None, kl_of=kl):
    def wrong(images, reconstruction, mean, log_var, alpha):
        recon = (recon_of or (lambda x, y: 0.5 * F.mse_loss(y, x)))(images, reconstruction)
        kl_term = kl_of(mean, log_var)
        total = (total_of or (lambda r, k, a: r + a * k))(recon, kl_term, alpha)
        return total, recon, kl_term

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
    ],
)
def test_loss_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_loss(wrong), phrase)


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


def _step_with(*, zero_grad=True, optimizer_step=True, loss_of=None, detach=True):
    def wrong(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
        minimised = loss_of(total, recon, kl_term) if loss_of else total
        if zero_grad:
            optimizer.zero_grad()
        minimised.backward()
        if optimizer_step:
            optimizer.step()
        return (minimised, recon, kl_term) if not detach else (minimised.detach(), recon.detach(), kl_term.detach())

    return wrong


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_with(zero_grad=False), "optimizer.zero_grad() is missing"),
        (_step_with(optimizer_step=False), "optimizer.step() is missing"),
        (_step_with(loss_of=lambda total, recon, kl_term: recon), "the KL term is left out"),
        (_step_with(loss_of=lambda total, recon, kl_term: recon + kl_term), "alpha is missing"),
        (_step_with(detach=False), "still carry their graph"),
    ],
)
def test_training_step_mistakes_are_named(wrong, phrase, small_train) -> None:
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def test_a_step_that_departs_late_is_caught_at_the_step_it_departs(small_train) -> None:
    calls = []

    def drifting(model, optimizer, batch, alpha):
        calls.append(1)
        if len(calls) == 4:
            torch.randn(1)  # consumes noise, so this step and later ones draw other z
        return train_step(model, optimizer, batch, alpha)

    assert_fails_with(check_training_step(drifting, small_train.images, steps=6), "Case *step 4*")


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


def test_an_unfinished_exercise_raises_not_implemented_error() -> None:
    def unfinished(mean, log_var):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_kl_divergence(unfinished)
