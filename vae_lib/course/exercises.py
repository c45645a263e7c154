"""Checks for the course's exercises: each runs a learner's function on a few cases against vae_lib's reference
and returns a CheckResult: a pass, or the case that failed, expected against got, and the mistake it looks like.

The checks never print; a notebook shows the returned result. Their randomness is seeded and leaves the
global random state as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vae_lib.core.data import to_model_input
from vae_lib.core.evaluate import active_dimensions
from vae_lib.core.latent import interpolation_latents
from vae_lib.core.model import VAE
from vae_lib.core.objective import kl_per_dimension, vae_loss
from vae_lib.core.train import train_step

# A small model keeps the training-step check to seconds; any VAE trains with the same step.
CHECK_WIDTHS = (4, 8, 8, 16)
CHECK_BATCH_SIZE = 16
CHECK_ALPHA = 0.01
CHECK_LEARNING_RATE = 1e-3
REPARAMETERISATION_SAMPLES = 20_000
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


def _show(value: torch.Tensor) -> str:
    """Return a short text of a tensor: its value if it is one number, else its shape and first values."""
    if value.numel() == 1:
        return f"{value.item():.6g}"
    flat = [f"{number:.4g}" for number in value.flatten()[:6].tolist()]
    more = ", ..." if value.numel() > 6 else ""
    return f"shape {tuple(value.shape)}, values [{', '.join(flat)}{more}]"


def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Return True when two tensors have the same shape and values (NaN equal to NaN)."""
    expected = expected.detach().double().cpu()
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def _compare(case: str, what: str, value: object, expected: torch.Tensor, mistakes: Sequence[Mistake] = ()) -> str:
    """Return '' when `value` matches `expected`, else which case failed, expected against got, and a hint."""
    got = _as_tensor(value)
    if got is None:
        return f"Case *{case}*: {what} should be a tensor, got {type(value).__name__}."
    if _close(got, expected):
        return ""
    message = f"Case *{case}*: {what} expected {_show(expected.detach().double())}, got {_show(got)}."
    hint = next((hint for hint, wrong in mistakes if _close(got, wrong)), None)
    if hint is None and got.shape != expected.shape:
        hint = f"the shape is {tuple(got.shape)}, expected {tuple(expected.shape)}."
    if hint is None and torch.isnan(got).any():
        hint = "the result is NaN: is a logarithm taken of something that can be negative or zero?"
    return message + (f"\nLooks like: {hint}" if hint else "")


def _result(exercise: str, failures: Iterator[str], passed_note: str) -> CheckResult:
    """Return the first failure as a failed CheckResult, or a pass."""
    failure = next((failure for failure in failures if failure), "")
    return CheckResult(exercise, False, failure) if failure else CheckResult(exercise, True, passed_note)


def _small_model(latent_dim: int, seed: int) -> VAE:
    """Return a small randomly initialised VAE in eval mode, the same for the same seed."""
    with _seeded(seed):
        return VAE(latent_dim=latent_dim, widths=CHECK_WIDTHS).eval()


# --- the reparameterisation trick ---------------------------------------------------------------------------


def check_reparameterise(reparameterise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check z = reparameterise(mean, log_var): its shape, its mean and spread over many draws, its gradients."""
    return _result("reparameterisation", _reparameterise_failures(reparameterise), "z = μ + σ·ε, with gradients.")


def _reparameterise_failures(reparameterise: Callable) -> Iterator[str]:
    """Yield a failure message for each property the learner's reparameterise gets wrong."""
    means = torch.tensor([2.0, -1.0, 0.0])
    variances = torch.tensor([0.25, 4.0, 9.0])
    mean = means.repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    log_var = variances.log().repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    with _seeded(0):
        z = reparameterise(mean, log_var)
    case = f"{REPARAMETERISATION_SAMPLES} draws with μ = (2, -1, 0), σ² = (0.25, 4, 9)"
    yield _compare(case, "z's shape", torch.tensor(tuple(z.shape)), torch.tensor(tuple(mean.shape)))
    spread, centre = z.detach().double().std(dim=0), z.detach().double().mean(dim=0)
    yield _spread_failure(case, spread, variances.double(), z, log_var)
    if not torch.allclose(centre, means.double(), atol=0.1):
        yield (
            f"Case *{case}*: the average z expected ≈ {_show(means)}, got {_show(centre)}.\n"
            "Looks like: the mean is not added: z = mean + σ·ε."
        )
    yield _gradient_failure(z, mean, log_var)


def _spread_failure(
    case: str, spread: torch.Tensor, variances: torch.Tensor, z: torch.Tensor, log_var: torch.Tensor
) -> str:
    """Return '' when z's standard deviation over draws is σ, else a message naming the scale used instead."""
    sigma = variances.sqrt()
    if torch.allclose(spread, sigma, rtol=0.03):
        return ""
    candidates = {
        "the noise is scaled by the variance exp(log_var); scale it by the standard deviation "
        "σ = exp(0.5 · log_var).": variances,
        "log_var is used as σ; σ = exp(0.5 · log_var).": variances.log().abs(),
        "ε is not scaled by σ = exp(0.5 · log_var).": torch.ones(3, dtype=torch.float64),
        "exp(-0.5 · log_var) is 1/σ: the sign in the exponent is wrong.": 1 / sigma,
    }
    hint = next((hint for hint, scale in candidates.items() if torch.allclose(spread, scale, rtol=0.03)), None)
    if hint is None and torch.allclose(spread, torch.zeros(3, dtype=torch.float64), atol=1e-6):
        uses_log_var = (
            z.requires_grad and torch.autograd.grad(z.sum(), log_var, retain_graph=True, allow_unused=True)[0]
        )
        hint = (
            "one ε is shared by every element: draw a fresh ε per element with torch.randn_like(mean)."
            if isinstance(uses_log_var, torch.Tensor) and uses_log_var.abs().sum() > 0
            else "z is not random: add noise, z = mean + σ·ε with ε ~ N(0, I) (torch.randn_like(mean))."
        )
    message = f"Case *{case}*: z's standard deviation over the draws expected ≈ {_show(sigma)}, got {_show(spread)}."
    return message + (f"\nLooks like: {hint}" if hint else "")


def _gradient_failure(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> str:
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
    expected = 0.5 * (z.detach() - mean.detach())
    if d_log_var is None or not torch.allclose(d_log_var, expected, rtol=1e-3, atol=1e-5):
        return (
            f"Case *{case}*: dz/dlog_var should be σ·ε/2 = (z - mean)/2.\n"
            "Looks like: σ is not computed from log_var as exp(0.5 · log_var), or is detached."
        )
    return ""


# --- the closed-form KL -------------------------------------------------------------------------------------


def _kl_terms(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Return 1 + log σ² - μ² - σ² per image and dimension."""
    return 1 + log_var - mean.pow(2) - log_var.exp()


def kl_mistakes(mean: torch.Tensor, log_var: torch.Tensor) -> list[Mistake]:
    """Return what the common mistakes in the closed-form KL give for these inputs, each with its hint."""
    terms = _kl_terms(mean, log_var)
    sigma_read = log_var  # the argument read as σ, as σ² or as log σ instead of log σ²
    return [
        ("the factor ½ is missing: KL = -½ Σ (1 + log σ² - μ² - σ²).", -terms.sum(dim=1).mean()),
        ("summed over the batch instead of averaged: take .mean() over images.", -0.5 * terms.sum()),
        ("averaged over the latent dimensions: sum over dimensions, average over images.", -0.5 * terms.mean()),
        ("the sign is wrong: a KL is never negative.", 0.5 * terms.sum(dim=1).mean()),
        ("the 1 inside the sum is missing.", -0.5 * (terms - 1).sum(dim=1).mean()),
        (
            "σ used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).",
            -0.5 * (1 + torch.log(sigma_read**2) - mean**2 - sigma_read**2).sum(dim=1).mean(),
        ),
        (
            "σ² used where log σ² is expected: `log_var` is log σ² already, so σ² = exp(log_var).",
            -0.5 * (1 + torch.log(sigma_read) - mean**2 - sigma_read).sum(dim=1).mean(),
        ),
        (
            "log σ used where log σ² is expected: σ² = exp(log_var), not exp(2 · log_var).",
            -0.5 * (1 + 2 * log_var - mean**2 - (2 * log_var).exp()).sum(dim=1).mean(),
        ),
        (
            "σ used where σ² is expected in the last term: σ² = exp(log_var).",
            -0.5 * (1 + log_var - mean**2 - (0.5 * log_var).exp()).sum(dim=1).mean(),
        ),
        ("one KL per image: average them over the batch.", -0.5 * terms.sum(dim=1)),
        ("one KL per latent dimension: sum them over dimensions.", -0.5 * terms.mean(dim=0)),
        ("one value per image and dimension: sum over dimensions, average over images.", -0.5 * terms),
    ]


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
    """Check KL(q(z|x) || N(0, I)) summed over latent dimensions and averaged over the batch."""
    failures = (
        _compare(
            name,
            "the KL",
            kl_divergence(mean, log_var),
            kl_per_dimension(mean, log_var).sum(),
            kl_mistakes(mean, log_var),
        )
        for name, (mean, log_var) in kl_cases().items()
    )
    return _result("closed-form KL", failures, "KL = -½ Σ (1 + log σ² - μ² - σ²), averaged over the batch.")


# --- the loss -----------------------------------------------------------------------------------------------


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


def _reconstruction_mistakes(images: torch.Tensor, recon: torch.Tensor) -> list[Mistake]:
    """Return what the common mistakes in the reconstruction term give, each with its hint."""
    pixels, count = images[0].numel(), len(images)
    return [
        ("summed over pixels instead of averaged: 0.5 · mean over pixels and images (F.mse_loss).", recon * pixels),
        ("summed over pixels and images: average over both (F.mse_loss's default).", recon * pixels * count),
        ("summed over the batch: average over images too.", recon * count),
        ("the factor ½ is missing from the reconstruction term.", 2 * recon),
        ("the sign is wrong: the squared error is a cost, to be minimised.", -recon),
    ]


def _total_mistakes(recon: torch.Tensor, kl: torch.Tensor, alpha: float) -> list[Mistake]:
    """Return what the common mistakes in combining the terms give, each with its hint."""
    return [
        ("the wrong sign: minimise reconstruction + alpha · KL (the negative of the ELBO).", -(recon + alpha * kl)),
        ("the KL is subtracted: it is a penalty, added with weight alpha.", recon - alpha * kl),
        ("alpha is missing: total = reconstruction + alpha · KL.", recon + kl),
        ("alpha weighs the reconstruction instead of the KL.", alpha * recon + kl),
    ]


def check_loss(
    loss_function: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> CheckResult:
    """Check (total, reconstruction, kl) = loss_function(images, reconstruction, mean, log_var, alpha)."""
    return _result("the loss", _loss_failures(loss_function), "total = 0.5 · MSE + alpha · KL.")


def _loss_failures(loss_function: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's loss differs from vae_loss."""
    for name, (images, reconstruction, mean, log_var, alpha) in loss_cases().items():
        returned = loss_function(images, reconstruction, mean, log_var, alpha)
        if not (isinstance(returned, tuple | list) and len(returned) == 3):
            yield f"Case *{name}*: expected three values (total, reconstruction, kl), got {type(returned).__name__}."
            return
        total, recon, kl = returned
        expected_total, expected_recon, expected_kl = vae_loss(images, reconstruction, mean, log_var, alpha)
        yield _compare(
            name, "the reconstruction term", recon, expected_recon, _reconstruction_mistakes(images, expected_recon)
        )
        kl_hints = [
            (f"{hint} (Check your KL with check_kl_divergence.)", wrong) for hint, wrong in kl_mistakes(mean, log_var)
        ]
        yield _compare(name, "the KL term", kl, expected_kl, kl_hints)
        yield _compare(name, "the total", total, expected_total, _total_mistakes(expected_recon, expected_kl, alpha))


# --- the training step --------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """What a few hundred steps of a training step did: the losses it returned and the weights it left."""

    losses: list[object]
    weights: list[dict[str, torch.Tensor]]  # after 0, 1 and 2 steps, and at the end


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of the model's parameters (BatchNorm's running statistics change in any forward pass)."""
    return {name: value.detach().clone() for name, value in model.named_parameters()}


def run_training_steps(step: Callable, images: torch.Tensor, steps: int) -> TrainingRun:
    """Return what `steps` calls of step(model, optimizer, batch, alpha) do to a small VAE, from fixed seeds."""
    order = torch.randint(len(images), (steps, CHECK_BATCH_SIZE), generator=torch.Generator().manual_seed(0))
    with _seeded(0):
        model = VAE(latent_dim=2, widths=CHECK_WIDTHS)
        optimizer = torch.optim.Adam(model.parameters(), lr=CHECK_LEARNING_RATE)
        run = TrainingRun([], [_weights(model)])
        for index, indices in enumerate(order):
            run.losses.append(step(model, optimizer, to_model_input(images[indices]), CHECK_ALPHA))
            if index < 2 or index == steps - 1:
                run.weights.append(_weights(model))
    return run


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Return True when two weight dicts hold the same values (to float rounding)."""
    return all(torch.allclose(first[name].double(), second[name].double(), rtol=1e-3, atol=1e-5) for name in first)


def _step_without_zero_grad(model: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, alpha: float):
    """The training step with zero_grad forgotten: gradients pile up from step to step."""
    reconstruction, mean, log_var = model(batch)
    total, recon, kl = vae_loss(batch, reconstruction, mean, log_var, alpha)
    total.backward()
    optimizer.step()
    return total.detach(), recon.detach(), kl.detach()


def _step_failures(learner: TrainingRun, reference: TrainingRun, images: torch.Tensor) -> Iterator[str]:
    """Yield a failure message for the first way the learner's run departs from train_step's."""
    first = learner.losses[0]
    if not (isinstance(first, tuple | list) and len(first) == 3):
        yield f"Step 1: expected three losses (total, reconstruction, kl), got {type(first).__name__}."
        return
    if any(isinstance(loss, torch.Tensor) and loss.requires_grad for loss in first):
        yield (
            "Step 1: the returned losses still carry their graph.\n"
            "Looks like: return total.detach(), ... (or .item()), so each step's graph is freed."
        )
    total, recon, kl = reference.losses[0]
    loss_mistakes = [
        ("the KL term is left out of the loss that is minimised.", recon),
        ("alpha is missing: minimise reconstruction + alpha · KL.", recon + kl),
    ]
    yield _compare("step 1", "the total loss", first[0], total, loss_mistakes)
    if _same_weights(learner.weights[1], learner.weights[0]):
        yield (
            "Step 1: the weights did not change.\nLooks like: optimizer.step() is missing, or zero_grad() is called "
            "between backward() and step(): zero the gradients first, then backward(), then step()."
        )
    if not _same_weights(learner.weights[1], reference.weights[1]):
        yield (
            "Step 1: the weights after one step differ from train_step's.\n"
            "Looks like: backward() is not called on the total loss, or the model is not in training mode."
        )
    if not _same_weights(learner.weights[2], reference.weights[2]):
        accumulated = run_training_steps(_step_without_zero_grad, images, 2)
        forgot_zero_grad = _same_weights(learner.weights[2], accumulated.weights[2])
        yield "Step 2: the weights after two steps differ from train_step's." + (
            "\nLooks like: optimizer.zero_grad() is missing, so gradients add up from step to step."
            if forgot_zero_grad
            else ""
        )
    for index, (got, expected) in enumerate(zip(learner.losses, reference.losses), start=1):
        yield _compare(f"step {index}", "the total loss", got[0], expected[0])
    if not _same_weights(learner.weights[-1], reference.weights[-1]):
        yield f"After {len(learner.losses)} steps the weights differ from train_step's."


def check_training_step(
    training_step: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, float], tuple],
    images: torch.Tensor,
    steps: int = 200,
) -> CheckResult:
    """Check that `steps` calls of training_step train a small VAE exactly as vae_lib's train_step does."""
    learner = run_training_steps(training_step, images, steps)
    reference = run_training_steps(train_step, images, steps)
    note = f"{steps} steps on {len(images)} images give the same losses and weights as train_step."
    return _result("the training step", _step_failures(learner, reference, images), note)


# --- sampling from the prior --------------------------------------------------------------------------------


def check_sample_prior(
    sample_prior: Callable[[VAE, int, torch.Generator], torch.Tensor],
) -> CheckResult:
    """Check images = sample_prior(model, count, generator): decoded from z ~ N(0, I) drawn with `generator`."""
    return _result("sampling from the prior", _sample_failures(sample_prior), "z ~ N(0, I), decoded.")


def _sample_failures(sample_prior: Callable) -> Iterator[str]:
    """Yield a failure message for each case where the learner's samples differ from model.sample's."""
    for latent_dim, count, seed in ((2, 6, 0), (8, 4, 1)):
        name = f"{latent_dim}-D model, {count} samples, generator seeded {seed}"
        model = _small_model(latent_dim, seed)
        expected = model.sample(count, generator=torch.Generator().manual_seed(seed))
        got = sample_prior(model, count, torch.Generator().manual_seed(seed))
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
        failure = _compare(name, "the images", got, expected, mistakes)
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            again = sample_prior(model, count, torch.Generator().manual_seed(seed))
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: the generator is not used: pass generator=generator to torch.randn."
        yield failure


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
            means = model.encode(torch.stack([start, end]))[0]
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
            ]
        got = interpolate(model, start, end, steps)
        failure = _compare(name, "the images", got, expected, mistakes)
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor):
            again = interpolate(model, start, end, steps)
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: z is sampled, so the path changes each time: use the means of q(z|x)."
        yield failure


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
        got = active_units(latent_means.clone(), threshold)
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
        ]
        yield _compare(
            name, "the active dimensions", got, expected.double(), [(hint, wrong.double()) for hint, wrong in mistakes]
        )
