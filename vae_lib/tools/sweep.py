"""Training the KL-weight sweep of notebook 06 (`python -m vae_lib sweep`): each point in its run folder under
outputs/runs/sweep/, resumable, then shipped to outputs/checkpoints/ without optimizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vae_lib.core.checkpoint import export_checkpoint
from vae_lib.core.files import CheckpointError
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import runs_dir
from vae_lib.core.train import check_run_folder, open_run
from vae_lib.course.sweep import SWEEP_ALPHAS, SWEEP_LATENT_DIMS, sweep_checkpoint, sweep_config, sweep_name


def sweep_run_dir(latent_dim: int, alpha: float) -> Path:
    """Return the run folder where one point of the sweep trains."""
    return runs_dir() / "sweep" / sweep_name(latent_dim, alpha)


def run_sweep(
    latent_dims: Sequence[int] = SWEEP_LATENT_DIMS,
    alphas: Sequence[float] = SWEEP_ALPHAS,
    hooks: Sequence[TrainingHook] = (),
    report: Callable[[str], None] | None = None,
    **options: object,
) -> list[Path]:
    """Train (or finish) every point of the sweep, export each to outputs/checkpoints/, and return their paths.

    Every point's settings are made (and so checked: a bad alpha raises a ValueError), and its run folder checked
    (check_run_folder), before the first one trains.
    """
    configs = {(latent_dim, alpha): sweep_config(latent_dim, alpha) for latent_dim in latent_dims for alpha in alphas}
    for (latent_dim, alpha), config in configs.items():
        try:
            check_run_folder(config, sweep_run_dir(latent_dim, alpha))
        except CheckpointError as error:
            raise CheckpointError(
                f"point {sweep_name(latent_dim, alpha)} of the sweep cannot train: {error}. The sweep trains each "
                f"point in its own folder of {runs_dir() / 'sweep'}: move what is in the way out of it, then run "
                "again (nothing has trained)"
            ) from error
    shipped = []
    for (latent_dim, alpha), config in configs.items():
        trainer = open_run(config, sweep_run_dir(latent_dim, alpha), report=report, hooks=hooks, **options)
        if trainer.remaining_epochs() and report is not None:
            report(f"training {sweep_name(latent_dim, alpha)} from epoch {trainer.epoch}")
        trainer.finish()
        run_folder = RunFolder(sweep_run_dir(latent_dim, alpha))
        shipped.append(export_checkpoint(run_folder.checkpoint, sweep_checkpoint(latent_dim, alpha)))
    return shipped
