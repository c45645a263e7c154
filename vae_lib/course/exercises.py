"""Checks for the course's exercises: each runs a learner's function on a few cases against vae_lib's reference
and returns a CheckResult: a pass, or the case that failed, expected against got, and the mistake it looks like.

A failed check then probes the parts of the formula one at a time (the KL with only μ changing, only σ² changing,
one image against many; the loss with two alphas and a doubled error; the distribution of the noise; the gradients
a training step hands the optimizer), so the hint names the wrong part even for a mistake nobody listed.
The checks never print; a notebook shows the returned result. Their randomness is seeded and leaves the
global random state as it was. An exception raised by the learner's function becomes a failed result that names the
case and the exception, except NotImplementedError, which an exercise not done yet raises to stop its check cell.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from vae_lib.core.data import to_model_input
from vae_lib.core.evaluate import active_dimensions
from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import VAE
from vae_lib.core.objective import kl_per_dimension, reconstruction_loss, vae_loss
from vae_lib.core.train import train_step

# A small model keeps the training-step check to seconds; any VAE trains with the same step.
CHECK_WIDTHS = (4, 8, 8, 16)
CHECK_BATCH_SIZE = 16
CHECK_ALPHA = 0.01
CHECK_LEARNING_RATE = 1e-3
REPARAMETERISATION_SAMPLES = 20_000
# Two weights of the KL: a loss or a step that uses its alpha argument treats them differently.
PROBE_ALPHAS = (0.001, 0.5)
# Standardised draws of N(0, 1) lie within this Kolmogorov-Smirnov distance of it (20,000 draws: about 0.005).
NORMAL_DISTANCE_LIMIT = 0.02
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
        return value.detach().double().cpu()
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


class _LearnerError(Exception):
    """The learner's function raised: carries the failure message that names the case, the exception and a hint."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


def _raised_failure(case: str, error: Exception, hints: Sequence[str] = ()) -> str:
    """Return which case raised what, and the hints on the mistake that raises it."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return _with_hints(f"Case *{case}*: your function raised {type(error).__name__}: {text}", hints)


def _call(
    case: str, function: Callable[..., Any], *arguments: object, hints: Callable[[Exception], list[str]] | None = None
) -> Any:
    """Return function(*arguments), the learner's code run on a case; raise _LearnerError when it raises.

    The _LearnerError names the case and the exception, with what `hints` makes of it; `_result` turns it into a
    failed CheckResult. NotImplementedError passes through: an exercise not done yet stops its check cell.
    """
    try:
        return function(*arguments)
    except NotImplementedError:
        raise
    except Exception as error:
        raise _LearnerError(_raised_failure(case, error, hints(error) if hints else ())) from error


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
    if isinstance(value, int | float):
        hint = f"it was turned into a Python number (.item() or float()), which cuts the gradient, but {why}."
    else:
        hint = _not_a_tensor_hint(value, what) or (
            f"return a torch tensor computed with torch operations (no .numpy() or .tolist()): {why}."
        )
    return _with_hints(f"Case *{case}*: {what} should be a tensor, got {type(value).__name__}.", [hint])


def _not_a_tensor_hint(value: object, what: str) -> str:
    """Return a hint for a value that is no tensor because nothing was returned, or several values were: else ''."""
    if value is None:
        return "your function returns None: is its `return` line missing?"
    if isinstance(value, tuple | list) and any(isinstance(item, torch.Tensor) for item in value):
        return (
            f"your function returns a {type(value).__name__} of {len(value)} values; {what} should be one tensor: "
            "return only that (torch.stack or torch.cat joins a list of tensors into one)."
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
    got = _as_tensor(value)
    if got is None:
        message = f"Case *{case}*: {what} should be a tensor, got {type(value).__name__}."
        return _with_hints(message, [_not_a_tensor_hint(value, what)])
    if _close(got, expected):
        return ""
    message = f"Case *{case}*: {what} expected {_show(expected.detach().double())}, got {_show(got)}."
    hints = [hint for hint, wrong in mistakes if _close(got, wrong)][:1]
    if not hints:
        hints = _diagnosed(diagnose)
    if not hints and got.shape != expected.shape:
        hints = [f"the shape is {tuple(got.shape)}, expected {tuple(expected.shape)}."]
    if not hints and not torch.isfinite(got).all():
        hints = [
            "the result is NaN or infinite where the right one is a number: is a logarithm or square root taken of "
            "something that can be negative or zero?"
        ]
    return _with_hints(message, hints)


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
    got = torch.autograd.grad(value.sum(), leaves, allow_unused=True)
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
        hints or [f"part of it is detached (.detach(), .item(), numpy) or computed from a copy of {wrong[0]}."],
    )


def _result(exercise: str, failures: Iterator[str], passed_note: str) -> CheckResult:
    """Return the first failure as a failed CheckResult, or a pass; the learner's code raising is a failure too."""
    try:
        failure = next((failure for failure in failures if failure), "")
    except _LearnerError as error:
        failure = error.failure
    return CheckResult(exercise, False, failure) if failure else CheckResult(exercise, True, passed_note)


def _small_model(latent_dim: int, seed: int) -> VAE:
    """Return a small randomly initialised VAE in eval mode, the same for the same seed."""
    with _seeded(seed):
        return VAE(latent_dim=latent_dim, widths=CHECK_WIDTHS).eval()


# --- the reparameterisation trick ---------------------------------------------------------------------------


def check_reparameterise(reparameterise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check z = reparameterise(mean, log_var): its shape, its noise's distribution over many draws, its gradients."""
    return _result("reparameterisation", _reparameterise_failures(reparameterise), "z = μ + σ·ε, with gradients.")


def _reparameterise_failures(reparameterise: Callable) -> Iterator[str]:
    """Yield a failure message for each property the learner's reparameterise gets wrong, one part at a time."""
    means = torch.tensor([2.0, -1.0, 0.0])
    variances = torch.tensor([0.25, 4.0, 9.0])
    mean = means.repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    log_var = variances.log().repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    case = f"{REPARAMETERISATION_SAMPLES} draws with μ = (2, -1, 0), σ² = (0.25, 4, 9)"
    with _seeded(0):
        z = _call(case, reparameterise, mean, log_var)
        z_again = _call("two calls with the same inputs", reparameterise, mean, log_var)
    why = "the decoder's gradient reaches the encoder through z"
    if not isinstance(z, torch.Tensor):
        yield _kind_failure(case, "z", z, why)
        return
    yield _compare(case, "z's shape", torch.tensor(tuple(z.shape)), torch.tensor(tuple(mean.shape)))
    how = "noise from torch.randn_like(mean); no .double(), .half() or numpy, whose arrays are float64"
    yield _dtype_failure(case, "z", z, mean.dtype, "mean", how)
    draws = z.detach().double()
    non_finite = _non_finite_draws_failure(case, draws, variances.double())
    if non_finite:
        yield non_finite
        return
    sigma = variances.double().sqrt()
    spread, centre = draws.std(dim=0), draws.mean(dim=0)
    if torch.allclose(spread, torch.zeros_like(spread), atol=1e-6):
        yield _no_spread_failure(case, draws, means.double(), sigma, z, log_var)
        return
    yield _distribution_failure(case, (draws - centre) / spread)
    yield _centre_failure(case, centre, means.double(), sigma)
    yield _spread_failure(case, spread, variances.double())
    yield _independence_failure(case, draws)
    if isinstance(z_again, torch.Tensor) and torch.equal(z_again.detach().double(), draws):
        yield _with_hints(
            "Case *two calls with the same inputs*: z is the same both times.",
            ["the noise is drawn once and reused, or a seed is set inside the function: draw a new ε on every call."],
        )
    yield _gradient_failure_of_z(z, mean, log_var)


def _no_spread_failure(
    case: str, draws: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, log_var: torch.Tensor
) -> str:
    """Return the message for z that does not vary over draws: no noise at all, or one ε shared by every image."""
    message = f"Case *{case}*: z's standard deviation over the draws expected ≈ {_show(sigma)}, got 0."
    noise = (draws[0] - means) / sigma
    uses_log_var = z.requires_grad and torch.autograd.grad(z.sum(), log_var, retain_graph=True, allow_unused=True)[0]
    if not (isinstance(uses_log_var, torch.Tensor) and uses_log_var.abs().sum() > 0):
        hint = "z is not random: add noise, z = mean + σ·ε with ε ~ N(0, I) (torch.randn_like(mean))."
    elif torch.allclose(noise, noise[0].expand_as(noise), rtol=1e-4):
        hint = "one ε is shared by every element: draw a fresh ε per element with torch.randn_like(mean)."
    else:
        hint = (
            "one ε is shared by all the images (a draw per dimension only): draw a fresh ε per element with "
            "torch.randn_like(mean)."
        )
    return _with_hints(message, [hint])


def _non_finite_draws_failure(case: str, draws: torch.Tensor, variances: torch.Tensor) -> str:
    """Return '' when every draw of z is a number, else in which dimensions it is NaN or infinite, and why.

    σ = exp(½ log σ²) is finite for every log σ²; a square root or log of log_var is NaN where log σ² < 0 (σ² < 1).
    """
    bad = ~torch.isfinite(draws).all(dim=0)
    if not bad.any():
        return ""
    what = "NaN" if torch.isnan(draws[:, bad]).any() else "infinite"
    log_variances = variances.log()
    message = (
        f"Case *{case}*: z is {what} in the dimensions with σ² = {_numbers(variances[bad].tolist())} "
        f"(log σ² = {_numbers(log_variances[bad].tolist())}), where it should be a number."
    )
    if torch.equal(bad, log_variances < 0):
        hint = (
            f"z is {what} for the negative log-variances (σ² < 1) only: is a square root or log taken of log_var? "
            "log_var is log σ², which is negative whenever σ² < 1; σ = exp(0.5 · log_var) is defined for every "
            "log_var."
        )
    else:
        hint = "is a square root or log taken of something that can be negative or zero? σ = exp(0.5 · log_var)."
    return _with_hints(message, [hint])


def _normal_distance(standardised: torch.Tensor) -> float:
    """Return the largest Kolmogorov-Smirnov distance between a column of draws and N(0, 1)."""
    ordered = standardised.sort(dim=0).values
    count = len(ordered)
    normal_cdf = 0.5 * (1 + torch.erf(ordered / math.sqrt(2)))
    ranks = torch.arange(1, count + 1, dtype=ordered.dtype).unsqueeze(1)
    return max((ranks / count - normal_cdf).max().item(), (normal_cdf - (ranks - 1) / count).max().item())


def _distribution_failure(case: str, standardised: torch.Tensor) -> str:
    """Return '' when the draws of z, standardised per dimension, look like N(0, 1), else what ε looks like."""
    distance = _normal_distance(standardised)
    if distance < NORMAL_DISTANCE_LIMIT:
        return ""
    message = (
        f"Case *{case}*: the draws of z are not normally distributed (Kolmogorov-Smirnov distance {distance:.3f} "
        f"from a normal distribution, expected below {NORMAL_DISTANCE_LIMIT})."
    )
    if standardised.abs().max() < 1.8:  # a uniform variable lies within √3 ≈ 1.73 standard deviations of its mean
        hint = "ε is uniform: torch.rand / torch.rand_like draw from U(0, 1); ε ~ N(0, I) is torch.randn_like(mean)."
    else:
        hint = "ε is not drawn from a normal distribution: ε ~ N(0, I) is torch.randn_like(mean)."
    return _with_hints(message, [hint])


def _centre_failure(case: str, centre: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor) -> str:
    """Return '' when z averages to μ, else whether the mean is missing, added k times, or ε is off-centre."""
    tolerance = 0.05 * sigma  # the average of 20,000 draws is within about 0.007 σ of its expectation
    if ((centre - means).abs() < tolerance).all():
        return ""
    message = f"Case *{case}*: the average z expected ≈ {_show(means)}, got {_show(centre)}."
    offset = (centre - means) / sigma  # in units of σ: what ε averages to if z = μ + σ·ε
    moving = means != 0
    times_mean = centre[moving] / means[moving]
    if (centre.abs() < tolerance).all():
        hint = "the mean is not added: z = mean + σ·ε."
    elif ((offset - offset.mean()).abs() < 0.05).all():
        hint = f"ε averages to {offset.mean().item():.2g}, not 0: ε ~ N(0, I) has mean 0 (torch.randn_like(mean))."
    elif ((times_mean - times_mean[0]).abs() < 0.05).all() and (centre[~moving].abs() < tolerance[~moving]).all():
        hint = f"the average z is {times_mean[0].item():.2g}·μ: z = mean + σ·ε adds the mean once."
    else:
        hint = "z should average to μ over many draws: z = mean + σ·ε with ε of mean 0."
    return _with_hints(message, [hint])


def _spread_failure(case: str, spread: torch.Tensor, variances: torch.Tensor) -> str:
    """Return '' when z's standard deviation over draws is σ, else a message naming the scale used instead."""
    sigma = variances.sqrt()
    if torch.allclose(spread, sigma, rtol=0.03):
        return ""
    candidates = {
        "the noise is scaled by the variance exp(log_var); scale it by the standard deviation "
        "σ = exp(0.5 · log_var).": variances,
        "log_var is used as σ; σ = exp(0.5 · log_var).": variances.log().abs(),
        "σ is taken as 0.5 · log_var, ½ · log σ², with the exp forgotten: σ = exp(0.5 · log_var).": 0.5
        * variances.log().abs(),
        "ε is not scaled by σ = exp(0.5 · log_var).": torch.ones(3, dtype=torch.float64),
        "exp(-0.5 · log_var) is 1/σ: the sign in the exponent is wrong.": 1 / sigma,
    }
    hint = next((hint for hint, scale in candidates.items() if torch.allclose(spread, scale, rtol=0.03)), None)
    ratio = spread / sigma
    # log spread = power · log σ + log factor: how z's spread grows with σ
    power, log_factor = torch.linalg.lstsq(
        torch.stack([sigma.log(), torch.ones_like(sigma)], dim=1), spread.log().unsqueeze(1)
    ).solution.squeeze(1)
    if hint is None and torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=0.03):
        hint = (
            f"z spreads {ratio.mean().item():.3g} times σ: ε should have standard deviation 1 (torch.randn_like), "
            "and σ = exp(0.5 · log_var) with no further factor."
        )
    elif hint is None and torch.allclose(log_factor.exp() * sigma**power, spread, rtol=0.03):
        hint = f"z spreads as σ to the power {power.item():.2g}, not as σ: σ = exp(0.5 · log_var)."
    message = f"Case *{case}*: z's standard deviation over the draws expected ≈ {_show(sigma)}, got {_show(spread)}."
    return _with_hints(message, [hint] if hint else [])


def _independence_failure(case: str, draws: torch.Tensor) -> str:
    """Return '' when z's dimensions vary independently over the draws, else a message on the shared noise."""
    correlation = torch.corrcoef(draws.T)
    largest = (correlation - torch.eye(len(correlation), dtype=correlation.dtype)).abs().max().item()
    if largest < 0.1:
        return ""
    return _with_hints(
        f"Case *{case}*: z's dimensions move together over the draws (correlation {largest:.2f}, expected ≈ 0).",
        ["the dimensions of each image share one ε: draw one ε per element with torch.randn_like(mean)."],
    )


def _gradient_failure_of_z(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> str:
    """Return '' when dz/dmean = 1 and dz/dlog_var = (z - mean) / 2, else a message on the missing gradient."""
    case = "gradients of z"
    if not z.requires_grad:
        return (
            f"Case *{case}*: z carries no gradient.\nLooks like: z is drawn with torch.normal or detached; "
            "compute it as mean + σ·ε so gradients reach mean and log_var."
        )
    d_mean, d_log_var = torch.autograd.grad(z.sum(), (mean, log_var), allow_unused=True)
    if d_mean is None or not torch.allclose(d_mean, torch.ones_like(mean)):
        return f"Case *{case}*: dz/dmean should be 1 everywhere.\nLooks like: z = mean + σ·ε is not what is computed."
    expected = 0.5 * (z.detach().double() - mean.detach().double())
    if d_log_var is None or not torch.allclose(d_log_var.double(), expected, rtol=1e-3, atol=1e-5):
        return (
            f"Case *{case}*: dz/dlog_var should be σ·ε/2 = (z - mean)/2.\n"
            "Looks like: σ is not computed from log_var as exp(0.5 · log_var), or is detached."
        )
    return ""


# --- the closed-form KL -------------------------------------------------------------------------------------

# The probes of a KL's parts: a batch of three images of two dimensions, one image of three dimensions, and single
# elements where only μ varies (σ² = 2: every reading of log_var as σ, σ² or log σ is defined there) or only σ².
KL_PROBE_BATCH = ([[1.0, -0.5], [-2.0, 0.3], [0.5, 1.5]], [[0.7, -0.5], [0.2, 1.0], [-1.2, 0.4]])
KL_PROBE_IMAGE = ([[1.0, -2.0, 0.5]], [[0.7, -0.5, 1.2]])
KL_PROBE_POINTS = ((1.0, 0.7), (-2.0, -0.5), (0.5, 2.0), (1.5, -1.5))
KL_PROBE_MEANS = (-2.0, -1.0, 1.0, 2.0)
KL_PROBE_LOG_VARIANCE = math.log(2.0)
KL_PROBE_VARIANCES = (0.25, 0.5, 2.0, 4.0)
# Single elements on either side of 0 in μ and in log σ²: the KL is a number at each; a log or square root of an
# input that can be negative or zero is not, and where it is not tells which input.
KL_PROBE_SIGNED_MEANS = (-1.0, 1.0)
KL_PROBE_SIGNED_LOG_VARIANCES = (-1.0, 0.0, 1.0)
KL_WHY = "the loss backpropagates through the KL to train the encoder: build it from mean and log_var"


def _kl_of_one(mean: float, log_var: float) -> float:
    """Return the closed-form KL of one latent dimension of one image."""
    return -0.5 * (1 + log_var - mean**2 - math.exp(log_var))


def kl_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return the KL check's cases, name -> (mean, log_var)."""
    generator = torch.Generator().manual_seed(0)
    return {
        "one image, μ = (1, -2), σ² = (0.5, 2)": (torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]]).log()),
        "a batch of 4 images, 3 dimensions": (
            torch.randn(4, 3, generator=generator),
            torch.rand(4, 3, generator=generator) * 3 - 2,
        ),
        "q equal to the prior N(0, I)": (torch.zeros(2, 2), torch.zeros(2, 2)),
    }


def check_kl_divergence(kl_divergence: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check KL(q(z|x) || N(0, I)) summed over latent dimensions and averaged over the batch, and its gradient."""
    return _result(
        "closed-form KL", _kl_failures(kl_divergence), "KL = -½ Σ (1 + log σ² - μ² - σ²), averaged over the batch."
    )


def _kl_failures(kl_divergence: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's KL is not a tensor of the right value and gradient."""
    probed = _probing(kl_divergence)
    for name, (mean, log_var) in kl_cases().items():
        leaves = {"mean": mean.clone().requires_grad_(), "log_var": log_var.clone().requires_grad_()}
        got = _call(name, kl_divergence, leaves["mean"].clone(), leaves["log_var"].clone())
        expected = kl_per_dimension(leaves["mean"], leaves["log_var"]).sum()
        if not isinstance(got, torch.Tensor):
            yield _kind_failure(name, "the KL", got, KL_WHY)
            return
        yield _compare(name, "the KL", got, expected, diagnose=lambda: _kl_hints(probed))
        yield _kind_failure(name, "the KL", got, KL_WHY)
        yield _gradient_failure(name, "the KL", got, leaves, expected, diagnose=lambda: _kl_hints(probed))


def _kl_hints(kl_divergence: Callable[[torch.Tensor, torch.Tensor], object]) -> list[str]:
    """Return what is wrong with a KL function, found part by part: where it is not a number, its shape, its two
    reductions, μ's part, σ²'s part.

    Each part is probed on its own: one image against many, one dimension against many, single elements where only
    μ or only σ² changes; a mistake nobody listed is still named by the part it is in. A KL that is NaN or infinite
    on some inputs is told so first, and no part is judged from those values.
    """
    non_finite = _kl_non_finite_hints(kl_divergence)
    batch = _as_tensor(kl_divergence(*map(torch.tensor, KL_PROBE_BATCH)))
    if batch is None:
        return non_finite
    if batch.numel() != 1:
        return non_finite + [_kl_shape_hint(tuple(batch.shape))]

    def element(mean: float, log_var: float) -> float:
        return _as_number(kl_divergence(torch.tensor([[mean]]), torch.tensor([[log_var]])))

    return non_finite + _kl_reduction_hints(kl_divergence, batch.item()) + _kl_element_hints(element)


def _kl_non_finite_hints(kl_divergence: Callable[[torch.Tensor, torch.Tensor], object]) -> list[str]:
    """Return a hint when the KL of a single element is NaN or infinite somewhere, where the right KL is a number:
    at which sign of log σ² or of μ, and the log or square root that usually makes it so."""
    bad = []
    for mean in KL_PROBE_SIGNED_MEANS:
        for log_var in KL_PROBE_SIGNED_LOG_VARIANCES:
            value = _as_tensor(kl_divergence(torch.tensor([[mean]]), torch.tensor([[log_var]])))
            if value is not None and not torch.isfinite(value).all():
                bad.append((mean, log_var, bool(torch.isnan(value).any())))
    if not bad:
        return []
    nans = {is_nan for _, _, is_nan in bad}
    what = "NaN" if nans == {True} else "infinite" if nans == {False} else "NaN or infinite"
    places = {(mean, log_var) for mean, log_var, _ in bad}
    log_vars = sorted({log_var for _, log_var in places})
    means = sorted({mean for mean, _ in places})
    by_log_var = {
        (-1.0,): "negative (σ² < 1)",
        (-1.0, 0.0): "negative or zero (σ² ≤ 1)",
        (0.0,): "zero (σ² = 1)",
    }
    if (
        places == {(mean, log_var) for mean in KL_PROBE_SIGNED_MEANS for log_var in log_vars}
        and tuple(log_vars) in by_log_var
    ):
        return [
            f"your KL is {what} where log_var is {by_log_var[tuple(log_vars)]}, though the KL is a number for every "
            "μ and log σ²: is a log or square root taken of log_var? `log_var` is log σ² already, and it is negative "
            "whenever σ² < 1: σ² = exp(log_var), and log σ² is log_var itself."
        ]
    if places == {(mean, log_var) for mean in means for log_var in KL_PROBE_SIGNED_LOG_VARIANCES} and means == [-1.0]:
        return [
            f"your KL is {what} where μ is negative, though the KL is a number for every μ and log σ²: is a log or "
            "square root taken of mean? The μ term is mean.pow(2)."
        ]
    inputs = ", ".join(f"({mean:g}, {log_var:g})" for mean, log_var in sorted(places))
    cause = (  # an infinity with no NaN comes from a division by zero more often than from a log of zero
        "is something divided by zero (a count less one, such as len(mean) - 1, is 0 for one image) or a log taken "
        "of something that can be zero?"
        if nans == {False}
        else "is a log or square root taken of something that can be negative or zero?"
    )
    return [f"your KL is {what} for (μ, log σ²) = {inputs}, though the KL is a number for every μ and log σ²: {cause}"]


def _kl_shape_hint(shape: tuple[int, ...]) -> str:
    """Return the hint for a KL that is not one number, from its shape (3 images of 2 dimensions went in)."""
    images, dimensions = len(KL_PROBE_BATCH[0]), len(KL_PROBE_BATCH[0][0])
    return {
        (images,): "one KL per image: average them over the batch.",
        (dimensions,): "one KL per latent dimension: sum them over dimensions.",
        (images, dimensions): "one value per image and dimension: sum over dimensions, average over images.",
    }.get(shape, f"the KL should be one number; for {images} images of {dimensions} dimensions it has shape {shape}.")


def _kl_reduction_hints(kl_divergence: Callable, batch: float) -> list[str]:
    """Return hints on how the learner's KL combines images (an average) and dimensions (a sum).

    A comparison with a NaN or infinite KL in it says nothing about the reductions, so it is left out.
    """
    hints = []
    means, log_vars = KL_PROBE_BATCH
    images = [_as_number(kl_divergence(torch.tensor([m]), torch.tensor([v]))) for m, v in zip(means, log_vars)]
    if all(map(math.isfinite, [batch, *images])) and not _near(batch, sum(images) / len(images)):
        if _near(batch, sum(images)):
            hints.append("summed over the batch instead of averaged: take .mean() over images.")
        else:
            hints.append(
                f"one image against many: a batch's KL should be the average of its images' KLs, "
                f"{sum(images) / len(images):.4g}, got {batch:.4g}: sum over dimensions, then .mean() over images."
            )
    (image_means,), (image_log_vars,) = KL_PROBE_IMAGE
    whole = _as_number(kl_divergence(*map(torch.tensor, KL_PROBE_IMAGE)))
    dimensions = [
        _as_number(kl_divergence(torch.tensor([[m]]), torch.tensor([[v]]))) for m, v in zip(image_means, image_log_vars)
    ]
    if all(map(math.isfinite, [whole, *dimensions])) and not _near(whole, sum(dimensions)):
        if _near(whole, sum(dimensions) / len(dimensions)):
            hints.append("averaged over the latent dimensions: sum over dimensions, average over images.")
        else:
            hints.append(
                f"one dimension against many: an image's KL should be the sum of its dimensions' KLs, "
                f"{sum(dimensions):.4g}, got {whole:.4g}."
            )
    return hints


def _kl_element_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return hints on the learner's KL of a single element: an overall factor, the part in μ, the part in σ²."""
    got = [element(mean, log_var) for mean, log_var in KL_PROBE_POINTS]
    expected = [_kl_of_one(mean, log_var) for mean, log_var in KL_PROBE_POINTS]
    if _near(got, expected):
        return []
    ratios = [value / right for value, right in zip(got, expected)]
    if all(math.isfinite(ratio) for ratio in ratios) and _near(ratios, ratios[0]):
        factor = ratios[0]
        named = {
            2.0: "the factor ½ is missing: KL = -½ Σ (1 + log σ² - μ² - σ²).",
            -1.0: "the sign is wrong: a KL is never negative.",
            -2.0: "the sign is wrong and the factor ½ is missing: KL = -½ Σ (1 + log σ² - μ² - σ²).",
        }
        default = f"the KL is {factor:.4g} times the right value everywhere: KL = -½ Σ (1 + log σ² - μ² - σ²)."
        return [next((hint for value, hint in named.items() if _near(factor, value)), default)]
    return _kl_mean_hints(element) + _kl_variance_hints(element)


def _kl_mean_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return a hint when the KL does not grow by ½μ² as μ moves away from 0 with σ² fixed."""
    fixed = KL_PROBE_LOG_VARIANCE
    growth = [element(mean, fixed) - element(0.0, fixed) for mean in KL_PROBE_MEANS]
    expected = [0.5 * mean**2 for mean in KL_PROBE_MEANS]
    if _near(growth, expected) or not all(map(math.isfinite, growth)):  # a NaN or infinite KL is told on its own
        return []
    if not _near(growth, growth[::-1]):  # KL_PROBE_MEANS is symmetric: μ and -μ must give the same KL
        return [
            f"μ is not squared: with σ² fixed, μ = -1 and μ = 1 must give the same KL (½μ² more than μ = 0), "
            f"yours adds {growth[1]:.4g} and {growth[2]:.4g}: use mean.pow(2)."
        ]
    weights = [value / mean**2 for value, mean in zip(growth, KL_PROBE_MEANS)]
    if _near(weights, weights[0]):
        if _near(weights[0], -0.5):
            return ["the μ² term has the wrong sign: -½(1 + log σ² - μ² - σ²) adds +½μ² to the KL."]
        return [f"the μ² term has weight {weights[0]:.4g}: the KL grows by ½μ² as μ moves from 0."]
    if _near(growth[3] / growth[2], 2.0):
        return ["the KL grows like |μ|, not like μ²: use mean.pow(2)."]
    return [
        f"the part in μ is wrong: with σ² fixed, μ = {_numbers(KL_PROBE_MEANS)} should add "
        f"{_numbers(expected)} to the KL (½μ²), yours adds {_numbers(growth)}."
    ]


def _kl_variance_hints(element: Callable[[float, float], float]) -> list[str]:
    """Return hints when the KL with μ = 0 is not ½(σ² - log σ² - 1): how log_var is read, or which term is off."""
    log_vars = torch.tensor(KL_PROBE_VARIANCES, dtype=torch.float64).log()
    got = torch.tensor([element(0.0, log_var) for log_var in log_vars.tolist()], dtype=torch.float64)
    expected = -0.5 * (1 + log_vars - log_vars.exp())
    if _close(got, expected, rtol=1e-3):
        return []
    readings = {  # log_var read as something it is not, and what the KL with μ = 0 becomes
        "σ used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).": -0.5
        * (1 + torch.log(log_vars**2) - log_vars**2),
        "σ² used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).": -0.5
        * (1 + torch.log(log_vars) - log_vars),
        "log σ used where log σ² is expected: σ² = exp(log_var), not exp(2 · log_var).": -0.5
        * (1 + 2 * log_vars - (2 * log_vars).exp()),
        "σ used where σ² is expected in the last term: σ² = exp(log_var).": -0.5
        * (1 + log_vars - (0.5 * log_vars).exp()),
    }
    named = [hint for hint, wrong in readings.items() if _close(got, wrong, rtol=1e-3)]
    if named:
        return named
    if not torch.isfinite(got).all():
        return []  # a NaN or infinite KL is told on its own
    # The KL with μ = 0 is a · 1 + b · log σ² + c · σ², with (a, b, c) = (-½, -½, ½): find the learner's.
    basis = torch.stack([torch.ones_like(log_vars), log_vars, log_vars.exp()], dim=1)
    weights = torch.linalg.lstsq(basis, got.unsqueeze(1)).solution.squeeze(1)
    if _close(basis @ weights, got, rtol=1e-3, atol=1e-5):
        return _kl_term_hints(weights.tolist())
    return [
        f"the part in σ² is wrong: with μ = 0 the KL should be ½(σ² - log σ² - 1), for σ² = "
        f"{_numbers(KL_PROBE_VARIANCES)}: {_numbers(expected.tolist())}; yours: {_numbers(got.tolist())}."
    ]


def _kl_term_hints(weights: list[float]) -> list[str]:
    """Return a hint for each term of -½(1 + log σ² - σ²) whose weight in the learner's KL is not the right one."""
    constant, log_variance, variance = weights
    hints = []
    if not _near(constant, -0.5, rtol=1e-2, atol=1e-4):
        if _near(constant, 0.0, rtol=1e-2, atol=1e-4):
            hints.append("the 1 inside the sum is missing: when q equals the prior N(0, I) the KL must be 0.")
        else:
            hints.append(
                f"the constant term is off: when q equals the prior N(0, I) the KL must be 0, not {constant + 0.5:.4g}."
            )
    for weight, right, term in ((log_variance, -0.5, "log σ² (log_var)"), (variance, 0.5, "σ² (exp(log_var))")):
        if _near(weight, right, rtol=1e-2, atol=1e-4):
            continue
        if _near(weight, 0.0, rtol=1e-2, atol=1e-4):
            hints.append(f"the {term} term is missing.")
        elif _near(weight, -right, rtol=1e-2, atol=1e-4):
            hints.append(f"the {term} term has the wrong sign.")
        else:
            hints.append(f"the {term} term has weight {weight:.4g} in the KL, expected {right:g}.")
    return hints


# --- the loss -----------------------------------------------------------------------------------------------

LOSS_NAMES = ("total", "reconstruction", "kl")
LOSS_WHY = "the training step calls total.backward(): build the total from the inputs with torch operations"


def loss_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """Return the loss check's cases, name -> (images, reconstruction, mean, log_var, alpha)."""
    generator = torch.Generator().manual_seed(0)
    batch = (3, 1, 28, 28)
    return {
        "3 images of 28 × 28, alpha 0.001": (
            torch.rand(batch, generator=generator) * 2 - 1,
            torch.rand(batch, generator=generator) * 2 - 1,
            torch.randn(3, 2, generator=generator),
            torch.rand(3, 2, generator=generator) - 1,
            0.001,
        ),
        "one 2 × 2 image, alpha 0.1": (
            torch.tensor([[[[0.5, -1.0], [1.0, 0.0]]]]),
            torch.tensor([[[[0.0, -1.0], [0.5, 0.5]]]]),
            torch.tensor([[1.0, -2.0]]),
            torch.tensor([[1.0, 4.0]]).log(),
            0.1,
        ),
    }


def check_loss(
    loss_function: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> CheckResult:
    """Check (total, reconstruction, kl) = loss_function(images, reconstruction, mean, log_var, alpha)."""
    return _result("the loss", _loss_failures(loss_function), "total = 0.5 · MSE + alpha · KL.")


def _loss_failures(loss_function: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's loss differs from vae_loss, naming the wrong part."""
    probed = _probing(loss_function)
    for name, (images, reconstruction, mean, log_var, alpha) in loss_cases().items():
        inputs = {"reconstruction": reconstruction, "mean": mean, "log_var": log_var}
        leaves = {key: value.clone().requires_grad_() for key, value in inputs.items()}
        returned = _call(name, loss_function, images, *(leaf.clone() for leaf in leaves.values()), alpha)
        if not (isinstance(returned, tuple | list) and len(returned) == 3):
            yield _not_three_failure(f"Case *{name}*", "values", returned)
            return
        expected = vae_loss(images, *leaves.values(), alpha)
        yield _order_failure(name, "the values", returned, expected)
        for label, value in zip(LOSS_NAMES, returned):
            yield _kind_failure(name, f"the {label}", value, LOSS_WHY, needs_graph=label == "total")
        total, recon, kl = returned
        yield _compare(
            name,
            "the reconstruction term",
            recon,
            expected[1],
            _returned_loss_mistakes("reconstruction", expected, alpha),
            diagnose=lambda: _reconstruction_hints(lambda x, y: probed(x, y, *_prior_code(len(x)), 0.001)[1]),
        )
        yield _compare(
            name,
            "the KL term",
            kl,
            expected[2],
            _returned_loss_mistakes("kl", expected, alpha),
            diagnose=lambda: _loss_kl_hints(probed),
        )
        yield _compare(name, "the total", total, expected[0], diagnose=lambda: _total_hints(probed))
        yield _gradient_failure(name, "the total", total, leaves, expected[0], diagnose=lambda: _total_hints(probed))


def _order_failure(case: str, what: str, returned: Sequence[object], expected: Sequence[torch.Tensor]) -> str:
    """Return '' unless the returned values are (total, reconstruction, kl) in another order."""
    matches = []
    for own, value in zip(LOSS_NAMES, returned):
        got = _as_tensor(value)
        equal = [name for name, right in zip(LOSS_NAMES, expected) if got is not None and _close(got, right)]
        matches.append(own if own in equal else next(iter(equal), "?"))
    named = [match for match in matches if match != "?"]
    if all(match in ("?", own) for match, own in zip(matches, LOSS_NAMES)) or len(set(named)) < len(named):
        return ""
    return _with_hints(
        f"Case *{case}*: {what} come back in the wrong order.",
        [f"return (total, reconstruction, kl); yours returns ({', '.join(matches)})."],
    )


def _not_three_failure(where: str, what: str, returned: object) -> str:
    """Return the failure of a loss or a step that did not return three values: how many, or its type, and when it
    returned None, the hint on the missing return."""
    got = (
        f"a {type(returned).__name__} of {len(returned)}"
        if isinstance(returned, tuple | list)
        else type(returned).__name__
    )
    message = f"{where}: expected three {what} (total, reconstruction, kl), got {got}."
    return _with_hints(message, [_not_a_tensor_hint(returned, "")] if returned is None else [])


def _prior_code(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean and log-variance of `count` codes equal to the prior: a KL of 0, whatever its formula."""
    return torch.zeros(count, 2), torch.zeros(count, 2)


def _reconstruction_hints(reconstruction_term: Callable[[torch.Tensor, torch.Tensor], object]) -> list[str]:
    """Return what is wrong with a reconstruction term, probed part by part: its sign, the square, its two means."""
    generator = torch.Generator().manual_seed(1)
    image, drawn = torch.rand(2, 1, 1, 28, 28, generator=generator) * 2 - 1
    pair = _as_tensor(reconstruction_term(image.repeat(2, 1, 1, 1), drawn.repeat(2, 1, 1, 1)))
    if pair is not None and pair.numel() != 1:
        return [
            f"the term should be one number; for 2 images it has shape {tuple(pair.shape)}: average over the "
            "pixels and the images, 0.5 · mean((x - x̂)²)."
        ]
    term = _as_number(reconstruction_term(image, drawn))
    right = 0.5 * (image - drawn).pow(2).mean().item()
    if not math.isfinite(term):
        return []
    if term < 0:
        return ["the sign is wrong: the squared error is a cost, to be minimised."]
    doubled = _as_number(reconstruction_term(image, image + 2 * (drawn - image))) / term
    if not _near(doubled, 4.0):
        if _near(doubled, 2.0):
            return [
                "the error is not squared: doubling every pixel's error doubled the term instead of multiplying it "
                "by 4 (an absolute error?): 0.5 · mean((x - x̂)²), as F.mse_loss computes."
            ]
        return [f"doubling every pixel's error multiplied the term by {doubled:.4g}, not 4: square the error."]
    copies = 3
    per_copy = _as_number(reconstruction_term(image.repeat(copies, 1, 1, 1), drawn.repeat(copies, 1, 1, 1))) / term
    summed_images = _near(per_copy, copies)
    pixels = image.numel()
    scale = term / right
    summed_pixels = scale > pixels / 4  # a sum over the 784 pixels, whatever else multiplies it
    factor = scale / pixels if summed_pixels else scale
    named = {
        (True, False, 1.0): "summed over pixels instead of averaged: 0.5 · mean over pixels and images (F.mse_loss).",
        (True, True, 1.0): "summed over pixels and images: average over both (F.mse_loss's default).",
        (False, True, 1.0): "summed over the batch: average over images too.",
        (False, False, 2.0): "the factor ½ is missing from the reconstruction term.",
    }
    hint = next(
        (text for (p, i, f), text in named.items() if (p, i) == (summed_pixels, summed_images) and _near(factor, f)),
        None,
    )
    if hint:
        return [hint]
    parts = ["summed over pixels"] * summed_pixels + ["summed over images"] * summed_images
    if not _near(factor, 1.0):
        parts.append("the factor ½ missing" if _near(factor, 2.0) else f"{factor:.4g} times the right size")
    if not parts:  # right on these 28 × 28 probes, whatever the failed case got wrong
        return [
            "the term agrees with 0.5 · mean((x - x̂)²) on the check's 28 × 28 probe images, but not on this case: "
            "is a size written in, such as 784 pixels or a batch size? A mean, as F.mse_loss takes, fits any size."
        ]
    return [f"{', '.join(parts)}: the term is 0.5 · mean((x - x̂)²), a mean over pixels and images."]


def _loss_kl_hints(loss_function: Callable) -> list[str]:
    """Return what is wrong with the KL term a loss function returns, probed as check_kl_divergence probes a KL."""

    def kl_of(mean: torch.Tensor, log_var: torch.Tensor) -> object:
        images = torch.zeros(len(mean), 1, 28, 28)
        return loss_function(images, images.clone(), mean, log_var, 0.001)[2]

    return [f"{hint} (Check your KL with check_kl_divergence.)" for hint in _kl_hints(kl_of)]


def _total_hints(loss_function: Callable) -> list[str]:
    """Return what is wrong with how a loss function combines its two terms, from two inputs at each of two alphas."""
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(3, 1, 1, 28, 28, generator=generator) * 2 - 1
    probes = [  # a large error with a small KL, a small error with a large KL, and one to confirm the fit
        (images[0], -images[0], torch.tensor([[0.1, -0.1]]), torch.tensor([[0.0, 0.1]])),
        (images[1], 0.9 * images[1], torch.tensor([[2.0, -3.0]]), torch.tensor([[-2.0, 1.0]])),
        (images[2], images[0], torch.tensor([[1.0, 0.5]]), torch.tensor([[0.5, -0.5]])),
    ]
    recon_weights, kl_weights = [], []
    for alpha in PROBE_ALPHAS:
        values = torch.tensor([[_as_number(value) for value in loss_function(*probe, alpha)] for probe in probes])
        totals, terms = values[:, 0].double(), values[:, 1:].double()
        weights = torch.linalg.lstsq(terms[:2], totals[:2].unsqueeze(1)).solution.squeeze(1)
        if not torch.isfinite(values).all() or not _near(terms[2] @ weights, totals[2]):
            return ["the total is not a sum of your reconstruction and KL terms: total = reconstruction + alpha · KL."]
        recon_weights.append(weights[0].item())
        kl_weights.append(weights[1].item())
    return _weight_hints(recon_weights, kl_weights, PROBE_ALPHAS, "the total")


def _weight_hints(
    recon_weights: Sequence[float], kl_weights: Sequence[float], alphas: Sequence[float], loss: str
) -> list[str]:
    """Return what is wrong with a loss = a · reconstruction + b · KL, given a and b measured at several alphas."""
    a, b, alpha = (torch.tensor(values, dtype=torch.float64) for values in (recon_weights, kl_weights, alphas))

    def near(x: torch.Tensor, y: torch.Tensor | float) -> bool:
        return _near(x.tolist(), torch.as_tensor(y, dtype=torch.float64).expand_as(x).tolist(), rtol=0.01, atol=1e-5)

    if near(a, 1.0) and near(b, alpha):
        return []
    named = [
        (-1.0, -alpha, "the wrong sign: minimise reconstruction + alpha · KL (the negative of the ELBO)."),
        (1.0, -alpha, "the KL is subtracted: it is a penalty, added with weight alpha."),
        (1.0, 0.0, f"the KL term is left out of {loss}: {loss} = reconstruction + alpha · KL."),
        (1.0, 1.0, "alpha is missing: minimise reconstruction + alpha · KL."),
        (alpha, 1.0, "alpha weighs the reconstruction instead of the KL."),
    ]
    hint = next((text for recon, kl, text in named if near(a, recon) and near(b, kl)), None)
    if hint:
        return [hint]
    if near(a, 1.0) and near(b, b[0].item()):
        return [
            f"alpha is ignored: the KL is weighted by {b[0].item():.4g} whatever alpha is (a number written in?): "
            "weigh it with the alpha argument."
        ]
    if near(a, a[0].item()) and near(b, a[0].item() * alpha):
        return [f"{loss} is multiplied by {a[0].item():.4g}: minimise reconstruction + alpha · KL as it is."]
    hints = []
    if not near(a, 1.0):
        hints.append(f"the reconstruction's weight in {loss} is {_numbers(a.tolist())}, expected 1.")
    if not near(b, alpha):
        hints.append(
            f"the KL's weight in {loss} is {_numbers(b.tolist())} for alpha = {_numbers(alphas)}: it is alpha."
        )
    return hints


# --- the training step --------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """What a few hundred steps of a training step did: the losses it returned and the weights it left."""

    losses: list[object]
    weights: list[dict[str, torch.Tensor]]  # after 0, 1 and 2 steps, and at the end


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of the model's parameters (BatchNorm's running statistics change in any forward pass)."""
    return {name: value.detach().clone() for name, value in model.named_parameters()}


def _fresh_training(seed: int) -> tuple[VAE, torch.optim.Optimizer]:
    """Return a small VAE in training mode and its Adam optimizer, the same for the same seed."""
    with _seeded(seed):
        model = VAE(latent_dim=2, widths=CHECK_WIDTHS)
    return model, torch.optim.Adam(model.parameters(), lr=CHECK_LEARNING_RATE)


def run_training_steps(step: Callable, images: torch.Tensor, steps: int) -> TrainingRun:
    """Return what `steps` calls of step(model, optimizer, batch, alpha) do to a small VAE, from fixed seeds.

    A step that raises raises _LearnerError, which names the step and the exception.
    """
    order = torch.randint(len(images), (steps, CHECK_BATCH_SIZE), generator=torch.Generator().manual_seed(0))
    with _seeded(0):
        model = VAE(latent_dim=2, widths=CHECK_WIDTHS)
        optimizer = torch.optim.Adam(model.parameters(), lr=CHECK_LEARNING_RATE)
        run = TrainingRun([], [_weights(model)])
        with _recording_grad_mode(model) as grad_modes:
            for index, indices in enumerate(order):
                batch = to_model_input(images[indices])
                hints = partial(_step_error_hints, grad_modes)
                run.losses.append(_call(f"step {index + 1}", step, model, optimizer, batch, CHECK_ALPHA, hints=hints))
                if index < 2 or index == steps - 1:
                    run.weights.append(_weights(model))
    return run


@contextmanager
def _recording_grad_mode(model: nn.Module) -> Iterator[list[bool]]:
    """Record, for each forward pass of the model in a block, whether gradients were on (off under torch.no_grad())."""
    grad_modes: list[bool] = []
    hook = model.register_forward_pre_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    try:
        yield grad_modes
    finally:
        hook.remove()


def _step_error_hints(grad_modes: Sequence[bool], error: Exception) -> list[str]:
    """Return a hint on why a training step raised, from the error and whether its forward pass recorded a graph."""
    text = str(error)
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
    return []


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Return True when two weight dicts hold the same values (to float rounding)."""
    return all(torch.allclose(first[name].double(), second[name].double(), rtol=1e-3, atol=1e-5) for name in first)


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
    hook = optimizer.register_step_pre_hook(lambda *_: gradients.append(_flat_gradients(model)))
    statistics, weights = _running_statistics(model), _weights(model)
    try:
        with _seeded(seed), _recording_grad_mode(model) as grad_modes:
            hints = partial(_step_error_hints, grad_modes)
            returned = _call(case, step, model, optimizer, batch, alpha, hints=hints)
    finally:
        hook.remove()
    after = _weights(model)
    return StepProbe(
        returned,
        gradients,
        model.training,
        not torch.equal(statistics, _running_statistics(model)),
        any(not torch.equal(weights[name], after[name]) for name in weights),
    )


@dataclass
class LossGradients:
    """One forward pass of a model: its (total, reconstruction, kl) losses and the gradients of the two terms."""

    losses: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    reconstruction: torch.Tensor
    kl: torch.Tensor


def _loss_gradients(model: nn.Module, batch: torch.Tensor, alpha: float, seed: int) -> LossGradients:
    """Return the losses and each term's gradient for a copy of the model in training mode, with the noise of `seed`."""
    twin = copy.deepcopy(model).train()
    with _seeded(seed):
        reconstruction, mean, log_var = twin(batch)
    losses = vae_loss(batch, reconstruction, mean, log_var, alpha)
    parameters = list(twin.parameters())

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        parts = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(parameters, parts)])

    return LossGradients(
        tuple(loss.detach() for loss in losses), gradient(losses[1]).double(), gradient(losses[2]).double()
    )


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
    if not probe.batchnorm_moved:
        return _with_hints(
            "Step 1: BatchNorm's running statistics did not change.",
            ["the forward pass ran in eval mode (model.eval() before model(batch)): run it in training mode."],
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
    if probe.gradients[0].abs().max() == 0:
        return _with_hints(
            "Step 1: the gradients were zero when optimizer.step() ran.",
            [
                "backward() is not called, or zero_grad() is called between backward() and step(): zero the "
                "gradients first, then backward(), then step()."
            ],
        )
    return ""


def _probe_failures(step: Callable, images: torch.Tensor) -> Iterator[str]:
    """Yield failures found by single calls of the step: its mode, its optimizer steps, the loss it minimises at two
    alphas, its zero_grad, and the losses it returns."""
    indices = torch.arange(2 * CHECK_BATCH_SIZE) % len(images)
    first_batch, second_batch = to_model_input(images[indices]).split(CHECK_BATCH_SIZE)
    recon_weights, kl_weights, probes = [], [], []
    for alpha in PROBE_ALPHAS:
        model, optimizer = _fresh_training(1)
        reference = _loss_gradients(model, first_batch, alpha, seed=2)
        probe = _probe_step(step, model, optimizer, first_batch, alpha, seed=2)
        failure = _step_mechanics_failure(probe)
        if failure:
            yield failure
            return
        basis = torch.stack([reference.reconstruction, reference.kl], dim=1)
        weights = torch.linalg.lstsq(basis, probe.gradients[0].unsqueeze(1)).solution.squeeze(1)
        if _relative_gap(basis @ weights, probe.gradients[0]) > 1e-2:
            yield _with_hints(
                "Step 1: the gradients optimizer.step() used are not those of the batch's reconstruction and KL terms.",
                [
                    "the loss comes from another forward pass, or from other values: run model(batch) once, take the "
                    "loss of its outputs, then backward()."
                ],
            )
            return
        recon_weights.append(weights[0].item())
        kl_weights.append(weights[1].item())
        probes.append((model, optimizer, probe, reference))
    hints = _weight_hints(recon_weights, kl_weights, PROBE_ALPHAS, "the minimised loss")
    if _rescaled_gradients(recon_weights, kl_weights):
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
    alpha = PROBE_ALPHAS[0]
    following = _loss_gradients(model, second_batch, alpha, seed=3)
    second = _probe_step(step, model, optimizer, second_batch, alpha, seed=3, case="step 2")
    expected = following.reconstruction + alpha * following.kl
    if second.gradients and _relative_gap(second.gradients[0], expected + first.gradients[0]) < 1e-3:
        yield _with_hints(
            "Step 2: the gradients optimizer.step() used hold step 1's gradients too.",
            ["optimizer.zero_grad() is missing, so gradients add up from step to step."],
        )


def _rescaled_gradients(recon_weights: Sequence[float], kl_weights: Sequence[float]) -> bool:
    """Return True when the gradients at each alpha are those of reconstruction + alpha · KL times a factor that is
    not the same at the two alphas: rescaled after backward() (clipped), not a loss multiplied by a number."""
    ratios = [kl / recon if recon else math.nan for recon, kl in zip(recon_weights, kl_weights)]
    return _near(ratios, PROBE_ALPHAS, rtol=0.01) and not _near(recon_weights, recon_weights[0], rtol=0.01)


def _step_failures(step: Callable, images: torch.Tensor, steps: int) -> Iterator[str]:
    """Yield a failure message for the first way `steps` calls of the learner's step depart from train_step's."""
    learner = run_training_steps(step, images, steps)
    reference = run_training_steps(train_step, images, steps)
    first = learner.losses[0]
    if not (isinstance(first, tuple | list) and len(first) == 3):
        yield _not_three_failure("Step 1", "losses", first)
        return
    if any(isinstance(loss, torch.Tensor) and loss.requires_grad for loss in first):
        yield (
            "Step 1: the returned losses still carry their graph.\n"
            "Looks like: return total.detach(), ... (or .item()), so each step's graph is freed."
        )
    yield from _probe_failures(step, images)
    for index, (got, expected) in enumerate(zip(learner.losses, reference.losses), start=1):
        for label, value, right in zip(LOSS_NAMES, got, expected):
            what = f"the {'KL' if label == 'kl' else label} loss"
            yield _compare(f"step {index}", what, value, right, _returned_loss_mistakes(label, expected, CHECK_ALPHA))
    for index in (1, 2):
        if not _same_weights(learner.weights[index], reference.weights[index]):
            yield f"Step {index}: the weights after {index} step(s) differ from train_step's."
    if not _same_weights(learner.weights[-1], reference.weights[-1]):
        yield f"After {len(learner.losses)} steps the weights differ from train_step's."


def _returned_loss_mistakes(label: str, expected: Sequence[torch.Tensor], alpha: float) -> list[Mistake]:
    """Return what a loss or a step that returns another value in place of its `label` loss gives, with hints.

    The total is the right one; the value in the place of the reconstruction or the KL is the total (an in-place
    `recon += alpha * kl` makes them one tensor) or alpha · KL.
    """
    total, _, kl = expected
    if label == "reconstruction":
        return [
            (
                "this is the total loss (after an in-place `recon += alpha * kl`, the two are one tensor): return "
                "the reconstruction term itself as the second value.",
                total,
            )
        ]
    if label == "kl":
        return [
            (
                "this is alpha · KL: return the KL itself as the third value; alpha weighs it only in the total.",
                alpha * kl,
            ),
            ("this is the total loss: return the KL term itself as the third value.", total),
        ]
    return []


def check_training_step(
    training_step: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, float], tuple],
    images: torch.Tensor,
    steps: int = 200,
) -> CheckResult:
    """Check that `steps` calls of training_step train a small VAE exactly as vae_lib's train_step does, and probe
    single calls for the model's mode, the number of optimizer steps, the loss minimised at two alphas and zero_grad."""
    note = f"{steps} steps on {len(images)} images give the same losses and weights as train_step."
    return _result("the training step", _step_failures(training_step, images, steps), note)


# --- sampling from the prior --------------------------------------------------------------------------------


def check_sample_prior(
    sample_prior: Callable[[VAE, int, torch.Generator], torch.Tensor],
) -> CheckResult:
    """Check images = sample_prior(model, count, generator): decoded from z ~ N(0, I) drawn with `generator`."""
    return _result("sampling from the prior", _sample_failures(sample_prior), "z ~ N(0, I), decoded.")


def _sample_failures(sample_prior: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's samples differ from images decoded here from
    z ~ N(0, I) drawn with the same generator (worked out apart from VAE.sample, which the reference calls)."""
    for latent_dim, count, seed in ((2, 6, 0), (8, 4, 1)):
        name = f"{latent_dim}-D model, {count} samples, generator seeded {seed}"
        model = _small_model(latent_dim, seed)
        latents = torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = model.decode(latents)
        with _recording_latents(model) as decoded:
            hints = partial(_latent_width_hints, decoded, latent_dim)
            got = _call(name, sample_prior, model, count, torch.Generator().manual_seed(seed), hints=hints)
        training_mode = copy.deepcopy(model).train()
        with torch.no_grad():
            mistakes = [
                (
                    "these are the latents z: return the images the decoder draws from them.",
                    torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed)),
                ),
                (
                    "torch.rand draws from the uniform U(0, 1); the prior is N(0, I): torch.randn.",
                    model.decode(torch.rand(count, latent_dim, generator=torch.Generator().manual_seed(seed))),
                ),
                (
                    "decoded in training mode, where BatchNorm normalises with the batch's own statistics: "
                    "leave the model in eval mode.",
                    training_mode.decode(torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))),
                ),
            ]
        failure = _compare(name, "the images", got, expected, mistakes, partial(_prior_latent_hints, decoded, latents))
        if failure and _drawn_from_the_prior_another_way(sample_prior, model, count, seed, decoded, got):
            failure = ""
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            again = _call(name, sample_prior, model, count, torch.Generator().manual_seed(seed))
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: the generator is not used: pass generator=generator to torch.randn."
        yield failure


# Draws of z for judging a prior sample drawn another way than torch.randn(count, latent_dim): enough that a
# Kolmogorov-Smirnov distance above PRIOR_DRAWS_MAX_DISTANCE (p < 0.001 for N(0, 1) draws) rules N(0, 1) out.
PRIOR_DRAWS = 2000
PRIOR_DRAWS_MAX_DISTANCE = 1.95 / math.sqrt(PRIOR_DRAWS)
PRIOR_DRAWS_MAX_CORRELATION = 0.1


def _drawn_from_the_prior_another_way(
    sample_prior: Callable, model: VAE, count: int, seed: int, decoded: Sequence[torch.Tensor], got: object
) -> bool:
    """Return True when the learner's images are right though not torch.randn(count, latent_dim)'s: z drawn from
    N(0, I) with the generator some other way (one sample at a time, transposed, torch.normal), judged by what the
    decoder was given. The images must be the eval-mode decoding of those latents; the same generator seed must give
    the same images whatever the global random state, another seed other images; and PRIOR_DRAWS draws must look
    N(0, I): each dimension within PRIOR_DRAWS_MAX_DISTANCE of N(0, 1), the dimensions uncorrelated. The learner's
    code raising on one of these calls means no."""
    try:
        return _judged_by_its_latents(sample_prior, model, count, seed, decoded, got)
    except _LearnerError:
        return False


def _judged_by_its_latents(
    sample_prior: Callable, model: VAE, count: int, seed: int, decoded: Sequence[torch.Tensor], got: object
) -> bool:
    """Return _drawn_from_the_prior_another_way's answer; the learner's code raising raises _LearnerError."""
    latents = _latents_decoded(decoded, count, model.latent_dim)
    if latents is None or not isinstance(got, torch.Tensor):
        return False
    with torch.no_grad():
        right = copy.deepcopy(model).eval().decode(latents)
    if not _close(got.detach().double(), right, rtol=1e-4, atol=1e-5):
        return False
    with _seeded(seed + 12345):  # another global random state: the draw must come from the generator alone
        again = _call("the same generator seed again", sample_prior, model, count, torch.Generator().manual_seed(seed))
        other = _call("another generator seed", sample_prior, model, count, torch.Generator().manual_seed(seed + 1))
    if not isinstance(again, torch.Tensor) or not torch.equal(again.detach(), got.detach()):
        return False
    if not isinstance(other, torch.Tensor) or other.shape != got.shape or torch.equal(other.detach(), got.detach()):
        return False
    with _recording_latents(model) as many:
        _call(f"{PRIOR_DRAWS} samples", sample_prior, model, PRIOR_DRAWS, torch.Generator().manual_seed(seed))
    draws = _latents_decoded(many, PRIOR_DRAWS, model.latent_dim)
    if draws is None or not torch.isfinite(draws).all():
        return False
    draws = draws.double()
    correlations = torch.corrcoef(draws.T) - torch.eye(model.latent_dim, dtype=draws.dtype)
    return (
        _normal_distance(draws) <= PRIOR_DRAWS_MAX_DISTANCE
        and correlations.abs().max().item() <= PRIOR_DRAWS_MAX_CORRELATION
    )


def _latents_decoded(decoded: Sequence[torch.Tensor], count: int, latent_dim: int) -> torch.Tensor | None:
    """Return the latents a block decoded (_recording_latents), in one or several calls, as one count x latent_dim
    tensor; None when they are not `count` latents of `latent_dim` values."""
    if not decoded or any(z.dim() != 2 or z.shape[1] != latent_dim for z in decoded):
        return None
    latents = torch.cat(list(decoded))
    return latents if latents.shape == (count, latent_dim) else None


@contextmanager
def _recording_latents(model: VAE) -> Iterator[list[torch.Tensor]]:
    """Record the latents the model decodes in a block: what reaches its first decoder layer, model.from_latent."""
    decoded: list[torch.Tensor] = []
    hook = model.from_latent.register_forward_pre_hook(lambda _, inputs: decoded.append(inputs[0].detach().clone()))
    try:
        yield decoded
    finally:
        hook.remove()


def _latent_width_hints(decoded: Sequence[torch.Tensor], latent_dim: int, error: Exception) -> list[str]:
    """Return a hint when the learner's code raised after decoding latents as wide as another model's latent space."""
    widths = [latents.shape[-1] for latents in decoded if latents.dim() == 2 and latents.shape[-1] != latent_dim]
    if not widths:
        return []
    return [
        f"z has {widths[0]} values per sample, where this model's latent space has {latent_dim}: is the latent size "
        "written in? Draw z with torch.randn(count, model.latent_dim, generator=generator)."
    ]


def _prior_latent_hints(decoded: Sequence[torch.Tensor], latents: torch.Tensor) -> list[str]:
    """Return what is wrong with the latents the learner decoded, against the z ~ N(0, I) the generator gives."""
    if len(decoded) != 1 or decoded[0].shape != latents.shape:
        return []
    got, right = decoded[0].double(), latents.double()
    if not got.any():
        return [
            "every sample decodes z = 0, the prior's mean, so all are the same image: draw z ~ N(0, I) with "
            "torch.randn(count, model.latent_dim, generator=generator)."
        ]
    scale = ((got * right).sum() / (right * right).sum()).item()
    if _close(got, scale * right) and not _near(scale, 1.0):
        return [
            f"the decoder is given {scale:.3g}·z: z ~ N(0, I) has standard deviation 1, so decode "
            "torch.randn(count, model.latent_dim, generator=generator) as it is."
        ]
    return []


# --- latent interpolation -----------------------------------------------------------------------------------


def check_interpolate(
    interpolate: Callable[[VAE, torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> CheckResult:
    """Check images = interpolate(model, start_image, end_image, steps): decoded on the line between the means."""
    return _result("latent interpolation", _interpolation_failures(interpolate), "a straight line between the means.")


def _interpolation_failures(interpolate: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's path differs from the reference."""
    for latent_dim, steps, seed in ((2, 5, 0), (8, 7, 1)):
        name = f"{latent_dim}-D model, {steps} steps"
        model = _small_model(latent_dim, seed)
        generator = torch.Generator().manual_seed(seed)
        start, end = torch.rand(2, 1, 28, 28, generator=generator) * 2 - 1
        with torch.no_grad():
            means, log_vars = model.encode(torch.stack([start, end]))
            expected = model.decode(interpolation_latents(means[0], means[1], steps))
            weights = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
            mistakes = [
                (
                    "these are blends of the two images' pixels: interpolate between their latent means, then decode.",
                    (1 - weights) * start + weights * end,
                ),
                ("the path runs from end to start.", expected.flip(0)),
                (
                    "the two end points are left out: torch.linspace(0, 1, steps) includes both.",
                    model.decode(interpolation_latents(means[0], means[1], steps + 2)[1:-1]),
                ),
                (
                    "the end point is left out: torch.linspace(0, 1, steps) includes both ends.",
                    model.decode(interpolation_latents(means[0], means[1], steps + 1)[:-1]),
                ),
                (
                    "the path runs between the log-variances: model.encode returns (mean, log_var); interpolate "
                    "between the means, the first.",
                    model.decode(interpolation_latents(log_vars[0], log_vars[1], steps)),
                ),
            ]
        statistics = _running_statistics(model)
        got = _call(name, interpolate, model, start, end, steps)
        training_mode = not torch.equal(statistics, _running_statistics(model))
        failure = _compare(
            name, "the images", got, expected, mistakes, partial(_interpolation_mode_hints, training_mode)
        )
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor):
            again = _call(name, interpolate, model, start, end, steps)
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: z is sampled, so the path changes each time: use the means of q(z|x)."
        yield failure


def _interpolation_mode_hints(training_mode: bool) -> list[str]:
    """Return a hint when the learner's interpolation ran BatchNorm in training mode (its running averages moved)."""
    if not training_mode:
        return []
    return [
        "the model ran in training mode (model.train()), where BatchNorm normalises with the batch's own statistics "
        "and moves its running averages: use the model in eval mode, as it is given."
    ]


# --- active units -------------------------------------------------------------------------------------------


def active_unit_cases() -> dict[str, tuple[torch.Tensor, float]]:
    """Return the active-units check's cases, name -> (latent_means, threshold).

    Each dimension's spread and offset are chosen so that each common mistake gives another answer.
    """
    generator = torch.Generator().manual_seed(0)
    spreads = torch.tensor([1.0, 0.3, 0.05, 0.02, 0.003, 0.0])
    offsets = torch.tensor([-0.5, 2.0, 0.5, -1.0, 3.0, 0.02])
    noise = torch.randn(500, len(spreads), generator=generator)
    standardised = (noise - noise.mean(dim=0)) / noise.std(dim=0)
    latent_means = standardised * spreads + offsets
    return {
        "500 images, 6 dimensions, threshold 0.01": (latent_means, 0.01),
        "the same means, threshold 0.5": (latent_means, 0.5),
    }


def check_active_units(active_units: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check active = active_units(latent_means, threshold): the variance over images of each dimension > threshold."""
    return _result("active units", _active_unit_failures(active_units), "a dimension is active when its mean varies.")


def _active_unit_failures(active_units: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's answer differs from active_dimensions."""
    for name, (latent_means, threshold) in active_unit_cases().items():
        got = _call(name, active_units, latent_means.clone(), threshold)
        expected = active_dimensions(latent_means, threshold)
        variances = latent_means.double().var(dim=0)
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and got.shape == expected.shape:
            yield (
                f"Case *{name}*: expected one True/False per dimension, got {got.dtype} values {_show(got.double())}."
                "\nLooks like: compare each dimension's variance with the threshold: variance > threshold."
            )
            return
        mistakes = [
            ("the mean is used instead of the variance over images.", latent_means.mean(dim=0) > threshold),
            ("the standard deviation is used instead of the variance.", variances.sqrt() > threshold),
            (
                "the variance is taken over dimensions (one value per image): take it over images, dim=0.",
                latent_means.double().var(dim=1) > threshold,
            ),
            ("the threshold argument is ignored.", variances > 0.01),
            (
                "the comparison is the wrong way round: these are the dimensions whose variance is below the "
                "threshold; a dimension is active when its variance is above it, variance > threshold.",
                variances < threshold,
            ),
        ]
        mistakes += [
            (
                "these are the indices of the active dimensions: return one True/False per dimension, "
                "variance > threshold, without torch.nonzero or torch.where.",
                expected.nonzero().flatten(),
            ),
            ("this is how many dimensions are active: return one True/False per dimension.", expected.sum()),
        ]
        yield _compare(
            name, "the active dimensions", got, expected.double(), [(hint, wrong.double()) for hint, wrong in mistakes]
        )


# --- the Bernoulli reconstruction term (notebook 07) ----------------------------------------------------------

BERNOULLI_WHY = "the loss minimised in training must carry its gradient back to the decoder's logits"


def bernoulli_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return named (images in [-1, 1], logits) cases: binarised images, grey ones, one image and many."""
    generator = torch.Generator().manual_seed(7)
    binary = (torch.rand(4, 1, 28, 28, generator=generator) > 0.6).float() * 2 - 1
    grey = torch.rand(3, 1, 28, 28, generator=generator) * 2 - 1
    return {
        "four binarised images": (binary, torch.randn(4, 1, 28, 28, generator=generator) * 2),
        "three grey images": (grey, torch.randn(3, 1, 28, 28, generator=generator)),
        "one image": (binary[:1], torch.randn(1, 1, 28, 28, generator=generator) * 3),
    }


def check_bernoulli_reconstruction(
    bernoulli_reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> CheckResult:
    """Check bernoulli_reconstruction(images, logits): BCE with logits on (images + 1) / 2, summed over pixels,
    averaged over images, in nats."""
    return _result(
        "the Bernoulli reconstruction term",
        _bernoulli_failures(bernoulli_reconstruction),
        "−log p(x | z) summed over the 784 pixels, averaged over images: nats per image.",
    )


def _bernoulli_failures(bernoulli_reconstruction: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's term differs from the objective's, naming the part."""
    for name, (images, logits) in bernoulli_cases().items():
        leaf = logits.clone().requires_grad_()
        returned = _call(name, bernoulli_reconstruction, images, leaf)
        yield _kind_failure(name, "the reconstruction term", returned, BERNOULLI_WHY)
        expected = reconstruction_loss(images, leaf, "bernoulli")
        diagnose = partial(_bernoulli_hints, _probing(bernoulli_reconstruction), images, logits)
        yield _compare(
            name, "the reconstruction term", returned, expected, _bernoulli_mistakes(images, logits), diagnose
        )
        yield _gradient_failure(name, "the reconstruction term", returned, {"logits": leaf}, expected, diagnose)


def _bernoulli_mistakes(images: torch.Tensor, logits: torch.Tensor) -> list[Mistake]:
    """Return what the usual mistakes give on a case, each with the hint that names it."""
    targets = (images + 1) / 2
    summed = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(1)
    with_probabilities = nn.functional.binary_cross_entropy_with_logits(
        torch.sigmoid(logits), targets, reduction="none"
    )
    return [
        (
            "a mean over pixels: sum over the 784 pixels (log p(x | z) is a sum over independent pixels).",
            summed.mean() / 784,
        ),
        ("the sign: the term is −log p(x | z), a positive number of nats.", -summed.mean()),
        ("summed over images: average over the images of the batch.", summed.sum()),
        (
            "probabilities passed as logits: the decoder's output is already a logit; "
            "binary_cross_entropy_with_logits applies the sigmoid itself.",
            with_probabilities.flatten(1).sum(1).mean(),
        ),
    ]


def _bernoulli_hints(bernoulli_reconstruction: Callable, images: torch.Tensor, logits: torch.Tensor) -> list[str]:
    """Probe the learner's term part by part: the targets' range, the sum over pixels, the mean over images."""
    hints = []
    black, white, zero = -torch.ones(1, 1, 28, 28), torch.ones(1, 1, 28, 28), torch.zeros(1, 1, 28, 28)
    # With logit 0 every pixel has probability 1/2: log 2 nats a pixel, black or white alike. With logit 2 a black
    # pixel costs softplus(2) nats; targets left in [-1, 1] charge it 2 nats more.
    per_black, per_white = (_as_number(bernoulli_reconstruction(image, zero)) for image in (black, white))
    black_at_two = _as_number(bernoulli_reconstruction(black, zero + 2))
    right_at_two = nn.functional.softplus(torch.tensor(2.0)).item()
    if _near(per_black, -784 * math.log(2)) or _near(per_white, -784 * math.log(2)):
        hints.append("the sign: −log p(x | z) is positive.")
    elif _near(per_white, math.log(2)) and _near(per_black, math.log(2)):
        hints.append("a mean over pixels: sum over the 784 pixels, as log p(x | z) sums over independent pixels.")
    elif _near(black_at_two, 784 * (right_at_two + 2)):
        hints.append(
            "the targets: a black pixel's target is 0 and a white one's 1, so pass (images + 1) / 2, "
            "not the images in [-1, 1]."
        )
    elif not _near(per_black, per_white) or not _near(black_at_two, 784 * right_at_two):
        hints.append(
            f"a pixel's term is not the Bernoulli's −log p: at logit 0 a black or a white pixel costs log 2 = 0.6931 "
            f"nats, and a black pixel (target 0) at logit 2 costs softplus(2) = {right_at_two:.4g}; yours: "
            f"{_numbers([per_black / 784, per_white / 784, black_at_two / 784])}. Use "
            "binary_cross_entropy_with_logits(logits, (images + 1) / 2)."
        )
    one = _as_number(bernoulli_reconstruction(images[:1], logits[:1]))
    twice = _as_number(bernoulli_reconstruction(images[:1].repeat(2, 1, 1, 1), logits[:1].repeat(2, 1, 1, 1)))
    if _near(twice, 2 * one) and not _near(one, 0):
        hints.append("summed over images: the same image twice should cost what it costs once (average over images).")
    return hints


# --- the conditional decoder's input ------------------------------------------------------------------------


def decoder_input_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """Return the decoder-input check's cases, name -> (latents, labels, classes).

    The first case's labels stop short of the last class, so one-hot rows as wide as the batch's largest label differ
    from rows as wide as the classes; the last has as many latent dimensions as classes, so joining along the batch
    does not fail there but doubles the rows.
    """
    generator = torch.Generator().manual_seed(0)
    return {
        "4 latents of 2-D, labels 3, 0, 2, 1 of 10 classes": (
            torch.randn(4, 2, generator=generator),
            torch.tensor([3, 0, 2, 1]),
            10,
        ),
        "3 latents of 8-D, labels 9, 0, 9 of 10 classes": (
            torch.randn(3, 8, generator=generator),
            torch.tensor([9, 0, 9]),
            10,
        ),
        "2 latents of 5-D, labels 4, 2 of 5 classes": (torch.randn(2, 5, generator=generator), torch.tensor([4, 2]), 5),
    }


def check_decoder_input(decoder_input: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check codes = decoder_input(latents, labels, classes): each latent with its one-hot label appended (dim 1),
    what a conditional VAE's decoder is given."""
    return _result(
        "the conditional decoder's input", _decoder_input_failures(decoder_input), "z, then its one-hot label."
    )


def _decoder_input_failures(decoder_input: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's decoder input differs from z and the one-hot label."""
    for name, (latents, labels, classes) in decoder_input_cases().items():
        latents = latents.clone().requires_grad_()
        one_hot = nn.functional.one_hot(labels, classes).to(latents.dtype)
        expected = torch.cat([latents, one_hot], dim=1)
        got = _call(name, decoder_input, latents, labels.clone(), classes, hints=_decoder_input_error_hints)
        why = "the gradient of the loss must reach z through it"
        kind = _kind_failure(name, "the decoder input", got, why, needs_graph=False)
        if kind:
            yield kind
            return
        with torch.no_grad():
            mistakes = [
                (
                    "each label is appended as one number, its index: append it one-hot, `classes` values with a 1 "
                    "at the label (torch.nn.functional.one_hot(labels, classes)).",
                    torch.cat([latents, labels.view(-1, 1).to(latents.dtype)], dim=1),
                ),
                (
                    "the one-hot rows are as wide as the batch's largest label + 1 (one_hot(labels) guesses the width "
                    "from the batch): give it the number of classes, one_hot(labels, classes).",
                    torch.cat([latents, nn.functional.one_hot(labels).to(latents.dtype)], dim=1),
                ),
                ("the label is left out: the decoder is given z alone, so it cannot know the class.", latents),
                (
                    "z is left out: the decoder is given the label alone, so every image of a class is the same.",
                    one_hot,
                ),
                (
                    "the label comes first: the model's layer takes z first, then the one-hot label.",
                    torch.cat([one_hot, latents], dim=1),
                ),
            ]
            if latents.shape[1] == classes:  # otherwise torch.cat refuses to join them along the batch
                hint = "z and the labels are joined along dim 0, the batch (torch.cat's default): append each label "
                mistakes.append((hint + "to its own row, dim=1.", torch.cat([latents, one_hot], dim=0)))
        width_hints = partial(_decoder_width_hints, got, latents.shape[1], classes)
        how = "one_hot(labels, classes).to(latents.dtype) or .float(), not .double()"
        yield (
            _compare(name, "the decoder input", got, expected, mistakes, width_hints)
            or _kind_failure(name, "the decoder input", got, why)
            or _dtype_failure(name, "the decoder input", got, latents.dtype, "z", how)
        )


def _decoder_width_hints(got: torch.Tensor, latent_dim: int, classes: int) -> list[str]:
    """Return a hint on rows of the wrong width: how many values follow z, against one per class."""
    if got.dim() != 2 or got.shape[1] == latent_dim + classes:
        return []
    return [
        f"each row has {got.shape[1]} values: z's {latent_dim} and {got.shape[1] - latent_dim} more, where the one-hot "
        f"label needs {classes}, one per class: one_hot(labels, classes)."
    ]


def _decoder_input_error_hints(error: Exception) -> list[str]:
    """Return the hint on the mistake that raises this error in torch.cat or one_hot."""
    text = str(error).splitlines()[0] if str(error) else ""
    hints = {
        "must match except in dimension 0": (
            "torch.cat joined z and the labels along dim 0, the batch (its default), where their rows differ in "
            "width: append each label to its own row, dim=1."
        ),
        "only applicable to index tensor": (
            "one_hot takes the labels as integers (torch.long), as they are given: do not turn them into floats first."
        ),
        "smaller than num_classes": (
            "the one-hot rows are narrower than the labels need: give one_hot the number of classes, "
            "one_hot(labels, classes)."
        ),
    }
    return [hint for phrase, hint in hints.items() if phrase in text]
