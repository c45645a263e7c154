"""Training: `train_step`, one optimisation step of the VAE, the Trainer that runs epochs of it, and the
WeightAverage it keeps of the weights when a config asks for one (ema_decay).

The Trainer orchestrates and nothing else: it shuffles, steps, evaluates, records the history and
writes checkpoints. Whatever watches training (snapshots, live plots, printing) is a TrainingHook.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function
from tqdm.auto import tqdm

from vae_lib.core.checkpoint import (
    MODEL_CLASS_KEY,
    RUNNING_LOSSES_KEY,
    TRAINED_WEIGHTS_KEY,
    TRAINING_ONLY_KEYS,
    config_of,
    continued_config,
    own_model_class,
    own_model_class_refusal,
    read_checkpoint,
    save_epoch,
)
from vae_lib.core.config import RESUMABLE_FIELDS, TrainConfig, is_whole_number
from vae_lib.core.data import Batch, ImageDataset, as_batch, binarise, binarised, check_image_dataset, to_model_input
from vae_lib.core.datasets import DATASETS, load_dataset
from vae_lib.core.device import autocast_dtype, choose_device, keep_freed_memory, place_model
from vae_lib.core.evaluate import check_labels_given, evaluate
from vae_lib.core.files import CheckpointError, replaced_atomically
from vae_lib.core.history import EpochRecord, History, StepRecord
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.model import IMAGE_SIZE, VAE, ConditionalVAE, LatentModel
from vae_lib.core.objective import vae_loss
from vae_lib.core.optimizer import Adam, Lamb, Optimizer
from vae_lib.core.run_folder import RunFolder, RunLock, epoch_of_kept, refuse_saved_run

# The names under which a training epoch's parts show in a torch.profiler trace (`benchmark --profile` reads them).
PROFILE_SCOPES = {
    "batch": "vae_lib: batch",
    "step": "vae_lib: train_step",
    "average": "vae_lib: weight average",
    "test": "vae_lib: test pass",
    "save": "vae_lib: saving",
}


def train_step(
    model: LatentModel,
    optimizer: Optimizer,
    batch: Batch | torch.Tensor,
    alpha: float,
    autocast: torch.dtype | None = None,
    max_grad_norm: float = 0.0,
    check_batch: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Take one optimisation step on a batch, (images in [-1, 1], labels) or images alone; return its
    (total, recon, kl) losses, the reconstruction term being the model's likelihood's.

    With `autocast` (torch.bfloat16) the forward pass computes in that dtype where it is safe, and the loss
    in fp32 (device.autocast_dtype chooses). With `max_grad_norm` > 0 a gradient whose norm (over all the
    parameters) is larger is scaled down to that norm before the step. The losses come back as detached
    tensors, still on the model's device: reading them is up to the caller. A batch that is not model input
    (check_model_batch) is refused before the weights change; the Trainer, whose batches are, skips that check
    (`check_batch`), which would make each step wait for the device.
    """
    images, labels = as_batch(batch)
    if check_batch:
        images = check_model_batch(model, images)
        check_optimizer_fits(model, optimizer)
        check_labels_given(model, labels, "a Batch(images, labels) (or (images, labels))")
    with torch.autocast(images.device.type, dtype=autocast, enabled=autocast is not None):
        output, mean, log_var = model(images, labels)  # encode, sample z = mean + sigma * eps, decode
    total, recon, kl = vae_loss(images, output.float(), mean.float(), log_var.float(), alpha, model.likelihood)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if max_grad_norm:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return total.detach(), recon.detach(), kl.detach()


def check_model_batch(model: LatentModel, images: torch.Tensor) -> torch.Tensor:
    """Raise a ValueError unless images are a batch the model trains on: floating point, N x C x 28 x 28, at
    least one image, finite and in [-1, 1] (data.to_model_input makes one from uint8 images); return it in the
    model's float32 (a float64 or float16 batch is converted, as to_model_input converts it)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or not images.is_floating_point():  # uint8 included
        raise ValueError(
            f"train_step takes model input, float N x {model.channels} x {IMAGE_SIZE} x {IMAGE_SIZE} in [-1, 1], got "
            f"{images.dtype} {tuple(images.shape)}: pass your images through vae_lib.core.data.to_model_input first"
        )
    if len(images) == 0:
        raise ValueError("train_step got an empty batch (0 images): give it at least one image")
    # to_model_input checks the shape, NaN and the range, with messages that say what to do
    return to_model_input(images, model.channels)


def check_optimizer_fits(model: nn.Module, optimizer: Optimizer) -> None:
    """Raise a ValueError unless the optimizer updates some of the model's parameters and nothing else: one made
    over another model's (a model built again in a later cell) would train nothing, silently."""
    trained = {id(parameter) for parameter in model.parameters()}
    updated = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    if updated and all(id(parameter) in trained for parameter in updated):
        return
    raise ValueError(
        f"the optimizer updates {len(updated)} tensors, {sum(id(p) not in trained for p in updated)} of them not "
        "this model's parameters (was it made for another model, or before the model was built again?): make it "
        "over this model's, Adam(model.parameters(), lr=...), and pass both together"
    )


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped and the trainer is back at its last complete epoch."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or a notebook's stop button: the trainer is back at its last complete epoch; the message says where."""


class RunningLosses:
    """Step losses summed on the model's device since the last record, so a step never waits for the host."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.last = torch.full((3,), float("nan"), dtype=torch.float64, device=device)
        self.count = 0
        self.first_bad_step = torch.zeros((), dtype=torch.long, device=device)  # 0: every loss so far was finite

    def add(self, losses: Sequence[torch.Tensor], step: int) -> None:
        """Add one step's (total, recon, kl); remember the step if any of them is NaN or infinite."""
        self.last = torch.stack(list(losses)).double()
        self.sums += self.last
        self.count += 1
        bad = ~torch.isfinite(self.last).all() & (self.first_bad_step == 0)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)

    def state_dict(self) -> dict[str, Any]:
        """Return the sums and their count, which a checkpoint keeps to continue them exactly."""
        return {"sums": self.sums, "count": self.count}

    @classmethod
    def restored(cls, saved: dict[str, Any] | None, device: torch.device) -> RunningLosses:
        """Return running losses continuing a state_dict(), or fresh ones for a checkpoint that has none."""
        running = cls(device)
        if saved is not None:
            running.sums.copy_(saved["sums"])
            running.count = saved["count"]
        return running

    def take_means(self) -> list[float]:
        """Return the mean (total, recon, kl) since the last call, and start the next sums."""
        means = (self.sums / max(self.count, 1)).tolist()
        self.sums.zero_()
        self.count = 0
        return means


class WeightAverage:
    """An exponential moving average of a model's weights and BatchNorm statistics.

    After step t the average weighs the weights after step t by (1 - decay) and its own past by decay, with
    Adam's bias correction: it is the decay-weighted mean of the weights after steps 1..t, so a short run's
    average is not pulled towards the initial weights. It smooths out the noise of the last few hundred steps,
    so its test error is lower than the trained weights' while the learning rate is still high
    (TrainConfig.ema_decay; the README's Speed section measures it). Its BatchNorm statistics are the average
    of the trained model's, not recomputed for the averaged weights.
    """

    def __init__(self, trained: nn.Module, decay: float) -> None:
        self.trained, self.decay = trained, decay
        self.model = copy.deepcopy(trained).eval()  # never trained: BatchNorm must not update its statistics
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the trained weights after `step` (1-based) steps; integer buffers (BatchNorm's counts) are copied."""
        weight = (1 - self.decay) / (1 - self.decay**step)  # 1 at step 1: the average starts at the weights
        # Looked up at each update: moving a model (.to) gives its parameters and buffers new tensors.
        averages = chain(self.model.parameters(), self.model.buffers())
        averaged: list[torch.Tensor] = []
        trained: list[torch.Tensor] = []
        for average, current in zip(averages, chain(self.trained.parameters(), self.trained.buffers())):
            if average.is_floating_point():
                averaged.append(average)
                trained.append(current)
            else:
                average.copy_(current)
        torch._foreach_lerp_(averaged, trained, weight)  # each tensor's lerp_, in one call


class Trainer:
    """Trains a VAE with train_step: call fit(epochs) as often as you like to continue. The model and optimizer
    are built from the config unless given (a config with lamb_rate > 0 builds its LAMB and takes no optimizer);
    with a run_dir each epoch's state is saved, to resume exactly, and fit() holds the folder's lock (RunLock): a
    second process writing the folder is refused."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_data: ImageDataset | None = None,
        test_data: ImageDataset | None = None,
        model: nn.Module | None = None,
        optimizer: Optimizer | None = None,
        run_dir: str | Path | None = None,
        device: torch.device | str | None = None,
        hooks: Sequence[TrainingHook] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}: TrainConfig(**settings)")
        if isinstance(hooks, TrainingHook) or not isinstance(hooks, Sequence):
            raise TypeError(f"hooks is a list of hooks, got a {type(hooks).__name__}: pass hooks=[hook]")
        if optimizer is not None and config.lamb_rate:
            raise ValueError(
                f"the config trains with LAMB (lamb_rate {config.lamb_rate}), which the Trainer builds itself, and an "
                "optimizer was given too: for an optimizer of your own pass a config with lamb_rate=0 "
                "(replace(config, lamb_rate=0))"
            )
        self.config, self.hooks, self.progress = config, list(hooks), progress
        self.device = choose_device(str(device) if device is not None else None)
        if self.device.type == "cpu":
            keep_freed_memory()  # a step's freed activations are reused, not faulted in afresh (0.7-0.9 the time)
        self.train_data, self.test_data = training_data(config, train_data, test_data, self.device)
        self.steps_per_epoch = len(self.train_data) // config.batch_size  # the last partial batch is dropped
        if isinstance(run_dir, str) and not run_dir.strip():  # Path("") is the current folder
            raise ValueError("run_dir is empty: give a folder to save the run in, or leave it out to save nothing")
        run_folder = RunFolder(run_dir) if run_dir is not None else None
        if run_folder is not None:
            refuse_saved_run(run_folder)  # so it holds no checkpoint yet; Trainer.resume sets its folder after this
        self._use_run_folder(run_folder, seen_checkpoint=None)
        torch.manual_seed(config.seed)
        if model is not None:
            check_model_fits(model, config)
        self.model = place_model(model if model is not None else config.build_model(), self.device)
        if optimizer is not None:
            check_optimizer_fits(self.model, optimizer)  # with model= left out it cannot be this model's
        if optimizer is None and config.lamb_rate:  # LAMB for the matrices and kernels, warmed up over an epoch
            optimizer = Lamb(self.model.parameters(), config.learning_rate, config.lamb_rate, self.steps_per_epoch)
        # vae_lib's Adam: torch.optim.Adam's update bit for bit, without torch.optim's import of the compiler
        self.optimizer = optimizer or Adam(self.model.parameters(), lr=config.learning_rate)
        self.weight_average = WeightAverage(self.model, config.ema_decay) if config.ema_decay else None
        self.shuffle_generator = torch.Generator().manual_seed(config.seed)
        self.epoch, self.step, self.train_seconds, self.history = 0, 0, 0.0, History()
        self.running = RunningLosses(self.device)
        self._last_complete_state = self.state_dict()

    @property
    def evaluated_model(self) -> nn.Module:
        """Return the model the test metrics and the checkpoint's weights are of: the weight average with
        config.ema_decay, else the trained model itself."""
        return self.weight_average.model if self.weight_average is not None else self.model

    def fit(self, epochs: int) -> History:
        """Train `epochs` more epochs and return the history. Ctrl-C (or a notebook's stop button) rolls the
        trainer back to the end of its last complete epoch and raises TrainingInterrupted; fit() can go on after."""
        if not is_whole_number(epochs, 1):
            raise ValueError(f"epochs must be a positive integer (how many more epochs to train), got {epochs!r}")
        steps, label = epochs * self.steps_per_epoch, f"epochs {self.epoch + 1}-{self.epoch + epochs}"
        self._refuse_a_folder_the_working_folder_moved()  # before the lock, which would make the folder
        with run_lock(self.run_folder):
            self._refuse_a_checkpoint_written_by_another()
            with tqdm(total=steps, desc=label, disable=not self.progress) as bar:
                with hooks_random_state(self.device):  # inside the lock: hooks may write into the run folder
                    for hook in self.hooks:
                        hook.on_fit_start(self)
                try:
                    for _ in range(epochs):
                        self._train_epoch(bar)
                except KeyboardInterrupt as interrupt:
                    self.load_state_dict(self._last_complete_state)
                    raise TrainingInterrupted(f"interrupted: {where_it_stands(self)}") from interrupt
        return self.history

    def _train_epoch(self, bar: tqdm) -> None:
        """Run one epoch of train_step over shuffled full batches, then evaluate, save and call the hooks."""
        config, started = self.config, time.perf_counter()
        autocast = autocast_dtype(config.precision, self.device)  # None: fp32 (read each epoch: resumes change it)
        self.model.train()
        order = torch.randperm(len(self.train_data), generator=self.shuffle_generator)
        for indices in order[: self.steps_per_epoch * config.batch_size].view(self.steps_per_epoch, -1):
            with record_function(PROFILE_SCOPES["batch"]):
                images = self.train_data.images[indices]
                if config.binarise:
                    images = binarise(images)  # dynamic binarisation: a fresh 0/1 sample of the batch at every step
                batch = Batch(to_model_input(images, config.channels), self.train_data.labels[indices])
            for group in self.optimizer.param_groups:
                group["lr"] = config.learning_rate_at(self.step, self.steps_per_epoch)
            with record_function(PROFILE_SCOPES["step"]):
                losses = train_step(
                    self.model, self.optimizer, batch, config.alpha, autocast, config.max_grad_norm, check_batch=False
                )
            self.running.add(losses, self.step + 1)
            self.step += 1
            if self.weight_average is not None:
                with record_function(PROFILE_SCOPES["average"]):
                    self.weight_average.update(self.step)
            if self.step % config.log_every == 0:
                self._record_steps(started)
                bar.set_postfix(loss=f"{self.history.steps[-1].train_total:.4f}")
            bar.update()
            for hook in self.hooks:
                try:
                    hook.on_step_end(self)
                except Exception:  # a hook meeting a diverged model's NaN (a snapshot decoding its NaN means) is
                    self._stop_if_diverged()  # the divergence, rolled back and named as such
                    raise
        self._stop_if_diverged()
        self.epoch += 1
        test_set = epoch_test_set(config, self.epoch, self.test_data)
        with record_function(PROFILE_SCOPES["test"]):
            test = evaluate(self.evaluated_model, test_set, config.alpha, seed=config.seed)
        self.train_seconds += time.perf_counter() - started
        lr = config.learning_rate_at(self.step - 1, self.steps_per_epoch)
        record = EpochRecord.of(self.epoch, self.step, self.train_seconds, lr, test, len(test_set))
        self.history.epochs.append(record)
        with record_function(PROFILE_SCOPES["save"]):
            state = self.state_dict()
            if self.run_folder is not None:
                save_epoch(state, self.run_folder, keep=self.epoch in config.keep_epochs)
                self._seen_checkpoint = self.run_folder.checkpoint_stamp()
        self._last_complete_state = state  # only once saved: Ctrl-C during a save rolls back to what is on disk
        with hooks_random_state(self.device):  # after the save: Ctrl-C in a hook (a plot) keeps the finished epoch
            for hook in self.hooks:
                hook.on_epoch_end(self)

    def _use_run_folder(self, run_folder: RunFolder | None, seen_checkpoint: tuple[int, int, int] | None) -> None:
        """Save the run in run_folder (None: nowhere), whose checkpoint this trainer has seen as `seen_checkpoint`
        (RunFolder.checkpoint_stamp; None: none), and remember the folder it means now, for the checks of fit()."""
        self.run_folder, self._seen_checkpoint = run_folder, seen_checkpoint
        self._folder_at_start = run_folder.path.resolve() if run_folder is not None else None

    def _refuse_a_folder_the_working_folder_moved(self) -> None:
        """Raise a CheckpointError if the run folder, given as a relative path, now means another folder: the
        process changed its working folder (a notebook cell's os.chdir) since the trainer was made."""
        if self.run_folder is None or self.run_folder.path.resolve() == self._folder_at_start:
            return
        raise CheckpointError(
            f"the run folder '{self.run_folder.path}' was {self._folder_at_start} when this trainer was made, and now "
            f"means {self.run_folder.path.resolve()}: the working folder changed since; change back to the one the "
            "trainer was made in, or make the trainer with an absolute folder"
        )

    def _refuse_a_checkpoint_written_by_another(self) -> None:
        """Raise a CheckpointError if the run folder's checkpoint is not the one this trainer last read or wrote:
        another trainer (a notebook cell run twice, another process) has saved there since, or it was removed, and
        this trainer's older state would overwrite it."""
        if self.run_folder is None or self.run_folder.checkpoint_stamp() == self._seen_checkpoint:
            return
        checkpoint, folder = self.run_folder.checkpoint, self.run_folder.path
        if not checkpoint.exists():
            raise CheckpointError(
                f"{checkpoint} has been removed since this trainer (at epoch {self.epoch}) last read or wrote it "
                f"(clear_run?); training on would write its older run there again: for a new run, make a new trainer "
                f"(open_run(config, '{folder}'))"
            )
        raise CheckpointError(
            f"{checkpoint} was written by another trainer or process since this trainer (at epoch {self.epoch}) last "
            "read or wrote it; training on would overwrite that run with this trainer's older state. Continue the run "
            f"as it is saved with open_run(config, '{folder}') or Trainer.resume('{checkpoint}') (the train command "
            "does), or, for a new run, choose another folder"
        )

    def _record_steps(self, epoch_started: float) -> None:
        """Append a StepRecord: the mean train losses since the last one and a test estimate on a fixed subset."""
        self._stop_if_diverged()
        seconds, config = self.train_seconds + time.perf_counter() - epoch_started, self.config
        test_images = self.test_data.subset(config.step_test_images)
        with record_function(PROFILE_SCOPES["test"]):
            test = evaluate(self.evaluated_model, test_images, config.alpha, seed=config.seed)
        record = StepRecord.of(self.step, self.steps_per_epoch, seconds, self.running.take_means(), test)
        self.history.steps.append(record)

    def _stop_if_diverged(self) -> None:
        """If a loss became NaN or infinite, roll back to the last complete epoch and raise TrainingDivergedError."""
        bad_step = int(self.running.first_bad_step)
        if bad_step:
            self.load_state_dict(self._last_complete_state)
            epoch = (bad_step - 1) // self.steps_per_epoch + 1
            raise TrainingDivergedError(
                f"the loss became NaN or infinite at step {bad_step} (epoch {epoch}); training stopped, "
                f"{where_it_stands(self)}: lower the learning rate or check the data, "
                "then fit again"
            )

    def remaining_epochs(self) -> int:
        """Return how many epochs the run still has to go to finish its schedule (config.epochs; at least 0)."""
        return max(0, self.config.epochs - self.epoch)

    def finish(self) -> History:
        """Train the epochs left in the run's schedule (none if it is finished) and return the history."""
        return self.fit(self.remaining_epochs()) if self.remaining_epochs() else self.history

    def state_dict(self) -> dict:
        """Return everything needed to continue this run exactly: config, weights, optimizer, counters, history, RNG."""
        return capture_training_state(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from state_dict() or a checkpoint file's dict."""
        restore_training_state(self, state)
        self._last_complete_state = copy.deepcopy(state)

    @classmethod
    def resume(cls, path: str | Path, **options: Any) -> Trainer:
        """Return a trainer that continues the run saved at `path`; options as for Trainer (run_dir: its folder, the
        default; another folder must not hold a saved run, which the continued run would overwrite)."""
        if Path(path).is_dir():  # a run folder (read_checkpoint takes one): its checkpoint, and the folder is its own
            path = RunFolder(path).checkpoint
        run_dir = options.pop("run_dir", Path(path).parent)
        run_folder = RunFolder(run_dir) if run_dir is not None else None
        seen = run_folder.checkpoint_stamp() if run_folder is not None else None  # before reading: a save after it
        state = read_checkpoint(path)  # makes the first fit() refuse, as another trainer's would
        if run_folder is not None and run_folder.checkpoint.resolve() != Path(path).resolve():
            refuse_saved_run(run_folder)
        if options.get("model") is None and (refusal := own_model_class_refusal(state, path)) is not None:
            raise refusal
        trainer = cls(config_of(state), **options)
        trainer.load_state_dict(state)
        trainer._use_run_folder(run_folder, seen_checkpoint=seen)
        return trainer


def open_run(
    config: TrainConfig, run_dir: str | Path, report: Callable[[str], None] | None = None, **options: Any
) -> Trainer:
    """Return a trainer for run_dir: continuing the run saved there, or a new one if there is none.

    Another model's run, or one trained with other settings, is refused (run_folder.continued_config);
    resumable settings that differ are applied, and each change is passed to `report`. The folder is locked
    while it is read, so a folder another process is training in is refused at once. Options as for Trainer.
    """
    run_folder = RunFolder(run_dir)
    if not run_folder.path.exists():  # a new run: a failure to start it (an unknown dataset) leaves no empty folders
        made = _folders_to_make(run_folder.path)
        try:
            with RunLock(run_folder):
                return Trainer(config, run_dir=run_dir, **options)
        except BaseException:
            _remove_if_empty(made)
            raise
    with RunLock(run_folder):
        if not run_folder.checkpoint.exists():
            return Trainer(config, run_dir=run_dir, **options)
        saved, continued = continued_config(run_folder.checkpoint, config)
        trainer = Trainer.resume(run_folder.checkpoint, run_dir=run_dir, **options)
        trainer.config = continued
        changes = describe_changes(saved, continued, trainer.step, trainer.steps_per_epoch)
        changes += restore_kept_epochs(run_folder, trainer.epoch, continued.keep_epochs)
    for change in changes if report else ():
        report(change)
    return trainer


def check_run_folder(config: TrainConfig, run_dir: str | Path) -> None:
    """Raise the CheckpointError open_run(config, run_dir) would raise for the folder itself, without building a
    trainer: a file in its place, a folder that cannot be written or that another process trains in, another
    model's run or settings it cannot continue with, another run's files without a checkpoint. A command that
    trains several runs in turn (sweep, reproduce) checks every folder before the first run trains."""
    run_folder = RunFolder(run_dir)
    made = _folders_to_make(run_folder.path)  # a new folder is made to check it can be, and removed after
    try:
        with RunLock(run_folder):
            if run_folder.checkpoint.exists():
                continued_config(run_folder.checkpoint, config)
            else:
                refuse_saved_run(run_folder)
    finally:
        _remove_if_empty(made)


def _folders_to_make(path: Path) -> list[Path]:
    """Return the folders that making `path` (mkdir with parents) would create, the deepest first: "a/../b/new"
    makes b/new and b, and a on the way."""
    absolute = Path(os.path.abspath(path))
    return [
        folder
        for route in (absolute, path)
        for folder in (route, *route.parents)
        if not folder.exists() and folder.name not in ("", "..")
    ]


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each of the folders that is empty (a folder with anything in it is left), in the order given."""
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def restore_kept_epochs(run_folder: RunFolder, epoch: int, keep_epochs: tuple[int, ...]) -> list[str]:
    """Check the kept epochs of a run resumed at `epoch`: write the current epoch's from the checkpoint if it is to be
    kept and is missing (an earlier version did not keep it) or cannot be read, and name every other kept epoch that
    cannot be read, which only retraining writes again. Return a line for each."""
    lines, current = [], run_folder.kept_epoch(epoch)
    for kept in run_folder.kept_epochs():
        try:
            read_checkpoint(kept)
        except CheckpointError as error:
            if kept == current and epoch in keep_epochs:
                _copy_checkpoint(run_folder, current)
                lines.append(f"rewrote {current} from the checkpoint: it could not be read ({error})")
            elif epoch_of_kept(kept) > epoch:
                lines.append(f"warning: {kept.name} cannot be read; this run writes it again at that epoch ({error})")
            else:
                lines.append(
                    f"warning: {kept.name} cannot be read and is left as it is: delete it, or retrain to that epoch "
                    f"in another folder to have it again ({error})"
                )
    if epoch in keep_epochs and not current.exists():
        _copy_checkpoint(run_folder, current)
        lines.append(f"wrote the missing {current} from the checkpoint")
    return lines


def _copy_checkpoint(run_folder: RunFolder, target: Path) -> None:
    """Write a copy of the run's checkpoint to target, atomically."""
    with replaced_atomically(target) as temporary:
        temporary.write_bytes(run_folder.checkpoint.read_bytes())


def check_model_fits(model: nn.Module, config: TrainConfig) -> None:
    """Raise a ValueError if `model` is one of the models a config builds (VAE, ConditionalVAE) but not the one
    `config` builds (class, likelihood, every weight's shape): a checkpoint stores the config, and must rebuild the
    model it saves. A model of another class (an extension) is the caller's to describe."""
    if type(model) not in (VAE, ConditionalVAE):
        return
    expected = config.build_model()
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    expected_shapes = {name: tuple(tensor.shape) for name, tensor in expected.state_dict().items()}
    if type(model) is not type(expected) or model.likelihood != expected.likelihood or shapes != expected_shapes:
        raise ValueError(
            f"the model given does not fit the config: it is a {describe_model(model)}, the config builds a "
            f"{describe_model(expected)}; pass a config that describes the model (its checkpoint would hold the "
            "config), or leave out model= to build it from the config"
        )


def describe_model(model: VAE) -> str:
    """Return a model's class, latent size, likelihood and widths in words."""
    return f"{type(model).__name__} ({model.latent_dim}-D latent, {model.likelihood} likelihood, widths {model.widths})"


def training_data(
    config: TrainConfig, train_data: ImageDataset | None, test_data: ImageDataset | None, device: torch.device
) -> tuple[ImageDataset, ImageDataset]:
    """Return the (train, test) images a run uses: the given or the config's dataset, cut to its subsets.

    The training images move to `device`: on a GPU the whole dataset lives there and batches never cross the bus.
    """
    for name, given in (("train_data", train_data), ("test_data", test_data)):
        if given is not None:
            check_image_dataset(given, name)
    if train_data is not None and train_data.name in DATASETS and train_data.name != config.dataset:
        raise ValueError(  # the checkpoint would name the wrong dataset (test images of another are the caller's)
            f"train_data holds {train_data.name} images, but the config trains on dataset={config.dataset!r}: pass "
            f"TrainConfig(dataset={train_data.name!r}, ...), so that the checkpoint records what the model learned"
        )
    train_data = load_dataset(config.dataset, train=True) if train_data is None else train_data
    train_data, test_data = _subset(train_data, config.train_subset), evaluation_data(config, test_data)
    if len(train_data) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {len(train_data)} training images")
    if len(test_data) == 0:
        raise ValueError("test_data holds no images: every epoch ends with a test pass, so give it at least one")
    return replace(train_data, images=train_data.images.to(device), labels=train_data.labels.to(device)), test_data


def evaluation_data(config: TrainConfig, test_data: ImageDataset | None = None) -> ImageDataset:
    """Return the test images a run is evaluated on: the given or the config's, cut to its subset, and binarised
    once with the fixed seed (data.TEST_BINARISATION_SEED) when the config binarises."""
    test_data = load_dataset(config.dataset, train=False) if test_data is None else test_data
    test_data = _subset(test_data, config.test_subset)
    return binarised(test_data) if config.binarise else test_data


def epoch_test_set(config: TrainConfig, epoch: int, test_data: ImageDataset) -> ImageDataset:
    """Return the test images evaluated after `epoch`: the first config.epoch_test_images of them (0: all),
    and all of them after the run's last epoch, so a finished run's record covers the whole test set."""
    if config.epoch_test_images == 0 or epoch >= config.epochs:
        return test_data
    return test_data.subset(config.epoch_test_images)


def hooks_random_state(device: torch.device) -> AbstractContextManager:
    """Return a context in which hooks may draw random numbers without moving training's random stream (the global
    generator, whose state a checkpoint saves): at the start of fit() and after an epoch's save, a hook's draws would
    otherwise make a resumed run differ from the uninterrupted one."""
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index if device.index is not None else torch.cuda.current_device()])


def run_lock(run_folder: RunFolder | None) -> AbstractContextManager:
    """Return the lock that makes this process the run folder's only writer, or a no-op without a folder."""
    return RunLock(run_folder) if run_folder is not None else nullcontext()


def where_it_stands(trainer: Trainer) -> str:
    """Return, in words, the epoch a rolled-back trainer is at and whether the checkpoint on disk holds that state."""
    stands = f"back at the end of epoch {trainer.epoch}"
    checkpoint = trainer.run_folder.checkpoint if trainer.run_folder is not None else None
    if checkpoint is None or not checkpoint.exists():
        return f"{stands}, not saved on disk"
    try:
        saved = read_checkpoint(checkpoint)
    except CheckpointError as error:
        return f"{stands}, not saved on disk ({error})"
    if saved["step"] == trainer.step:
        return f"{stands}, saved in {checkpoint}"
    return f"{stands}, not saved on disk ({checkpoint} holds epoch {saved['epoch']})"


def describe_changes(saved: TrainConfig, continued: TrainConfig, step: int, steps_per_epoch: int) -> list[str]:
    """Return one line for each setting a resumed run changed, and what a longer or shorter cosine schedule does."""
    lines = [f"changed on resume: {change}" for change in saved.differences(continued, RESUMABLE_FIELDS)]
    if saved.lr_schedule == "cosine" and saved.epochs != continued.epochs:
        before, after = (config.learning_rate_at(step, steps_per_epoch) for config in (saved, continued))
        lines.append(
            f"the cosine schedule now decays over {continued.epochs} epochs instead of {saved.epochs}: "
            f"the learning rate at step {step} is {after:.3g} (was to be {before:.3g})"
        )
    return lines


def _subset(dataset: ImageDataset, count: int) -> ImageDataset:
    """Return the first `count` images of a dataset, or all of it when count is 0."""
    return dataset.subset(count) if 0 < count < len(dataset) else dataset


def global_random_state() -> dict[str, Any]:
    """Return torch's global random state, which draws z in training: the CPU generator's, and the GPUs' once CUDA
    is in use."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_global_random_state(state: dict[str, Any]) -> None:
    """Restore a state of global_random_state() (or a checkpoint's "rng", which holds one)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture_training_state(run: Trainer) -> dict:
    """Return (a copy of) what a training checkpoint holds: everything needed to continue the run exactly."""
    rng = {**global_random_state(), "shuffle": run.shuffle_generator.get_state()}
    parts = {"model": run.evaluated_model.state_dict(), "optimizer": run.optimizer.state_dict(), "rng": rng}
    parts[RUNNING_LOSSES_KEY] = run.running.state_dict()
    if (model_class := own_model_class(run.model)) is not None:
        parts[MODEL_CLASS_KEY] = model_class
    if run.evaluated_model is not run.model:
        parts[TRAINED_WEIGHTS_KEY] = run.model.state_dict()
    counters = {"epoch": run.epoch, "step": run.step, "train_seconds": run.train_seconds}
    return copy.deepcopy({"config": run.config.to_dict(), **parts, **counters, "history": run.history.to_dict()})


def restore_training_state(run: Trainer, state: dict) -> None:
    """Load a captured state into a run: weights, optimizer, counters, history, running step losses and random
    state."""
    missing = [key for key in TRAINING_ONLY_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"this checkpoint was exported without {' and '.join(missing)} state, so it cannot continue training; "
            "load it with vae_lib.load_model to use the model, or retrain"
        )
    averaging = run.evaluated_model is not run.model
    if averaging != (TRAINED_WEIGHTS_KEY in state):
        saved, here = ("without", "with") if averaging else ("with", "without")
        raise CheckpointError(
            f"this state was saved by a run {saved} a weight average (ema_decay) and cannot continue in a trainer "
            f"{here} one: resume it with the config it holds (Trainer.resume)"
        )
    # The optimizer first: vae_lib's Adam checks the whole state before it changes anything, so a state it refuses
    # (another optimizer's, another model's) leaves the weights as they were too.
    run.optimizer.load_state_dict(state["optimizer"])
    run.evaluated_model.load_state_dict(state["model"])
    if averaging:
        run.model.load_state_dict(state[TRAINED_WEIGHTS_KEY])
    run.epoch, run.step, run.train_seconds = state["epoch"], state["step"], state["train_seconds"]
    run.history = History.from_dict(state["history"])
    run.running = RunningLosses.restored(state.get(RUNNING_LOSSES_KEY), run.device)
    set_global_random_state(state["rng"])
    run.shuffle_generator.set_state(state["rng"]["shuffle"])
