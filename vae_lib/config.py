"""TrainConfig: every setting that defines a run, stored in each checkpoint as a plain dict.

A checkpoint alone can therefore rebuild its model and continue its training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from vae_lib.loss import DEFAULT_ALPHA
from vae_lib.model import DEFAULT_WIDTHS, VAE

LR_SCHEDULES = ("constant", "cosine")
# Settings that change what the model is; a checkpoint can only continue a run that agrees on them.
MODEL_FIELDS = ("latent_dim", "channels", "widths", "dataset")


@dataclass(frozen=True)
class TrainConfig:
    """A run's settings. Defaults are the seed's recipe (Adam 1e-3, batch 64, alpha 0.001)."""

    latent_dim: int = 2
    channels: int = 1
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    dataset: str = "mnist"
    alpha: float = DEFAULT_ALPHA
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # "cosine" decays to final_lr_fraction * learning_rate over schedule_epochs
    schedule_epochs: int = 0
    final_lr_fraction: float = 0.02
    batch_size: int = 64
    seed: int = 0
    train_subset: int = 0  # 0: every training image; N: the first N (quick runs and tests)
    test_subset: int = 0
    log_every: int = 200  # steps between two records of the step history
    step_test_images: int = 500  # test images evaluated at each step record
    keep_epochs: tuple[int, ...] = ()  # epochs whose checkpoint is also kept as epoch_NNN.pt

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "keep_epochs", tuple(self.keep_epochs))
        if self.alpha <= 0:
            raise ValueError(
                f"alpha weights the KL term and must be > 0, got {self.alpha}. Without the KL term nothing bounds "
                "the variance of latent dimensions the decoder ignores: it overflows within a few dozen steps and "
                "the loss becomes NaN. For a nearly plain autoencoder use a small alpha such as 1e-5."
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_schedule == "cosine" and self.schedule_epochs < 1:
            raise ValueError("a cosine schedule needs schedule_epochs >= 1 (the epochs it decays over)")
        for name in ("batch_size", "log_every", "step_test_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 means every image), got {getattr(self, name)}")

    def build_model(self) -> VAE:
        """Return a freshly initialised VAE of this configuration's shape."""
        return VAE(latent_dim=self.latent_dim, channels=self.channels, widths=self.widths)

    def to_dict(self) -> dict:
        """Return the settings as a plain dict (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Return the config a checkpoint stored; unknown keys mean a newer vae_lib wrote it."""
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config settings {sorted(unknown)}: the checkpoint was written by another vae_lib version")
        return cls(**values)

    def differences(self, other: TrainConfig) -> list[str]:
        """Return 'name: mine vs other' for each model-defining setting on which the two disagree."""
        return [
            f"{name}: {getattr(self, name)!r} vs {getattr(other, name)!r}"
            for name in MODEL_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]


# The recorded settings of the shipped models (outputs/checkpoints/), used by `--recipe` and `make reproduce`.
RECIPES = {
    "2d": TrainConfig(latent_dim=2, learning_rate=2e-3, lr_schedule="cosine", schedule_epochs=40, keep_epochs=(1, 20, 40)),
    "8d": TrainConfig(latent_dim=8, learning_rate=2e-3, lr_schedule="cosine", schedule_epochs=32, keep_epochs=(1, 16, 32)),
}
# The seed's best test reconstruction for each latent size (after 128 and 32 epochs): the bar to beat.
SEED_BEST_RECON = {2: 0.0732, 8: 0.0211}
