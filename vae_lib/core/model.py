"""The convolutional VAE: encoder to (mean, log-variance), reparameterisation, decoder.

The shape follows the seed project: conv -> ReLU -> BatchNorm blocks, 28 -> 28 -> 14 -> 7 -> 7.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 28
DEFAULT_WIDTHS = (16, 32, 64, 128)
# The encoder halves the image twice (strides 1, 2, 2, 1), so features are 7 x 7.
FEATURE_SIZE = IMAGE_SIZE // 4


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, transposed: bool) -> nn.Sequential:
    """Return conv (or transposed conv) -> ReLU -> BatchNorm, the seed's block."""
    conv_type = nn.ConvTranspose2d if transposed else nn.Conv2d
    return nn.Sequential(
        conv_type(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(out_channels),
    )


class VAE(nn.Module):
    """Convolutional variational autoencoder for 28 x 28 images in [-1, 1].

    `widths` are the encoder's four channel counts; the decoder mirrors them.
    """

    def __init__(self, latent_dim: int = 2, channels: int = 1, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        widths = tuple(widths)
        if len(widths) != 4 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be four positive integers, got {widths!r}")
        self.latent_dim = latent_dim
        self.channels = channels
        self.widths = widths
        w1, w2, w3, w4 = widths
        self.feature_shape = (w4, FEATURE_SIZE, FEATURE_SIZE)
        feature_count = w4 * FEATURE_SIZE * FEATURE_SIZE

        self.encoder = nn.Sequential(
            _conv_block(channels, w1, 3, 1, transposed=False),  # 28 -> 28
            _conv_block(w1, w2, 3, 2, transposed=False),  # 28 -> 14
            _conv_block(w2, w3, 3, 2, transposed=False),  # 14 -> 7
            _conv_block(w3, w4, 3, 1, transposed=False),  # 7 -> 7
        )
        self.to_latent = nn.Linear(feature_count, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, feature_count)
        self.decoder = nn.Sequential(
            _conv_block(w4, w3, 3, 1, transposed=True),  # 7 -> 7
            _conv_block(w3, w2, 4, 2, transposed=True),  # 7 -> 14
            _conv_block(w2, w1, 4, 2, transposed=True),  # 14 -> 28
            nn.ConvTranspose2d(w1, channels, kernel_size=3, stride=1, padding=1),
            nn.Tanh(),
        )

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior's (mean, log_var), each N x latent_dim."""
        features = self.encoder(images).flatten(1)
        mean, log_var = self.to_latent(features).chunk(2, dim=1)
        return mean, log_var

    @staticmethod
    def reparameterise(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """Return z = mean + sigma * eps with eps ~ N(0, I), differentiable in mean and log_var."""
        return mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Return images in [-1, 1], N x channels x 28 x 28, decoded from N x latent_dim latents."""
        features = self.from_latent(latents).view(-1, *self.feature_shape)
        return self.decoder(features)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction, mean, log_var) for N x channels x 28 x 28 images in [-1, 1]."""
        mean, log_var = self.encode(images)
        reconstruction = self.decode(self.reparameterise(mean, log_var))
        return reconstruction, mean, log_var

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return `count` images decoded from latents drawn from the prior N(0, I)."""
        device = next(self.parameters()).device
        latents = torch.randn(count, self.latent_dim, generator=generator, device=device)
        return self.decode(latents)
