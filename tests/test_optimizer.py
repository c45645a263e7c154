"""vae_lib's Adam against torch.optim.Adam: the same weights and state bit for bit, either's state continued by the
other, another model's state refused, and no import of torch's compiler in a process that trains; LAMB, built on
it: its steps' lengths, its state continued, and Adam's and LAMB's states kept apart."""

import copy
import math
import subprocess
import sys

import pytest
import torch

from vae_lib import TrainConfig
from vae_lib.core.data import to_model_input
from vae_lib.core.objective import vae_loss
from vae_lib.core.optimizer import Adam, Lamb
from vae_lib.core.train import train_step

ALPHA = 1e-3


def _twins(seed: int = 0, latent_dim: int = 2) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    model = TrainConfig(latent_dim=latent_dim).build_model()
    return model, copy.deepcopy(model)


def _train(model, optimizer, batches, autocast=None, learning_rates=None) -> list[float]:
    """Take a step on each batch with the noise of its index (and its learning rate); return the total losses."""
    losses = []
    for index, batch in enumerate(batches):
        if learning_rates is not None:
            optimizer.param_groups[0]["lr"] = learning_rates[index]
        torch.manual_seed(100 + index)
        losses.append(train_step(model, optimizer, batch, ALPHA, autocast)[0].item())
    return losses


def _assert_same(first_model, second_model, first_state: dict, second_state: dict) -> None:
    for (name, a), b in zip(first_model.state_dict().items(), second_model.state_dict().values()):
        assert torch.equal(a, b), name
    assert first_state["state"].keys() == second_state["state"].keys()
    for index, state in first_state["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state[key], second_state["state"][index][key]), (index, key)


@pytest.fixture(scope="module")
def batches(small_train) -> list[torch.Tensor]:
    return [to_model_input(small_train.images[i : i + 32]) for i in range(0, 8 * 32, 32)]


@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_adam_takes_torch_adams_steps_bit_for_bit(batches, autocast) -> None:
    ours, theirs = _twins()
    ours_optimizer, theirs_optimizer = Adam(ours.parameters(), lr=2e-3), torch.optim.Adam(theirs.parameters(), lr=2e-3)
    rates = [2e-3 * (1 - index / 10) for index in range(len(batches))]  # a schedule changes the rate at each step
    before = [parameter.clone() for parameter in ours.parameters()]
    losses = _train(ours, ours_optimizer, batches, autocast, rates)
    assert losses == _train(theirs, theirs_optimizer, batches, autocast, rates)
    _assert_same(ours, theirs, ours_optimizer.state_dict(), theirs_optimizer.state_dict())
    assert all(not torch.equal(a, b) for a, b in zip(before, ours.parameters()))  # every weight trained
    assert losses[-1] < losses[0]
    assert ours_optimizer.state_dict()["state"][0]["step"].item() == len(batches)


@pytest.mark.parametrize("first, second", [(Adam, torch.optim.Adam), (torch.optim.Adam, Adam)])
def test_either_adams_state_continues_in_the_other_as_in_the_same(batches, first, second) -> None:
    """Half the steps with one Adam, its state_dict loaded into the other for the rest: the same as all steps with
    torch's (a checkpoint written before this Adam existed resumes exactly, and ours resumes in plain PyTorch)."""
    switched, straight = _twins(seed=1)
    optimizer = first(switched.parameters())
    _train(switched, optimizer, batches[:4])
    continued = second(switched.parameters())
    continued.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    _train(switched, continued, batches[4:])
    reference = torch.optim.Adam(straight.parameters())
    _train(straight, reference, batches[:4])
    _train(straight, reference, batches[4:])
    _assert_same(switched, straight, continued.state_dict(), reference.state_dict())


def test_a_loaded_state_is_a_copy_the_next_steps_leave_alone(batches) -> None:
    model, _ = _twins()
    optimizer = Adam(model.parameters())
    _train(model, optimizer, batches[:2])
    saved = copy.deepcopy(optimizer.state_dict())
    kept = copy.deepcopy(saved)
    optimizer.load_state_dict(saved)
    _train(model, optimizer, batches[2:4])
    for index, state in kept["state"].items():
        assert all(torch.equal(state[key], saved["state"][index][key]) for key in state)


def _stepped(batches) -> tuple[torch.nn.Module, Adam]:
    model, _ = _twins()
    optimizer = Adam(model.parameters())
    _train(model, optimizer, batches[:2])
    return model, optimizer


def test_another_models_or_optimizers_state_is_refused_and_nothing_changes(batches) -> None:
    model, optimizer = _stepped(batches)
    before, weights = copy.deepcopy(optimizer.state_dict()), copy.deepcopy(model.state_dict())
    other, _ = _twins(latent_dim=8)  # the same layers but the latent ones, whose shapes differ
    other_optimizer = torch.optim.Adam(other.parameters())
    _train(other, other_optimizer, batches[:1])
    refused = {
        r"shape \(16, 6272\), the parameter is \(4, 6272\): it is the state of another model: continue it with the "
        r"model and optimizer it was trained with": other_optimizer.state_dict(),
        rf"for a model of {len(before['param_groups'][0]['params']) - 1} parameter tensors, this model has": (
            torch.optim.Adam(list(model.parameters())[:-1]).state_dict()
        ),
        r"does not implement: \{'amsgrad': True\}": torch.optim.Adam(model.parameters(), amsgrad=True).state_dict(),
        "not an Adam state of one parameter group: continue it": {"weights": []},
        r"not Adam's: its settings are not .*'betas': None.*trained with another optimizer": torch.optim.SGD(
            model.parameters(), lr=0.1
        ).state_dict(),
    }
    for message, state in refused.items():
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(state)
    _assert_same(model, model, optimizer.state_dict(), before)
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())


def _damaged(saved: dict, change) -> dict:
    damaged = copy.deepcopy(saved)
    change(damaged, damaged["state"][0], damaged["param_groups"][0])
    return damaged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda saved, entry, group: entry.pop("step"),
            r"parameter 0 is not Adam's .*it holds \['exp_avg', 'exp_avg_sq'\]",
        ),
        (lambda saved, entry, group: entry.update(step=None), "parameter 0 is not Adam's"),
        (lambda saved, entry, group: entry.update(step="3"), "parameter 0 is not Adam's"),
        (lambda saved, entry, group: entry.update(step=torch.tensor([3.0, 3.0])), "has step tensor.*it is damaged"),
        (lambda saved, entry, group: entry.update(step=-1.0), "has step -1.0: it is damaged"),
        (lambda saved, entry, group: entry.update(exp_avg=None), "parameter 0 is not Adam's"),
        (lambda saved, entry, group: saved["state"].update({0: None}), "parameter 0 is not Adam's .*it holds NoneType"),
        (lambda saved, entry, group: group.pop("betas"), "its settings are not a learning rate, two betas and eps"),
        (
            lambda saved, entry, group: group.update(betas=0.9),
            "its settings are not a learning rate, two betas and eps",
        ),
        (
            lambda saved, entry, group: group.update(betas=(0.9, 0.99, 0.9)),
            "its settings are not a learning rate, two betas and eps",
        ),
        (lambda saved, entry, group: group.pop("lr"), "its settings are not a learning rate, two betas and eps"),
        (
            lambda saved, entry, group: group.update(lr="0.001"),
            "its settings are not a learning rate, two betas and eps",
        ),
        (lambda saved, entry, group: group.update(params=3), "lacks its parameter list"),
        (lambda saved, entry, group: saved["state"].update({99: entry}), r"holds parameters \[99\] .*damaged"),
    ],
    ids=[
        "no step",
        "step None",
        "step text",
        "step of two values",
        "negative step",
        "no exp_avg",
        "entry None",
        "no betas",
        "betas a number",
        "three betas",
        "no lr",
        "lr text",
        "params a number",
        "unknown parameter",
    ],
)
def test_a_damaged_state_is_refused_before_anything_changes(batches, change, message) -> None:
    """Each raised KeyError, TypeError or AttributeError, or was taken and broke the next step, some after the
    optimizer's state had been replaced."""
    model, optimizer = _stepped(batches)
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(_damaged(before, change))
    _assert_same(model, model, optimizer.state_dict(), before)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999) and optimizer.param_groups[0]["lr"] == 1e-3


def test_a_run_trained_with_another_optimizer_is_not_resumed_with_adam_and_its_files_are_kept(
    small_train, small_test, tmp_path
) -> None:
    from vae_lib import Trainer

    config = TrainConfig(batch_size=64, log_every=4, step_test_images=64)
    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    trainer = Trainer(config, run_dir=tmp_path, **data)
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.01, momentum=0.9)
    trainer.fit(1)
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(
        ValueError,
        match=r"not Adam's: its settings .*'betas': None.*the run was trained with another optimizer or the "
        r"state is damaged: continue it with the model and optimizer it was trained with",
    ):
        Trainer.resume(tmp_path / "checkpoint.pt", **data)
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved


def test_a_lamb_run_whose_optimizer_was_swapped_for_adam_is_not_resumed_and_its_files_are_kept(
    small_train, small_test, tmp_path
) -> None:
    from vae_lib import Trainer

    config = TrainConfig(batch_size=64, log_every=4, step_test_images=64, lamb_rate=0.007)
    data = {"train_data": small_train, "test_data": small_test, "device": "cpu", "progress": False}
    trainer = Trainer(config, run_dir=tmp_path, **data)
    assert isinstance(trainer.optimizer, Lamb)
    trainer.optimizer = Adam(trainer.model.parameters(), lr=config.learning_rate)
    trainer.fit(1)
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match=r"is Adam's, not LAMB's: the run was trained with Adam: continue it with"):
        Trainer.resume(tmp_path / "checkpoint.pt", **data)
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved
    with pytest.raises(ValueError, match=r"trains with LAMB \(lamb_rate 0.007\).*pass a config with lamb_rate=0"):
        Trainer(config, optimizer=Adam(trainer.model.parameters()), model=trainer.model, **data)


def test_a_closure_is_called_with_gradients_and_its_loss_returned(batches) -> None:
    ours, theirs = _twins()
    returned = []
    for model, optimizer in ((ours, Adam(ours.parameters())), (theirs, torch.optim.Adam(theirs.parameters()))):

        def closure(model=model, optimizer=optimizer):
            optimizer.zero_grad()
            torch.manual_seed(7)
            output, mean, log_var = model(batches[0])
            loss = vae_loss(batches[0], output, mean, log_var, ALPHA, model.likelihood)[0]
            loss.backward()
            return loss

        returned.append(optimizer.step(closure).item())
    assert returned[0] == returned[1]
    _assert_same(ours, theirs, {"state": {}}, {"state": {}})


def test_the_step_counts_stay_on_the_cpu_whatever_the_parameters_device() -> None:
    """A step reads its counts (item()): on the CPU that waits for no device, as with torch's Adam."""
    parameter = torch.nn.Parameter(torch.zeros(3, device="meta"))
    parameter.grad = torch.ones(3, device="meta")
    optimizer = Adam([parameter])
    optimizer.step()
    state = optimizer.state[parameter]
    assert state["step"].device.type == "cpu" and state["step"].item() == 1.0
    assert state["exp_avg"].device.type == "meta"


def test_zero_grad_clears_or_zeroes_and_a_parameter_without_gradient_is_left_alone(batches) -> None:
    model, _ = _twins()
    optimizer = Adam(model.parameters())
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    kept = frozen.clone()
    _train(model, optimizer, batches[:2])
    assert torch.equal(frozen, kept) and frozen not in optimizer.state
    assert len(optimizer.state) == len(list(model.parameters())) - 1
    train_step(model, optimizer, batches[0], ALPHA)
    optimizer.zero_grad(set_to_none=False)
    gradients = [parameter.grad for parameter in model.parameters() if parameter.requires_grad]
    assert all(gradient is not None and not gradient.any() for gradient in gradients)
    optimizer.zero_grad()
    assert all(parameter.grad is None for parameter in model.parameters())
    with pytest.raises(ValueError, match="no parameters"):
        Adam([])


def test_a_process_that_trains_never_imports_torchs_compiler() -> None:
    """torch.optim imports torch._dynamo when its first optimizer is made: 1.3-2 s of each process that trains."""
    script = (
        "import sys\n"
        "from vae_lib import TrainConfig, Trainer\n"
        "from vae_lib.core.datasets import load_dataset\n"
        "train, test = load_dataset('mnist', train=True).subset(128), load_dataset('mnist', train=False).subset(64)\n"
        "data = {'train_data': train, 'test_data': test, 'device': 'cpu', 'progress': False}\n"
        "trainer = Trainer(TrainConfig(batch_size=64), **data)\n"
        "trainer.fit(1)\n"
        "print(trainer.step, 'torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "False"]
    probe = (
        "import sys, torch; "
        "torch.optim.Adam([torch.zeros(1, requires_grad=True)]); print('torch._dynamo' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "True"


# LAMB: Adam's running means, its step for the vectors, and for each matrix and kernel a step of a set length


def test_lamb_moves_each_matrix_by_its_rate_times_its_norm_and_each_vector_as_adam_does(batches) -> None:
    """At each step an Adam twin starts from LAMB's weights, so both see the same gradients and running means: the
    biases and batch norm end where Adam's do, bit for bit, and each matrix and kernel moves along Adam's step by
    layer_rate (scaled as the schedule scales lr, raised over the warm-up) times its own norm."""
    lamb_model, adam_model = _twins()
    lamb, adam = Lamb(lamb_model.parameters(), lr=2e-3, layer_rate=0.01, warmup_steps=4), Adam(adam_model.parameters())
    for index, batch in enumerate(batches[:6]):
        rate = 2e-3 * (1 - index / 10)
        lamb.param_groups[0]["lr"] = adam.param_groups[0]["lr"] = rate
        adam_model.load_state_dict(lamb_model.state_dict())
        adam.state = {
            adams: {key: value.clone() for key, value in lamb.state[lambs].items()}
            for adams, lambs in zip(adam_model.parameters(), lamb_model.parameters())
            if lambs in lamb.state
        }
        before = [parameter.detach().clone() for parameter in lamb_model.parameters()]
        for model, optimizer in ((lamb_model, lamb), (adam_model, adam)):
            torch.manual_seed(index)
            train_step(model, optimizer, batch, ALPHA)
        expected = 0.01 * (rate / 2e-3) * min(1.0, (index + 1) / 4)
        for old, new, adams in zip(before, lamb_model.parameters(), adam_model.parameters()):
            if old.dim() < 2:
                assert torch.equal(new, adams)
                continue
            moved, adams_move = (new.detach() - old).flatten(), (adams.detach() - old).flatten()
            assert (moved.norm() / old.norm()).item() == pytest.approx(expected, rel=1e-4)
            assert torch.nn.functional.cosine_similarity(moved, adams_move, dim=0) > 0.9999


def test_lamb_continues_from_its_state_dict_as_if_it_had_never_stopped(batches) -> None:
    """The saved settings win over the new optimizer's own: rates, warm-up and the schedule's reference rate."""
    stopped, straight = _twins(seed=1)
    rates = [2e-3 * (1 - index / 10) for index in range(len(batches))]
    optimizer = Lamb(stopped.parameters(), lr=2e-3, layer_rate=0.007, warmup_steps=6)
    _train(stopped, optimizer, batches[:4], learning_rates=rates[:4])
    continued = Lamb(stopped.parameters(), lr=1.0, layer_rate=0.5, warmup_steps=0)
    continued.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    _train(stopped, continued, batches[4:], learning_rates=rates[4:])
    reference = Lamb(straight.parameters(), lr=2e-3, layer_rate=0.007, warmup_steps=6)
    _train(straight, reference, batches[:4], learning_rates=rates[:4])  # the noise of each half as above
    _train(straight, reference, batches[4:], learning_rates=rates[4:])
    _assert_same(stopped, straight, continued.state_dict(), reference.state_dict())
    group = continued.param_groups[0]
    assert (group["initial_lr"], group["layer_rate"], group["warmup_steps"]) == (2e-3, 0.007, 6)


def test_adam_and_lamb_refuse_each_others_state_and_a_damaged_lamb_state_and_nothing_changes(batches) -> None:
    model, adam = _stepped(batches)
    lamb = Lamb(model.parameters(), warmup_steps=2)
    _train(model, lamb, batches[2:3])
    adams, lambs = copy.deepcopy(adam.state_dict()), copy.deepcopy(lamb.state_dict())
    weights = copy.deepcopy(model.state_dict())
    refused = [
        (adam, lambs, r"the optimizer state is LAMB's, not Adam's: the run was trained with LAMB: continue it"),
        (lamb, adams, r"the optimizer state is Adam's, not LAMB's: the run was trained with Adam: continue it"),
        (lamb, torch.optim.Adam(model.parameters()).state_dict(), r"is Adam's, not LAMB's"),
    ]
    for key, bad in (("layer_rate", -1.0), ("layer_rate", math.inf), ("initial_lr", 0), ("warmup_steps", 1.5)):
        damaged = copy.deepcopy(lambs)
        damaged["param_groups"][0][key] = bad
        refused.append((lamb, damaged, rf"LAMB settings are damaged: it needs positive finite rates .*{key} {bad!r}"))
    for optimizer, state, message in refused:
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(state)
    for optimizer, saved in ((adam, adams), (lamb, lambs)):  # the state, the settings and the weights as they were
        _assert_same(model, model, optimizer.state_dict(), saved)
        assert optimizer.state_dict()["param_groups"] == saved["param_groups"]
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize(
    "settings",
    [
        {"lr": 0.0},
        {"layer_rate": 0.0},
        {"layer_rate": -0.007},
        {"layer_rate": math.inf},
        {"warmup_steps": -1},
        {"warmup_steps": True},
    ],
)
def test_lamb_refuses_rates_that_are_not_positive_and_finite_and_a_warm_up_that_is_not_a_count(settings) -> None:
    model, _ = _twins()
    with pytest.raises(ValueError, match="LAMB needs positive finite rates and a whole number of warm-up steps"):
        Lamb(model.parameters(), **settings)


def test_lamb_moves_a_matrix_at_zero_by_adams_step_and_one_without_gradient_not_at_all() -> None:
    """A tensor at zero has no norm to scale its step by: it takes Adam's, raised over the warm-up like the rest."""
    at_zero, twin, still = (torch.nn.Parameter(torch.zeros(3, 4)) for _ in range(3))
    still.data.fill_(0.5)
    lamb, adam = Lamb([at_zero, still], lr=0.01, layer_rate=0.5, warmup_steps=4), Adam([twin], lr=0.01)
    gradient = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    at_zero.grad, twin.grad, still.grad = gradient.clone(), gradient.clone(), torch.zeros(3, 4)
    lamb.step()
    adam.step()
    assert twin.abs().min() > 0.009  # Adam's first step: about lr for each weight
    assert torch.allclose(at_zero, twin / 4)  # the first of four warm-up steps
    assert torch.equal(still, torch.full((3, 4), 0.5))
