"""The check of exercise 4 (notebook 01), one training step: 200 steps, each against vae_lib's train_step taken
from the same weights, optimizer state and noise, and single calls probing the model's mode, the optimizer's steps
and the gradients it is handed.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from vae_lib.core.config import is_whole_number
from vae_lib.core.data import to_model_input
from vae_lib.core.model import VAE
from vae_lib.core.objective import vae_loss
from vae_lib.core.train import train_step
from vae_lib.course.exercises.checking import (
    CHECK_WIDTHS,
    PROBE_ALPHAS,
    CheckResult,
    _call,
    _compare,
    _LearnerError,
    _near,
    _numbers,
    _result,
    _seeded,
    _weight_dtypes,
    _with_hints,
)
from vae_lib.course.exercises.loss import (
    LOSS_NAMES,
    _none_among_failure,
    _not_three_failure,
    _order_failure,
    _returned_loss_mistakes,
    _weight_hints,
)

CHECK_BATCH_SIZE = 16
# The single calls that probe a step start from the model and optimizer of this seed, with the noise of the other.
PROBE_MODEL_SEED, PROBE_NOISE_SEED = 1, 2
CHECK_ALPHA = 0.01
CHECK_LEARNING_RATE = 1e-3
# How far the state a step leaves (the weights' change, BatchNorm's running statistics, Adam's state) may be from
# train_step's from the same start, as a fraction of train_step's: each step is compared from the learner's own state,
# so rounding that differs (an equal formula written another way, float64) does not pile up from step to step. Over
# 200 steps such rewrites stayed within 4.4e-6 (losses within 3e-7); a learning rate 0.1 % off moves the change 1e-3.
STATE_TOLERANCE = 1e-4
# How close a step's gradients must be to train_step's plus those of the step before to count as piled up.
PILED_UP_TOLERANCE = 1e-3


@dataclass(frozen=True)
class WeightPenalty:
    """Gradients beyond train_step's that are `coefficient` times the weights of the parameters `penalised` names (all
    of the model's, or some): those of a penalty coefficient/2 · Σ w² over them, added to the loss minimised."""

    coefficient: float
    penalised: str  # which parameters, in words


@dataclass
class ComparedStep:
    """One call of a training step against train_step taken from the same weights, optimizer state and noise: the
    losses each returned, and how far the state the call left is from train_step's (relative gaps)."""

    losses: object
    expected_losses: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    moved: bool  # whether the learner's step changed the weights at all
    update_gap: float  # |learner's change - train_step's change| / |train_step's change| of the weights
    statistics_gap: float  # BatchNorm's running statistics after the step
    optimizer_gap: float  # Adam's state (step counts, running averages) after the step
    gradients_piled_up: bool  # the gradients after the step are train_step's plus those the step before left
    # Read only where the weights moved off train_step's (update_gap above STATE_TOLERANCE), so found only there:
    weight_penalty: WeightPenalty | None  # where the gradients are train_step's plus c times some weights (L2)
    changed_settings: str  # the optimizer's settings the step changed from those it was given, in words, or ''


def _fresh_training(seed: int) -> tuple[VAE, torch.optim.Optimizer]:
    """Return a small VAE in training mode and its Adam optimizer, the same for the same seed."""
    with _seeded(seed):
        model = VAE(latent_dim=2, widths=CHECK_WIDTHS)
    return model, torch.optim.Adam(model.parameters(), lr=CHECK_LEARNING_RATE)


def run_training_steps(step: Callable, images: torch.Tensor, steps: int) -> list[ComparedStep]:
    """Return what `steps` calls of step(model, optimizer, batch, alpha) do to a small VAE, from fixed seeds, each
    beside train_step taken from a copy of the same model and optimizer with the same noise.

    A step that raises raises _LearnerError, which names the step and the exception.
    """
    order = torch.randint(len(images), (steps, CHECK_BATCH_SIZE), generator=torch.Generator().manual_seed(0))
    with _seeded(0):
        model = VAE(latent_dim=2, widths=CHECK_WIDTHS)
        optimizer = torch.optim.Adam(model.parameters(), lr=CHECK_LEARNING_RATE)
        run: list[ComparedStep] = []
        twin, twin_optimizer = copy.deepcopy((model, optimizer))
        gradients_before = None  # those the learner's step before left on the weights
        with _recording_grad_mode(model) as grad_modes:
            for index, indices in enumerate(order):
                batch = to_model_input(images[indices])
                before = _flat_weights(model)
                _copy_training_state(model, optimizer, twin, twin_optimizer, f"step {index + 1}")
                noise = torch.get_rng_state()
                expected = train_step(twin, twin_optimizer, batch, CHECK_ALPHA)
                torch.set_rng_state(noise)
                hints = partial(_step_error_hints, grad_modes, model)
                losses = _call(f"step {index + 1}", step, model, optimizer, batch, CHECK_ALPHA, hints=hints)
                after = _flat_weights(model)
                if len(after) != len(before):
                    raise _LearnerError(
                        _with_hints(
                            f"Step {index + 1}: the model holds {len(after)} weight values after the step, "
                            f"{len(before)} before it.",
                            [
                                "the step adds weights to the model or removes some (a new nn.Parameter, a layer): "
                                "a training step trains the model it is given, as it is."
                            ],
                        )
                    )
                change, gradients = after - before, _flat_gradients(model)
                expected_gradients = _flat_gradients(twin)
                update_gap = _relative_gap(change, _flat_weights(twin) - before)
                moved_off = not update_gap <= STATE_TOLERANCE
                run.append(
                    ComparedStep(
                        _numpy_numbers_as_floats(losses),
                        expected,
                        bool(change.any()),
                        update_gap,
                        _relative_gap(_running_statistics(model), _running_statistics(twin)),
                        _adam_state_gap(optimizer, twin_optimizer),
                        gradients_before is not None
                        and bool(gradients_before.any())
                        and _relative_gap(gradients, expected_gradients + gradients_before) < PILED_UP_TOLERANCE,
                        _weight_penalty(gradients - expected_gradients, before, model) if moved_off else None,
                        _changed_settings(optimizer, twin_optimizer) if moved_off else "",
                    )
                )
                gradients_before = gradients
    return run


def _weight_penalty(extra_gradients: torch.Tensor, weights: torch.Tensor, model: nn.Module) -> WeightPenalty | None:
    """Return the penalty whose gradients the gradients beyond train_step's are (within 1 %): c times the weights of
    every parameter, or of some (the weights but not the biases, say), zero elsewhere; else None."""
    parameters = dict(model.named_parameters())
    sizes = [parameter.numel() for parameter in parameters.values()]
    pieces = list(zip(parameters, extra_gradients.split(sizes), weights.split(sizes)))
    penalised = {name for name, extra, own in pieces if _penalty_coefficient(extra, own) is not None}
    mask = torch.cat([torch.full((size,), float(name in penalised)) for name, size in zip(parameters, sizes)])
    masked = weights * mask.to(weights.dtype)
    c = _penalty_coefficient(extra_gradients, masked)
    if c is None:
        return None
    # A parameter whose weights are too small for c times them to show (BatchNorm's shifts start at 0) may or may
    # not be penalised: it decides nothing in the words.
    telling = {name for name, _, own in pieces if own.norm() > 1e-3 * masked.norm()}
    return WeightPenalty(c, _which_parameters(penalised & telling, telling - penalised, parameters))


def _penalty_coefficient(extra_gradients: torch.Tensor, weights: torch.Tensor) -> float | None:
    """Return c > 0 where the gradients beyond train_step's are c times these weights (within 1 %), else None."""
    norm = weights @ weights
    if norm == 0:
        return None
    c = (extra_gradients @ weights / norm).item()
    return c if c > 0 and _relative_gap(extra_gradients, c * weights) <= 1e-2 else None


def _which_parameters(penalised: set[str], spared: set[str], parameters: dict[str, nn.Parameter]) -> str:
    """Return, in words, which of the model's parameters a penalty is on: `penalised` are, `spared` are not (the
    others may be either)."""
    if not spared:
        return "the weights"
    kinds = {
        "the layers' weights but not their biases": {name for name in parameters if name.endswith("weight")},
        "the layers' weight matrices and kernels, not their biases or BatchNorm's scales": {
            name for name, parameter in parameters.items() if parameter.dim() > 1
        },
    }
    for words, names in kinds.items():
        if penalised <= names and not spared & names:
            return words
    listed = sorted(penalised, key=list(parameters).index)
    shown = ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
    return f"some of the parameters ({shown}; {len(listed)} of {len(parameters)})"


def _weight_penalty_failure(step: int, penalty: WeightPenalty) -> str:
    """Return the failure of a step whose gradients are train_step's plus a penalty's on the weights."""
    c, which = penalty.coefficient, penalty.penalised
    return _with_hints(
        f"Step {step}: the gradients optimizer.step() used are train_step's plus {c:.3g} times {which}.",
        [
            f"a penalty on the size of {which} ({c / 2:.3g} · Σ w², an L2 term or weight decay, or a multiple of "
            "their norm) is added to the loss minimised: the exercise's step minimises reconstruction + alpha · KL "
            "alone, the loss it returns."
        ],
    )


def _copy_training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    twin: nn.Module,
    twin_optimizer: torch.optim.Optimizer,
    case: str,
) -> None:
    """Load the learner's model and optimizer state into the check's copies (the optimizer's as a copy: else the two
    share tensors), keeping the copy's learning rate and other settings, those the check set, whatever the learner's
    steps did to them; raise _LearnerError when the learner's step has made the model or optimizer into another one."""
    settings = [
        {key: value for key, value in group.items() if key != "params"} for group in twin_optimizer.param_groups
    ]
    try:
        twin.load_state_dict(model.state_dict(), strict=False)  # a buffer of the learner's own is no weight
        twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        for group, setting in zip(twin_optimizer.param_groups, settings):
            group.update(setting)
    except (RuntimeError, ValueError, KeyError) as error:
        raise _LearnerError(
            _with_hints(
                f"Case *{case}*: the model or optimizer left by the step before is no longer the one it was given "
                f"({type(error).__name__}: {str(error).splitlines()[0]}).",
                ["a training step trains the model it is given: it does not replace its layers or its optimizer."],
            )
        ) from error


def _changed_settings(optimizer: torch.optim.Optimizer, given: torch.optim.Optimizer) -> str:
    """Return the settings (lr, weight_decay, betas, ...) in which `optimizer` differs from `given`, the check's copy
    that keeps those the check set, as 'name given → now' for each; '' when none differs."""
    changes = []
    for group, expected in zip(optimizer.param_groups, given.param_groups):
        for key, value in expected.items():
            now = group.get(key)
            if key != "params" and not _same_setting(now, value):
                changes.append(f"{key} {_setting_text(value)} → {_setting_text(now)}")
    return ", ".join(dict.fromkeys(changes))


def _setting_text(value: object) -> str:
    """Return an optimizer setting as text, a float to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _same_setting(now: object, given: object) -> bool:
    """Return True when an optimizer setting is what it was given (a number, tuple, None or tensor)."""
    try:
        if isinstance(now, torch.Tensor) or isinstance(given, torch.Tensor):
            return torch.equal(torch.as_tensor(now).double(), torch.as_tensor(given).double())
        return bool(now == given)
    except (RuntimeError, TypeError, ValueError):
        return False


def _adam_state_gap(optimizer: torch.optim.Optimizer, expected: torch.optim.Optimizer) -> float:
    """Return how far Adam's state in `optimizer` is from `expected`'s: the largest relative gap of its step counts,
    its running averages of the gradients and of their squares, each part compared on its own (their scales differ by
    orders of magnitude). A parameter without state (cleared) counts as zeros."""

    def part(optimizer: torch.optim.Optimizer, key: str) -> torch.Tensor:
        values = []
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                value = optimizer.state.get(parameter, {}).get(key)
                size = 1 if key == "step" else parameter.numel()
                values.append(
                    torch.zeros(size, dtype=torch.float64)
                    if value is None
                    else torch.as_tensor(value).detach().flatten().double()
                )
        return torch.cat(values)

    return max(_relative_gap(part(optimizer, key), part(expected, key)) for key in ("step", "exp_avg", "exp_avg_sq"))


def _numpy_numbers_as_floats(losses: object) -> object:
    """Return a step's losses with each NumPy number or 0-d array (loss.detach().numpy()) as a Python float, which the
    check takes as it takes loss.item()'s; anything else as it is."""
    if not isinstance(losses, tuple | list) or not any(_is_numpy_number(loss) for loss in losses):
        return losses
    return tuple(float(loss) if _is_numpy_number(loss) else loss for loss in losses)


def _is_numpy_number(value: object) -> bool:
    """Return whether `value` is a NumPy real number or a 0-d array of one."""
    return (
        isinstance(value, np.generic | np.ndarray)
        and np.ndim(value) == 0
        and np.issubdtype(np.asarray(value).dtype, np.number)
        and not np.iscomplexobj(value)
    )


@contextmanager
def _recording_grad_mode(model: nn.Module) -> Iterator[list[bool]]:
    """Record, for each forward pass of the model in a block, whether gradients were on (off under torch.no_grad())."""
    with _recording_forward_passes(model, lambda _: torch.is_grad_enabled()) as grad_modes:
        yield grad_modes


# What a recorder of the model's forward passes keeps of each (whether gradients were on, the images given).
PassRecord = TypeVar("PassRecord")


@contextmanager
def _recording_forward_passes(model: nn.Module, state: Callable[[tuple], PassRecord]) -> Iterator[list[PassRecord]]:
    """Record state(arguments) at each forward pass of the model in a block, given the pass's arguments."""
    states: list[PassRecord] = []
    hook = model.register_forward_pre_hook(lambda _, arguments: states.append(state(arguments)))
    try:
        yield states
    finally:
        hook.remove()


def _autocast_on(_: tuple) -> bool:
    """Return whether torch.autocast is on for the CPU (a forward pass in bf16 or float16)."""
    return torch.is_autocast_enabled("cpu")


def _given_images(arguments: tuple) -> torch.Tensor | None:
    """Return a copy of the images a forward pass is given (its first argument), or None when it is not a tensor."""
    return arguments[0].detach().clone() if arguments and isinstance(arguments[0], torch.Tensor) else None


def _step_error_hints(grad_modes: Sequence[bool], model: nn.Module, error: Exception) -> list[str]:
    """Return a hint on why a training step raised, from the error, whether its forward pass recorded a graph and
    whether the model's weights still require gradients."""
    text = str(error)
    frozen = _frozen_weights(model)
    if "does not require grad" in text and frozen:
        return [_frozen_hint(frozen)]
    if "does not require grad" in text:
        if grad_modes and not grad_modes[-1]:
            return [
                "the forward pass ran under torch.no_grad() (or torch.inference_mode()), so it recorded no graph for "
                "backward() to follow: the forward pass must not be under torch.no_grad(), which is for evaluating."
            ]
        return [
            "the loss is cut from the model's graph before backward() (.detach(), .item(), or rebuilt with "
            "torch.tensor(...)): call backward() on the loss computed from model(batch)."
        ]
    if "backward through the graph a second time" in text:
        return ["backward() is called twice on one forward pass: call it once per step, on the total loss."]
    attribute = re.search(r"'(?:tuple|list)' object has no attribute '(\w+)'", text)
    if isinstance(error, AttributeError) and attribute and attribute[1] == "backward":
        return [
            "vae_loss (and your loss_function) returns three losses, (total, reconstruction, KL), as one tuple: "
            "unpack them, total, reconstruction, kl = vae_loss(...), and call total.backward()."
        ]
    if isinstance(error, AttributeError) and attribute:
        return [
            f"a tuple has no .{attribute[1]}: model(batch) returns (reconstruction, mean, log_var) and vae_loss(...) "
            "returns (total, reconstruction, kl), each a plain tuple: unpack them, then use each tensor."
        ]
    latent_dim = getattr(model, "latent_dim", None)
    if _latents_met_images(text, latent_dim):
        return [
            f"a latent's values ({latent_dim} per image) met an image's pixels in one operation: model(batch) returns "
            "reconstruction, mean, log_var in this order. Are they unpacked in another order, or passed to the loss "
            "in another? The loss takes (images, reconstruction, mean, log_var, alpha)."
        ]
    return []


def _latents_met_images(text: str, latent_dim: object) -> bool:
    """Return whether an error says a tensor of latents (`latent_dim` values per image) met images: torch's size
    mismatch between the latent size and an image side, or vae_loss's reconstruction of latent shape."""
    sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", text)
    if sizes:
        met = {int(sizes[1]), int(sizes[2])}
        return latent_dim in met and bool(met & {28, 14, 7})
    reconstruction = re.search(r"reconstruction \(\d+, (\d+)\) must have the same shape", text)
    return bool(reconstruction) and int(reconstruction[1]) == latent_dim


def _frozen_weights(model: nn.Module) -> list[str]:
    """Return the names of the model's weights that no longer require gradients."""
    return [name for name, parameter in model.named_parameters() if not parameter.requires_grad]


def _frozen_hint(frozen: Sequence[str]) -> str:
    """Return the hint for a step that left weights not requiring gradients (frozen)."""
    more = f" and {len(frozen) - 1} more" if len(frozen) > 1 else ""
    return (
        f"the model's weights {frozen[0]}{more} no longer require gradients (requires_grad_(False) left on after a "
        "step), so they stop training: a training step leaves every weight trainable."
    )


def _flat_weights(model: nn.Module) -> torch.Tensor:
    """Return the model's parameters as one float64 vector."""
    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()]).double()


def _flat_gradients(model: nn.Module) -> torch.Tensor:
    """Return the model's gradients as one float64 vector, zeros where a parameter has none."""
    return torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).detach().flatten() for p in model.parameters()]
    ).double()


def _running_statistics(model: nn.Module) -> torch.Tensor:
    """Return BatchNorm's running means and variances as one vector (a forward pass in training mode moves them)."""
    return torch.cat(
        [buffer.detach().flatten().double() for name, buffer in model.named_buffers() if "running" in name]
    )


@dataclass
class StepProbe:
    """What one call of a training step did: what it returned, what optimizer.step() saw, the model's mode."""

    returned: object
    gradients: list[torch.Tensor]  # the model's gradients at each optimizer.step() call
    training: bool  # the model's mode after the call
    batchnorm_moved: bool  # whether the forward pass ran in training mode
    weights_changed: bool  # whether any weight changed, by the optimizer given or by any other means
    frozen: list[str]  # the weights that no longer require gradients after the call
    autocast: bool  # whether a forward pass of the call ran under torch.autocast
    weight_dtypes: list[str]  # the names of the weights' dtypes after the call
    gradients_left: bool  # whether the model holds gradients other than zero after the call
    model_inputs: list[torch.Tensor]  # the images each forward pass of the model was given


def _probe_step(
    step: Callable,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    alpha: float,
    seed: int,
    case: str = "step 1",
) -> StepProbe:
    """Call step(model, optimizer, batch, alpha) once with the noise of `seed`, recording what optimizer.step() saw.

    The hook is on the optimizer passed in: an optimizer the step makes itself is seen only by the weights it moves.
    """
    gradients: list[torch.Tensor] = []
    hook = optimizer.register_step_post_hook(lambda *_: gradients.append(_flat_gradients(model)))
    statistics, weights = _running_statistics(model), _flat_weights(model)
    try:
        with (
            _seeded(seed),
            _recording_grad_mode(model) as grad_modes,
            _recording_forward_passes(model, _autocast_on) as autocast,
            _recording_forward_passes(model, _given_images) as model_inputs,
        ):
            hints = partial(_step_error_hints, grad_modes, model)
            returned = _call(case, step, model, optimizer, batch, alpha, hints=hints)
    finally:
        hook.remove()
    return StepProbe(
        returned,
        gradients,
        model.training,
        not torch.equal(statistics, _running_statistics(model)),
        not torch.equal(weights, _flat_weights(model)),
        _frozen_weights(model),
        any(autocast),
        _weight_dtypes(model),
        bool(_flat_gradients(model).abs().max() > 0),
        [images for images in model_inputs if images is not None],
    )


@dataclass
class LossGradients:
    """One forward pass of a model: its (total, reconstruction, kl) losses and the gradients of the two terms."""

    losses: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    reconstruction: torch.Tensor
    kl: torch.Tensor


def _loss_gradients(
    model: nn.Module, batch: torch.Tensor, alpha: float, seed: int, swapped: bool = False
) -> LossGradients:
    """Return the losses and each term's gradient for a copy of the model in training mode, with the noise of `seed`
    (with `swapped`, those of the loss given log_var where it takes mean, and mean where it takes log_var)."""
    twin = copy.deepcopy(model).train().requires_grad_(True)
    with _seeded(seed):
        reconstruction, mean, log_var = twin(batch)
    losses = vae_loss(batch, reconstruction, *((log_var, mean) if swapped else (mean, log_var)), alpha)
    parameters = list(twin.parameters())
    return LossGradients(
        tuple(loss.detach() for loss in losses),
        _gradient(losses[1], parameters).double(),
        _gradient(losses[2], parameters).double(),
    )


def _gradient(loss: torch.Tensor, parameters: Sequence[nn.Parameter]) -> torch.Tensor:
    """Return the loss's gradient with respect to the parameters as one vector (zeros where it does not reach), the
    graph kept for the next."""
    parts = torch.autograd.grad(loss, list(parameters), retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(parameters, parts)])


# What the gradients a step used may be, when they are not the batch's two terms'.
SWAPPED_OUTPUTS_HINT = (
    "they are the gradients of the loss given log_var where it takes mean and mean where it takes log_var: the model "
    "returns (reconstruction, mean, log_var), in that order; pass them to the loss in the order it takes them, "
    "vae_loss(batch, reconstruction, mean, log_var, alpha)."
)


OTHER_LOSS_HINT = (
    "the loss minimised is not reconstruction + alpha · KL of this batch's outputs: a loss or KL "
    "formula of your own that differs (check_loss and check_kl_divergence check them), a loss from "
    "another forward pass, z not drawn afresh (μ decoded, or torch.manual_seed in the step), or "
    "gradients changed between backward() and step(): run model(batch) once, take vae_loss of its "
    "outputs, backward(), step(). If your step draws z itself, or uses random numbers before "
    "model(batch) (a shuffle), a right formula fails here too: the check compares with train_step "
    "under the same noise, which only model(batch)'s own draw of ε (randn_like) matches."
)


def _targets_hint(scale: float, shift: float) -> str:
    """Return the hint for a step whose reconstruction term compares with scale · batch + shift (or that adds a term
    linear in x̂ to the loss: its gradients are the same)."""
    if abs(scale) < 1e-3:
        return (
            f"the reconstruction is compared with a constant, {shift if abs(shift) >= 1e-3 else 0:.4g}, not with the "
            "batch (or a term such as mean(x̂²) is added to the loss, which has the same gradients): compare it with "
            "the batch, vae_loss(batch, reconstruction, mean, log_var, alpha)."
        )
    if math.isclose(scale, 0.5, rel_tol=1e-2) and math.isclose(shift, 0.5, rel_tol=1e-2):
        targets = "(batch + 1) / 2, images in [0, 1]"
    else:
        shifted = f" {'+' if shift >= 0 else '-'} {abs(shift):.4g}" if abs(shift) >= 1e-3 else ""
        targets = f"{scale:.4g} · batch{shifted}"
    return (
        f"the reconstruction is compared with {targets}, where the decoder draws images in [-1, 1] as the batch "
        "comes (or a term in x̂, such as c · mean(x̂) or c · mean(x̂ · batch), is added to the loss, which has the "
        "same gradients): compare it with the batch itself, vae_loss(batch, reconstruction, mean, log_var, alpha)."
    )


def _affine_targets(gradients: torch.Tensor, batch: torch.Tensor, alpha: float) -> tuple[float, float] | None:
    """Return (a, b) when a probe's gradients are those of ½·mean((x̂ - (a · batch + b))²) + alpha · KL, the
    reconstruction compared with rescaled images, with (a, b) not (1, 0); else None. That loss's gradient is
    ∇½·mean(x̂²) - a · ∇mean(x̂ · batch) - b · ∇mean(x̂) + alpha · ∇KL, so a least-squares fit of the gradients on
    those four, from the probes' fresh model and noise, gives a and b."""
    model = copy.deepcopy(_fresh_training(PROBE_MODEL_SEED)[0]).train().requires_grad_(True)
    with _seeded(PROBE_NOISE_SEED):
        reconstruction, mean, log_var = model(batch)
    parameters = list(model.parameters())
    kl = vae_loss(batch, reconstruction, mean, log_var, alpha)[2]
    basis = torch.stack(
        [
            _gradient(0.5 * reconstruction.pow(2).mean(), parameters),
            -_gradient((reconstruction * batch).mean(), parameters),
            -_gradient(reconstruction.mean(), parameters),
            _gradient(kl, parameters),
        ],
        dim=1,
    ).double()
    weights = torch.linalg.lstsq(basis, gradients.unsqueeze(1)).solution.squeeze(1)
    if _relative_gap(basis @ weights, gradients) > 1e-3:
        return None
    square, scale, shift, kl_weight = weights.tolist()
    if not (math.isclose(square, 1.0, rel_tol=1e-2) and math.isclose(kl_weight, alpha, rel_tol=1e-2)):
        return None
    if abs(scale - 1) < 1e-3 and abs(shift) < 1e-3:  # the batch itself, to the fit's rounding
        return None
    return scale, shift


def _minimises_the_swapped_loss(gradients: torch.Tensor, batch: torch.Tensor, alpha: float) -> bool:
    """Return True when a probe's gradients are those of the loss given mean and log_var swapped, from the probes'
    fresh model and noise."""
    model = _fresh_training(PROBE_MODEL_SEED)[0]
    swapped = _loss_gradients(model, batch, alpha, seed=PROBE_NOISE_SEED, swapped=True)
    return _relative_gap(gradients, swapped.reconstruction + alpha * swapped.kl) < 1e-2


def _rows_of(given: torch.Tensor, batch: torch.Tensor) -> bool:
    """Return whether every image given is one of the batch's (the batch itself, or shuffled: a right formula with
    other noise, which OTHER_LOSS_HINT explains)."""
    distances = torch.cdist(given.flatten(1).double(), batch.flatten(1).double())
    return bool(distances.min(dim=1).values.max() < 1e-5)


def _other_loss_hint(probe: StepProbe, batch: torch.Tensor, alpha: float) -> str:
    """Return the hint for a step whose gradients are not a sum of the batch's two terms: the model run on other
    images than the batch, or piece by piece; a loss given its outputs in another order, or other targets."""
    inputs = probe.model_inputs
    sizes = [len(images) for images in inputs]
    if len(inputs) > 1 and max(sizes) < len(batch) and sum(sizes) >= len(batch):
        return (
            f"the model ran {len(inputs)} times, on {sizes[0]} of the batch's {len(batch)} images at a time: in "
            "training mode BatchNorm normalises each forward pass with its own images' statistics, so a loop over "
            "the images (or pieces of the batch) takes another step than one pass, however its losses are "
            "averaged. Run model(batch) once on the whole batch."
        )
    if len(inputs) == 1 and inputs[0].shape == batch.shape and not _rows_of(inputs[0], batch):
        given = inputs[0]
        if torch.allclose(given, (batch + 1) / 2, atol=1e-6):
            return (
                "the model was given (batch + 1) / 2, images in [0, 1], where it trains on the batch as it comes, in "
                "[-1, 1] (the images its decoder draws, and the loss's targets, are in [-1, 1] too): pass the batch "
                "unchanged, model(batch)."
            )
        return (
            f"the model was given other images than the batch (values {given.min().item():.3g} to "
            f"{given.max().item():.3g}, the batch's {batch.min().item():.3g} to {batch.max().item():.3g}): pass the "
            "batch unchanged, model(batch)."
        )
    if _minimises_the_swapped_loss(probe.gradients[0], batch, alpha):
        return SWAPPED_OUTPUTS_HINT
    targets = _affine_targets(probe.gradients[0], batch, alpha)
    return OTHER_LOSS_HINT if targets is None else _targets_hint(*targets)


def _relative_gap(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Return |got - expected| / |expected|: how far one gradient is from another."""
    return ((got - expected).norm() / expected.norm().clamp_min(1e-12)).item()


def _step_mechanics_failure(probe: StepProbe) -> str:
    """Return '' when one call ran the forward pass in training mode and took one step on a nonzero gradient."""
    if not probe.training:
        return _with_hints(
            "Step 1: the model is in eval mode after the step.",
            [
                "model.eval() is called in the training step: a step trains in training mode (BatchNorm normalises "
                "with the batch's statistics and updates its running averages); eval mode is for evaluating."
            ],
        )
    if probe.frozen:
        return _with_hints("Step 1: after the step, weights no longer require gradients.", [_frozen_hint(probe.frozen)])
    if probe.autocast:
        return _with_hints(
            "Step 1: the forward pass ran under torch.autocast.",
            [
                "in bf16 (or float16) each value keeps 2-3 significant digits, so the losses and gradients differ "
                "from float32's by far more than the float32 rounding the check allows: train this step in float32, "
                "without autocast (vae_lib's Trainer uses autocast for speed; train_step only when asked)."
            ],
        )
    if probe.weight_dtypes != ["float32"]:
        dtype = probe.weight_dtypes[0] if len(probe.weight_dtypes) == 1 else "of more than one dtype"
        return _with_hints(
            f"Step 1: after the step, the model's weights are {dtype}, where it was given them in float32.",
            [
                "the step converts the model (model.double(), .half() or .to(dtype)): a training step trains the "
                "model in the dtype it is given, which the rest of the notebook uses (its images are float32). To "
                "compute the loss in float64, convert the model's outputs, not the model."
            ],
        )
    if not probe.batchnorm_moved:
        return _with_hints(
            "Step 1: BatchNorm's running statistics did not change.",
            [
                "the forward pass ran in eval mode (model.eval() before model(batch)), or the statistics were reset "
                "after it (reset_running_stats()): run it in training mode, and leave the statistics it updates."
            ],
        )
    if not probe.gradients and probe.weights_changed:
        return _with_hints(
            "Step 1: the weights changed, but the optimizer the step is given never took a step.",
            [
                "the step must use the optimizer it is given, not make its own (or change the weights by hand): "
                "call optimizer.zero_grad(), total.backward() and optimizer.step() on the `optimizer` argument. An "
                "optimizer made anew in each step also forgets Adam's running averages from one step to the next."
            ],
        )
    if not probe.gradients:
        return _with_hints("Step 1: the weights did not change.", ["optimizer.step() is missing."])
    if len(probe.gradients) > 1:
        return _with_hints(
            f"Step 1: optimizer.step() was called {len(probe.gradients)} times for one batch.",
            ["one optimisation step per batch: call optimizer.step() once."],
        )
    if probe.gradients[0].abs().max() == 0 and probe.gradients_left:
        return _with_hints(
            "Step 1: the gradients were zero when optimizer.step() ran, and filled after it.",
            [
                "backward() runs after optimizer.step(), so optimizer.step() never sees this batch's gradients: "
                "zero the gradients first, then backward(), then step()."
            ],
        )
    if probe.gradients[0].abs().max() == 0:
        return _with_hints(
            "Step 1: the gradients were zero when optimizer.step() ran.",
            [
                "backward() is not called, or called on a loss cut from the model's graph (rebuilt as "
                "torch.tensor(loss.item(), requires_grad=True), or detached and given requires_grad_()), or "
                "zero_grad() is called between backward() and step(): zero the gradients first, then call "
                "backward() on the loss computed from model(batch), then step()."
            ],
        )
    return ""


def _probe_failures(step: Callable, images: torch.Tensor, previous: object) -> Iterator[str]:
    """Yield failures found by single calls of the step: its mode, its optimizer steps, the loss it minimises at two
    alphas, its zero_grad, and the losses it returns (`previous`: the losses of the call before the first probe)."""
    indices = torch.arange(2 * CHECK_BATCH_SIZE) % len(images)
    first_batch, second_batch = to_model_input(images[indices]).split(CHECK_BATCH_SIZE)
    recon_weights, kl_weights, probes = [], [], []
    for alpha in PROBE_ALPHAS:
        model, optimizer = _fresh_training(PROBE_MODEL_SEED)
        reference = _loss_gradients(model, first_batch, alpha, seed=PROBE_NOISE_SEED)
        weights_before = _flat_weights(model)
        probe = _probe_step(step, model, optimizer, first_batch, alpha, seed=PROBE_NOISE_SEED)
        failure = _step_mechanics_failure(probe)
        if failure:
            yield failure
            return
        if not torch.isfinite(probe.gradients[0]).all():  # lstsq refuses NaN
            yield _with_hints(
                "Step 1: the gradients optimizer.step() used are NaN or infinite.",
                [
                    "the loss minimised takes a log or square root of something that can be negative or zero: check "
                    "your loss with check_loss, then minimise reconstruction + alpha · KL."
                ],
            )
            return
        basis = torch.stack([reference.reconstruction, reference.kl], dim=1)
        weights = torch.linalg.lstsq(basis, probe.gradients[0].unsqueeze(1)).solution.squeeze(1)
        off_the_terms = _relative_gap(basis @ weights, probe.gradients[0]) > 1e-2
        penalty = off_the_terms and _weight_penalty(
            probe.gradients[0] - basis @ torch.tensor([1.0, alpha], dtype=basis.dtype), weights_before, model
        )
        if penalty:
            yield _weight_penalty_failure(1, penalty)
            return
        if off_the_terms:
            yield _with_hints(
                "Step 1: the gradients optimizer.step() used are not those of the batch's reconstruction and KL terms.",
                [_other_loss_hint(probe, first_batch, alpha)],
            )
            return
        recon_weights.append(weights[0].item())
        kl_weights.append(weights[1].item())
        probes.append((model, optimizer, probe, reference))
    hints = _weight_hints(
        recon_weights,
        kl_weights,
        PROBE_ALPHAS,
        "the minimised loss",
        CHECK_BATCH_SIZE,
        from_gradients=True,
        latent_dim=model.latent_dim,
    )
    targets = _affine_targets(probes[0][2].gradients[0], first_batch, PROBE_ALPHAS[0]) if hints else None
    if targets is not None:  # targets near the batch (0.99 · batch) give gradients near the two terms' span
        hints = [_targets_hint(*targets)]
    elif _rescaled_gradients(recon_weights, kl_weights):
        hints = [
            "the gradients point as those of reconstruction + alpha · KL do, but are scaled by "
            f"{_numbers(recon_weights)} at alpha = {_numbers(PROBE_ALPHAS)}, a factor not the same at the two: "
            "are they clipped (clip_grad_norm_) or normalised? Step on the gradient as backward() leaves it."
        ]
    if hints:
        yield _with_hints(
            "Step 1: the gradients optimizer.step() used are not those of reconstruction + alpha · KL.", hints
        )
        return
    model, optimizer, first, reference = probes[0]
    yield _order_failure("step 1", "the losses", first.returned, reference.losses)
    for alpha, (_, _, probe, expected) in zip(PROBE_ALPHAS, probes):  # a step's own alpha written in shows here
        returned = _numpy_numbers_as_floats(probe.returned)
        if isinstance(returned, tuple | list) and len(returned) == 3:
            second_pass = cache(partial(_after_step_losses, first_batch, alpha))  # asked for by each wrong loss
            after_step = partial(_after_step_hints, returned, second_pass, partial(_returned_total_hints, alpha))
            hints = partial(_previous_call_hints, returned, previous, after_step)
            yield from _returned_losses_failures(
                f"step 1 at alpha = {alpha:g}", returned, expected.losses, alpha, hints
            )
        previous = expected.losses
    alpha = PROBE_ALPHAS[0]
    following = _loss_gradients(model, second_batch, alpha, seed=3)
    second = _probe_step(step, model, optimizer, second_batch, alpha, seed=3, case="step 2")
    expected = following.reconstruction + alpha * following.kl
    if second.gradients and _relative_gap(second.gradients[0], expected + first.gradients[0]) < 1e-3:
        yield _with_hints(
            "Step 2: the gradients optimizer.step() used hold step 1's gradients too.",
            ["optimizer.zero_grad() is missing, so gradients add up from step to step."],
        )


def _after_step_losses(batch: torch.Tensor, alpha: float) -> list[tuple[torch.Tensor, ...]]:
    """Return the losses of a second forward pass after train_step's step from the probe's weights and noise, in
    training mode and in eval mode: what a step returns when it computes its losses again after optimizer.step()."""
    model, optimizer = _fresh_training(PROBE_MODEL_SEED)
    found = []
    with _seeded(PROBE_NOISE_SEED):
        train_step(model, optimizer, batch, alpha)
        noise = torch.get_rng_state()  # the second pass draws the noise that follows the step's
        for training in (False, True):  # eval first: a pass in training mode moves BatchNorm's statistics
            torch.set_rng_state(noise)
            with torch.no_grad():
                found.append(vae_loss(batch, *model.train(training)(batch), alpha))
    return found


def _after_step_hints(
    returned: object,
    after_step: Callable[[], list[tuple[torch.Tensor, ...]]],
    otherwise: Callable[[str], list[str]],
    label: str,
) -> list[str]:
    """Return the hint for returned losses that are those of a second forward pass after the step (`after_step`
    computes them), all three or the one named `label`, else otherwise(label)'s."""
    if any(_same_losses(returned, losses) for losses in after_step()):
        return [
            "these are the losses of a second forward pass after optimizer.step(), of the weights the step has just "
            "changed and of fresh noise: return the losses of the forward pass whose gradients the step took."
        ]
    position = LOSS_NAMES.index(label)
    if any(_same_loss(returned[position], losses[position]) for losses in after_step()):
        return [
            "this is the loss of a second forward pass after optimizer.step(), of the weights the step has just "
            "changed and of fresh noise: return each loss from the forward pass whose gradients the step took."
        ]
    return otherwise(label)


def _returned_total_hints(alpha: float, label: str) -> list[str]:
    """Return the hint for a returned total that is wrong at a probe's alpha, where the one minimised was right."""
    if label != "total":
        return []
    return [
        f"the total returned is not reconstruction + {alpha:g} · KL with the alpha the step is given, though the loss "
        "minimised is: is alpha written in as a number where the returned total is computed?"
    ]


def _previous_call_hints(
    returned: object, previous: object, otherwise: Callable[[str], list[str]], label: str
) -> list[str]:
    """Return the hint for returned losses that are those of the step's call before (`previous`, train_step's from the
    same state), else otherwise(label)'s."""
    if not _same_losses(returned, previous):
        return otherwise(label)
    return [
        "these are the losses of the step's call before this one, the batch before's: is a loss kept from the last "
        "call (in a global, a list or a default argument) returned in place of this call's? Return this batch's losses."
    ]


def _same_losses(returned: object, previous: object) -> bool:
    """Return whether a step returned the three losses `previous` to float rounding (two batches never give them)."""
    if not all(isinstance(losses, tuple | list) and len(losses) == 3 for losses in (returned, previous)):
        return False
    return all(_same_loss(a, b) for a, b in zip(returned, previous))


def _same_loss(returned: object, expected: object) -> bool:
    """Return whether a returned loss is `expected` to float rounding; False for what is not one number."""
    try:
        return math.isclose(float(returned), float(expected), rel_tol=1e-5)
    except (TypeError, ValueError, RuntimeError):  # not numbers, or tensors of more than one value
        return False


def _rescaled_gradients(recon_weights: Sequence[float], kl_weights: Sequence[float]) -> bool:
    """Return True when the gradients at each alpha are those of reconstruction + alpha · KL times a factor that is
    not the same at the two alphas: rescaled after backward() (clipped), not a loss multiplied by a number."""
    ratios = [kl / recon if recon else math.nan for recon, kl in zip(recon_weights, kl_weights)]
    return _near(ratios, PROBE_ALPHAS, rtol=0.01) and not _near(recon_weights, recon_weights[0], rtol=0.01)


def _step_failures(step: Callable, images: torch.Tensor, steps: int) -> Iterator[str]:
    """Yield a failure message for the first way `steps` calls of the learner's step depart from train_step's."""
    learner = run_training_steps(step, images, steps)
    first = learner[0].losses
    if not (isinstance(first, tuple | list) and len(first) == 3):
        yield _not_three_failure("Step 1", "losses", first)
        return
    yield _none_among_failure("Step 1", first)
    if any(isinstance(loss, torch.Tensor) and loss.requires_grad for loss in first):
        yield (
            "Step 1: the returned losses still carry their graph.\n"
            "Looks like: return total.detach(), ... (or .item()), so each step's graph is freed."
        )
    yield from _probe_failures(step, images, learner[-1].expected_losses)
    previous: object = None
    for index, compared in enumerate(learner, start=1):
        hints = partial(_previous_call_hints, compared.losses, previous, partial(_late_departure_hints, index))
        yield from _returned_losses_failures(
            f"step {index}", compared.losses, compared.expected_losses, CHECK_ALPHA, hints
        )
        yield _state_failure(compared, index)
        previous = compared.expected_losses


def _returned_losses_failures(
    case: str,
    returned: Sequence[object],
    expected: Sequence[torch.Tensor],
    alpha: float,
    hints: Callable[[str], list[str]],
) -> Iterator[str]:
    """Yield a failure for each of the three losses a step returned that is not train_step's, each term before the
    total it makes wrong; a value of another place gets its mistake's hint, else what hints(label) finds."""
    for position in (1, 2, 0):
        label = LOSS_NAMES[position]
        what = f"the {'KL' if label == 'kl' else label} loss"
        mistakes = _returned_loss_mistakes(label, expected, alpha)
        yield _compare(case, what, returned[position], expected[position], mistakes, partial(hints, label))


def _state_failure(compared: ComparedStep, step: int) -> str:
    """Return '' when the state step `step` left (the weights' change, BatchNorm's running statistics, Adam's state)
    is train_step's from the same start, else what differs and a hint."""
    same = "from train_step's step from the same weights, optimizer state and noise"
    if not compared.moved:
        return _with_hints(
            f"Step {step}: the weights did not change.",
            ["optimizer.step() was not called in this step: call it once in every step."],
        )
    if not compared.update_gap <= STATE_TOLERANCE and compared.gradients_piled_up:
        return _with_hints(
            f"Step {step}: the gradients optimizer.step() used hold the step before's gradients too.",
            [
                "optimizer.zero_grad() was not called in this step (is it called only in some steps?), so its "
                "gradients added up with the last step's: call it in every step, before backward()."
            ],
        )
    if not compared.update_gap <= STATE_TOLERANCE and compared.changed_settings:
        return _with_hints(
            f"Step {step}: the weights moved differently {same}: the step changed the optimizer's settings "
            f"({compared.changed_settings}).",
            [
                "the optimizer comes with its settings (learning rate, weight decay, betas): a training step only "
                "calls its zero_grad() and step(), and leaves optimizer.param_groups as they are."
            ],
        )
    if not compared.update_gap <= STATE_TOLERANCE and compared.weight_penalty:
        return _weight_penalty_failure(step, compared.weight_penalty)
    if not compared.update_gap <= STATE_TOLERANCE:
        return _with_hints(
            f"Step {step}: the weights moved differently {same} (by {compared.update_gap:.2g} times the size of its "
            "change), though the losses returned are right.",
            [
                "the step taken is not one Adam step on the gradient of the loss returned: is optimizer.step() "
                "called twice, zero_grad() skipped (gradients piling up), the learning rate changed, or the gradients "
                "changed between backward() and step()?"
            ],
        )
    if not compared.statistics_gap <= STATE_TOLERANCE:
        return _with_hints(
            f"Step {step}: BatchNorm's running statistics after the step differ {same}.",
            [
                "a second forward pass in training mode (for logging: use model.eval() or none), "
                "reset_running_stats(), or a changed momentum? Eval mode normalises with these statistics."
            ],
        )
    if not compared.optimizer_gap <= STATE_TOLERANCE:
        return _with_hints(
            f"Step {step}: Adam's state after the step (its step count and running averages of the gradients) "
            f"differs {same}.",
            [
                "the optimizer's state is cleared or changed (optimizer.state, zero_(), a new optimizer): Adam needs "
                "its running averages from one step to the next, so leave them to optimizer.step()."
            ],
        )
    return ""


def _late_departure_hints(step: int, label: str) -> list[str]:
    """Return a hint for a loss (of any `label`) that departs from train_step's only at a later step, the earlier
    ones right."""
    if step == 1:
        return []
    agreed = "step 1 agreed" if step == 2 else f"the {step - 1} steps before agreed"
    return [
        f"{agreed}: is a formula of your own right only for some values (larger |μ| or σ² than earlier batches "
        "had)? Check it with check_loss and check_kl_divergence, or use vae_loss."
    ]


def _check_training_images(images: torch.Tensor, steps: int) -> None:
    """Raise a ValueError (or TypeError) saying what to pass unless `images` is a batch of images and `steps` a
    positive whole number: these are the check's own inputs, not the learner's answer."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"check_training_step takes the images as a tensor, got {type(images).__name__}: pass "
            "train_data.images[:2048]"
        )
    if len(images) == 0:
        raise ValueError("check_training_step needs images to train on, got none: pass train_data.images[:2048]")
    to_model_input(images)  # the shape and values the steps will need, checked once here
    if not is_whole_number(steps, 1):
        raise ValueError(f"steps is how many steps to compare, a positive whole number: got {steps!r}")


def check_training_step(
    training_step: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, float], tuple],
    images: torch.Tensor,
    steps: int = 200,
) -> CheckResult:
    """Check that each of `steps` calls of training_step trains a small VAE as vae_lib's train_step does from the
    same weights, optimizer state and noise (the losses returned, and the weights' change, to float rounding), and
    probe single calls for the model's mode, the number of optimizer steps, the loss minimised at two alphas and
    zero_grad."""
    _check_training_images(images, steps)
    note = f"{steps} steps on {len(images)} images, each as train_step's from the same weights, to float rounding."
    return _result("the training step", _step_failures(training_step, images, steps), note)
