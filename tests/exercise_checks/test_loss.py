"""The loss check: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch
import torch.nn.functional as F

from vae_lib import vae_loss
from vae_lib.course.exercises import check_loss

from .answers import assert_fails_with, kl, kl_of_distributions, loss


def test_the_loss_reference_passes() -> None:
    assert check_loss(loss).passed
    assert check_loss(vae_loss).passed


@pytest.mark.parametrize(
    "right",
    [
        lambda x, y, m, v, a: [0.5 * F.mse_loss(x, y) + a * kl(m, v), 0.5 * F.mse_loss(x, y), kl(m, v)],
        lambda x, y, m, v, a: (
            ((x - y) ** 2).mean() / 2 + kl_of_distributions(m, v) * a,
            ((x - y) ** 2).mean() / 2,
            kl_of_distributions(m, v),
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
        (_loss_with(recon_of=lambda x, y: 0.5 * F.mse_loss(y.mean(0), x.mean(0))), "average reconstruction"),
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


def test_a_reconstruction_term_with_a_constant_added_is_told_the_constant() -> None:
    from torch.distributions import Normal

    result = check_loss(_loss_with(recon_of=lambda x, y: -Normal(y, 1.0).log_prob(x).mean()))
    assert_fails_with(result, "Looks like: a constant 0.9189 is added to the term (½ log 2π")


def test_an_absolute_error_is_told_by_what_doubling_the_error_does() -> None:
    result = check_loss(_loss_with(recon_of=lambda x, y: 0.5 * (x - y).abs().mean()))
    assert_fails_with(result, "doubling every pixel's error doubled the term instead of multiplying it by 4")


def test_a_loss_that_returns_one_number_is_told_to_return_three() -> None:
    assert_fails_with(check_loss(lambda *args: vae_loss(*args)[0]), "expected three values")


def test_a_loss_or_step_returning_none_in_one_place_is_told_which() -> None:
    result = check_loss(lambda x, y, m, v, a: (*loss(x, y, m, v, a)[:2], None))
    assert_fails_with(result, "the kl returned is None", "return each loss itself in its place")
    assert "`return` line missing" not in result.details


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


def test_a_loss_whose_total_is_nan_where_its_terms_are_not_is_told_so() -> None:
    # the hint's least-squares fit raised on the NaN total
    nan_kl = lambda m, v: -0.5 * torch.sum(1 + torch.log(v) - m**2 - v, dim=1).mean()  # noqa: E731
    result = check_loss(lambda x, y, m, v, a: (loss(x, y, m, v, a)[0] + a * nan_kl(m, v), *loss(x, y, m, v, a)[1:]))
    assert_fails_with(result, "the total is NaN or infinite where your reconstruction and KL terms are numbers")


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


@pytest.mark.parametrize(
    ("recon_of", "phrases"),
    [
        # right in value within the tolerance on the 3-image case, and told only "the wrong gradient"
        (lambda x, y: 0.5 * (x - y).var(), ["the term does not change when every pixel of the reconstruction"]),
        # N × 28 × 28 against N × 1 × 28 × 28: told "is a size written in"
        (lambda x, y: 0.5 * ((y.squeeze(1) - x) ** 2).mean(), ["compares every reconstruction with every image"]),
        # raised on the 2 × 2 case with torch's message alone
        (
            lambda x, y: 0.5 * ((y.view(-1, 784) - x.view(-1, 784)) ** 2).mean(),
            ["Case *one 2 × 2 image", "a size written in: this case's tensor holds 4 values", "the shape [-1, 784]"],
        ),
    ],
    ids=["a variance", "a channel squeezed", "view(-1, 784)"],
)
def test_a_reconstruction_term_subtracting_its_mean_broadcast_or_reshaped_to_784_is_named(recon_of, phrases) -> None:
    result = check_loss(_loss_with(recon_of=recon_of))
    assert_fails_with(result, *phrases)
    assert "is a size written in, such as" not in result.details


def test_a_total_built_from_a_variance_beside_a_right_reconstruction_term_is_named() -> None:
    # the returned reconstruction term is right, so its probe found nothing: was told "part of it is detached"
    result = check_loss(_variance_in_the_total)
    assert_fails_with(result, "the total (at a KL of 0) does not change when every pixel of the reconstruction")


def _variance_in_the_total(images, reconstruction, mean, log_var, alpha):
    recon, kl_term = 0.5 * F.mse_loss(reconstruction, images), kl(mean, log_var)
    return 0.5 * (images - reconstruction).var() + alpha * kl_term, recon, kl_term


def test_a_total_leaving_the_kl_out_is_not_told_about_gradients() -> None:
    # the loss check measures the terms' weights from the returned values, where a detached KL still counts
    def kl_left_out(images, reconstruction, mean, log_var, alpha):
        total, recon, kl_term = loss(images, reconstruction, mean, log_var, alpha)
        return recon, recon, kl_term

    result = check_loss(kl_left_out)
    assert_fails_with(result, "Looks like: the KL term is left out of the total: the total = reconstruction")
    assert "carries no gradient" not in result.details


@pytest.mark.parametrize(
    "recon_of",
    [
        lambda x, y: 0.5 * (x - y).pow(2).mean(dim=(1, 2, 3), keepdim=True).mean(0),
        lambda x, y: 0.5 * F.mse_loss(y, x).reshape(1),
    ],
    ids=["keepdim", "one-element vector"],
)
def test_a_right_value_in_a_one_element_tensor_of_another_shape_is_told_its_shape(recon_of) -> None:
    # it was told a size had been written in
    assert_fails_with(check_loss(_loss_with(recon_of=recon_of)), "the value is right, but its shape is (1")


def test_a_term_divided_by_the_batch_size_twice_is_named() -> None:
    # it was told a size had been written in
    twice = _loss_with(recon_of=lambda x, y: 0.5 * (x - y).pow(2).sum() / x.numel() / len(x))
    assert_fails_with(check_loss(twice), "divided by the batch size twice")


def test_a_term_summed_over_pixels_and_divided_by_the_batch_size_twice_is_told_both() -> None:
    both = _loss_with(recon_of=lambda x, y: 0.5 * (x - y).pow(2).sum(dim=(1, 2, 3)).mean() / len(x))
    assert_fails_with(check_loss(both), "summed over pixels, and divided by the batch size twice")


@pytest.mark.parametrize(
    ("scale", "how"),
    [
        (1 / 3, "divided by the number of images (3 here, len(images))"),
        (3, "multiplied by the number of images (3 here, len(images))"),
        (1 / 2, "divided by the number of images less one (2 here, len(images) - 1)"),
    ],
)
def test_a_total_scaled_by_the_number_of_images_is_named(scale, how) -> None:
    # the probes of the total use one image each, so the expected and got totals came alone
    def scaled_total(images, reconstruction, mean, log_var, alpha):
        total, recon, kl_term = loss(images, reconstruction, mean, log_var, alpha)
        return total * (scale if len(images) == 3 else 1), recon, kl_term

    assert_fails_with(check_loss(scaled_total), f"the total is {how}")


def test_a_reconstruction_term_multiplied_by_the_number_of_images_in_the_total_is_told_so() -> None:
    # told that the whole total was multiplied: the KL's part is within 1e-3 of nothing at alpha = 0.001
    def reconstruction_times_batch(images, reconstruction, mean, log_var, alpha):
        total, recon, kl_term = loss(images, reconstruction, mean, log_var, alpha)
        return recon * len(images) + alpha * kl_term, recon, kl_term

    assert_fails_with(
        check_loss(reconstruction_times_batch),
        "the reconstruction term in the total is multiplied by the number of images",
    )
