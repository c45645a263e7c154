"""The exponential moving average of the weights (TrainConfig.ema_decay): its arithmetic, what is evaluated and
saved, exact resumes, exports, and runs without it or from before it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from vae_lib import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    TrainingHook,
    TrainingInterrupted,
    evaluate,
    load_model,
    open_run,
    read_checkpoint,
)
from vae_lib.core.checkpoint import TRAINED_WEIGHTS_KEY, export_checkpoint
from vae_lib.core.files import CheckpointError
from vae_lib.core.train import WeightAverage
from vae_lib.tools.cli import build_parser, config_from_args

CONFIG = TrainConfig(batch_size=64, log_every=4, step_test_images=64, ema_decay=0.9)


def _trainer(small_train, small_test, run_dir: Path | None = None, config: TrainConfig = CONFIG, hooks=()) -> Trainer:
    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    return Trainer(config, run_dir=run_dir, hooks=hooks, **data)


def _assert_same(first: nn.Module, second: nn.Module) -> None:
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


class _AtStep(TrainingHook):
    """Once, after step `step`: raise KeyboardInterrupt, or poison the trained weights with NaN."""

    def __init__(self, step: int, action: str) -> None:
        self.step, self.action, self.done = step, action, False

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step == self.step and not self.done:
            self.done = True
            if self.action == "interrupt":
                raise KeyboardInterrupt
            with torch.no_grad():
                trainer.model.to_latent.weight.fill_(float("nan"))


def test_the_average_is_the_decay_weighted_mean_of_the_weights_after_each_step() -> None:
    trained = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    average = WeightAverage(trained, decay=0.75)
    averaged = average.model.state_dict()
    for step, value in enumerate((1.0, 5.0, 3.0), start=1):
        with torch.no_grad():
            trained[0].weight.fill_(value)
            trained[1].running_var.fill_(2 * value)
            trained[1].num_batches_tracked.fill_(step)
        average.update(step)
        if step == 1:  # the first step's weights, not the initial ones
            assert torch.equal(averaged["0.weight"], torch.ones(2, 2))
    # weights 0.75^2, 0.75, 1 on the three steps' values, normalised by their sum; BatchNorm statistics alike
    expected = (0.5625 * 1.0 + 0.75 * 5.0 + 1.0 * 3.0) / (0.5625 + 0.75 + 1.0)
    assert torch.allclose(averaged["0.weight"], torch.full((2, 2), expected))
    assert torch.allclose(averaged["1.running_var"], torch.full((2,), 2 * expected))
    assert int(averaged["1.num_batches_tracked"]) == 3
    assert not any(parameter.requires_grad for parameter in average.model.parameters())


class _RecordWeights(TrainingHook):
    """Keeps a copy of the trained model's state after every step."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, trainer: Trainer) -> None:
        self.states.append({name: tensor.clone() for name, tensor in trainer.model.state_dict().items()})


def test_a_trainer_s_average_is_the_decay_weighted_mean_of_the_weights_after_each_of_its_steps(
    small_train, small_test
) -> None:
    config = replace(CONFIG, widths=(4, 8, 8, 8), batch_size=16, log_every=100)
    recorded = _RecordWeights()
    trainer = _trainer(small_train.subset(64), small_test.subset(64), config=config, hooks=[recorded])
    trainer.fit(2)
    assert len(recorded.states) == trainer.step == 8
    weights = torch.tensor([0.9**age for age in range(7, -1, -1)], dtype=torch.float64)  # 0.9^7 ... 0.9^0
    for name, tensor in trainer.weight_average.model.state_dict().items():
        if tensor.is_floating_point():
            history = torch.stack([state[name].double() for state in recorded.states])
            expected = torch.tensordot(weights, history, dims=1) / weights.sum()
            assert torch.allclose(tensor.double(), expected, rtol=1e-5, atol=1e-6), name
        else:
            assert torch.equal(tensor, recorded.states[-1][name]), name


def test_the_history_and_the_checkpoint_are_of_the_average(small_train, small_test, tmp_path) -> None:
    trainer = _trainer(small_train, small_test, tmp_path)
    trainer.fit(2)
    assert trainer.evaluated_model is trainer.weight_average.model
    averaged = evaluate(trainer.evaluated_model, small_test.images, CONFIG.alpha)["recon"]
    trained = evaluate(trainer.model, small_test.images, CONFIG.alpha)["recon"]
    assert trainer.history.epochs[-1].test_recon == pytest.approx(averaged, rel=1e-12)
    assert abs(averaged - trained) > 1e-4  # after 16 steps at decay 0.9 the two differ
    saved = read_checkpoint(tmp_path / "checkpoint.pt")
    for name, tensor in trainer.evaluated_model.state_dict().items():
        assert torch.equal(saved["model"][name], tensor), name
        assert torch.equal(saved[TRAINED_WEIGHTS_KEY][name], trainer.model.state_dict()[name]), name
    loaded = load_model(tmp_path / "checkpoint.pt")
    assert evaluate(loaded, small_test.images, CONFIG.alpha)["recon"] == pytest.approx(averaged, rel=1e-6)


def test_resume_with_the_average_matches_uninterrupted_run(small_train, small_test, tmp_path) -> None:
    straight = _trainer(small_train, small_test, tmp_path / "straight")
    straight.fit(2)
    _trainer(small_train, small_test, tmp_path / "halves").fit(1)
    resumed = Trainer.resume(
        tmp_path / "halves" / "checkpoint.pt", train_data=small_train, test_data=small_test, progress=False
    )
    resumed.fit(1)
    _assert_same(straight.model, resumed.model)
    _assert_same(straight.evaluated_model, resumed.evaluated_model)
    assert [e.test_recon for e in straight.history.epochs] == [e.test_recon for e in resumed.history.epochs]
    assert [e.test_recon for e in straight.history.steps] == [e.test_recon for e in resumed.history.steps]


def test_the_average_changes_nothing_in_the_training_itself(small_train, small_test) -> None:
    averaged = _trainer(small_train, small_test)
    averaged.fit(2)
    plain = _trainer(small_train, small_test, config=replace(CONFIG, ema_decay=0.0))
    plain.fit(2)
    _assert_same(averaged.model, plain.model)
    assert [s.train_total for s in averaged.history.steps] == [s.train_total for s in plain.history.steps]
    # the step records' test estimates are of the average, on the first step_test_images images
    estimate = evaluate(averaged.evaluated_model, small_test.images[: CONFIG.step_test_images], CONFIG.alpha)
    assert averaged.history.steps[-1].test_recon == pytest.approx(estimate["recon"], rel=1e-12)
    assert averaged.history.steps[-1].test_recon != plain.history.steps[-1].test_recon


@pytest.mark.parametrize("action", ["interrupt", "poison"])
def test_a_rollback_restores_the_average_too(small_train, small_test, tmp_path, action: str) -> None:
    trainer = _trainer(small_train, small_test, tmp_path / "run", hooks=[_AtStep(11, action)])
    with pytest.raises(TrainingInterrupted if action == "interrupt" else TrainingDivergedError):
        trainer.fit(2)
    after_one = _trainer(small_train, small_test)
    after_one.fit(1)
    assert trainer.epoch == 1 and trainer.step == 8
    _assert_same(trainer.model, after_one.model)
    _assert_same(trainer.evaluated_model, after_one.evaluated_model)


def test_a_state_with_an_average_is_refused_by_a_trainer_without_one(small_train, small_test, tmp_path) -> None:
    _trainer(small_train, small_test, tmp_path).fit(1)
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    plain = _trainer(small_train, small_test, config=replace(CONFIG, ema_decay=0.0))
    with pytest.raises(CheckpointError, match="saved by a run with a weight average"):
        plain.load_state_dict(state)
    del state[TRAINED_WEIGHTS_KEY]
    with pytest.raises(CheckpointError, match="saved by a run without a weight average"):
        _trainer(small_train, small_test).load_state_dict(state)


def test_the_average_follows_a_model_moved_after_it_was_made() -> None:
    trained = nn.Linear(2, 2)
    average = WeightAverage(trained, decay=0.5)
    trained.to(torch.float64)  # new parameter tensors: an average holding the old ones would stop following
    average.model.to(torch.float64)
    start = average.model.weight.clone()
    with torch.no_grad():
        trained.weight.fill_(3.0)
    average.update(2)  # (1 - 0.5) / (1 - 0.5^2) = 2/3 of the way towards the moved model's weights
    assert torch.allclose(average.model.weight, start + 2 / 3 * (3.0 - start))
    assert not average.model.training


def test_an_export_keeps_the_average_and_leaves_out_the_trained_weights(small_train, small_test, tmp_path) -> None:
    trainer = _trainer(small_train, small_test, tmp_path / "run")
    trainer.fit(1)
    exported = read_checkpoint(export_checkpoint(tmp_path / "run" / "checkpoint.pt", tmp_path / "shared.pt"))
    assert TRAINED_WEIGHTS_KEY not in exported and "optimizer" not in exported
    for name, tensor in trainer.evaluated_model.state_dict().items():
        assert torch.equal(exported["model"][name], tensor), name
    with pytest.raises(CheckpointError, match="cannot continue training"):
        Trainer.resume(tmp_path / "shared.pt", train_data=small_train, test_data=small_test, progress=False)


def test_without_a_decay_the_trained_model_is_the_evaluated_one(small_train, small_test, tmp_path) -> None:
    trainer = _trainer(small_train, small_test, tmp_path, replace(CONFIG, ema_decay=0.0))
    trainer.fit(1)
    assert trainer.weight_average is None and trainer.evaluated_model is trainer.model
    assert TRAINED_WEIGHTS_KEY not in read_checkpoint(tmp_path / "checkpoint.pt")
    stored = CONFIG.to_dict()
    del stored["ema_decay"]  # a checkpoint written before the setting existed
    assert TrainConfig.from_dict(stored).ema_decay == 0.0


def test_changing_the_decay_of_a_saved_run_is_refused(small_train, small_test, tmp_path) -> None:
    _trainer(small_train, small_test, tmp_path).fit(1)
    with pytest.raises(CheckpointError, match="ema_decay: 0.9 vs 0.99"):
        open_run(replace(CONFIG, ema_decay=0.99), tmp_path, train_data=small_train, test_data=small_test)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, float("nan")])
def test_a_decay_outside_zero_to_one_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match=r"ema_decay must lie in \[0, 1\)"):
        TrainConfig(ema_decay=decay)


def test_the_command_line_sets_the_decay() -> None:
    args = build_parser().parse_args(["train", "--recipe", "2d-fast", "--ema-decay", "0"])
    assert config_from_args(args).ema_decay == 0.0
    assert config_from_args(build_parser().parse_args(["train", "--ema-decay", "0.99"])).ema_decay == 0.99
