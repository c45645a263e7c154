import pytest
import torch

from vae_lib import VAE


@pytest.mark.parametrize("latent_dim", [2, 8])
def test_forward_shapes_and_output_range(latent_dim: int) -> None:
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim)
    images = torch.rand(5, 1, 28, 28) * 2 - 1
    reconstruction, mean, log_var = model(images)
    assert reconstruction.shape == (5, 1, 28, 28)
    assert mean.shape == log_var.shape == (5, latent_dim)
    assert reconstruction.min() >= -1 and reconstruction.max() <= 1


def test_encoder_and_decoder_follow_the_seed_shape() -> None:
    model = VAE(latent_dim=2)
    images = torch.zeros(3, 1, 28, 28)
    sizes = []
    features = images
    for block in model.encoder:
        features = block(features)
        sizes.append(tuple(features.shape[1:]))
    assert sizes == [(16, 28, 28), (32, 14, 14), (64, 7, 7), (128, 7, 7)]
    latents = torch.zeros(3, 2)
    features = model.from_latent(latents).view(-1, *model.feature_shape)
    sizes = []
    for layer in model.decoder:
        features = layer(features)
        sizes.append(tuple(features.shape[1:]))
    assert sizes == [(64, 7, 7), (32, 14, 14), (16, 28, 28), (1, 28, 28), (1, 28, 28)]
    # conv -> ReLU -> BatchNorm in every block, as in the seed
    assert [type(layer).__name__ for layer in model.encoder[0]] == ["Conv2d", "ReLU", "BatchNorm2d"]
    # encoder 97,632 + linear layers 25,092 + 18,816 + decoder 115,169, counted by hand
    assert sum(p.numel() for p in model.parameters()) == 256_709


def test_encode_decode_and_forward_agree() -> None:
    torch.manual_seed(1)
    model = VAE(latent_dim=8).eval()
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    mean, log_var = model.encode(images)
    torch.manual_seed(7)
    reconstruction, forward_mean, _ = model(images)
    torch.manual_seed(7)
    expected = model.decode(mean + torch.randn_like(mean) * torch.exp(0.5 * log_var))
    assert torch.equal(forward_mean, mean)
    assert torch.allclose(reconstruction, expected)


def test_sample_draws_from_the_prior_with_a_generator() -> None:
    model = VAE(latent_dim=2).eval()
    first = model.sample(6, generator=torch.Generator().manual_seed(3))
    second = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 28, 28)
    assert torch.equal(first, second)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_latent_dim_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(latent_dim=bad)
