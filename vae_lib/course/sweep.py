"""The KL-weight sweep of notebook 06: the 2-D and 8-D models trained at five weights alpha, from a nearly plain
autoencoder (1e-5) to posterior collapse (0.1), each with the shipped recipe shortened to 2 epochs: their
settings, their shipped checkpoints in outputs/checkpoints/, and loading them. `python -m vae_lib sweep`
(vae_lib.tools.sweep) trains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vae_lib.core.checkpoint import history_of, model_from_state, read_checkpoint
from vae_lib.core.config import RECIPES, TrainConfig
from vae_lib.core.data import ImageDataset
from vae_lib.core.device import place_model
from vae_lib.core.evaluate import active_dimensions, encode_means, kl_by_dimension
from vae_lib.core.model import VAE
from vae_lib.core.settings import shipped_dir

SWEEP_ALPHAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SWEEP_LATENT_DIMS = (2, 8)
SWEEP_EPOCHS = 2


def sweep_config(latent_dim: int, alpha: float) -> TrainConfig:
    """Return the settings of one point of the sweep: the shipped recipe (Adam 2e-3, cosine), shortened, this alpha."""
    return replace(RECIPES["2d"], latent_dim=latent_dim, alpha=alpha, epochs=SWEEP_EPOCHS, keep_epochs=())


def sweep_name(latent_dim: int, alpha: float) -> str:
    """Return the name of one point of the sweep, e.g. '2d_alpha0.001' (alpha as Python writes it)."""
    return f"{latent_dim}d_alpha{alpha}"


def sweep_checkpoint(latent_dim: int, alpha: float) -> Path:
    """Return the shipped checkpoint of one point of the sweep."""
    return shipped_dir() / f"sweep_{sweep_name(latent_dim, alpha)}.pt"


@dataclass(frozen=True)
class SweepPoint:
    """One trained point of the sweep: its model, its recorded test metrics and how many dimensions it uses."""

    latent_dim: int
    alpha: float
    model: VAE
    test_recon: float  # distortion: 0.5 MSE over every test image, z sampled (the history's last epoch)
    test_kl: float  # rate: KL(q(z|x) || p(z)) in nats, averaged over every test image
    kl_per_dimension: torch.Tensor  # nats, on the images given to load_sweep
    active: torch.Tensor  # bool per dimension (evaluate.active_dimensions)

    @property
    def active_units(self) -> int:
        """Return how many latent dimensions are active."""
        return int(self.active.sum())


def load_sweep(
    test_data: ImageDataset, latent_dims: Sequence[int] = SWEEP_LATENT_DIMS, alphas: Sequence[float] = SWEEP_ALPHAS
) -> list[SweepPoint]:
    """Return every shipped point of the sweep; per-dimension KL and active units are measured on `test_data`."""
    points = []
    for latent_dim in latent_dims:
        for alpha in alphas:
            path = sweep_checkpoint(latent_dim, alpha)
            state = read_checkpoint(path)  # read once: the model and its history come from the same file
            model, final = place_model(model_from_state(state, path), "cpu").eval(), history_of(state).epochs[-1]
            means = encode_means(model, test_data)
            kl = kl_by_dimension(model, test_data)
            points.append(
                SweepPoint(latent_dim, alpha, model, final.test_recon, final.test_kl, kl, active_dimensions(means))
            )
    return points
