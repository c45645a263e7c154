"""What watches training: TrainingHook, whose methods the Trainer calls at the start of fit(), after each step and
after each epoch, and EpochReporter, which reports each epoch's test metrics as a line of text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the trainer imports this module; its type is only needed for the annotations
    from vae_lib.core.train import Trainer


class TrainingHook:
    """Something that watches training. Override the methods you need; each gets the trainer. Random numbers drawn
    at fit start or epoch end leave training's random stream as it was (train.hooks_random_state)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called when fit() starts (also after an interrupted fit rolled back)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """Called after every optimisation step; trainer.step is the number of steps done."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Called after an epoch's test evaluation and once its checkpoint is written (trainer.epoch is done)."""


class EpochReporter(TrainingHook):
    """Reports one line of test metrics after each epoch to `report` (print, a logger, a list's append)."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report

    def on_epoch_end(self, trainer: Trainer) -> None:
        record = trainer.history.epochs[-1]
        subset = (
            f" on the first {record.test_images} test images" if record.test_images < len(trainer.test_data) else ""
        )
        self.report(
            f"epoch {record.epoch:3d}/{trainer.config.epochs}  test total {record.test_total:.4f}  "
            f"recon {record.test_recon:.4f}  kl {record.test_kl:.2f}{subset}  ({record.seconds:.0f} s)"
        )
