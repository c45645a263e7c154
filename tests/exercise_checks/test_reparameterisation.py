"""The reparameterisation check: the reference passes, and each named mistake is recognised by its hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from vae_lib import VAE
from vae_lib.course.exercises import check_reparameterise

from .answers import assert_fails_with, reparameterise


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
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var.abs().sqrt(), "the square root of log_var"),
        (lambda mean, log_var: mean + 0 * log_var, "z is not random"),
        (lambda mean, log_var: mean + torch.randn(1) * log_var.mul(0.5).exp(), "one ε is shared"),
        (lambda mean, log_var: torch.randn_like(mean) * log_var.mul(0.5).exp(), "the mean is not added"),
        (lambda mean, log_var: torch.normal(mean.detach(), log_var.mul(0.5).exp().detach()), "no gradient"),
        (lambda mean, log_var: mean + torch.randn_like(mean) * log_var.mul(0.5).exp().detach(), "dz/dlog_var"),
        (lambda mean, log_var: mean.detach() + torch.randn_like(mean) * log_var.mul(0.5).exp(), "mean is detached"),
        (lambda mean, log_var: torch.normal(mean, log_var.mul(0.5).exp()), "torch.normal(mean, σ), which passes no"),
        (lambda mean, log_var: (mean + torch.randn_like(mean)) * log_var.mul(0.5).exp(), "the average z is μ·σ"),
        (lambda mean, log_var: mean + torch.randn_like(mean) * F.softplus(log_var), "computed as softplus(log_var)"),
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
        (lambda mean, log_var: mean + log_var.mul(0.5).exp(), "z = mean + σ: σ is not multiplied by any noise"),
        (lambda mean, log_var: mean - torch.exp(0.5 * log_var), "z = mean - σ: σ is not multiplied by any noise"),
        (lambda mean, log_var: mean + 2 * torch.exp(0.5 * log_var), "z = mean + 2·σ: σ is not multiplied by any"),
        (lambda mean, log_var: mean - 0.5 * torch.exp(0.5 * log_var), "z = mean - 0.5·σ: σ is not multiplied by"),
        (lambda mean, log_var: mean + log_var.exp(), "z is the same on every call: nothing in it is drawn"),
        (lambda mean, log_var: mean + log_var, "z is the same on every call: nothing in it is drawn"),
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


def test_a_dimension_of_z_without_noise_is_named_not_called_clipped() -> None:
    result = check_reparameterise(lambda m, v: m + torch.randn_like(m) * torch.sqrt(v).nan_to_num())
    assert_fails_with(result, "z does not vary over the draws in the dimensions with σ² = 0.25", "σ is 0 where")
    assert "clipped" not in result.details and "nan" not in result.details


@pytest.mark.parametrize("bound", [1.0, 2.0, 3.0])
def test_clipped_noise_is_named_as_clipped_even_where_its_spread_and_distribution_pass(bound) -> None:
    # at ±1 the draws looked uniform, at ±2 only their spread was off, at ±3 the check passed
    result = check_reparameterise(
        lambda mean, log_var: mean + torch.randn_like(mean).clamp(-bound, bound) * log_var.mul(0.5).exp()
    )
    assert_fails_with(result, "Looks like: ε is clipped", "sit at exactly the same lowest or highest value")
    assert "uniform" not in result.details


@pytest.mark.parametrize(
    "noise",
    [lambda mean: torch.randn_like(mean).sign(), lambda mean: torch.randint(-3, 4, mean.shape) / 2],
    ids=["sign", "randint"],
)
def test_noise_of_few_values_is_named_not_called_clipped(noise) -> None:
    result = check_reparameterise(lambda m, v: m + noise(m) * v.mul(0.5).exp())
    assert_fails_with(result, "Looks like: ε takes few values")
    assert "clipped" not in result.details


def test_noise_of_the_wrong_distribution_is_measured_by_its_distance_from_a_normal_one() -> None:
    result = check_reparameterise(lambda mean, log_var: mean + torch.rand_like(mean) * log_var.mul(0.5).exp())
    # U(0, 1) standardised against N(0, 1): the largest gap of the two distribution functions is about 0.059
    distance = float(result.details.split("Kolmogorov-Smirnov distance ")[1].split(" ")[0])
    assert 0.05 < distance < 0.07


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


def test_noise_left_out_of_a_dimension_by_position_is_told_apart_from_a_relu_of_log_var() -> None:
    def sliced(mean, log_var):
        z = mean.clone()
        z[:, 1:] = mean[:, 1:] + torch.exp(0.5 * log_var[:, 1:]) * torch.randn_like(mean[:, 1:])
        return z

    result = check_reparameterise(sliced)
    assert_fails_with(result, "z's dimension 0 stays still wherever its σ² is")
    assert "relu" not in result.details


def test_a_z_cut_from_its_inputs_and_made_a_leaf_again_is_told_it_is_detached() -> None:
    result = check_reparameterise(lambda m, v: reparameterise(m, v).detach().requires_grad_())
    assert_fails_with(result, "z has no gradient with respect to mean or log_var", ".detach().requires_grad_()")


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


def _antithetic(mean, log_var):
    half = torch.randn(len(mean) // 2, mean.shape[1])
    return mean + torch.cat([half, -half]) * torch.exp(0.5 * log_var)


def _half_repeated(mean, log_var):
    half = torch.randn(len(mean) // 2, mean.shape[1])
    return mean + torch.cat([half, half]) * torch.exp(0.5 * log_var)


def _standardised(mean, log_var):
    noise = torch.randn_like(mean)
    return mean + (noise - noise.mean(dim=0)) / noise.std(dim=0) * torch.exp(0.5 * log_var)


def _unit_length_over_the_batch(mean, log_var):
    return mean + F.normalize(torch.randn_like(mean), dim=0) * 141.4 * torch.exp(0.5 * log_var)


def _batch_mean(mean, log_var):
    return mean.mean(dim=0) + torch.randn_like(mean) * torch.exp(0.5 * log_var)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_antithetic, "the images' ε come in pairs ε, -ε"),
        (_half_repeated, "10000 of the 20000 images' ε repeat another image's"),
        (_standardised, "ε has a mean of exactly 0, a spread of exactly 1 or one length over the batch"),
        (_unit_length_over_the_batch, "ε has a mean of exactly 0, a spread of exactly 1 or one length over the batch"),
        (_batch_mean, "each image's z depends on the means of every image in the batch"),
    ],
    ids=["antithetic", "half repeated", "standardised", "unit length over the batch", "batch mean"],
)
def test_noise_or_means_shared_between_images_fail_and_are_named(wrong, phrase) -> None:
    # each passed: every image's ε looked N(0, I), and z.sum()'s gradient to the mean is 1 for a batch-averaged mean
    assert_fails_with(check_reparameterise(wrong), phrase)


def test_z_spread_far_wider_than_sigma_is_told_its_spread_not_its_average() -> None:
    # σ⁴ for σ: the average of 20,000 draws 81 σ wide strayed past a tolerance measured in σ, and ε was told
    # to average to -0.035
    result = check_reparameterise(lambda mean, log_var: mean + torch.randn_like(mean) * torch.exp(log_var) ** 2)
    assert_fails_with(result, "z spreads")
    assert "ε averages to" not in result.details


@pytest.mark.parametrize(
    ("wrong", "shape", "phrase"),
    [
        (lambda m, v: (m + torch.randn_like(m) * (0.5 * v).exp()).unsqueeze(0), "(1, 4, 3)", "reshaped"),
        (lambda m, v: (m + torch.randn_like(m) * (0.5 * v).exp()).flatten(), "(12,)", "reshaped"),
        (lambda m, v: m + torch.randn(len(m), 1, m.shape[1]) * (0.5 * v).exp(), "(4, 4, 3)", "broadcast against"),
        (lambda m, v: m + torch.randn_like(m) * (0.5 * v).exp().unsqueeze(1), "(4, 4, 3)", "broadcast against"),
    ],
    ids=["unsqueezed", "flattened", "ε of N × 1 × D", "σ unsqueezed"],
)
def test_a_z_of_another_shape_is_told_both_shapes_on_four_rows(wrong, shape, phrase) -> None:
    # was "z's shape expected shape (2,), values [2e+04, 3], got shape (3,) ..." (the shape of the shape), and a
    # broadcast ran on the 20,000 rows: 20,000 × 20,000 × 3 floats, 4.8 GB
    assert_fails_with(
        check_reparameterise(wrong),
        f"Case *4 draws with the same μ and σ²*: z has shape {shape}, expected (4, 3), the shape of mean.",
        phrase,
    )


def test_noise_drawn_once_and_kept_is_told_so_when_the_full_case_does_not_fit_it() -> None:
    kept = {}

    def noise_kept(mean, log_var):
        kept.setdefault("eps", torch.randn_like(mean))
        return mean + kept["eps"] * torch.exp(0.5 * log_var)

    assert_fails_with(check_reparameterise(noise_kept), "is something kept from an earlier call (ε drawn once")


def test_a_meta_z_is_a_failed_check_and_a_sparse_z_is_read_as_its_values() -> None:
    def meta(mean, log_var):
        return torch.empty_like(mean, device="meta")

    def sparse(mean, log_var):
        return (mean + torch.randn_like(mean) * log_var.mul(0.5).exp()).to_sparse()

    assert_fails_with(check_reparameterise(meta), "is a tensor on the meta device")  # both crashed the check before
    assert check_reparameterise(sparse).passed


def _row_centred_noise(mean, log_var):
    noise = torch.randn_like(mean)
    return mean + log_var.mul(0.5).exp() * (noise - noise.mean(dim=1, keepdim=True))


def _row_standardised_noise(mean, log_var):
    noise = torch.randn_like(mean)
    return mean + log_var.mul(0.5).exp() * (noise - noise.mean(dim=1, keepdim=True)) / noise.std(dim=1, keepdim=True)


def _normalised_noise(mean, log_var):
    noise = torch.randn_like(mean)
    return mean + log_var.mul(0.5).exp() * noise / noise.norm(dim=1, keepdim=True)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda mean, log_var: mean + log_var.mul(0.5).exp() + torch.randn_like(mean), "σ and ε are added"),
        (lambda mean, log_var: mean * log_var.mul(0.5).exp() * torch.randn_like(mean), "the mean multiplies the noise"),
        (_normalised_noise, "ε is scaled to one length in each row"),
        (
            lambda mean, log_var: (
                mean + log_var.mul(0.5).exp() * torch.from_numpy(np.random.randn(*mean.shape)).float()
            ),
            "a random stream torch.manual_seed does not set",
        ),
        (lambda mean, log_var: mean + log_var.mul(0.5).exp() * torch.randn_like(mean).abs(), "made positive (.abs())"),
        (lambda mean, log_var: mean + log_var.mul(0.5).exp() * torch.randn_like(mean) ** 2, "made positive (squared)"),
        (_row_centred_noise, "ε is centred in each row"),
        (_row_standardised_noise, "ε is standardised (its mean subtracted, divided by its spread) in each row"),
        (
            lambda mean, log_var: mean + mean * log_var.mul(0.5).exp() * torch.randn_like(mean),
            "z = mean + mean · σ · ε",
        ),
    ],
    ids=[
        "σ + ε",
        "μ·σ·ε",
        "ε of length 1",
        "NumPy's noise",
        "|ε|",
        "ε²",
        "ε centred per row",
        "ε standardised per row",
        "μ + μ·σ·ε",
    ],
)
def test_noise_put_together_wrongly_or_drawn_outside_torch_is_named(wrong, phrase) -> None:
    # told ε averaged 0.99, noise missing where μ = 0, ε uniform; NumPy's noise passed
    assert_fails_with(check_reparameterise(wrong), phrase)


@pytest.mark.parametrize(
    ("spread", "phrase"),
    [
        (
            lambda log_var: torch.exp(0.5 * log_var).clamp(max=1.0),
            "σ clamped at ≈ 1: the dimensions whose σ lies above",
        ),
        (
            lambda log_var: torch.exp(0.5 * log_var).clamp(min=1.0),
            "σ clamped at ≈ 1: the dimensions whose σ lies below",
        ),
        (lambda log_var: torch.exp(torch.tensor(0.5)) * log_var, "z spreads as 1.6"),
        (lambda log_var: torch.exp(0.5 * log_var.abs()), "a σ below 1 comes out as 1/σ"),  # was told σ was clamped
        (lambda log_var: torch.exp(0.5 * log_var).clamp(0.6, 2.5), "σ clamped at ≈ 0.6 and 2.4"),
        (lambda log_var: torch.exp(0.5 * log_var.clamp(-1, 1)), "σ clamped at ≈ 0.607 and 1.6"),  # no hint before
        (lambda log_var: torch.sqrt(2 * torch.exp(0.5 * log_var)), "z spreads as σ to the power 0.5"),  # "clamped"
        (lambda log_var: torch.exp(0.5 * log_var) + 0.1, "z spreads as if 0.1 were added to σ:"),  # "power 0.91"
        (lambda log_var: torch.exp(0.5 * log_var).clamp(min=0.6), "σ clamped at ≈ 0.6: the dimensions"),  # "0.89"
        (  # told only that σ was clamped at 0.592
            lambda log_var: torch.sqrt(torch.exp(log_var) + 0.1),
            "the dimensions whose σ lies below it spread as the bound, or as if 0.1 were added to the variance σ²",
        ),
    ],
    ids=[
        "σ clamped above",
        "σ clamped below",
        "e^0.5 times log_var",
        "|log_var|",
        "σ clamped on both sides",
        "log_var clamped on both sides, every σ at a bound",
        "a power law right at one σ",
        "σ + 0.1",
        "σ clamped below at 0.6",
        "√(σ² + 0.1)",
    ],
)
def test_a_clamped_sigma_or_a_multiple_of_the_log_variance_is_named(spread, phrase) -> None:
    # the spreads expected and got alone before
    result = check_reparameterise(lambda mean, log_var: mean + torch.randn_like(mean) * spread(log_var))
    assert_fails_with(result, phrase, "σ = ")
