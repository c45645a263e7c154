import math

import pytest
import torch

from vae_lib import kl_per_dimension, vae_loss
from vae_lib.core.objective import gaussian_log_likelihood, log_likelihood, reconstruction_loss


def test_loss_matches_a_hand_computation() -> None:
    images = torch.tensor([[[[0.5, -1.0], [1.0, 0.0]]]])  # 1 x 1 x 2 x 2
    reconstruction = torch.tensor([[[[0.0, -1.0], [0.5, 0.5]]]])
    mean = torch.tensor([[1.0, -2.0]])
    log_var = torch.tensor([[0.0, math.log(4.0)]])
    total, recon, kl = vae_loss(images, reconstruction, mean, log_var, alpha=0.1)
    # squared errors 0.25, 0, 0.25, 0.25 -> mean 0.1875 -> halved
    assert recon.item() == pytest.approx(0.09375)
    # dim 1: -0.5 (1 + 0 - 1 - 1) = 0.5 ; dim 2: -0.5 (1 + ln 4 - 4 - 4) = 3.5 - ln 2
    assert kl.item() == pytest.approx(0.5 + 3.5 - math.log(2), rel=1e-6)
    assert total.item() == pytest.approx(0.09375 + 0.1 * (4.0 - math.log(2)), rel=1e-6)


def test_kl_is_averaged_over_the_batch_and_summed_over_dimensions() -> None:
    mean = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    log_var = torch.zeros(2, 2)
    assert kl_per_dimension(mean, log_var).tolist() == [2.5, 0.0]  # (0.5 + 4.5) / 2
    images = torch.zeros(2, 1, 28, 28)
    _, _, kl = vae_loss(images, images, mean, log_var)
    assert kl.item() == 2.5


def test_loss_equals_the_seed_definition_on_random_input() -> None:
    torch.manual_seed(0)
    images, reconstruction = torch.rand(8, 1, 28, 28) * 2 - 1, torch.rand(8, 1, 28, 28) * 2 - 1
    mean, log_var = torch.randn(8, 8), torch.randn(8, 8)
    seed_recon = 0.5 * torch.nn.MSELoss()(reconstruction, images)
    seed_kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / images.shape[0]
    total, recon, kl = vae_loss(images, reconstruction, mean, log_var, alpha=0.001)
    assert recon.item() == pytest.approx(seed_recon.item(), rel=1e-6)
    assert kl.item() == pytest.approx(seed_kl.item(), rel=1e-5)
    assert total.item() == pytest.approx((seed_recon + 0.001 * seed_kl).item(), rel=1e-6)


def test_negative_alpha_is_rejected() -> None:
    images = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="alpha"):
        vae_loss(images, images, torch.zeros(1, 2), torch.zeros(1, 2), alpha=-0.5)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf")])
def test_an_alpha_that_is_not_finite_is_rejected(alpha: float) -> None:
    images = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        vae_loss(images, images, torch.zeros(1, 2), torch.zeros(1, 2), alpha=alpha)


def test_uint8_images_are_rejected_with_the_conversion_to_use() -> None:
    images = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    with pytest.raises(ValueError, match="got torch.uint8 and torch.float32: convert uint8 images with"):
        vae_loss(images, torch.zeros(2, 1, 28, 28), torch.zeros(2, 2), torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("reconstruction_shape", "latent_shape", "message"),
    [
        ((1, 1, 28, 28), (4, 2), "images \\(4, 1, 28, 28\\) and reconstruction \\(1, 1, 28, 28\\) must have the same"),
        ((4, 28, 28), (4, 2), "must have the same shape"),
        ((4, 1, 28, 28), (1, 2), "must both be batch x latent_dim, with the images' batch size 4"),
    ],
)
def test_shapes_that_would_only_broadcast_are_rejected(reconstruction_shape, latent_shape, message) -> None:
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match=message):
        vae_loss(images, torch.zeros(reconstruction_shape), torch.zeros(latent_shape), torch.zeros(latent_shape))


def test_the_bernoulli_term_of_grey_pixels_matches_a_hand_computation() -> None:
    images = torch.tensor([[[[1.0, -1.0, 0.0]]]])  # targets (x + 1) / 2: 1, 0 and a grey 0.5
    logits = torch.tensor([[[[0.0, math.log(3.0), 2.0]]]])
    # -log sigmoid(0) = ln 2; -log(1 - 3/4) = ln 4; 0.5 (softplus(-2) + softplus(2)) = 1 + ln(1 + e^-2)
    by_hand = math.log(2) + math.log(4) + 1 + math.log(1 + math.exp(-2))
    assert reconstruction_loss(images, logits, "bernoulli").item() == pytest.approx(by_hand, rel=1e-6)
    assert log_likelihood(images, logits, "bernoulli").tolist() == pytest.approx([-by_hand], rel=1e-6)


def test_the_gaussian_log_likelihood_counts_the_pixels_of_the_images_given() -> None:
    images = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])  # 2 x 1 x 2 x 2
    reconstructions = torch.zeros(2, 1, 2, 2)
    variance = 0.5
    constant = 0.5 * 4 * math.log(2 * math.pi * variance)  # four pixels per image, not 784
    by_hand = [-0.5 * 2.0 / variance - constant, -0.5 * 1.0 / variance - constant]  # squared errors 2 and 1
    assert gaussian_log_likelihood(images, reconstructions, variance).tolist() == pytest.approx(by_hand, rel=1e-6)
    assert log_likelihood(images, reconstructions, "gaussian", variance).tolist() == pytest.approx(by_hand, rel=1e-6)


def test_a_gaussian_log_likelihood_without_its_variance_is_refused() -> None:
    with pytest.raises(ValueError, match="needs its variance"):
        log_likelihood(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "gaussian")


def test_the_total_s_gradient_carries_alpha_times_the_kl_s() -> None:
    images = torch.zeros(2, 1, 2, 2)
    mean = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    log_var = torch.tensor([[0.0, math.log(3.0)], [-1.0, 0.0]], requires_grad=True)
    total, _, _ = vae_loss(images, images, mean, log_var, alpha=0.25)
    total.backward()
    # d KL / d mean = mean / N and d KL / d log_var = (exp(log_var) - 1) / (2 N), N = 2 images
    assert torch.allclose(mean.grad, 0.25 * mean.detach() / 2)
    assert torch.allclose(log_var.grad, 0.25 * (log_var.detach().exp() - 1) / 4)


def test_a_zero_alpha_is_accepted_and_the_total_is_the_reconstruction_term() -> None:
    images, reconstruction = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    total, recon, kl = vae_loss(images, reconstruction, torch.ones(1, 2), torch.zeros(1, 2), alpha=0.0)
    assert total.item() == recon.item() == 0.125 and kl.item() == 1.0


def test_an_unknown_likelihood_is_refused_naming_the_ones_there_are() -> None:
    images = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson': choose one of gaussian, bernoulli"):
        vae_loss(images, images, torch.zeros(1, 2), torch.zeros(1, 2), likelihood="poisson")


def test_an_integer_reconstruction_is_rejected() -> None:
    images, latents = torch.zeros(2, 1, 2, 2), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="got torch.float32 and torch.int64"):
        vae_loss(images, images.long(), latents, latents)
