"""The KL-weight sweep of notebook 06: its command trains, resumes and ships; the shipped points are complete, had
nearly stopped improving, and show what the weight does (as alpha grows the rate falls, the distortion rises and
active units vanish)."""

import re
from dataclasses import replace

import pytest

from vae_lib import load_model, read_checkpoint
from vae_lib.core.checkpoint import config_of, history_of
from vae_lib.core.config import RECIPES
from vae_lib.core.evaluate import evaluate
from vae_lib.course.sweep import (
    SWEEP_ALPHAS,
    SWEEP_EPOCHS,
    SWEEP_LATENT_DIMS,
    load_sweep,
    sweep_checkpoint,
    sweep_config,
)
from vae_lib.pictures import viz
from vae_lib.tools.cli import main
from vae_lib.tools.sweep import run_sweep


@pytest.fixture
def tiny_sweep(tmp_path, monkeypatch) -> None:
    """Make every point of the sweep one epoch on 256 images, trained and shipped under tmp_path."""
    import vae_lib.tools.sweep as sweep

    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    full = sweep.sweep_config
    monkeypatch.setattr(
        sweep,
        "sweep_config",
        lambda latent_dim, alpha: replace(
            full(latent_dim, alpha), train_subset=256, test_subset=128, epochs=1, log_every=2, step_test_images=64
        ),
    )


def test_the_sweep_command_trains_ships_and_does_not_retrain_a_finished_point(tiny_sweep) -> None:
    reports: list[str] = []
    shipped = run_sweep([2], [0.01], report=reports.append, device="cpu", progress=False)
    assert [path.name for path in shipped] == ["sweep_2d_alpha0.01.pt"]
    state = read_checkpoint(shipped[0])
    assert state["epoch"] == 1 and "optimizer" not in state and config_of(state).alpha == 0.01
    assert reports == ["training 2d_alpha0.01 from epoch 0"]
    run_sweep([2], [0.01], report=reports.append, device="cpu", progress=False)
    assert reports == ["training 2d_alpha0.01 from epoch 0"]


def test_every_alpha_of_the_sweep_is_checked_before_any_point_trains(tiny_sweep, tmp_path, capsys) -> None:
    assert main(["sweep", "--latent-dims", "2", "--alphas", "0.01", "-1", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: alpha weights the KL term and must be > 0 (and finite), got -1.0.")
    assert captured.out == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no run folder, no shipped point


def test_every_run_folder_of_the_sweep_is_checked_before_any_point_trains(tiny_sweep, tmp_path, capsys) -> None:
    sweep_folder = tmp_path / "runs" / "sweep"
    sweep_folder.mkdir(parents=True)
    (sweep_folder / "2d_alpha0.01").write_text("notes")  # a file where the second point's folder belongs
    assert main(["sweep", "--latent-dims", "2", "--alphas", "0.001", "0.01", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: point 2d_alpha0.01 of the sweep cannot train: {sweep_folder / '2d_alpha0.01'} is a file, not a run "
        f"folder: choose a folder for the run. The sweep trains each point in its own folder of {sweep_folder}: move "
        "what is in the way out of it, then run again (nothing has trained)\n"
    )
    assert not (sweep_folder / "2d_alpha0.001" / "checkpoint.pt").exists() and captured.out == ""
    assert not (tmp_path / "checkpoints").exists()  # no point shipped
    (sweep_folder / "2d_alpha0.01").unlink()
    run_sweep([2], [0.01], device="cpu", progress=False)  # another point's run where the first point trains:
    (sweep_folder / "2d_alpha0.001").mkdir(exist_ok=True)  # the check made it (empty), as open_run makes it
    foreign = (sweep_folder / "2d_alpha0.01" / "checkpoint.pt").read_bytes()
    (sweep_folder / "2d_alpha0.001" / "checkpoint.pt").write_bytes(foreign)
    (tmp_path / "checkpoints" / "sweep_2d_alpha0.01.pt").unlink()
    assert main(["sweep", "--latent-dims", "2", "--alphas", "0.01", "0.001", "--device", "cpu"]) == 2
    assert "point 2d_alpha0.001 of the sweep cannot train: " in capsys.readouterr().err
    assert (sweep_folder / "2d_alpha0.001" / "checkpoint.pt").read_bytes() == foreign
    assert not (tmp_path / "checkpoints" / "sweep_2d_alpha0.01.pt").exists()  # the first point was not shipped


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
    distortions = [point.test_recon for point in chosen]
    if latent_dim == 2:
        # Below 1e-4 the two dimensions, not the KL, limit a 2-D model's distortion: the curve is flat there, to
        # within what another 16 epochs would still change (0.0728 at 1e-5 against 0.0726 at 1e-4).
        assert abs(distortions[0] - distortions[1]) < 0.0005
        distortions = distortions[1:]
    assert all(later - earlier > 0.0005 for earlier, later in zip(distortions, distortions[1:]))


@pytest.mark.parametrize("latent_dim", SWEEP_LATENT_DIMS)
@pytest.mark.parametrize("alpha", SWEEP_ALPHAS)
def test_every_point_had_nearly_stopped_improving_over_its_last_epochs(latent_dim: int, alpha: float) -> None:
    # The records of every epoch but the last are over the same first 2,000 test images (the last one's over all).
    config = sweep_config(latent_dim, alpha)
    records = [
        record
        for record in history_of(read_checkpoint(sweep_checkpoint(latent_dim, alpha))).epochs
        if record.test_images == config.epoch_test_images
    ]
    assert [record.epoch for record in records] == list(range(1, config.epochs))
    last_quarter_gain = records[-1 - config.epochs // 4].test_recon - records[-1].test_recon
    assert -0.0005 < last_quarter_gain < 0.002


def test_the_sweep_s_settings_are_the_2d_fast_recipe_with_its_own_length_weight_and_size() -> None:
    config = sweep_config(8, 0.01)
    assert (config.latent_dim, config.alpha, config.epochs, config.keep_epochs) == (8, 0.01, 16, (8,))
    assert replace(config, latent_dim=2, alpha=0.001, epochs=40, keep_epochs=(1, 20, 40)) == RECIPES["2d-fast"]
    assert [sweep_config(2, alpha).max_grad_norm for alpha in SWEEP_ALPHAS] == [0.0, 0.0, 0.0, 0.0, 5.0]


@pytest.mark.parametrize("latent_dim", SWEEP_LATENT_DIMS)
def test_the_smallest_weight_uses_every_dimension_and_the_largest_collapses(points, latent_dim: int) -> None:
    chosen = {point.alpha: point for point in points if point.latent_dim == latent_dim}
    assert chosen[min(SWEEP_ALPHAS)].active_units == latent_dim
    assert chosen[max(SWEEP_ALPHAS)].active_units == 0
    assert chosen[max(SWEEP_ALPHAS)].test_kl < 0.1
    assert chosen[max(SWEEP_ALPHAS)].kl_per_dimension.max() < 0.05


def test_the_kl_per_dimension_adds_up_to_the_kl_on_the_same_images(points, mnist_test) -> None:
    images = mnist_test.subset(1000)
    for point in points:
        kl = evaluate(point.model, images, point.alpha)["kl"]
        assert point.kl_per_dimension.sum().item() == pytest.approx(kl, rel=1e-3, abs=1e-4)


def test_the_training_figure_draws_each_point_s_record_after_every_epoch(points) -> None:
    figure = viz.plot_sweep_training(points)
    for axis, latent_dim in zip(figure.axes, SWEEP_LATENT_DIMS, strict=True):
        chosen = [point for point in points if point.latent_dim == latent_dim]
        lines = axis.get_lines()
        assert len(lines) == 2 * len(chosen) and "2,000 test images" in axis.get_title()
        for point, line, last in zip(chosen, lines[::2], lines[1::2], strict=True):
            assert list(line.get_ydata()) == [record.test_recon for record in point.history.epochs[:-1]]
            assert list(last.get_xdata()) == [SWEEP_EPOCHS] and list(last.get_ydata()) == [point.test_recon]


def test_a_point_the_sweep_did_not_ship_is_named_with_the_shipped_ones_and_how_to_train_it(mnist_test) -> None:
    with pytest.raises(FileNotFoundError) as refusal:
        load_sweep(mnist_test.subset(10), latent_dims=(2,), alphas=(0.1 * 0.1,))  # 0.010000000000000002
    assert str(refusal.value) == (
        "no point of the sweep at 2-D, alpha 0.010000000000000002 (sweep_2d_alpha0.010000000000000002.pt is missing): "
        "the shipped points are 2-D and 8-D at alphas 1e-05, 0.0001, 0.001, 0.01, 0.1 (SWEEP_ALPHAS); train another "
        "with python -m vae_lib sweep --latent-dims 2 --alphas 0.010000000000000002"
    )  # "no checkpoint at …: train a model first (python -m vae_lib train …)" before


def test_a_point_s_file_holding_another_model_is_refused_saying_how_it_differs(
    mnist_test, tmp_path, monkeypatch
) -> None:
    import shutil

    from vae_lib.core.files import CheckpointError
    from vae_lib.course.shipped import shipped_checkpoint

    swaps = {  # (latent size, alpha) of the file replaced: the shipped file put there, and how it differs
        (2, 0.01): (sweep_checkpoint(2, 0.1), "alpha: 0.1 vs 0.01"),  # the collapsed point, in the row before it
        (2, 0.001): (sweep_checkpoint(8, 0.001), "latent_dim: 8 vs 2"),
        (8, 0.01): (shipped_checkpoint("bernoulli"), "latent_dim: 32 vs 8; likelihood: 'bernoulli' vs 'gaussian'"),
        (2, 0.0001): (shipped_checkpoint("cvae-2d"), "conditional: True vs False"),
    }
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    for (latent_dim, alpha), (source, difference) in swaps.items():
        shutil.copy(source, sweep_checkpoint(latent_dim, alpha))
        with pytest.raises(CheckpointError, match=re.escape(difference)) as refusal:
            load_sweep(mnist_test.subset(10), latent_dims=(latent_dim,), alphas=(alpha,))  # loaded as the point before
        assert f"holds another model than the sweep's {latent_dim}-D point at alpha {alpha!r}" in str(refusal.value)
        assert f"python -m vae_lib sweep --latent-dims {latent_dim} --alphas {alpha!r}" in str(refusal.value)
