"""A run's metric history: a record every few hundred steps and one after each epoch.

Checkpoints store it as plain lists of dicts (`History.to_dict`), so a file stays readable without vae_lib.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from vae_lib.core.words import counted


@dataclass(frozen=True)
class StepRecord:
    """Train losses averaged since the previous record, and a test estimate on a fixed slice of test images."""

    step: int
    epoch: float  # fractional: step / steps per epoch
    seconds: float  # training seconds so far
    train_total: float
    train_recon: float
    train_kl: float
    test_total: float
    test_recon: float
    test_kl: float

    @classmethod
    def of(
        cls, step: int, steps_per_epoch: int, seconds: float, train: list[float], test: dict[str, float]
    ) -> StepRecord:
        """Return the record of mean train (total, recon, kl) and evaluate()'s test metrics after `step` steps."""
        return cls(step, step / steps_per_epoch, seconds, *train, test["total"], test["recon"], test["kl"])


@dataclass(frozen=True)
class EpochRecord:
    """Test metrics after an epoch: over the whole test set, or its first `test_images` (config.epoch_test_images)."""

    epoch: int
    step: int
    seconds: float
    lr: float  # learning rate of the epoch's last step
    test_total: float
    test_recon: float
    test_kl: float
    test_recon_at_mean: float
    test_images: int | None = None  # None: every test image (records of earlier versions do not say)

    @classmethod
    def of(
        cls, epoch: int, step: int, seconds: float, lr: float, test: dict[str, float], test_images: int
    ) -> EpochRecord:
        """Return the record of an epoch from evaluate()'s test metrics over `test_images` images."""
        metrics = test["total"], test["recon"], test["kl"], test["recon_at_mean"]
        return cls(epoch, step, seconds, lr, *metrics, test_images)


@dataclass
class History:
    """Every record of a run, oldest first."""

    steps: list[StepRecord] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)

    def __repr__(self) -> str:
        """Return a one-line summary, where the dataclass's own would print every record (what a notebook cell
        ending in trainer.finish() shows): the run's length and its last test figures."""
        if not self.steps and not self.epochs:
            return "History(no records yet)"
        records = f"records in .steps ({len(self.steps)}) and .epochs ({len(self.epochs)})"
        if not self.epochs:
            last_step = self.steps[-1]
            return (
                f"History({counted(last_step.step, 'step')} in {last_step.seconds:.1f} s; after step "
                f"{last_step.step:,}: test total {last_step.test_total:.4f}, reconstruction "
                f"{last_step.test_recon:.4f}, KL {last_step.test_kl:.2f} on a slice of the test images; {records})"
            )
        last = self.epochs[-1]
        images = "every test image" if last.test_images is None else counted(last.test_images, "test image")
        return (
            f"History({counted(last.step, 'step')}, {counted(len(self.epochs), 'epoch')} in {last.seconds:.1f} s; "
            f"after epoch {last.epoch}: test total {last.test_total:.4f}, reconstruction {last.test_recon:.4f}, KL "
            f"{last.test_kl:.2f} on {images}; {records})"
        )

    def seconds_to_target(self, target: float) -> float | None:
        """Return the training seconds at the first epoch whose test reconstruction is at or below `target`."""
        return next((record.seconds for record in self.epochs if record.test_recon <= target), None)

    def to_dict(self) -> dict[str, list[dict]]:
        """Return the history as plain lists of dicts (what checkpoints store)."""
        return {
            "steps": [asdict(record) for record in self.steps],
            "epochs": [asdict(record) for record in self.epochs],
        }

    @classmethod
    def from_dict(cls, stored: dict[str, list[dict]]) -> History:
        """Return the history a checkpoint stored."""
        return cls(
            [_record(StepRecord, values) for values in stored["steps"]],
            [_record(EpochRecord, values) for values in stored["epochs"]],
        )


def _record(kind: type, values: dict) -> object:
    """Return a record of `kind` from a stored dict, ignoring fields this version does not know; a field the
    dict lacks (stored by an earlier version) keeps its default."""
    return kind(**{item.name: values[item.name] for item in fields(kind) if item.name in values})
