import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_lib import (
    CheckpointError,
    History,
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    TrainingHook,
    TrainingInterrupted,
    open_run,
    read_checkpoint,
    vae_loss,
)
from vae_lib.core.data import to_model_input
from vae_lib.core.device import malloc_is_glibcs
from vae_lib.core.optimizer import Adam, Lamb

CONFIG = TrainConfig(batch_size=64, log_every=4, step_test_images=64)


def _trainer(small_train, small_test, run_dir: Path, hooks=(), config: TrainConfig = CONFIG) -> Trainer:
    return Trainer(
        config, train_data=small_train, test_data=small_test, run_dir=run_dir, device="cpu", hooks=hooks, progress=False
    )


def _without_times(history: History) -> dict:
    return {
        part: [{k: v for k, v in record.items() if k != "seconds"} for record in records]
        for part, records in history.to_dict().items()
    }


def _assert_same_weights(first: Trainer, second: Trainer) -> None:
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_lowers_the_test_loss(small_train, small_test, tmp_path) -> None:
    trainer = _trainer(small_train, small_test, tmp_path)
    history = trainer.fit(3)
    recon = [record.test_recon for record in history.epochs]
    assert len(recon) == 3 and recon[2] < recon[0]
    assert trainer.steps_per_epoch == 8 and trainer.step == 24
    assert [record.step for record in history.steps] == [4, 8, 12, 16, 20, 24]


def test_each_step_record_holds_the_mean_of_its_steps_losses(small_train, small_test, tmp_path, monkeypatch) -> None:
    from vae_lib.core import train

    steps_losses = []

    def recording_step(*args, **options):
        losses = original_step(*args, **options)
        steps_losses.append([loss.item() for loss in losses])
        return losses

    original_step = train.train_step
    monkeypatch.setattr(train, "train_step", recording_step)
    history = _trainer(small_train, small_test, tmp_path).fit(2)  # a record every 4 steps
    assert len(steps_losses) == 16 and len(history.steps) == 4
    for index, record in enumerate(history.steps):
        by_hand = torch.tensor(steps_losses[4 * index : 4 * index + 4], dtype=torch.float64).mean(dim=0)
        recorded = [record.train_total, record.train_recon, record.train_kl]
        assert recorded == pytest.approx(by_hand.tolist(), rel=1e-5)


# log_every 3: a step record spans the end of the epoch the run resumes from; lamb_rate: LAMB's state continues too
# (its warm-up, over the first epoch's 8 steps, ends where the run resumes; test_optimizer resumes within one)
@pytest.mark.parametrize("log_every, lamb_rate", [(4, 0.0), (3, 0.0), (4, 0.007)])
def test_resume_matches_uninterrupted_run(small_train, small_test, tmp_path, log_every: int, lamb_rate: float) -> None:
    config = TrainConfig(batch_size=64, log_every=log_every, step_test_images=64, lamb_rate=lamb_rate)
    straight = _trainer(small_train, small_test, tmp_path / "straight", config=config)
    straight.fit(2)
    first_half = _trainer(small_train, small_test, tmp_path / "halves", config=config)
    first_half.fit(1)
    resumed = Trainer.resume(
        tmp_path / "halves" / "checkpoint.pt", train_data=small_train, test_data=small_test, progress=False
    )
    assert resumed.epoch == 1 and resumed.step == 8
    assert type(resumed.optimizer) is type(straight.optimizer) is (Lamb if lamb_rate else Adam)
    if lamb_rate:  # warmed up over the first epoch, on the schedule's rate
        assert resumed.optimizer.param_groups[0]["warmup_steps"] == resumed.steps_per_epoch == 8
        assert resumed.optimizer.param_groups[0]["initial_lr"] == config.learning_rate
    resumed.fit(1)
    _assert_same_weights(straight, resumed)
    assert _without_times(straight.history) == _without_times(resumed.history)
    on_disk = read_checkpoint(tmp_path / "halves" / "checkpoint.pt")
    assert on_disk["epoch"] == 2 and on_disk["step"] == 16
    assert set(on_disk) >= {"config", "model", "optimizer", "epoch", "step", "history", "rng", "running_losses"}


def test_fit_can_be_called_again_to_continue(small_train, small_test, tmp_path) -> None:
    once = _trainer(small_train, small_test, tmp_path / "once")
    once.fit(2)
    twice = _trainer(small_train, small_test, tmp_path / "twice")
    twice.fit(1)
    twice.fit(1)
    _assert_same_weights(once, twice)


class _InterruptOnce(TrainingHook):
    def __init__(self, at_step: int) -> None:
        self.at_step, self.fired = at_step, False

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step == self.at_step and not self.fired:
            self.fired = True
            raise KeyboardInterrupt


def test_interrupt_keeps_the_last_checkpoint_and_rolls_back(small_train, small_test, tmp_path) -> None:
    trainer = _trainer(small_train, small_test, tmp_path / "run", hooks=[_InterruptOnce(at_step=11)])
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(2)
    assert read_checkpoint(checkpoint)["epoch"] == 1
    assert trainer.epoch == 1 and trainer.step == 8 and len(trainer.history.epochs) == 1
    trainer.fit(1)
    straight = _trainer(small_train, small_test, tmp_path / "straight")
    straight.fit(2)
    _assert_same_weights(straight, trainer)


class _PoisonWeights(TrainingHook):
    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step == 10:
            with torch.no_grad():
                trainer.model.to_latent.weight.fill_(float("nan"))


@pytest.mark.parametrize("drawing", [False, True], ids=["no drawing hook", "a snapshot at the first diverged step"])
def test_nan_loss_stops_training_naming_the_step(small_train, small_test, tmp_path, drawing: bool) -> None:
    from vae_lib.pictures.snapshots import SnapshotRecorder

    hooks = [_PoisonWeights()] + ([SnapshotRecorder(tmp_path / "run", small_test, every=11)] if drawing else [])
    trainer = _trainer(small_train, small_test, tmp_path / "run", hooks=hooks)
    with pytest.raises(TrainingDivergedError, match="at step 11 \\(epoch 2\\)"):
        trainer.fit(3)  # a hook drawing the diverged model's NaN images must not stand in the way
    assert trainer.epoch == 1 and trainer.step == 8
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1


@pytest.mark.parametrize("epochs", [0, -2, 1.5])
def test_epoch_count_must_be_positive(small_train, small_test, tmp_path, epochs) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        _trainer(small_train, small_test, tmp_path).fit(epochs)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"final_lr_fraction": -3}, "final_lr_fraction must lie in \\[0, 1\\]"),
        ({"alpha": float("nan")}, "alpha weights the KL term and must be > 0 \\(and finite\\), got nan"),
        ({"alpha": float("inf")}, "alpha weights the KL term and must be > 0 \\(and finite\\), got inf"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"seed": "x"}, "seed must be an integer >= 0, got 'x'"),
        ({"seed": 2**64}, "seed must be an integer from 0 to 2\\*\\*64 - 1 .*, got 18446744073709551616"),
    ],
)
def test_bad_settings_are_rejected(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_the_small_alpha_the_error_suggests_keeps_the_posterior_bounded(small_train, small_test, tmp_path) -> None:
    # With alpha = 0 this run's loss becomes NaN after about 20 steps: exp(log_var) overflows.
    config = TrainConfig(latent_dim=8, alpha=1e-5, learning_rate=2e-3, log_every=4, step_test_images=64)
    trainer = _trainer(small_train, small_test, tmp_path, config=config)
    trainer.fit(8)
    with torch.no_grad():
        _, log_var = trainer.model.encode(to_model_input(small_test.images[:64]))
    assert all(math.isfinite(value) for value in trainer.running.last.tolist())
    assert log_var.max().item() < 10


def test_batch_larger_than_the_data_is_rejected(small_train, small_test) -> None:
    with pytest.raises(ValueError, match="larger than"):
        Trainer(TrainConfig(batch_size=1024), train_data=small_train, test_data=small_test, progress=False)


def test_cosine_schedule_decays_to_its_floor(small_train, small_test) -> None:
    config = TrainConfig(lr_schedule="cosine", epochs=2, learning_rate=2e-3, final_lr_fraction=0.1)
    steps_per_epoch = Trainer(config, train_data=small_train, test_data=small_test, progress=False).steps_per_epoch
    assert config.learning_rate_at(0, steps_per_epoch) == pytest.approx(2e-3)
    assert config.learning_rate_at(8, steps_per_epoch) == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5))  # half-way
    assert config.learning_rate_at(16, steps_per_epoch) == pytest.approx(2e-4)
    assert config.learning_rate_at(100, steps_per_epoch) == pytest.approx(2e-4)


def test_each_step_runs_at_the_schedule_s_learning_rate(small_train, small_test) -> None:
    class OptimizerRates(TrainingHook):
        def __init__(self) -> None:
            self.rates: list[float] = []

        def on_step_end(self, trainer: Trainer) -> None:
            self.rates.append(trainer.optimizer.param_groups[0]["lr"])

    config = TrainConfig(lr_schedule="cosine", epochs=2, learning_rate=2e-3, final_lr_fraction=0.1, log_every=4)
    seen = OptimizerRates()
    trainer = Trainer(config, train_data=small_train, test_data=small_test, hooks=[seen], progress=False)
    trainer.fit(2)
    steps = 2 * trainer.steps_per_epoch
    by_hand = [2e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps))) for step in range(steps)]
    assert seen.rates == pytest.approx(by_hand)
    assert seen.rates[0] == pytest.approx(2e-3) and 2e-4 < seen.rates[-1] < 2.2e-4  # the last step nears the floor


def test_kept_epoch_checkpoints(small_train, small_test, tmp_path) -> None:
    config = TrainConfig(batch_size=64, log_every=4, step_test_images=64, keep_epochs=(1, 3))
    _trainer(small_train, small_test, tmp_path, config=config).fit(3)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint.pt", "epoch_001.pt", "epoch_003.pt"]
    assert read_checkpoint(tmp_path / "epoch_001.pt")["epoch"] == 1


def test_open_continues_a_saved_run_and_refuses_another_model(small_train, small_test, tmp_path) -> None:
    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    first = open_run(CONFIG, tmp_path, **data)
    first.fit(1)
    again = open_run(CONFIG, tmp_path, **data)
    assert again.epoch == 1 and again.step == 8
    _assert_same_weights(first, again)
    with pytest.raises(CheckpointError, match="belongs to another model \\(latent_dim: 2 vs 8\\)"):
        open_run(TrainConfig(latent_dim=8), tmp_path, **data)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


class _SyncCounter(TrainingHook):
    """Counts vae_lib's reads of tensor values (item, tolist, cpu, numpy, bool/int/float) between step ends.

    On a GPU each is a wait for the device. Adam's reads of its step counters are not counted: it keeps them on the
    CPU whatever the device, as torch's Adam does, so reading them waits for nothing.
    """

    READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")

    def __init__(self, monkeypatch) -> None:
        self.reads, self.per_step = 0, []
        for name in self.READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def read(tensor, *args, **kwargs):
            reader = sys._getframe(1).f_code.co_filename
            self.reads += "/vae_lib/" in reader and not reader.endswith("/vae_lib/core/optimizer.py")
            return original(tensor, *args, **kwargs)

        return read

    def on_step_end(self, trainer: Trainer) -> None:
        self.per_step.append((trainer.step, self.reads))
        self.reads = 0


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])  # the weight average's update reads nothing either
def test_a_training_step_never_reads_from_the_device_between_records(
    small_train, small_test, tmp_path, monkeypatch, ema_decay: float
):
    config = TrainConfig(batch_size=64, log_every=4, step_test_images=64, ema_decay=ema_decay)
    counter = _SyncCounter(monkeypatch)
    _trainer(small_train, small_test, None, hooks=[counter], config=config).fit(2)
    steps_without_record = [reads for step, reads in counter.per_step if step % 4 and (step - 1) % 8]
    assert len(steps_without_record) == 10 and set(steps_without_record) == {0}
    # the steps that record (and the first of each epoch, after the epoch's test pass) do read: the counter works
    assert all(reads > 0 for step, reads in counter.per_step if step % 4 == 0)


def _interrupt_save(monkeypatch, at_call: int) -> None:
    """Make the at_call-th torch.save raise KeyboardInterrupt, as Ctrl-C while a checkpoint is written would."""
    real_save, calls = torch.save, []

    def save(state, stream) -> None:
        calls.append(state["epoch"])
        if len(calls) == at_call:
            raise KeyboardInterrupt
        real_save(state, stream)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize(
    ("at_call", "message"),
    [(1, "back at the end of epoch 0, not saved on disk"), (2, "back at the end of epoch 1, saved in {checkpoint}")],
)
def test_ctrl_c_during_a_checkpoint_write_tells_the_truth(
    small_train, small_test, tmp_path, monkeypatch, at_call, message
) -> None:
    narrow = TrainConfig(widths=(4, 8, 8, 8), batch_size=32, log_every=4, step_test_images=32)
    trainer = _trainer(small_train.subset(64), small_test, tmp_path, config=narrow)
    _interrupt_save(monkeypatch, at_call)
    with pytest.raises(TrainingInterrupted) as interrupt:
        trainer.fit(2)
    checkpoint = tmp_path / "checkpoint.pt"
    assert str(interrupt.value) == "interrupted: " + message.format(checkpoint=checkpoint)
    assert trainer.epoch == at_call - 1
    assert (read_checkpoint(checkpoint)["epoch"] if checkpoint.exists() else 0) == trainer.epoch
    assert sorted(path.name for path in tmp_path.iterdir()) == (["checkpoint.pt"] if at_call > 1 else [])


def test_max_grad_norm_scales_a_larger_gradient_down_to_that_norm_and_leaves_a_smaller_one(small_train) -> None:
    from vae_lib.core.train import train_step

    batch = to_model_input(small_train.images[:64], 1)

    def sgd_step_length(max_grad_norm: float) -> float:
        torch.manual_seed(0)
        model = TrainConfig().build_model()
        before = [parameter.detach().clone() for parameter in model.parameters()]
        train_step(model, torch.optim.SGD(model.parameters(), lr=1.0), batch, 1e-3, None, max_grad_norm)
        return math.sqrt(sum((p.detach() - b).pow(2).sum().item() for p, b in zip(model.parameters(), before)))

    unclipped = sgd_step_length(0.0)  # with SGD at rate 1 a step moves the weights by the gradient itself
    assert unclipped > 0.1
    assert sgd_step_length(0.01) == pytest.approx(0.01, rel=1e-4)
    assert sgd_step_length(2 * unclipped) == pytest.approx(unclipped, rel=1e-5)


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
@pytest.mark.parametrize("setting", ["max_grad_norm", "lamb_rate"])
def test_a_negative_or_infinite_max_grad_norm_or_lamb_rate_is_refused(setting: str, bad: float) -> None:
    with pytest.raises(ValueError, match=f"{setting} must be a finite number >= 0"):
        TrainConfig(**{setting: bad})


def test_a_lamb_rate_of_true_is_refused_not_trained_as_1() -> None:
    with pytest.raises(ValueError, match="lamb_rate must be a finite number >= 0 .* got True"):
        TrainConfig(lamb_rate=True)


@pytest.mark.skipif(not malloc_is_glibcs(), reason="keep_freed_memory changes glibc's malloc, used on Linux")
def test_kept_freed_memory_spares_each_step_the_page_faults_of_its_activations() -> None:
    from vae_lib.tools.benchmark import STEP_COSTS

    faults = {}
    for keep in ("return", "keep"):  # each in a fresh process: malloc's settings hold until it exits
        command = [sys.executable, "-c", STEP_COSTS, keep, "10", "2"]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        faults[keep] = json.loads(result.stdout.strip().splitlines()[-1])["fp32"]["page_faults"]
    # returned to the kernel, a step's activations and gradients (several MB) are mapped in afresh at every step
    assert faults["return"] > 1000
    assert faults["keep"] < faults["return"] / 5  # 16 against 4,588 a step when idle; 9x apart on a loaded machine


def test_freed_memory_is_kept_only_where_malloc_is_glibcs(monkeypatch) -> None:
    from vae_lib.core import device

    monkeypatch.setattr(device.platform, "libc_ver", lambda: ("", ""))  # musl, or no C library platform knows
    assert device.keep_freed_memory() is False
    monkeypatch.setattr(device.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(device.platform, "system", lambda: "Darwin")  # glibc reported, but not Linux
    assert device.keep_freed_memory() is False


@pytest.mark.parametrize("device, calls", [("cpu", 1), ("meta", 0)])
def test_a_trainer_on_the_cpu_keeps_freed_memory(small_train, small_test, monkeypatch, device, calls) -> None:
    from vae_lib.core import train

    kept = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: kept.append(True) or True)
    monkeypatch.setattr(train, "choose_device", lambda name: torch.device(device))
    monkeypatch.setattr(train, "training_data", lambda config, train_data, test_data, on: (train_data, test_data))
    monkeypatch.setattr(train, "place_model", lambda model, on: model)
    Trainer(CONFIG, train_data=small_train, test_data=small_test, progress=False)
    assert len(kept) == calls


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda images: images, "train_step takes model input, float N x 1 x 28 x 28 in \\[-1, 1\\], got torch.uint8"),
        (lambda images: to_model_input(images)[:, 0], "got torch.float32 \\(8, 28, 28\\): pass your images through"),
        (lambda images: to_model_input(images).index_fill(0, torch.tensor([3]), math.nan), "NaN or infinite values"),
        (lambda images: to_model_input(images) * 255, "float images must lie in \\[-1, 1\\]"),
        (lambda images: to_model_input(images)[:0], "an empty batch \\(0 images\\): give it at least one image"),
    ],
    ids=["uint8", "no channel axis", "nan", "0-255 floats", "empty"],
)
def test_train_step_refuses_a_batch_that_is_not_model_input_before_the_weights_change(
    small_train, make_bad, message: str
) -> None:
    from vae_lib.core.train import train_step

    torch.manual_seed(0)
    model = TrainConfig().build_model()
    optimizer = torch.optim.Adam(model.parameters())
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        train_step(model, optimizer, make_bad(small_train.images[:8]), 1e-3)
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())
    assert not optimizer.state  # no step was taken
    losses = train_step(model, optimizer, to_model_input(small_train.images[:8]), 1e-3)
    assert all(math.isfinite(loss.item()) for loss in losses)


def test_a_model_that_does_not_fit_the_config_is_refused_and_an_extension_model_is_not(small_train, small_test) -> None:
    from vae_lib import VAE

    data = {"train_data": small_train, "test_data": small_test, "progress": False}
    with pytest.raises(ValueError, match=r"it is a VAE \(8-D latent.*the config builds a VAE \(2-D latent"):
        Trainer(TrainConfig(latent_dim=2), model=VAE(latent_dim=8), **data)
    with pytest.raises(ValueError, match=r"bernoulli likelihood.*gaussian likelihood"):
        Trainer(TrainConfig(latent_dim=2), model=VAE(latent_dim=2, likelihood="bernoulli"), **data)
    with pytest.raises(ValueError, match=r"widths \(4, 8, 8, 8\).*widths \(16, 32, 64, 128\)"):
        Trainer(TrainConfig(latent_dim=2), model=VAE(latent_dim=2, widths=(4, 8, 8, 8)), **data)
    with pytest.raises(ValueError, match=r"it is a VAE .* the config builds a ConditionalVAE"):
        Trainer(TrainConfig(latent_dim=2, conditional=True), model=VAE(latent_dim=2), **data)

    class NarrowerVAE(VAE):  # an extension: the caller's own class, which no config builds
        pass

    trainer = Trainer(TrainConfig(latent_dim=2), model=NarrowerVAE(latent_dim=2, widths=(4, 8, 8, 8)), **data)
    assert trainer.fit(1).epochs[-1].test_recon > 0


def test_a_tensor_for_the_data_or_one_hook_for_the_list_is_named(small_train) -> None:
    from vae_lib.core.hooks import TrainingHook

    config = TrainConfig(batch_size=64)
    with pytest.raises(TypeError, match=r"^train_data must be an ImageDataset .* got Tensor: for a tensor of images"):
        Trainer(config, train_data=small_train.images, device="cpu", progress=False)  # "no attribute 'subset'" before
    with pytest.raises(TypeError, match=r"^hooks is a list of hooks, got a TrainingHook: pass hooks=\[hook\]$"):
        Trainer(config, train_data=small_train, hooks=TrainingHook(), device="cpu", progress=False)


def test_train_step_trains_a_float64_or_float16_batch_as_float32(small_train) -> None:
    from vae_lib.core.train import train_step

    images = to_model_input(small_train.images[:8])
    losses = {}
    for dtype in (torch.float32, torch.float64, torch.float16):
        torch.manual_seed(0)
        model = TrainConfig(widths=(4, 8, 8, 8)).build_model()
        torch.manual_seed(1)  # the same z draws
        losses[dtype] = train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), images.to(dtype), 1e-3)
    assert torch.equal(torch.stack(losses[torch.float64]), torch.stack(losses[torch.float32]))  # it raised before
    assert torch.allclose(torch.stack(losses[torch.float16]), torch.stack(losses[torch.float32]), rtol=1e-2)


def test_an_optimizer_over_another_model_s_parameters_is_refused_before_it_trains_nothing(
    small_train, small_test, tmp_path
) -> None:
    from vae_lib import VAE
    from vae_lib.core.train import train_step

    config = TrainConfig(widths=(4, 8, 8, 8), batch_size=64)
    model, other = config.build_model(), config.build_model()
    data = {"train_data": small_train, "test_data": small_test, "progress": False, "run_dir": tmp_path}
    with pytest.raises(ValueError, match=r"updates 34 tensors, 34 of them not this model's parameters.*Adam\(model"):
        Trainer(config, model=model, optimizer=Adam(other.parameters(), lr=1e-3), **data)
    with pytest.raises(ValueError, match="not this model's parameters"):  # model= left out: built from the config
        Trainer(config, optimizer=Adam(model.parameters(), lr=1e-3), **data)
    assert not any(tmp_path.iterdir())  # refused before anything was written
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError, match="not this model's parameters"):
        train_step(
            model,
            torch.optim.SGD(VAE(widths=(4, 8, 8, 8)).parameters(), lr=1.0),
            to_model_input(small_train.images[:8]),
            1e-3,
        )
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())
    encoder_only = Adam(model.encoder.parameters(), lr=1e-3)  # some of its parameters: a learner freezing the rest
    trainer = Trainer(config, model=model, optimizer=encoder_only, **data)
    trainer.fit(1)
    assert torch.equal(trainer.model.decoder[0][0].weight, before["decoder.0.0.weight"])
    assert not torch.equal(trainer.model.encoder[0][0].weight, before["encoder.0.0.weight"])


def test_an_empty_test_set_is_refused_before_an_epoch_is_trained(small_train, small_test) -> None:
    from vae_lib.core.data import ImageDataset

    empty = ImageDataset(small_test.images[:0], small_test.labels[:0], small_test.class_names, small_test.name)
    with pytest.raises(ValueError, match="test_data holds no images: every epoch ends with a test pass"):
        Trainer(CONFIG, train_data=small_train, test_data=empty, progress=False)


def test_a_dict_for_the_config_or_one_number_for_a_list_setting_is_named() -> None:
    with pytest.raises(TypeError, match=r"config must be a TrainConfig, got dict: TrainConfig\(\*\*settings\)"):
        Trainer({"latent_dim": 2}, progress=False)  # AttributeError deep inside before
    with pytest.raises(ValueError, match=r"keep_epochs is a list of numbers, got 3: write keep_epochs=\(3,\) for one"):
        TrainConfig(keep_epochs=3)  # "'int' object is not iterable" before
    assert TrainConfig(keep_epochs=[3]).keep_epochs == (3,)


def test_an_empty_run_folder_name_or_a_weight_given_as_text_is_refused(small_train, small_test, monkeypatch, tmp_path):
    from vae_lib.core.train import train_step

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="run_dir is empty: give a folder to save the run in, or leave it out"):
        Trainer(CONFIG, train_data=small_train, test_data=small_test, run_dir="", progress=False)
    assert not any(tmp_path.iterdir())  # checkpoint.pt was written into the current folder before
    model = TrainConfig(widths=(4, 8, 8, 8)).build_model()
    optimizer, batch = torch.optim.SGD(model.parameters(), lr=0.1), to_model_input(small_train.images[:8])
    with pytest.raises(TypeError, match=r"alpha, the KL term's weight, is a number, got str '0.001'"):
        train_step(model, optimizer, batch, "0.001")
    with pytest.raises(TypeError, match=r"alpha, the KL term's weight, is a number, got str '0.001'"):
        vae_loss(batch, batch, torch.zeros(8, 2), torch.zeros(8, 2), "0.001")  # checked where the loss is, once
    for alpha in (np.float32(0.01), torch.tensor(0.01), 1):  # a KL warm-up's weight may be any of these
        assert math.isfinite(train_step(model, optimizer, batch, alpha)[0].item())
