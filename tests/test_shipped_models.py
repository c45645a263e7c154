"""The trained models the repository ships: loadable from the file alone, small, with their history, and as good
as recorded. Test metrics are over all 10,000 MNIST test images, the reference implementation's way (z sampled with
seed 0)."""

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vae_lib import CheckpointError, encode_means, evaluate, load_model, read_checkpoint
from vae_lib.core.checkpoint import (
    CHECKSUM_KEY,
    TRAINING_ONLY_KEYS,
    config_of,
    content_digest,
    history_of,
    tracked_file_advice,
)
from vae_lib.core.config import RECIPES
from vae_lib.core.data import binarised
from vae_lib.core.likelihood import bound_summary, importance_log_weights, per_image_bounds
from vae_lib.core.settings import outputs_dir
from vae_lib.core.train import evaluation_data
from vae_lib.course.shipped import (
    PUBLISHED_NLL,
    QUALITY_TARGETS,
    shipped_bounds,
    shipped_checkpoint,
    shipped_epochs,
)

# The reference implementation's best test figures (2-D after 128 epochs, 8-D after 32).
SEED_BEST_TOTAL = {"2d": 0.0802, "8d": 0.0424}


@pytest.fixture(scope="module")
def shipped_metrics(mnist_test) -> dict[str, dict[str, float]]:
    return {name: evaluate(load_model(shipped_checkpoint(name)), mnist_test) for name in ("2d", "8d")}


@pytest.mark.parametrize("name", ["2d", "8d"])
def test_shipped_checkpoint_is_small_and_complete(name: str) -> None:
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 5_000_000
    state = read_checkpoint(path)
    recipe = RECIPES[name]
    history = history_of(state)
    assert config_of(state) == recipe and state["epoch"] == recipe.epochs
    assert [record.epoch for record in history.epochs] == list(range(1, recipe.epochs + 1))
    assert len(history.steps) == recipe.epochs * 937 // recipe.log_every
    assert shipped_epochs(name) == list(recipe.keep_epochs)
    assert load_model(path).latent_dim == recipe.latent_dim


@pytest.mark.parametrize("name", ["2d", "8d"])
def test_the_last_kept_epoch_is_the_shipped_model_itself(name: str) -> None:
    last = RECIPES[name].epochs
    assert shipped_checkpoint(name, last) == shipped_checkpoint(name)
    assert read_checkpoint(shipped_checkpoint(name, RECIPES[name].keep_epochs[0]))["epoch"] == 1


def _outputs_linking(tmp_path: Path, monkeypatch, names: list[str]) -> Path:
    """Point VAE_OUTPUTS_DIR at tmp_path, whose checkpoints/ links to the named shipped files; return that folder."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(outputs_dir() / "checkpoints" / name)
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    return folder


def test_a_missing_kept_epoch_is_refused_with_how_to_restore_it_not_left_out(tmp_path: Path, monkeypatch) -> None:
    _outputs_linking(tmp_path, monkeypatch, ["vae_2d.pt", "vae_2d_epoch_001.pt", "vae_8d.pt"])  # epoch 20 deleted
    assert shipped_epochs("2d") == [1, 20, 40]  # what ships, not what is left
    with pytest.raises(
        FileNotFoundError,
        match=r"vae_2d_epoch_020.pt is missing: it is one of the files shipped with the repository: copy it from "
        r"outputs/checkpoints/ of a clone, or retrain it \(python -m vae_lib reproduce 2d\)$",
    ):
        shipped_checkpoint("2d", 20)  # outside the repository (VAE_OUTPUTS_DIR): no git command to give
    with pytest.raises(FileNotFoundError, match=r"cvae_2d.pt is missing: .* of a clone$"):
        shipped_checkpoint("cvae-2d")  # no recipe of `reproduce`: restored, not retrained
    from vae_lib.tools.cli import main

    assert main(["reproduce", "--report-only", "2d"]) == 2  # not a figure without epoch 20's row
    assert not (tmp_path / "figures" / "reconstructions_2d.png").exists()


def test_a_damaged_or_missing_file_the_repository_ships_is_met_with_the_git_command_that_restores_it(
    tmp_path: Path, monkeypatch
) -> None:
    import subprocess

    from vae_lib.core import checkpoint

    shipped = (outputs_dir() / "checkpoints" / "vae_2d.pt").read_bytes()
    folder = tmp_path / "outputs" / "checkpoints"  # a repository that ships vae_2d.pt, made here
    folder.mkdir(parents=True)
    (folder / "vae_2d.pt").write_bytes(shipped)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=course", "-c", "user.email=course@example.org"]
    for command in (["init", "-q"], ["add", "outputs"], ["commit", "-q", "-m", "ship vae_2d.pt"]):
        subprocess.run([*git, *command], check=True)
    monkeypatch.setattr(checkpoint, "REPO_ROOT", tmp_path)
    for name in ("vae_2d.pt", "mine.pt"):  # truncated: the shipped file, and a learner's own beside it
        (folder / name).write_bytes(shipped[: len(shipped) // 2])
    restore = f"git -C {tmp_path} checkout -- outputs/checkpoints/vae_2d.pt"
    with pytest.raises(CheckpointError) as refusal:
        load_model(folder / "vae_2d.pt")
    assert str(refusal.value).endswith(f"; it is one of the files shipped with the repository: restore it ({restore})")
    with pytest.raises(CheckpointError, match=r"kind of file\); use a checkpoint.pt written by vae_lib$"):
        load_model(folder / "mine.pt")  # not the repository's: no git command for it
    subprocess.run(restore.split(), check=True)  # the command given works, from any folder
    assert load_model(folder / "vae_2d.pt").latent_dim == 2
    (folder / "vae_2d.pt").unlink()
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path / "outputs"))
    with pytest.raises(FileNotFoundError) as missing:
        shipped_checkpoint("2d")
    assert str(missing.value) == (
        f"{folder / 'vae_2d.pt'} is missing: it is one of the files shipped with the repository: restore it "
        f"({restore}), or retrain it (python -m vae_lib reproduce 2d)"
    )


def test_the_advice_names_the_repository_s_own_files_only() -> None:
    from vae_lib.core.settings import REPO_ROOT

    assert tracked_file_advice(outputs_dir() / "checkpoints" / "vae_2d.pt") == (
        "it is one of the files shipped with the repository: restore it "
        f"(git -C {REPO_ROOT} checkout -- outputs/checkpoints/vae_2d.pt)"
    )
    assert tracked_file_advice(outputs_dir() / "checkpoints" / "vae_2D.pt") is None  # a typo: not a shipped file
    # Tracked, but no checkpoint: given where a checkpoint belongs it is not damaged, and a checkout would undo edits
    for tracked in ("notebooks/01_train_2d.ipynb", "README.md", "outputs/metrics/vae_bernoulli_bounds.pt"):
        assert tracked_file_advice(REPO_ROOT / tracked) is None
        with pytest.raises(CheckpointError) as refusal:
            load_model(REPO_ROOT / tracked)
        assert "git" not in str(refusal.value) and "shipped" not in str(refusal.value)


def test_a_leftover_kept_copy_of_the_last_epoch_does_not_stand_in_for_the_model(tmp_path: Path, monkeypatch) -> None:
    folder = _outputs_linking(tmp_path, monkeypatch, ["vae_2d.pt", "vae_2d_epoch_001.pt", "vae_2d_epoch_020.pt"])
    (folder / "vae_2d_epoch_040.pt").symlink_to(folder / "vae_2d_epoch_020.pt")  # left from when it shipped twice
    assert shipped_checkpoint("2d", 40) == folder / "vae_2d.pt"


def test_shipped_names_and_epochs_that_do_not_exist_are_refused_with_the_ones_that_do() -> None:
    with pytest.raises(ValueError, match=r"ships checkpoints of epochs 1, 20, 40, not of epoch 5: choose one"):
        shipped_checkpoint("2d", 5)
    unknown = r"no shipped model is called '3d': choose from 2d, 8d, bernoulli, cvae-2d"
    for ask in (shipped_checkpoint, shipped_epochs):  # shipped_epochs raised a bare KeyError
        with pytest.raises(ValueError, match=unknown):
            ask("3d")


def test_no_shipped_file_is_a_copy_of_another() -> None:
    """A clone of the repository checks out every copy (git stores it once); a learner's hub pays each."""
    contents: dict[bytes, str] = {}
    for path in sorted(outputs_dir().rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).digest()
            assert digest not in contents, f"{path.name} is a copy of {contents[digest]}"
            contents[digest] = path.name


def test_everything_shipped_under_outputs_fits_in_45_mb() -> None:
    shipped = [
        path
        for folder in ("checkpoints", "videos", "figures", "metrics")
        for path in (outputs_dir() / folder).iterdir()
    ]
    assert sum(path.stat().st_size for path in shipped) < 45_000_000


@pytest.mark.parametrize("name", ["2d", "8d"])
def test_shipped_metrics_match_the_recorded_history(name: str, shipped_metrics) -> None:
    final = history_of(read_checkpoint(shipped_checkpoint(name))).epochs[-1]
    for metric in ("total", "recon", "kl"):
        assert shipped_metrics[name][metric] == pytest.approx(getattr(final, f"test_{metric}"), rel=1e-4)


def test_shipped_2d_model_beats_the_seed(shipped_metrics) -> None:
    assert shipped_metrics["2d"]["recon"] <= QUALITY_TARGETS["2d"].recon
    assert shipped_metrics["2d"]["total"] <= SEED_BEST_TOTAL["2d"]


def test_shipped_8d_model_reconstructs_as_recorded_and_far_better_than_2d(shipped_metrics) -> None:
    # The reference's 8-D figure (0.0211) came from other data than MNIST (README, Results), so it is no target here;
    # what holds on MNIST: 0.0289 after 32 epochs, and less than half the 2-D model's 0.0726.
    assert shipped_metrics["8d"]["recon"] <= 0.0290
    assert shipped_metrics["8d"]["recon"] <= 0.5 * shipped_metrics["2d"]["recon"]


@pytest.mark.parametrize("path", sorted((outputs_dir() / "checkpoints").glob("*.pt")), ids=lambda path: path.name)
def test_every_shipped_checkpoint_carries_a_checksum_of_its_contents(path: Path) -> None:
    stored = torch.load(path, map_location="cpu", weights_only=True)
    checksum = stored.pop(CHECKSUM_KEY)
    assert checksum == content_digest(stored) and len(checksum) == 64
    assert TRAINING_ONLY_KEYS[0] not in stored  # exported: refused without its checksum


def test_one_flipped_bit_in_a_shipped_model_is_refused(tmp_path: Path, flip_exponent_bit) -> None:
    path = shipped_checkpoint("2d")
    weight = load_model(path).to_latent.weight.detach()
    corrupt = tmp_path / path.name
    corrupt.write_bytes(flip_exponent_bit(path.read_bytes(), weight))
    with pytest.raises(CheckpointError, match="is corrupt: its contents no longer match the checksum"):
        load_model(corrupt)


@pytest.mark.parametrize("name", ["bernoulli", "cvae-2d"])
def test_the_notebook_models_are_small_and_measure_what_their_history_recorded(name: str, mnist_test) -> None:
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 5_000_000
    state = read_checkpoint(path)
    config, final = config_of(state), history_of(state).epochs[-1]
    assert config == RECIPES[name] and final.epoch == config.epochs and final.test_images == len(mnist_test)
    test_data = evaluation_data(config, mnist_test)  # binarised with the fixed seed where the recipe binarises
    metrics = evaluate(load_model(path), test_data, config.alpha, seed=config.seed)
    assert metrics["recon"] == pytest.approx(final.test_recon, rel=1e-4)
    assert metrics["kl"] == pytest.approx(final.test_kl, rel=1e-4)


def test_the_bernoulli_model_is_within_the_target_in_nats_and_the_conditional_one_beats_the_plain_2d(
    mnist_test,
) -> None:
    bernoulli = history_of(read_checkpoint(shipped_checkpoint("bernoulli"))).epochs[-1]
    assert bernoulli.test_total < 91  # the negative ELBO in nats; the k = 5,000 bound is about 5 nats lower
    conditional = history_of(read_checkpoint(shipped_checkpoint("cvae-2d"))).epochs[-1]
    plain = history_of(read_checkpoint(shipped_checkpoint("2d"))).epochs[-1]
    assert conditional.test_recon < plain.test_recon - 0.005  # knowing the class leaves z free for the style


def test_the_shipped_bounds_are_this_model_s_on_every_binarised_test_image_and_the_readme_s(mnist_test) -> None:
    saved = shipped_bounds("bernoulli")
    model = load_model(shipped_checkpoint("bernoulli"))
    test_data = evaluation_data(replace(RECIPES["bernoulli"], test_subset=0), mnist_test)  # as evaluate binarises
    assert saved.key == {
        "model": content_digest(model.state_dict()),
        "images": content_digest([test_data.images, test_data.labels]),
        "samples": 5000,
        "sample_counts": [1, 10, 100, 1000, 5000],
        "variance": None,
        "seed": 0,
    }
    assert saved.bounds.shape == (10000, 5) and not saved.bounds.isnan().any()
    # Three images bounded again here give the shipped figures: the first, one in the middle, the last.
    for index in (0, 5123, 9999):
        again = importance_log_weights(model, test_data.images[index : index + 1], 5000, first_index=index)
        assert torch.allclose(per_image_bounds(again, [1, 10, 100, 1000, 5000])[0], saved.bounds[index], atol=1e-3)
    summary = bound_summary(saved.bounds, saved.key["sample_counts"])
    means = [mean for mean, _ in summary.values()]
    assert means == sorted(means)  # the bound tightens as k grows
    negative_elbo = history_of(read_checkpoint(shipped_checkpoint("bernoulli"))).epochs[-1].test_total
    assert abs(-summary[1][0] - negative_elbo) < 0.3  # k = 1 is the ELBO (evaluate draws one z per image)
    nll, error = -summary[5000][0], summary[5000][1]
    assert nll <= 89  # the target
    readme = (outputs_dir().parent / "README.md").read_text()
    assert f"**{nll:.2f} ± {error:.2f}** (all 10,000 test images)" in readme


def test_the_readme_s_published_table_gives_each_published_bound_with_its_own_number_of_samples() -> None:
    rows = [line for line in (outputs_dir().parent / "README.md").read_text().splitlines() if line.startswith("| ")]
    for bound in PUBLISHED_NLL:
        row = f"| {bound.samples:,} | {bound.nats:.2f} |"
        assert sum(line.endswith(row) and bound.model.split(" trained")[0] in line for line in rows) == 1, row


def test_every_latent_dimension_of_the_bernoulli_model_is_active_as_the_readme_says(mnist_test) -> None:
    variances = encode_means(load_model(shipped_checkpoint("bernoulli")), binarised(mnist_test)).var(dim=0)
    assert len(variances) == 32 and variances.min() > 0.01  # Burda et al.'s threshold for an active unit
    readme = (outputs_dir().parent / "README.md").read_text()
    assert f"(the smallest is {variances.min():.3f}:" in readme


def test_bounds_are_asked_for_a_model_that_ships_them() -> None:
    from vae_lib.course.shipped import shipped_bounds

    with pytest.raises(ValueError, match=r"^bounds ship for bernoulli only, not for '2d'$"):  # a bare KeyError before
        shipped_bounds("2d")
