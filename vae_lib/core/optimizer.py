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
"""

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

# torch.optim.Adam's settings that this Adam does not implement, and the value it assumes (theirs by default).
FIXED_SETTINGS: dict[str, Any] = {"weight_decay": 0, "amsgrad": False, "maximize": False, "differentiable": False}


class Adam:
    """Adam over `parameters` with one learning rate (param_groups[0]["lr"], which a schedule may set before each
    step); state_dict() and load_state_dict() write and read torch.optim.Adam's format."""

    def __init__(
        self,
        parameters: Iterable[nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("Adam was given no parameters to train")
        self.param_groups: list[dict[str, Any]] = [
            {"params": self.parameters, "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0}
        ]
        self.state: dict[nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (set them to None, or to zeros with set_to_none=False)."""
        with record_function("Optimizer.zero_grad#Adam.zero_grad"):  # the scope names torch.optim's profiles show
            for parameter in self.parameters:
                if set_to_none:
                    parameter.grad = None
                elif parameter.grad is not None:
                    parameter.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient by one step of Adam."""
        with record_function("Optimizer.step#Adam.step"):
            group = self.param_groups[0]
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            parameters = [parameter for parameter in self.parameters if parameter.grad is not None]
            states = [self._state_of(parameter) for parameter in parameters]
            gradients = [parameter.grad for parameter in parameters]
            means, squares = [state["exp_avg"] for state in states], [state["exp_avg_sq"] for state in states]
            counts = [state["step"] for state in states]
            if not parameters:
                return
            torch._foreach_add_(counts, 1)
            torch._foreach_lerp_(means, gradients, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, gradients, gradients, 1 - beta2)
            steps = [count.item() for count in counts]  # each parameter's own count, as torch's Adam keeps them
            step_sizes = [-lr / (1 - beta1**step) for step in steps]
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, [(1 - beta2**step) ** 0.5 for step in steps])
            torch._foreach_add_(denominators, eps)
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
        index = {parameter: position for position, parameter in enumerate(self.parameters)}
        settings = {key: value for key, value in self.param_groups[0].items() if key != "params"}
        return {
            "state": {index[parameter]: dict(state) for parameter, state in self.state.items()},
            "param_groups": [{**settings, "params": list(range(len(self.parameters)))}],
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a state_dict of this Adam or of torch.optim.Adam (its default settings) for the same
        parameters; raise ValueError, changing nothing, for another model's or another optimizer's state."""
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(saved.get("state"), dict):
            raise ValueError(
                "the optimizer state is not an Adam state of one parameter group (torch.optim.Adam's state_dict, "
                "as vae_lib saves it): resume from a checkpoint this package wrote"
            )
        group = groups[0]
        if len(group.get("params", ())) != len(self.parameters):
            raise ValueError(
                f"the optimizer state is for a model with {len(group.get('params', ()))} parameter tensors, this "
                f"model has {len(self.parameters)}: it belongs to another model"
            )
        unsupported = {key: group[key] for key, value in FIXED_SETTINGS.items() if group.get(key, value) != value}
        if unsupported:
            raise ValueError(
                f"the optimizer state was saved by an Adam with settings this one does not implement: {unsupported}"
            )
        parameter_of = dict(zip(group["params"], self.parameters))
        unknown = [position for position in saved["state"] if position not in parameter_of]
        if unknown:
            raise ValueError(f"the optimizer state holds parameters {unknown} its group does not list: it is damaged")
        self.state = {
            parameter_of[position]: _state_for(parameter_of[position], parameter_state, position)
            for position, parameter_state in saved["state"].items()
        }
        settings = {key: value for key, value in group.items() if key != "params"}
        self.param_groups = [{**settings, "betas": tuple(group["betas"]), "params": self.parameters}]


def _state_for(parameter: nn.Parameter, saved: dict[str, Any], position: int) -> dict[str, torch.Tensor]:
    """Return a copy of a saved parameter state (step, exp_avg, exp_avg_sq) placed like the parameter; raise
    ValueError when its shapes are not the parameter's."""
    for key in ("exp_avg", "exp_avg_sq"):
        if not isinstance(saved.get(key), torch.Tensor) or saved[key].shape != parameter.shape:
            shape = tuple(saved[key].shape) if isinstance(saved.get(key), torch.Tensor) else "missing"
            raise ValueError(
                f"the optimizer state of parameter {position} has {key} of shape {shape}, the parameter is "
                f"{tuple(parameter.shape)}: it belongs to another model"
            )
    step = torch.as_tensor(saved["step"], dtype=torch.float32).detach().clone().cpu()
    return {
        "step": step,
        "exp_avg": saved["exp_avg"].to(device=parameter.device, dtype=parameter.dtype, copy=True),
        "exp_avg_sq": saved["exp_avg_sq"].to(device=parameter.device, dtype=parameter.dtype, copy=True),
    }


# What train_step and the Trainer accept: this Adam, or any of torch.optim's (a learner's, a test's SGD).
Optimizer = torch.optim.Optimizer | Adam
