"""The training loop: fit epochs step by step, keep a metric history, checkpoint, resume.

The loop stays small; anything that watches training (snapshots, live plots) is a TrainingHook.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vae_lib.checkpoint import CheckpointError, config_of, read_checkpoint, save_checkpoint
from vae_lib.config import TrainConfig
from vae_lib.data import ImageDataset, load_dataset, to_model_input
from vae_lib.device import choose_device, place_model
from vae_lib.evaluate import evaluate
from vae_lib.loss import vae_loss

CHECKPOINT_NAME = "checkpoint.pt"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped and the trainer is back at its last complete epoch."""


class TrainingHook:
    """Something that watches training. Override the methods you need; each gets the trainer."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called when fit() starts (also after an interrupted fit rolled back)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """Called after every optimisation step; trainer.step is the number of steps done."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Called after an epoch's test evaluation, before its checkpoint is written."""


class EpochPrinter(TrainingHook):
    """Prints one line of test metrics after each epoch."""

    def __init__(self, target_epoch: int) -> None:
        self.target_epoch = target_epoch

    def on_epoch_end(self, trainer: Trainer) -> None:
        record = trainer.history["epochs"][-1]
        print(
            f"epoch {record['epoch']:3d}/{self.target_epoch}  test total {record['test_total']:.4f}  "
            f"recon {record['test_recon']:.4f}  kl {record['test_kl']:.2f}  ({record['seconds']:.0f} s)",
            flush=True,
        )


def epoch_checkpoint_name(epoch: int) -> str:
    """Return the file name of the checkpoint kept for `epoch`."""
    return f"epoch_{epoch:03d}.pt"


class Trainer:
    """Trains a VAE from a TrainConfig; call fit(epochs) as often as you like to continue.

    With a run_dir, the state after each epoch is written to run_dir/checkpoint.pt, and
    Trainer.resume(run_dir / 'checkpoint.pt') continues exactly where it stopped.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_data: ImageDataset | None = None,
        test_data: ImageDataset | None = None,
        run_dir: str | Path | None = None,
        device: torch.device | str | None = None,
        hooks: Sequence[TrainingHook] = (),
        progress: bool = True,
    ) -> None:
        self.config = config
        if train_data is None:
            train_data = load_dataset(config.dataset, train=True)
        if test_data is None:
            test_data = load_dataset(config.dataset, train=False)
        self.train_data = _subset(train_data, config.train_subset)
        self.test_data = _subset(test_data, config.test_subset)
        if len(self.train_data) < config.batch_size:
            raise ValueError(f"batch_size {config.batch_size} is larger than the {len(self.train_data)} training images")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = choose_device(str(device) if device is not None else None)
        self.hooks = list(hooks)
        self.progress = progress
        torch.manual_seed(config.seed)
        self.model = place_model(config.build_model(), self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.shuffle_generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.step = 0
        self.train_seconds = 0.0
        self.history: dict[str, list[dict]] = {"epochs": [], "steps": []}
        self.last_losses = {"total": math.nan, "recon": math.nan, "kl": math.nan}
        self._last_complete_state = self.state_dict()

    @property
    def steps_per_epoch(self) -> int:
        """Return the number of full batches in an epoch (the last partial batch is dropped)."""
        return len(self.train_data) // self.config.batch_size

    def learning_rate_at(self, step: int) -> float:
        """Return the learning rate for optimisation step `step` (0-based) under the config's schedule."""
        config = self.config
        if config.lr_schedule == "constant":
            return config.learning_rate
        progress = min(1.0, step / (config.schedule_epochs * self.steps_per_epoch))
        floor = config.final_lr_fraction
        return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def fit(self, epochs: int) -> dict[str, list[dict]]:
        """Train `epochs` more epochs and return the history.

        Ctrl-C (or a notebook's stop button) rolls the trainer back to the end of its last
        complete epoch, whose checkpoint on disk is untouched, and re-raises.
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer (how many more epochs to train), got {epochs!r}")
        for hook in self.hooks:
            hook.on_fit_start(self)
        target = self.epoch + epochs
        try:
            while self.epoch < target:
                self._train_epoch(target)
        except KeyboardInterrupt:
            self.load_state_dict(self._last_complete_state)
            print(f"Interrupted: rolled back to the end of epoch {self.epoch}; its checkpoint is intact, fit() continues from it.")
            raise
        return self.history

    def _train_epoch(self, target_epoch: int) -> None:
        """Run one epoch: shuffled full batches, step records, test evaluation, hooks, checkpoint."""
        config, model = self.config, self.model
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(self.train_data), generator=self.shuffle_generator)
        sums = torch.zeros(3, dtype=torch.float64)
        steps_in_record = 0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{target_epoch}", disable=not self.progress, leave=False)
        for batch_index in bar:
            indices = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
            batch = to_model_input(self.train_data.images[indices], config.channels).to(self.device)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate_at(self.step)
            reconstruction, mean, log_var = model(batch)
            losses = vae_loss(batch, reconstruction, mean, log_var, config.alpha)
            values = torch.stack([loss.detach() for loss in losses]).double().cpu()
            if not torch.isfinite(values).all():
                self._diverged(values[0].item())
            self.optimizer.zero_grad(set_to_none=True)
            losses[0].backward()
            self.optimizer.step()
            self.step += 1
            sums += values
            steps_in_record += 1
            self.last_losses = dict(zip(("total", "recon", "kl"), values.tolist()))
            if self.step % config.log_every == 0:
                self._record_steps(sums / steps_in_record, started)
                sums.zero_()
                steps_in_record = 0
                bar.set_postfix(loss=f"{self.last_losses['total']:.4f}")
            for hook in self.hooks:
                hook.on_step_end(self)
        self.epoch += 1
        test = evaluate(model, self.test_data.images, config.alpha, seed=config.seed)
        self.train_seconds += time.perf_counter() - started
        self.history["epochs"].append(
            {"epoch": self.epoch, "step": self.step, "seconds": self.train_seconds, "lr": self.learning_rate_at(self.step - 1),
             **{f"test_{name}": value for name, value in test.items()}}
        )
        for hook in self.hooks:
            hook.on_epoch_end(self)
        self._last_complete_state = self.state_dict()
        if self.run_dir is not None:
            self.save(self.run_dir / CHECKPOINT_NAME)
            if self.epoch in config.keep_epochs:
                self.save(self.run_dir / epoch_checkpoint_name(self.epoch))

    def _record_steps(self, train_means: torch.Tensor, epoch_started: float) -> None:
        """Append one step record: the train losses since the last record and a test estimate on a fixed subset."""
        test = evaluate(self.model, self.test_data.images[: self.config.step_test_images], self.config.alpha, seed=self.config.seed)
        train_total, train_recon, train_kl = train_means.tolist()
        self.history["steps"].append(
            {"step": self.step, "epoch": self.step / self.steps_per_epoch,
             "seconds": self.train_seconds + time.perf_counter() - epoch_started,
             "train_total": train_total, "train_recon": train_recon, "train_kl": train_kl,
             "test_total": test["total"], "test_recon": test["recon"], "test_kl": test["kl"]}
        )

    def _diverged(self, loss: float) -> None:
        """Roll back to the last complete epoch and raise TrainingDivergedError naming the step."""
        step, epoch = self.step + 1, self.epoch + 1
        self.load_state_dict(self._last_complete_state)
        raise TrainingDivergedError(
            f"the loss became {loss} at step {step} (epoch {epoch}); training stopped. The trainer is back at the end of "
            f"epoch {self.epoch}, whose checkpoint is intact: lower the learning rate or check the data, then fit again."
        )

    def state_dict(self) -> dict:
        """Return everything needed to continue this run exactly: config, weights, optimizer, counters, history, RNG."""
        return copy.deepcopy({
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle_generator.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
        })

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from state_dict() or a checkpoint file's dict."""
        if "optimizer" not in state:
            raise CheckpointError("this checkpoint was exported without optimizer state, so it cannot continue training; "
                                  "load it with vae_lib.load_model to use the model, or retrain")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.train_seconds = state["train_seconds"]
        self.history = copy.deepcopy(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        self.shuffle_generator.set_state(state["rng"]["shuffle"])
        if self.device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._last_complete_state = copy.deepcopy(state)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the state at the end of the last complete epoch to `path` (default run_dir/checkpoint.pt)."""
        if path is None:
            if self.run_dir is None:
                raise ValueError("give save() a path, or create the Trainer with a run_dir")
            path = self.run_dir / CHECKPOINT_NAME
        return save_checkpoint(self._last_complete_state, path)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        train_data: ImageDataset | None = None,
        test_data: ImageDataset | None = None,
        run_dir: str | Path | None = None,
        device: torch.device | str | None = None,
        hooks: Sequence[TrainingHook] = (),
        progress: bool = True,
    ) -> Trainer:
        """Return a trainer that continues the run saved at `path` (run_dir defaults to the file's folder)."""
        state = read_checkpoint(path)
        trainer = cls(config_of(state), train_data, test_data, run_dir or Path(path).parent, device, hooks, progress)
        trainer.load_state_dict(state)
        return trainer

    @classmethod
    def open(
        cls,
        config: TrainConfig,
        run_dir: str | Path,
        train_data: ImageDataset | None = None,
        test_data: ImageDataset | None = None,
        device: torch.device | str | None = None,
        hooks: Sequence[TrainingHook] = (),
        progress: bool = True,
    ) -> Trainer:
        """Return a trainer for run_dir: continuing the run saved there, or a new one if there is none.

        A saved run of another model (latent size, channels, widths or dataset) is refused, never overwritten.
        """
        checkpoint = Path(run_dir) / CHECKPOINT_NAME
        if not checkpoint.exists():
            return cls(config, train_data, test_data, run_dir, device, hooks, progress)
        differences = config_of(read_checkpoint(checkpoint)).differences(config)
        if differences:
            raise CheckpointError(
                f"{checkpoint} belongs to another model ({'; '.join(differences)}): "
                "choose another run folder, or match its settings to continue it"
            )
        trainer = cls.resume(checkpoint, train_data, test_data, run_dir, device, hooks, progress)
        print(f"resuming {checkpoint} at epoch {trainer.epoch}")
        return trainer


def seconds_to_target(history: dict[str, list[dict]], target: float) -> float | None:
    """Return the training seconds at the first epoch whose test reconstruction is at or below `target`."""
    return next((record["seconds"] for record in history["epochs"] if record["test_recon"] <= target), None)


def _subset(dataset: ImageDataset, count: int) -> ImageDataset:
    """Return the first `count` images of a dataset, or all of it when count is 0."""
    return dataset.subset(count) if 0 < count < len(dataset) else dataset
