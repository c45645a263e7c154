"""Adam (Kingma & Ba 2015), the optimizer the Trainer trains with: torch.optim.Adam's update with its default
settings, bit for bit, and its state_dict format, so a checkpoint continues under either (tests/test_optimizer.py).

Why not torch.optim.Adam itself: torch.optim imports torch's compiler (torch._dynamo) the first time an optimizer
is made or stepped, 1.3-2 s of every process that trains (an eighth of a small run's time), and its step carries
the compiler's bookkeeping. This one is the same arithmetic on lists of tensors (torch._foreach_*), in the order
torch's multi-tensor Adam does it; on the CPU that is also the order of its per-tensor loop, so the bits agree on
every device. README, Speed, measures the difference.

The update, per weight w with gradient g, at step t (1, 2, ...):
    m = beta1 * m + (1 - beta1) * g                        running mean of the gradient
    v = beta2 * v + (1 - beta2) * g * g                    running mean of its square
    w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
the two (1 - beta^t) undoing the pull of m and v towards their start at 0 in the first steps.

Lamb, built on it, is LAMB (You et al. 2019), which the Trainer trains with for a config with lamb_rate > 0 (the
2d-lab recipe): Adam's running means and step for the biases and batch norm, and for each weight matrix and kernel
Adam's step rescaled so that the tensor moves by a set fraction of its own norm.
"""

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

# torch.optim.Adam's settings that this Adam does not implement, and the value it assumes (theirs by default).
FIXED_SETTINGS: dict[str, Any] = {"weight_decay": 0, "amsgrad": False, "maximize": False, "differentiable": False}
# The start of torch.optim's profiler scope names ("Optimizer.step#Adam.step"), which this Adam's scopes share, so
# that `benchmark --profile` counts both kinds of optimizer under one part.
OPTIMIZER_SCOPE = "Optimizer."
# What to do with a checkpoint whose optimizer state this Adam cannot continue.
ANOTHER_RUN = (
    "continue it with the model and optimizer it was trained with (Trainer(..., optimizer=...)), or train in a new "
    "folder"
)


class Adam:
    """Adam over `parameters` with one learning rate (param_groups[0]["lr"], which a schedule may set before each
    step); state_dict() and load_state_dict() write and read torch.optim.Adam's format. torch.optim's schedulers
    and hooks need one of its own optimizers: pass the Trainer `optimizer=torch.optim.Adam(...)` for those."""

    # The optimizer a saved state is of, as its group's "optimizer" setting names it; Adam's state has none, as
    # torch.optim.Adam's has none, and an optimizer built on this one names itself there.
    NAME = "Adam"

    def __init__(
        self,
        parameters: Iterable[nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        trained = list(parameters)
        if not trained:
            raise ValueError("Adam was given no parameters to train")
        self.param_groups: list[dict[str, Any]] = [
            {"params": trained, "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0}
        ]
        self.state: dict[nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (set them to None, or to zeros with set_to_none=False)."""
        with record_function(f"{OPTIMIZER_SCOPE}zero_grad#Adam.zero_grad"):
            for parameter in self.param_groups[0]["params"]:
                if set_to_none:
                    parameter.grad = None
                elif parameter.grad is not None:
                    parameter.grad.detach_().zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Update every parameter that has a gradient by one step of Adam; with a closure, call it first (with
        gradients on) and return its loss, as torch's optimizers do."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with record_function(f"{OPTIMIZER_SCOPE}step#{type(self).__name__}.step"):
            group = self.param_groups[0]
            parameters = [parameter for parameter in group["params"] if parameter.grad is not None]
            if not parameters:
                return loss
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            states = [self._state_of(parameter) for parameter in parameters]
            gradients = [parameter.grad for parameter in parameters]
            means, squares = [state["exp_avg"] for state in states], [state["exp_avg_sq"] for state in states]
            counts = [state["step"] for state in states]
            torch._foreach_add_(counts, 1)
            torch._foreach_lerp_(means, gradients, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, gradients, gradients, 1 - beta2)
            steps = [count.item() for count in counts]  # each parameter's own count, as torch's Adam keeps them
            step_sizes = [-lr / (1 - beta1**step) for step in steps]
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, [(1 - beta2**step) ** 0.5 for step in steps])
            torch._foreach_add_(denominators, eps)
            self._update(parameters, means, denominators, step_sizes, steps)
        return loss

    def _check_settings(self, settings: dict[str, Any]) -> None:
        """Raise ValueError unless the saved settings are of this optimizer (an optimizer built on Adam keeps
        Adam's settings and more, and names itself in the "optimizer" setting)."""
        saved = settings.get("optimizer", Adam.NAME)
        if saved != self.NAME:
            raise ValueError(
                f"the optimizer state is {saved}'s, not {self.NAME}'s: the run was trained with {saved}: {ANOTHER_RUN}"
            )

    def _update(
        self,
        parameters: list[nn.Parameter],
        means: list[torch.Tensor],
        denominators: list[torch.Tensor],
        step_sizes: list[float],
        steps: list[float],
    ) -> None:
        """Move each parameter by its step size times its running mean over its denominator: Adam's update (`steps`,
        each parameter's step count, is for optimizers built on this one)."""
        torch._foreach_addcdiv_(parameters, means, denominators, step_sizes)

    def _state_of(self, parameter: nn.Parameter) -> dict[str, torch.Tensor]:
        """Return a parameter's state, made (step count 0, zero running means) at its first update."""
        if parameter not in self.state:
            zeros = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            # the step count on the CPU whatever the device, as torch's Adam keeps it: reading it waits for nothing
            self.state[parameter] = {"step": torch.tensor(0.0), "exp_avg": zeros, "exp_avg_sq": zeros.clone()}
        return self.state[parameter]

    def state_dict(self) -> dict[str, Any]:
        """Return the state as torch.optim.Adam writes it: parameters by their index, the settings of the group."""
        trained = self.param_groups[0]["params"]
        index = {parameter: position for position, parameter in enumerate(trained)}
        settings = {key: value for key, value in self.param_groups[0].items() if key != "params"}
        return {
            "state": {index[parameter]: dict(state) for parameter, state in self.state.items()},
            "param_groups": [{**settings, "params": list(range(len(trained)))}],
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a state_dict of this Adam or of torch.optim.Adam (its default settings) for the same
        parameters; raise ValueError, changing nothing, for anything else (another model's or optimizer's state,
        a damaged one)."""
        state, settings = _checked_state(saved, self.param_groups[0]["params"])
        self._check_settings(settings)
        self.state = state
        self.param_groups = [{**settings, "params": self.param_groups[0]["params"]}]


class Lamb(Adam):
    """LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning"): Adam's step for the biases and batch
    norm; for each weight matrix and kernel (a parameter of two or more dimensions) Adam's step direction d scaled
    so that the tensor moves by a set fraction of its own norm:
        w = w - rate * |w| / |d| * d          d = m_hat / (sqrt(v_hat) + eps), Adam's bias-corrected step
    so a layer whose weights are large moves as far, relative to them, as one whose weights are small. The rate is
    `layer_rate` scaled as the schedule scales Adam's (param_groups[0]["lr"] over "initial_lr") and raised linearly
    from 0 over the first `warmup_steps` steps, when Adam's running means are still young. A tensor at zero, whose
    norm gives no scale, takes Adam's step instead (raised over the warm-up alike). No weight decay.
    The state is Adam's (step, exp_avg, exp_avg_sq for each parameter), its group Adam's settings, these three and
    "optimizer": "LAMB"."""

    NAME = "LAMB"

    def __init__(
        self,
        parameters: Iterable[nn.Parameter],
        lr: float = 1e-3,
        layer_rate: float = 0.007,
        warmup_steps: int = 0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        settings = {"initial_lr": lr, "layer_rate": layer_rate, "warmup_steps": warmup_steps}
        problem = lamb_settings_problem(settings)
        if problem:
            raise ValueError(f"LAMB needs {problem}")
        super().__init__(parameters, lr, betas, eps)
        self.param_groups[0] |= {"optimizer": self.NAME, **settings}

    def _check_settings(self, settings: dict[str, Any]) -> None:
        """Raise ValueError unless the saved settings are LAMB's, with rates and a step count it can use."""
        super()._check_settings(settings)
        problem = lamb_settings_problem(settings)
        if problem:
            raise ValueError(f"the optimizer state's LAMB settings are damaged: it needs {problem}")

    def _update(
        self,
        parameters: list[nn.Parameter],
        means: list[torch.Tensor],
        denominators: list[torch.Tensor],
        step_sizes: list[float],
        steps: list[float],
    ) -> None:
        """Adam's update for the vectors; for the matrices and kernels the step scaled to the tensor's norm,
        computed where the weights are (reading nothing back, so a step waits for no device)."""
        group = self.param_groups[0]
        vectors = [i for i, parameter in enumerate(parameters) if parameter.dim() < 2]
        matrices = [i for i, parameter in enumerate(parameters) if parameter.dim() >= 2]
        if vectors:  # Adam's own update
            super()._update(
                *([items[i] for i in vectors] for items in (parameters, means, denominators, step_sizes, steps))
            )
        if not matrices:
            return
        weights = [parameters[i] for i in matrices]
        # m / denominator is Adam's direction d times (1 - beta1^t): the ratio of the norms cancels that factor,
        # and Adam's step size (-lr / (1 - beta1^t)) puts it back for a tensor at zero
        directions = torch._foreach_div([means[i] for i in matrices], [denominators[i] for i in matrices])
        device = weights[0].device
        exact = torch.float64 if device.type != "mps" else torch.float32  # Apple's GPUs have no float64
        weight_norms = torch.stack(torch._foreach_norm(weights)).to(exact)
        direction_norms = torch.stack(torch._foreach_norm(directions)).to(exact)
        rate = group["layer_rate"] * group["lr"] / group["initial_lr"]
        warmup = group["warmup_steps"]
        warmed = [min(1.0, steps[i] / warmup) if warmup else 1.0 for i in matrices]
        rates = torch.tensor([-rate * warm for warm in warmed], dtype=exact).to(device)
        adams = torch.tensor([step_sizes[i] * warm for i, warm in zip(matrices, warmed)], dtype=exact).to(device)
        scaled = (weight_norms > 0) & (direction_norms > 0)
        scales = torch.where(scaled, rates * (weight_norms / direction_norms.where(scaled, 1.0)), adams)
        torch._foreach_mul_(directions, list(scales.to(directions[0].dtype).unbind()))
        torch._foreach_add_(weights, directions)


def lamb_settings_problem(settings: dict[str, Any]) -> str | None:
    """Return what is wrong with LAMB's settings (initial_lr and layer_rate finite numbers > 0, warmup_steps a
    whole number >= 0), or None: one rule for a new Lamb and a saved one."""
    rates = [settings.get(key) for key in ("initial_lr", "layer_rate")]
    warmup = settings.get("warmup_steps")
    rates_fit = all(isinstance(x, int | float) and not isinstance(x, bool) and 0 < x < math.inf for x in rates)
    if rates_fit and isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0:
        return None
    return (
        "positive finite rates and a whole number of warm-up steps (0: none), got initial_lr "
        f"{rates[0]!r}, layer_rate {rates[1]!r}, warmup_steps {warmup!r}"
    )


def _checked_state(
    saved: Any, trained: list[nn.Parameter]
) -> tuple[dict[nn.Parameter, dict[str, torch.Tensor]], dict[str, Any]]:
    """Return the per-parameter state (copies, placed like the parameters) and the settings of a saved Adam state
    for `trained`, or raise ValueError saying what it is instead."""
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise ValueError(f"the optimizer state is not an Adam state of one parameter group: {ANOTHER_RUN}")
    group, per_parameter = groups[0], saved.get("state")
    positions = group.get("params")
    if not isinstance(positions, list) or not isinstance(per_parameter, dict):
        raise ValueError(f"the optimizer state lacks its parameter list or its per-parameter state: {ANOTHER_RUN}")
    if len(positions) != len(trained):
        raise ValueError(
            f"the optimizer state is for a model of {len(positions)} parameter tensors, this model has "
            f"{len(trained)}: {ANOTHER_RUN}"
        )
    unsupported = {key: group[key] for key, value in FIXED_SETTINGS.items() if group.get(key, value) != value}
    if unsupported:
        raise ValueError(f"the optimizer state is of an Adam with settings this one does not implement: {unsupported}")
    settings = {key: value for key, value in group.items() if key != "params"}
    betas = settings.get("betas")
    numbers = [settings.get("lr"), settings.get("eps"), *(betas if isinstance(betas, list | tuple) else [None])]
    if len(numbers) != 4 or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
        raise ValueError(
            "the optimizer state is not Adam's: its settings are not a learning rate, two betas and eps "
            f"({ {key: settings.get(key) for key in ('lr', 'betas', 'eps')} }), so the run was trained with another "
            f"optimizer or the state is damaged: {ANOTHER_RUN}"
        )
    parameter_of = dict(zip(positions, trained))
    unknown = [position for position in per_parameter if position not in parameter_of]
    if unknown:
        raise ValueError(f"the optimizer state holds parameters {unknown} its group does not list: it is damaged")
    state = {
        parameter_of[position]: _checked_parameter_state(parameter_of[position], entry, position)
        for position, entry in per_parameter.items()
    }
    return state, {**settings, "betas": tuple(betas)}


def _checked_parameter_state(parameter: nn.Parameter, saved: Any, position: int) -> dict[str, torch.Tensor]:
    """Return a copy of one parameter's saved state (step, exp_avg, exp_avg_sq) placed like the parameter, or raise
    ValueError saying how it differs from Adam's state for that parameter."""
    keys = ("step", "exp_avg", "exp_avg_sq")
    if not isinstance(saved, dict) or not all(isinstance(saved.get(key), torch.Tensor | float | int) for key in keys):
        held = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(
            f"the optimizer state of parameter {position} is not Adam's (step, exp_avg, exp_avg_sq; it holds "
            f"{held}): the run was trained with another optimizer: {ANOTHER_RUN}"
        )
    step = torch.as_tensor(saved["step"], dtype=torch.float32).detach().clone().cpu()
    if step.dim() != 0 or not (torch.isfinite(step) and step >= 0):
        raise ValueError(f"the optimizer state of parameter {position} has step {saved['step']!r}: it is damaged")
    for key in ("exp_avg", "exp_avg_sq"):
        if not isinstance(saved[key], torch.Tensor) or saved[key].shape != parameter.shape:
            shape = tuple(saved[key].shape) if isinstance(saved[key], torch.Tensor) else type(saved[key]).__name__
            raise ValueError(
                f"the optimizer state of parameter {position} has {key} of shape {shape}, the parameter is "
                f"{tuple(parameter.shape)}: it is the state of another model: {ANOTHER_RUN}"
            )
    return {
        "step": step,
        "exp_avg": saved["exp_avg"].to(device=parameter.device, dtype=parameter.dtype, copy=True),
        "exp_avg_sq": saved["exp_avg_sq"].to(device=parameter.device, dtype=parameter.dtype, copy=True),
    }


# What train_step and the Trainer accept: this Adam or LAMB, or any of torch.optim's (a learner's, a test's SGD).
Optimizer = torch.optim.Optimizer | Adam
