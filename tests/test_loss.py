import math

import pytest
import torch

from vae_lib import kl_per_dimension, vae_loss


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
