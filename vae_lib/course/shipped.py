"""The shipped models: their checkpoints in outputs/checkpoints/ (final and kept epochs), their videos in
outputs/videos/ and the quality each is held to. Notebooks, the tests, `reproduce` and `benchmark` read them here.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

from vae_lib.core.checkpoint import SHIPPED_FILE, config_of, history_of, read_checkpoint, tracked_file_advice
from vae_lib.core.config import RECIPES, SHIPPED_RECIPES, TrainConfig
from vae_lib.core.files import CheckpointError
from vae_lib.core.history import History
from vae_lib.core.likelihood import SavedBounds, read_saved_bounds
from vae_lib.core.run_folder import kept_epoch_stem
from vae_lib.core.settings import outputs_dir, shipped_dir

SHIPPED_MODELS = {"2d": "vae_2d.pt", "8d": "vae_8d.pt", "bernoulli": "vae_bernoulli.pt", "cvae-2d": "cvae_2d.pt"}
# A shipped model's bounds on log p(x) for k = 1 ... 5,000 on each of the 10,000 test images (outputs/metrics/), by
# `python -m vae_lib evaluate CHECKPOINT --log-likelihood 10000 --samples 5000 --bounds-file FILE`.
SHIPPED_BOUNDS = {"bernoulli": "vae_bernoulli_bounds.pt"}


class QualityTarget(NamedTuple):
    """A test reconstruction a recipe is held to, and what it is."""

    recon: float
    label: str


# 2-D: the reference implementation's best test reconstruction (after 128 epochs on MNIST). 8-D: a level the
# shipped recipe reaches on MNIST; the reference's 0.0211 came from other data, which the README explains.
QUALITY_TARGETS = {
    "2d": QualityTarget(0.0732, "reference implementation's best"),
    "8d": QualityTarget(0.0300, "quality target on MNIST"),
}


class PublishedBound(NamedTuple):
    """A published test negative log-likelihood of binarised MNIST, in nats, the setting it was measured in, and the
    number of importance samples per test image its bound used (fewer samples give a looser, higher bound)."""

    source: str
    model: str
    setting: str
    nats: float
    samples: int


# What a Bernoulli VAE of binarised MNIST is compared with (notebook 07 and the README). Lower is better. Burda et
# al. bound every test image with 5,000 importance samples; pythae's reproduction of Rezende & Mohamed's VAE (their
# 89.9) with 200 (its examples/scripts/reproducibility/README.md: "NLL (200 IS)").
_BURDA, _BURDA_SETTING = "Burda et al. 2016, Table 1", "dynamic binarisation, MLP 784-200-200-50"
PUBLISHED_NLL = (
    PublishedBound(_BURDA, "VAE trained with k = 1", _BURDA_SETTING, 86.76, 5000),
    PublishedBound(_BURDA, "VAE trained with k = 5", _BURDA_SETTING, 86.47, 5000),
    PublishedBound(_BURDA, "VAE trained with k = 50", _BURDA_SETTING, 86.35, 5000),
    PublishedBound(_BURDA, "IWAE trained with k = 50", _BURDA_SETTING, 84.78, 5000),
    PublishedBound("pythae benchmark", "VAE", "static binarisation, MLP 784-400-40, 500 epochs", 89.78, 200),
)


def _check_shipped(name: str) -> None:
    """Raise a ValueError naming the shipped models unless `name` is one of them."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"no shipped model is called {name!r}: choose from {', '.join(SHIPPED_MODELS)}")


def shipped_path(name: str, epoch: int | None = None) -> Path:
    """Return where a shipped model's checkpoint is stored, or with `epoch` the one kept at that epoch (not its last,
    which is the model itself), whether or not the file is there: `reproduce` writes them here."""
    _check_shipped(name)
    final = shipped_dir() / SHIPPED_MODELS[name]
    return final if epoch is None else final.with_name(f"{final.stem}_{kept_epoch_stem(epoch)}.pt")


def shipped_checkpoint(name: str, epoch: int | None = None) -> Path:
    """Return the path of a shipped model ('2d', '8d', 'bernoulli', 'cvae-2d'), or of its checkpoint kept at `epoch`
    (one of shipped_epochs(name)); a missing file is refused with how to restore it.

    The last epoch's checkpoint is the shipped model itself: it is not shipped twice.
    """
    final = _existing(shipped_path(name), name)
    if epoch is None:
        return final
    epochs = shipped_epochs(name)
    if epoch not in epochs:
        raise ValueError(
            f"the {name} model ships checkpoints of epochs {', '.join(map(str, epochs))}, not of epoch {epoch!r}: "
            "choose one of those"
        )
    return final if epoch == epochs[-1] else _existing(shipped_path(name, epoch), name)


def _existing(path: Path, name: str) -> Path:
    """Return a shipped file's path, or raise a FileNotFoundError saying how to restore it if it is missing."""
    if path.is_file():
        return path
    raise FileNotFoundError(f"{path} is missing: {_how_to_restore(path, name)}")


def _how_to_restore(path: Path, name: str) -> str:
    """Return how to get a shipped model's file back: from git (or a clone), or by retraining its recipe."""
    restore = tracked_file_advice(path) or f"{SHIPPED_FILE}: copy it from outputs/checkpoints/ of a clone"
    retrain = f", or retrain it (python -m vae_lib reproduce {name})" if name in SHIPPED_RECIPES else ""
    return f"{restore}{retrain}"


def check_shipped_model(name: str) -> None:
    """Raise a CheckpointError unless each of a model's shipped checkpoints (shipped_epochs) holds the epoch it is
    named for and, for the models `reproduce` makes, the model of that recipe: `reproduce --report-only` reports
    and draws from them, so a file replaced by another model's (a copy of vae_8d.pt as vae_2d.pt) is refused
    before anything is written. Damaged and missing files are refused as read_checkpoint and
    shipped_checkpoint refuse them."""
    for epoch in shipped_epochs(name):
        path = shipped_checkpoint(name, epoch)
        state = read_checkpoint(path)
        if name in SHIPPED_RECIPES:
            every_setting = tuple(field.name for field in fields(TrainConfig))
            differences = config_of(state).differences(RECIPES[name], every_setting)
            if differences:
                raise CheckpointError(
                    f"{path} holds another model than the {name} recipe's (its settings vs the recipe's: "
                    f"{'; '.join(differences)}): {_how_to_restore(path, name)}"
                )
        if state["epoch"] != epoch:
            raise CheckpointError(
                f"{path} holds epoch {state['epoch']} of its run, not epoch {epoch}: {_how_to_restore(path, name)}"
            )


def shipped_video(name: str, kind: str = "mp4") -> Path:
    """Return the path of the video ('mp4', or 'gif' for '2d') of a shipped model's latent space during training."""
    return outputs_dir() / "videos" / f"latent_{name}.{kind}"


def shipped_history(name: str) -> History:
    """Return the training history stored in a shipped model's checkpoint ('2d' or '8d')."""
    return history_of(read_checkpoint(shipped_checkpoint(name)))


def shipped_epochs(name: str) -> list[int]:
    """Return the epochs whose checkpoints ship for a model: those its recipe keeps, for the models `reproduce`
    makes (SHIPPED_RECIPES), and always its last epoch (the model itself). Each is a file of the repository, so
    one that is missing is refused by shipped_checkpoint, not left out."""
    _check_shipped(name)
    last = RECIPES[name].epochs  # the recipe the shipped model was trained with (tests/test_shipped_models.py)
    kept = RECIPES[name].keep_epochs if name in SHIPPED_RECIPES else ()
    return sorted({*(epoch for epoch in kept if epoch < last), last})


def shipped_bounds(name: str) -> SavedBounds:
    """Return the per-image importance-sampled bounds shipped for a model ('bernoulli'), as evaluate saved them."""
    if name not in SHIPPED_BOUNDS:
        raise ValueError(f"bounds ship for {', '.join(SHIPPED_BOUNDS)} only, not for {name!r}")
    return read_saved_bounds(outputs_dir() / "metrics" / SHIPPED_BOUNDS[name])
