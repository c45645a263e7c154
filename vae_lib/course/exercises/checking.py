"""What every exercise check shares: the CheckResult it returns, calling the learner's code so that an exception
becomes a failed result, comparing against the reference, and the failures and hints common to several checks.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

from vae_lib.core.model import VAE, dtype_name
from vae_lib.core.words import counted

# A small model keeps the training-step check to seconds; any VAE trains with the same step.
CHECK_WIDTHS = (4, 8, 8, 16)
# Two weights of the KL: a loss or a step that uses its alpha argument treats them differently.
PROBE_ALPHAS = (0.001, 0.5)
# What a mistake would have returned, paired with the hint that names it.
Mistake = tuple[str, torch.Tensor]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one exercise's check: passed, or what failed and a hint."""

    exercise: str
    passed: bool
    details: str = ""

    def __str__(self) -> str:
        if self.passed:
            return f"✅ {self.exercise}: passed. {self.details}".rstrip()
        return f"❌ {self.exercise}: not yet.\n{self.details}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        """Return the result as Markdown, which JupyterLab and GitHub render."""
        if self.passed:
            return f"✅ **{self.exercise}: passed.** {self.details}".rstrip()
        return f"❌ **{self.exercise}: not yet.** " + self.details.replace("\n", "  \n")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded, and restore its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _as_tensor(value: object) -> torch.Tensor | None:
    """Return a learner's value as a detached float64 tensor, or None when it is not a number or tensor."""
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            return None  # a shape without values
        return (value if value.layout == torch.strided else value.to_dense()).detach().double().cpu()
    if isinstance(value, int | float):
        return torch.tensor(float(value), dtype=torch.float64)
    return None


def _as_number(value: object) -> float:
    """Return a learner's value as one float: NaN when it is not a single number."""
    tensor = _as_tensor(value)
    return tensor.item() if tensor is not None and tensor.numel() == 1 else math.nan


def _show(value: torch.Tensor) -> str:
    """Return a short text of a tensor: its value if it is a single number, else its shape and first values."""
    if value.dim() == 0:
        return f"{value.item():.6g}"
    flat = [f"{number:.4g}" for number in value.flatten()[:6].tolist()]
    more = ", ..." if value.numel() > 6 else ""
    return f"shape {tuple(value.shape)}, values [{', '.join(flat)}{more}]"


def _numbers(values: Sequence[float]) -> str:
    """Return numbers as a short comma-separated text."""
    return ", ".join(f"{value:.4g}" for value in values)


def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Return True when two tensors have the same shape and values (NaN equal to NaN)."""
    expected = expected.detach().double().cpu()
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def _near(
    got: Sequence[float] | float, expected: Sequence[float] | float, rtol: float = 1e-3, atol: float = 1e-6
) -> bool:
    """Return True when numbers agree to a relative tolerance (what the probes of a formula compare)."""
    got_tensor = torch.as_tensor(got, dtype=torch.float64)
    expected_tensor = torch.as_tensor(expected, dtype=torch.float64).expand_as(got_tensor)
    return bool(torch.allclose(got_tensor, expected_tensor, rtol=rtol, atol=atol))


def _with_hints(message: str, hints: Sequence[str]) -> str:
    """Return a failure message followed by the hints that name what looks wrong, the first as 'Looks like'.

    An empty hint is left out, so no line reads 'Looks like: ' with nothing, or nothing but punctuation, after it.
    """
    hints = [hint for hint in hints if hint.strip(" :,.")]
    lines = [message] + [f"{'Looks like' if index == 0 else 'And'}: {hint}" for index, hint in enumerate(hints)]
    return "\n".join(lines)


def _with_hints_instead(failure: str, hints: Sequence[str]) -> str:
    """Return a failure message (_with_hints') with its hints replaced by these: a case that names its mistake
    better than the general probes do."""
    return _with_hints(failure.split("\nLooks like:")[0], hints)


class _LearnerError(Exception):
    """The learner's function raised: carries the failure message that names the case, the exception and a hint."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


def _raised_failure(case: str, error: Exception, hints: Sequence[str] = ()) -> str:
    """Return which case raised what, and the hints on the mistake that raises it (when the check has none of its own:
    float64 meeting the model's float32, a size written in)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not hints and _FLOAT64_MEETS_FLOAT32.search(text):
        hints = [
            "a float64 tensor met the model's float32 weights: NumPy arrays (np.linspace, np.array) and "
            "torch.from_numpy of them are float64. Make it float32 (.float(), or torch.linspace), as the model's are."
        ]
    size_written_in = _INVALID_SHAPE.search(text)
    if not hints and size_written_in:
        shape, size = size_written_in.groups()
        hints = [
            f"a size written in: this case's tensor holds {size} values, which the shape [{shape}] does not fit. "
            "Read sizes from the tensor (x.flatten(1), x.reshape(len(x), -1)), or take a mean over all of it "
            "without reshaping."
        ]
    if not hints:
        hints = [hint for pattern, hint in _ERROR_HINTS if pattern in text][:1]
    return _with_hints(f"Case *{case}*: your function raised {type(error).__name__}: {text}", hints)


# torch's messages for mistakes of any exercise, and what they mean there (torch's own advice can mislead: detaching
# to reach NumPy cuts the gradient a training step needs).
_ERROR_HINTS = (
    (
        "Can't call numpy() on Tensor that requires grad",
        "NumPy cannot carry gradients. Inside a computation that needs them (z, a loss before backward()) use "
        "torch's operations (torch.exp, torch.randn_like, .sum()) instead of np.*, where the .detach().numpy() "
        "torch suggests would cut the gradient; return tensors, and a loss only read after backward() as "
        "loss.detach() or loss.item().",
    ),
    (
        "only one element tensors can be converted to Python scalars",
        "a tensor of many values was given where one number belongs (math.exp, math.log, float() or a list of "
        "tensors given to torch.tensor): use torch's own operations on the whole tensor (torch.exp(log_var)), "
        "or torch.stack for a list of tensors.",
    ),
    (
        "Dimension out of range",
        "a dim the tensor does not have: each reduction (.sum(dim), .mean(dim)) removes one, so count them on the "
        "way (print x.shape), or use dim=-1 for the last.",
    ),
)

# torch's messages when a float64 tensor meets float32 ones (a matrix product, a convolution, an addition in place).
_FLOAT64_MEETS_FLOAT32 = re.compile(
    r"(Double|double|float64)\b.*\b(Float|float|float32)\b|(Float|float32)\b.*\b(Double|double|float64)\b"
)
# torch's message when view or reshape is given a shape that does not fit the tensor: the shape and the size.
_INVALID_SHAPE = re.compile(r"shape '\[([-\d, ]+)\]' is invalid for input of size (\d+)")


def _call(
    case: str, function: Callable[..., Any], *arguments: object, hints: Callable[[Exception], list[str]] | None = None
) -> Any:
    """Return function(*arguments), the learner's code run on a case; raise _LearnerError when it raises.

    The _LearnerError names the case and the exception, with what `hints` makes of it; `_result` turns it into a
    failed CheckResult. A bare NotImplementedError passes through: the stub of an exercise not done yet raises it
    to stop its check cell (torch's own NotImplementedErrors, which carry a message, are the learner's failures).
    Tensors are passed as copies (gradients still reach the originals), and a function that changes one in place
    fails: the caller's tensor (an encoder's μ, a training batch) would be changed for whatever reads it next.
    """
    if not callable(function):
        raise TypeError(
            f"a check takes your function itself, got a {type(function).__name__}: pass the function's name "
            "without calling it, as in check_kl_divergence(kl_divergence), not check_kl_divergence(kl_divergence(m, v))"
        )
    copies = tuple(value.clone() if isinstance(value, torch.Tensor) else value for value in arguments)
    settings = _global_settings()
    try:
        returned = function(*copies)
    except NotImplementedError as error:
        if not str(error):
            raise
        raise _LearnerError(_raised_failure(case, error, hints(error) if hints else ())) from error
    except Exception as error:
        raise _LearnerError(_raised_failure(case, error, hints(error) if hints else ())) from error
    finally:
        left = _restored_settings(settings)
    if left:
        raise _LearnerError(_settings_left_failure(case, left))
    changed = [index for index, (copy, value) in enumerate(zip(copies, arguments)) if _changed(copy, value)]
    if changed:
        raise _LearnerError(_changed_inputs_failure(case, function, changed))
    if isinstance(returned, torch.Tensor) and returned.is_meta:  # no values for the checks to read
        raise _LearnerError(
            f"Case *{case}*: the result is a tensor on the meta device, a shape without values: compute it on the CPU."
        )
    if isinstance(returned, torch.Tensor) and returned.layout != torch.strided:
        return returned.to_dense()  # the same values (and gradients), which the checks' ops can read
    return returned


class GlobalSetting(NamedTuple):
    """One of torch's global settings a learner's function may change for the whole notebook."""

    read: Callable[[], object]
    write: Callable[[Any], object]
    left: str  # what a function that leaves it changed has done
    block: str  # the block that changes it for a few lines only, or '' where torch has none


GLOBAL_SETTINGS = {
    "grad mode": GlobalSetting(
        torch.is_grad_enabled,
        torch.set_grad_enabled,
        "gradients off (torch.set_grad_enabled(False))",
        "with torch.no_grad(): ...",
    ),
    "default dtype": GlobalSetting(
        torch.get_default_dtype, torch.set_default_dtype, "another default dtype (set_default_dtype)", ""
    ),
    "anomaly detection": GlobalSetting(
        torch.is_anomaly_enabled,
        torch.set_anomaly_enabled,
        "autograd's anomaly detection on (torch.autograd.set_detect_anomaly(True), which slows every backward pass)",
        "with torch.autograd.detect_anomaly(): ...",
    ),
}


def _global_settings() -> dict[str, object]:
    """Return torch's global settings that GLOBAL_SETTINGS lists, by name."""
    return {name: setting.read() for name, setting in GLOBAL_SETTINGS.items()}


def _restored_settings(before: dict[str, object]) -> list[str]:
    """Set torch's global settings back to `before`, and return the names of those that had changed."""
    changed = [name for name, value in _global_settings().items() if value != before[name]]
    for name in changed:
        GLOBAL_SETTINGS[name].write(before[name])
    return changed


def _settings_left_failure(case: str, changed: Sequence[str]) -> str:
    """Return the message for a learner's function that changed torch's global settings and left them changed."""
    settings = [GLOBAL_SETTINGS[name] for name in changed]
    blocks = " or ".join(f"`{setting.block}`" for setting in settings if setting.block)
    inside = f"change it only inside a block ({blocks}), or leave it alone" if blocks else "leave it alone"
    return _with_hints(
        f"Case *{case}*: your function left {' and '.join(setting.left for setting in settings)} for all the code "
        "that runs after it.",
        [
            f"a setting changed by a plain call stays changed for the rest of the notebook: {inside}. "
            "The check has set it back."
        ],
    )


def _changed(copy: object, original: object) -> bool:
    """Return True when `copy`, a tensor the learner's function was given, no longer holds `original`'s values."""
    if not isinstance(original, torch.Tensor) or not isinstance(copy, torch.Tensor):
        return False
    if copy.shape != original.shape or copy.dtype != original.dtype:
        return True
    return not torch.allclose(copy.detach(), original.detach(), rtol=0, atol=0, equal_nan=True)


def _changed_inputs_failure(case: str, function: Callable[..., Any], changed: Sequence[int]) -> str:
    """Return the message for a learner's function that changed the tensors at these argument positions in place."""
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        parameters = []
    names = [f"`{parameters[index]}`" if index < len(parameters) else f"argument {index + 1}" for index in changed]
    return _with_hints(
        f"Case *{case}*: your function changed its input {' and '.join(names)} in place.",
        [
            "an in-place operation (add_, mul_, clamp_, +=, x[...] = ...) on an input changes the caller's tensor, "
            "which it reads again (the KL reads μ and log σ², the loss the batch): compute new tensors instead "
            "(x = x + ..., torch.clamp(x, ...))."
        ],
    )


def _probing(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return the learner's function for a hint's probes: an exception it raises there means no hint, not a crash."""
    return partial(_call, "a probe of the check", function)


def _diagnosed(diagnose: Callable[[], list[str]] | None) -> list[str]:
    """Return the hints `diagnose` finds by probing the learner's code, or none when that code raises on a probe."""
    if diagnose is None:
        return []
    try:
        return diagnose()
    except _LearnerError:
        return []


def _kind_failure(case: str, what: str, value: object, why: str, needs_graph: bool = True) -> str:
    """Return '' when `value` is a tensor (carrying a gradient when `needs_graph`), else a message and a hint."""
    if isinstance(value, torch.Tensor):
        if not needs_graph or value.requires_grad:
            return ""
        return _with_hints(
            f"Case *{case}*: {what} carries no gradient.",
            [f"it is detached (.detach(), torch.no_grad(), or rebuilt with torch.tensor(...)), but {why}."],
        )
    if isinstance(value, int | float) and needs_graph:
        hint = f"it was turned into a Python number (.item() or float()), which cuts the gradient, but {why}."
    elif isinstance(value, int | float):
        hint = f"it was turned into a Python number (.item() or float()): {why}."
    else:
        hint = _not_a_tensor_hint(value, what) or (
            f"return a torch tensor computed with torch operations (no .numpy() or .tolist()): {why}."
        )
    return _with_hints(f"Case *{case}*: {what} should be a tensor, got {type(value).__name__}.", [hint])


def _not_a_tensor_hint(value: object, what: str) -> str:
    """Return a hint for a value that is no tensor because nothing was returned, or several values were: else ''."""
    if value is None:
        return "your function returns None: is its `return` line missing?"
    if isinstance(value, dict):
        return f"your function returns a dict; {what or 'its result'} should be the tensor itself: return only that."
    if isinstance(value, tuple | list) and any(isinstance(item, torch.Tensor) for item in value):
        return (
            f"your function returns a {type(value).__name__} of {len(value)} values; {what} should be one tensor: "
            "return only that (torch.stack or torch.cat joins a list of tensors into one)."
        )
    return ""


def _plain_values_hint(value: object) -> str:
    """Return a hint for a result returned as a Python list or tuple of plain values, or as NumPy's, else ''."""
    if isinstance(value, tuple | list):
        return (
            f"your function returns a Python {type(value).__name__}: keep the result a tensor, as torch's operations "
            "give it (a comparison of tensors is a tensor of booleans), rather than building a list."
        )
    if type(value).__module__ == "numpy":
        return (
            "your function returns NumPy's result (.numpy(), np.var): keep the computation in torch (or return "
            "torch.from_numpy of it), so the result is a tensor."
        )
    return ""


def _dtype_failure(case: str, what: str, value: torch.Tensor, dtype: torch.dtype, source: str, how: str) -> str:
    """Return '' when `value` has `dtype`, the dtype of the input it is made from, else a message naming both.

    The model's weights are float32: a tensor of another dtype makes its next layer raise, even with the right values.
    """
    if value.dtype == dtype:
        return ""
    return _with_hints(
        f"Case *{case}*: {what} is {value.dtype}, where {source} is {dtype}.",
        [f"the model's layers take {dtype} and raise on {value.dtype}: keep {source}'s dtype ({how})."],
    )


def _compare(
    case: str,
    what: str,
    value: object,
    expected: torch.Tensor,
    mistakes: Sequence[Mistake] = (),
    diagnose: Callable[[], list[str]] | None = None,
) -> str:
    """Return '' when `value` matches `expected`, else which case failed, expected against got, and hints.

    The hint is the first listed mistake `value` equals, else what `diagnose` finds by probing the learner's code.
    """
    if isinstance(value, torch.Tensor) and value.is_meta:
        return f"Case *{case}*: {what} is a tensor on the meta device, a shape without values: compute it on the CPU."
    got = _as_tensor(value)
    if got is None:
        message = f"Case *{case}*: {what} should be a tensor, got {type(value).__name__}."
        return _with_hints(message, [_not_a_tensor_hint(value, what) or _plain_values_hint(value)])
    if _close(got, expected):
        return ""
    message = (
        f"Case *{case}*: {what} expected {_show(expected.detach().double())}, got {_show(got)}."
        f"{_largest_difference(got, expected)}"
    )
    hints = [hint for hint, wrong in mistakes if _close(got, wrong)][:1]
    dtype = "" if hints else _dtype_hint(value, expected, what)
    if dtype and isinstance(value, torch.Tensor) and (value.dtype == torch.bool or value.is_floating_point()):
        return _with_hints(message, [dtype])  # before the probes, which would read a bool as a formula's value
    if not hints:
        hints = _diagnosed(diagnose)
    if not hints and got.numel() == expected.numel() == 1 and _close(got.flatten(), expected.flatten()):
        hints = [_one_number_shape_hint(got, expected)]
    if not hints and dtype:  # whole numbers: after the probes, which name a rescaling to [0, 255] more exactly
        hints = [dtype]
    if not hints and got.shape != expected.shape:
        hints = [f"the shape is {tuple(got.shape)}, expected {tuple(expected.shape)}."]
    if not hints and (~torch.isfinite(got) & torch.isfinite(expected.detach().double().cpu())).any():
        hints = [
            "the result is NaN or infinite where the right one is a number: is a logarithm or square root taken of "
            "something that can be negative or zero?"
        ]
    return _with_hints(message, hints)


def _largest_difference(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Return where two tensors of one shape differ most, when _show prints the same first values for both (else
    those already show a difference, and ''): ' They differ most at [4, 0, 9, 14]: expected ..., got ....', each to
    as many digits as tell them apart."""
    expected = expected.detach().double().cpu()
    if got.shape != expected.shape or got.dim() == 0 or _show(got) != _show(expected):
        return ""
    got = got.double()
    gaps = (got - expected).abs().nan_to_num(nan=math.inf)
    gaps[(got == expected) | (torch.isnan(got) & torch.isnan(expected))] = 0  # equal infinities, NaN for NaN
    if not gaps.any():
        return ""
    at = tuple(int(position) for position in torch.unravel_index(gaps.argmax(), gaps.shape))
    wanted, found = expected[at].item(), got[at].item()
    digits = next((d for d in range(4, 17) if f"{wanted:.{d}g}" != f"{found:.{d}g}"), 17)
    return f" They differ most at {list(at)}: expected {wanted:.{digits}g}, got {found:.{digits}g}."


def _one_number_shape_hint(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Return the hint for a right value in a tensor of one element but another shape than the answer's."""
    shape = "a 0-d tensor, one number" if expected.dim() == 0 else f"shape {tuple(expected.shape)}"
    return (
        f"the value is right, but its shape is {tuple(got.shape)}, where it is {shape}: reduce over every dimension "
        "(.mean() or .sum() with no dim, or keepdim=False), or .squeeze() it."
    )


def _dtype_hint(value: object, expected: torch.Tensor, what: str) -> str:
    """Return a hint when a wrong tensor's dtype explains it: whole numbers or bools for a floating-point answer, or
    half precision that is right to its few digits; '' otherwise."""
    if not isinstance(value, torch.Tensor) or value.is_meta or not expected.is_floating_point():
        return ""
    expected = expected.detach().double()
    if torch.equal(expected, expected.round()):  # 0/1 flags or counts: whole numbers are no clue
        return ""
    if value.dtype == torch.uint8:
        return (
            f"{what} came back as uint8 pixels (0-255): return the float values the code computes (the decoder's "
            "images in [-1, 1] as they are); pixels, as to_pixels and decode_latents give them, are for showing."
        )
    if not value.is_floating_point():
        return (
            f"{what} came back as {value.dtype}, which cannot hold the answer's fractions: return the float32 values "
            "themselves, without a comparison, .bool(), .long() or .int()."
        )
    half = value.dtype in (torch.float16, torch.bfloat16)
    if half and value.shape == expected.shape and _close(value.double(), expected, rtol=2e-2, atol=1e-3):
        return (
            f"right to {value.dtype}'s few significant digits (3 in float16, 2 in bfloat16): compute in float32, "
            "without .half(), .bfloat16() or autocast."
        )
    return ""


def _gradient_failure(
    case: str,
    what: str,
    value: torch.Tensor,
    inputs: dict[str, torch.Tensor],
    expected: torch.Tensor,
    diagnose: Callable[[], list[str]] | None = None,
) -> str:
    """Return '' when `value` has the gradients `expected` has with respect to each named input, else which differ.

    A formula that is right only at this case (a term that happens to add up to 0) is named by `diagnose`.
    """
    leaves = list(inputs.values())
    try:
        got = torch.autograd.grad(value.sum(), leaves, allow_unused=True)
    except Exception as error:  # a backward of the learner's own (an autograd.Function) may raise anything
        return _backward_failure(case, what, error)
    wanted = torch.autograd.grad(expected.sum(), leaves, allow_unused=True)
    wrong = [
        name
        for name, got_gradient, wanted_gradient, leaf in zip(inputs, got, wanted, leaves)
        if not torch.allclose(
            (torch.zeros_like(leaf) if got_gradient is None else got_gradient).double(),
            (torch.zeros_like(leaf) if wanted_gradient is None else wanted_gradient).double(),
            rtol=1e-3,
            atol=1e-6,
        )
    ]
    if not wrong:
        return ""
    hints = _diagnosed(diagnose)
    return _with_hints(
        f"Case *{case}*: {what} has the right value but the wrong gradient with respect to {' and '.join(wrong)}.",
        hints
        or [
            f"part of it is detached (.detach(), .item(), numpy), computed from a copy of {wrong[0]}, or {wrong[0]} "
            "is clamped where its value sits at the bound (a clamp passes no gradient there)."
        ],
    )


def _backward_failure(case: str, what: str, error: Exception) -> str:
    """Return the message for a result of the learner's whose backward pass raises: what usually makes it so."""
    text = str(error).splitlines()[0].split(". ")[0] if str(error) else type(error).__name__
    if "second time" in text:
        hint = "backward() is already called inside your function: leave it to the caller, which calls it once."
    elif "modified by an inplace operation" in text:
        hint = (
            "a tensor autograd saved for the backward pass is changed in place (mul_, add_, sub_, clamp_, +=): "
            "use the out-of-place operations (mul, add, clamp, x = x + ...)."
        )
    else:
        hint = "the graph from the inputs to your result is broken: compute it with torch operations on the inputs."
    return _with_hints(f"Case *{case}*: backward() through {what} fails: {text}.", [hint])


def _left_in_training_mode_failure(case: str) -> str:
    """Return the message for a function whose result is right but which leaves the model it was given (in eval
    mode) in training mode."""
    return _with_hints(
        f"Case *{case}*: the images are right, but your function leaves the model in training mode.",
        [
            "what uses the model next (a plot, a sample) then runs BatchNorm on its own batch's statistics: leave the "
            "model's mode as it was given, or put it back with model.eval()."
        ],
    )


def _weight_dtypes(model: torch.nn.Module) -> list[str]:
    """Return the names of the dtypes of the model's weights, sorted ('float32' alone for a model as the checks give
    it)."""
    return sorted({dtype_name(parameter.dtype) for parameter in model.parameters()})


def _converted_model_failure(case: str, model: torch.nn.Module) -> str:
    """Return '' when the model's weights are still float32, as the check gave them, else the message for a function
    that converted the model (model.double(), .half()), which the notebook's next cells would then feed float32."""
    dtypes = _weight_dtypes(model)
    if dtypes == ["float32"]:
        return ""
    return _with_hints(
        f"Case *{case}*: your function leaves the model's weights in {' and '.join(dtypes)}, where it was given them "
        "in float32.",
        [
            "the model is converted (model.double(), .half() or .to(dtype)): the notebook's next cells feed it float32 "
            "images and latents, which a converted model refuses. Leave the model as it is given."
        ],
    )


def _result(exercise: str, failures: Iterator[str], passed_note: str) -> CheckResult:
    """Return the first failure as a failed CheckResult, or a pass; the learner's code raising is a failure too.

    Warnings the learner's code gives while the check runs it (torch's broadcasting warning of F.mse_loss on two
    shapes, std() over one value) become part of a failure's message, below the hint, instead of printing above it
    out of order; after a pass they are shown, the first from each line once. The notebook's own warning filters
    decide which are recorded here (an ignored one is not) and which raise (a failed check then).
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            failure = next((failure for failure in failures if failure), "")
        except _LearnerError as error:
            failure = error.failure
        except NotImplementedError as error:
            if str(error):  # not the stub's bare one (_call turns a learner's others into failures): as it is
                raise
            # The stub, raised again with what to do and a traceback of three frames instead of the check's inside.
            raise NotImplementedError(
                f"{exercise}: not written yet (your function raises a bare NotImplementedError, as the exercise's "
                "stub does). Replace `raise NotImplementedError` in the exercise's cell above with your code, run that "
                "cell, then this one."
            ) from None
    if failure:
        return CheckResult(exercise, False, failure + _warnings_note(caught))
    for warning in _distinct(caught):  # past the filters already: shown, not warned again
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return CheckResult(exercise, True, passed_note)


# At most this many of the warnings a failed check caught are quoted in its message.
QUOTED_WARNINGS = 2
# Where in torch's C++ a warning was raised, which torch appends to some of them: nothing a learner can use.
_TRIGGERED_INTERNALLY = re.compile(r"\s*\(Triggered internally at [^)]*\)\s*$")


def _distinct(caught: Sequence[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """Return the first warning given at each place (a line warns again for each of the check's cases, with
    their sizes), in the order they were first given."""
    seen: dict[tuple[type[Warning], str, int], warnings.WarningMessage] = {}
    for warning in caught:
        seen.setdefault((warning.category, warning.filename, warning.lineno), warning)
    return list(seen.values())


def _warnings_note(caught: Sequence[warnings.WarningMessage]) -> str:
    """Return the lines a failed check adds for the warnings its runs of the learner's code gave, or ''."""
    distinct = _distinct(caught)
    lines = [
        f"Warned while the check ran your code ({warning.category.__name__}{_your_line(warning)}): "
        f"{_TRIGGERED_INTERNALLY.sub('', str(warning.message)).strip()}"
        for warning in distinct[:QUOTED_WARNINGS]
    ]
    more = len(distinct) - QUOTED_WARNINGS
    if more > 0:
        lines.append(f"And {counted(more, 'more warning')}.")
    return "".join(f"\n{line}" for line in lines)


def _your_line(warning: warnings.WarningMessage) -> str:
    """Return ', line N' when a warning names a line of the learner's code, or '' when it names torch's or ours."""
    library = (Path(torch.__file__).parent, Path(__file__).parents[2])
    place = Path(warning.filename)
    return "" if any(place.is_relative_to(folder) for folder in library) else f", line {warning.lineno}"


def _small_model(latent_dim: int, seed: int) -> VAE:
    """Return a small randomly initialised VAE in eval mode, the same for the same seed."""
    with _seeded(seed):
        return VAE(latent_dim=latent_dim, widths=CHECK_WIDTHS).eval()


@contextmanager
def _recording_latents(model: VAE) -> Iterator[list[torch.Tensor]]:
    """Record the latents the model decodes in a block: what reaches its first decoder layer, model.from_latent."""
    decoded: list[torch.Tensor] = []
    hook = model.from_latent.register_forward_pre_hook(lambda _, inputs: decoded.append(inputs[0].detach().clone()))
    try:
        yield decoded
    finally:
        hook.remove()


# The grid on which rows of draws are compared for one being the negation of another: z_j = -z_i to float rounding.
MIRROR_RESOLUTION = 1e-5


def _mirrored_pairs(rows: torch.Tensor) -> list[tuple[int, int]]:
    """Return the pairs (i, j), i < j, of rows with z_j = -z_i on a grid of MIRROR_RESOLUTION (antithetic draws), in
    the order of j; independent normal draws of two or more values never pair. Rows of zeros, their own negation,
    are a value repeated, not a pair."""
    if rows.dim() != 2 or rows.shape[1] < 2:
        return []
    keys = torch.round(rows.detach().double() / MIRROR_RESOLUTION).long()
    seen: dict[tuple[int, ...], int] = {}
    pairs = []
    for index, key in enumerate(map(tuple, keys.tolist())):
        if not any(key):
            continue
        partner = seen.get(tuple(-value for value in key))
        if partner is not None:
            pairs.append((partner, index))
        seen.setdefault(key, index)
    return pairs


def _normalised_over_samples(rows: torch.Tensor) -> bool:
    """Return whether draws (one row each) were centred, standardised or scaled to one length over the rows: in every
    column a mean of exactly 0, a standard deviation of exactly 1 or the same length as every other column
    (F.normalize(z, dim=0); to float rounding), which independent draws never have."""
    if len(rows) < 3:
        return False
    rows = rows.detach().double()
    spread = rows.std(dim=0)
    if not (spread > 0).all():  # a column the same in every row (zeros, one value repeated) is no normalisation
        return False
    exactly = 1e-5
    lengths = rows.norm(dim=0)
    return bool(
        (rows.mean(dim=0).abs() <= exactly * spread).all()
        or ((spread - 1).abs() <= exactly).all()
        or ((rows.std(dim=0, correction=0) - 1).abs() <= exactly).all()
        or (rows.shape[1] > 1 and (lengths - lengths[0]).abs().max() <= exactly * lengths[0])
    )


def _most_at_an_extreme(rows: torch.Tensor) -> int:
    """Return the largest number of draws (rows) at exactly a column's lowest or highest value: 1 for continuous
    draws, which never tie, more where draws were clipped (clamp) there."""
    rows = rows.detach()
    at_lowest = (rows == rows.min(dim=0).values).sum(dim=0)
    at_highest = (rows == rows.max(dim=0).values).sum(dim=0)
    return int(torch.maximum(at_lowest, at_highest).max())


def _normal_distance(standardised: torch.Tensor) -> float:
    """Return the largest Kolmogorov-Smirnov distance between a column of draws and N(0, 1)."""
    ordered = standardised.sort(dim=0).values
    count = len(ordered)
    normal_cdf = 0.5 * (1 + torch.erf(ordered / math.sqrt(2)))
    ranks = torch.arange(1, count + 1, dtype=ordered.dtype).unsqueeze(1)
    return max((ranks / count - normal_cdf).max().item(), (normal_cdf - (ranks - 1) / count).max().item())
