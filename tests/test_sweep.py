"""The KL-weight sweep of notebook 06: its command trains, resumes and ships; the shipped points are complete and
show what the weight does (rate falls and active units vanish as alpha grows)."""

from dataclasses import replace

import pytest

from vae_lib import load_model, read_checkpoint
from vae_lib.core.checkpoint import config_of, history_of
from vae_lib.course.sweep import (
    SWEEP_ALPHAS,
    SWEEP_EPOCHS,
    SWEEP_LATENT_DIMS,
    load_sweep,
    sweep_checkpoint,
    sweep_config,
)
from vae_lib.tools.sweep import run_sweep


def test_the_sweep_command_trains_ships_and_does_not_retrain_a_finished_point(tmp_path, monkeypatch) -> None:
    import vae_lib.tools.sweep as sweep

    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    tiny = sweep.sweep_config
    monkeypatch.setattr(
        sweep,
        "sweep_config",
        lambda latent_dim, alpha: replace(
            tiny(latent_dim, alpha), train_subset=256, test_subset=128, epochs=1, log_every=2, step_test_images=64
        ),
    )
    reports: list[str] = []
    shipped = run_sweep([2], [0.01], report=reports.append, device="cpu", progress=False)
    assert [path.name for path in shipped] == ["sweep_2d_alpha0.01.pt"]
    state = read_checkpoint(shipped[0])
    assert state["epoch"] == 1 and "optimizer" not in state and config_of(state).alpha == 0.01
    assert reports == ["training 2d_alpha0.01 from epoch 0"]
    run_sweep([2], [0.01], report=reports.append, device="cpu", progress=False)
    assert reports == ["training 2d_alpha0.01 from epoch 0"]


@pytest.mark.parametrize("latent_dim", SWEEP_LATENT_DIMS)
@pytest.mark.parametrize("alpha", SWEEP_ALPHAS)
def test_every_point_of_the_sweep_is_shipped_with_its_settings_and_history(latent_dim: int, alpha: float) -> None:
    path = sweep_checkpoint(latent_dim, alpha)
    assert path.stat().st_size < 2_000_000
    state = read_checkpoint(path)
    assert config_of(state) == sweep_config(latent_dim, alpha) and state["epoch"] == SWEEP_EPOCHS
    assert [record.epoch for record in history_of(state).epochs] == list(range(1, SWEEP_EPOCHS + 1))
    assert load_model(path).latent_dim == latent_dim


@pytest.fixture(scope="module")
def points(mnist_test):
    return load_sweep(mnist_test.subset(1000))


@pytest.mark.parametrize("latent_dim", SWEEP_LATENT_DIMS)
def test_the_rate_falls_and_the_distortion_rises_as_the_kl_weight_grows(points, latent_dim: int) -> None:
    chosen = [point for point in points if point.latent_dim == latent_dim]
    assert [point.alpha for point in chosen] == sorted(SWEEP_ALPHAS)
    rates = [point.test_kl for point in chosen]
    assert rates == sorted(rates, reverse=True)
    # From 1e-4 on, for both sizes; below it only the 8-D model gains (notebook 06 shows the 2-D exception).
    distortions = [point.test_recon for point in chosen if point.alpha >= 1e-4 or latent_dim == 8]
    assert distortions == sorted(distortions)


def test_after_two_epochs_the_2d_near_autoencoder_reconstructs_worse_than_alpha_1e_4(points) -> None:
    by_alpha = {point.alpha: point for point in points if point.latent_dim == 2}
    assert by_alpha[1e-5].test_recon > by_alpha[1e-4].test_recon and by_alpha[1e-5].test_kl > 4 * by_alpha[1e-4].test_kl


@pytest.mark.parametrize("latent_dim", SWEEP_LATENT_DIMS)
def test_the_smallest_weight_uses_every_dimension_and_the_largest_collapses(points, latent_dim: int) -> None:
    chosen = {point.alpha: point for point in points if point.latent_dim == latent_dim}
    assert chosen[min(SWEEP_ALPHAS)].active_units == latent_dim
    assert chosen[max(SWEEP_ALPHAS)].active_units == 0
    assert chosen[max(SWEEP_ALPHAS)].test_kl < 0.1
