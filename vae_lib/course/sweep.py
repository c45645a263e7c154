"""The KL-weight sweep of notebook 06: the 2-D and 8-D models trained at five weights alpha, from a nearly plain
autoencoder (1e-5) to posterior collapse (0.1), each with the 2d-fast recipe shortened to 16 epochs: their
settings, their shipped checkpoints in outputs/checkpoints/, and loading them. `python -m vae_lib sweep`
(vae_lib.tools.sweep) trains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vae_lib.core.checkpoint import config_of, history_of, model_from_state, read_checkpoint, tracked_file_advice
from vae_lib.core.config import MODEL_FIELDS, RECIPES, TrainConfig
from vae_lib.core.data import ImageDataset
from vae_lib.core.device import place_model
from vae_lib.core.evaluate import active_dimensions, encode_means, kl_by_dimension
from vae_lib.core.files import CheckpointError
from vae_lib.core.history import History
from vae_lib.core.model import VAE
from vae_lib.core.settings import shipped_dir

SWEEP_ALPHAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SWEEP_LATENT_DIMS = (2, 8)
# Epochs every point trains for: enough for each to have nearly stopped improving (tests/test_sweep.py checks its
# last epochs), 40 % of the shipped 2-D model's 40 and half the 8-D model's 32.
SWEEP_EPOCHS = 16
# The largest gradient norm the collapsed points (alpha >= 0.1) step with. Once a posterior has collapsed, its
# log-variances get almost no gradient, Adam's normalised steps let them wander, and a batch where one has wandered
# up (exp(log_var) in the thousands) has a gradient hundreds of times the usual (3,000 against about 2). That
# inflates Adam's running second moment, and the steps after it are too small to bring back a log-variance that
# wandered down: without clipping, the 8-D model at alpha = 0.1 ran away in seeds 1 and 2 within the first epoch
# (test KL 106 and 96 nats, then 146 and 346 after three epochs), where the converged collapsed model has almost
# none; seed 0 stayed collapsed for 10 epochs (README, Results). Other points' gradients stay far below 5.
COLLAPSE_ALPHA, COLLAPSE_MAX_GRAD_NORM = 0.1, 5.0


def sweep_config(latent_dim: int, alpha: float) -> TrainConfig:
    """Return the settings of one point of the sweep: the 2d-fast recipe (Adam 2e-3, cosine, bf16 autocast where
    native, the weight average) over SWEEP_EPOCHS epochs, with this latent size and this alpha; from
    COLLAPSE_ALPHA on, the gradient's norm is clipped at COLLAPSE_MAX_GRAD_NORM."""
    return replace(
        RECIPES["2d-fast"],
        latent_dim=latent_dim,
        alpha=alpha,
        epochs=SWEEP_EPOCHS,
        keep_epochs=(SWEEP_EPOCHS // 2,),
        max_grad_norm=COLLAPSE_MAX_GRAD_NORM if alpha >= COLLAPSE_ALPHA else 0.0,
    )


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
    history: History  # the run's records: its test figures after every epoch show how close it came to converging

    @property
    def active_units(self) -> int:
        """Return how many latent dimensions are active."""
        return int(self.active.sum())


def check_sweep_point(state: dict, path: Path, latent_dim: int, alpha: float) -> None:
    """Raise a CheckpointError unless a checkpoint read from a sweep point's file holds that point's model: its
    latent size, alpha and kind of model (another point's file, or a shipped model's, copied there would put its
    figures in the wrong row of notebook 06's table)."""
    differences = config_of(state).differences(sweep_config(latent_dim, alpha), (*MODEL_FIELDS, "alpha"))
    if differences:
        restore = tracked_file_advice(path) or (
            f"train it again with python -m vae_lib sweep --latent-dims {latent_dim} --alphas {alpha!r}"
        )
        raise CheckpointError(
            f"{path} holds another model than the sweep's {latent_dim}-D point at alpha {alpha!r} (its settings vs "
            f"the point's: {'; '.join(differences)}): {restore}"
        )


def load_sweep(
    test_data: ImageDataset, latent_dims: Sequence[int] = SWEEP_LATENT_DIMS, alphas: Sequence[float] = SWEEP_ALPHAS
) -> list[SweepPoint]:
    """Return every shipped point of the sweep; per-dimension KL and active units are measured on `test_data`. A
    point with no checkpoint is refused, naming the shipped ones and the command that trains it, and so is a file
    holding another model (check_sweep_point)."""
    points = []
    for latent_dim in latent_dims:
        for alpha in alphas:
            path = sweep_checkpoint(latent_dim, alpha)
            if not path.is_file():
                raise FileNotFoundError(
                    f"no point of the sweep at {latent_dim}-D, alpha {alpha!r} ({path.name} is missing): the shipped "
                    f"points are {' and '.join(f'{size}-D' for size in SWEEP_LATENT_DIMS)} at alphas "
                    f"{', '.join(map(str, SWEEP_ALPHAS))} (SWEEP_ALPHAS); train another with python -m vae_lib sweep "
                    f"--latent-dims {latent_dim} --alphas {alpha!r}"
                )
            state = read_checkpoint(path)  # read once: the model and its history come from the same file
            check_sweep_point(state, path, latent_dim, alpha)
            model, history = place_model(model_from_state(state, path), "cpu").eval(), history_of(state)
            final, means = history.epochs[-1], encode_means(model, test_data)
            kl, active = kl_by_dimension(model, test_data), active_dimensions(means)
            points.append(SweepPoint(latent_dim, alpha, model, final.test_recon, final.test_kl, kl, active, history))
    return points
