"""The check of exercise 3 (notebook 01), the VAE loss (total, reconstruction, kl): probed with two alphas and a
doubled error, so a wrong reconstruction term is told from a wrong weight or a wrong sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import torch

from vae_lib.core.objective import vae_loss
from vae_lib.course.exercises.checking import (
    PROBE_ALPHAS,
    CheckResult,
    Mistake,
    _as_number,
    _as_tensor,
    _call,
    _close,
    _compare,
    _gradient_failure,
    _kind_failure,
    _near,
    _not_a_tensor_hint,
    _numbers,
    _one_number_shape_hint,
    _probing,
    _result,
    _with_hints,
)
from vae_lib.course.exercises.kl_divergence import KL_CLAMP_HINT, KL_FAR_CASE, _kl_hints, kl_cases

LOSS_NAMES = ("total", "reconstruction", "kl")
LOSS_WHY = "the training step calls total.backward(): build the total from the inputs with torch operations"
LOSS_TERMS_WHY = "return the two terms as tensors too, as vae_loss does (the caller reads them with .item())"


# Where a KL of the learner's own that clamps μ or log σ² departs from the right one (the other cases stay near the
# prior, as check_kl_divergence's far case explains).
LOSS_FAR_CASE = "one 2 × 2 image far from the prior, μ = (5, -6), log σ² = (4, -5), alpha 0.01"


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
        LOSS_FAR_CASE: (
            torch.tensor([[[[0.5, -1.0], [1.0, 0.0]]]]),
            torch.tensor([[[[0.0, -1.0], [0.5, 0.5]]]]),
            *kl_cases()[KL_FAR_CASE],
            0.01,
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
    reconstruction_term, total_at_the_prior = partial(_term_of, probed, 1), partial(_term_of, probed, 0)
    for name, (images, reconstruction, mean, log_var, alpha) in loss_cases().items():
        inputs = {"reconstruction": reconstruction, "mean": mean, "log_var": log_var}
        leaves = {key: value.clone().requires_grad_() for key, value in inputs.items()}
        returned = _call(name, loss_function, images, *leaves.values(), alpha)
        if not (isinstance(returned, tuple | list) and len(returned) == 3):
            yield _not_three_failure(f"Case *{name}*", "values", returned)
            return
        expected = vae_loss(images, *leaves.values(), alpha)
        yield _none_among_failure(f"Case *{name}*", returned)
        yield _order_failure(name, "the values", returned, expected)
        for label, value in zip(LOSS_NAMES, returned):
            why = LOSS_WHY if label == "total" else LOSS_TERMS_WHY
            yield _kind_failure(name, f"the {label}", value, why, needs_graph=label == "total")
        total, recon, kl = returned
        yield _compare(
            name,
            "the reconstruction term",
            recon,
            expected[1],
            _returned_loss_mistakes("reconstruction", expected, alpha),
            diagnose=partial(_reconstruction_hints, reconstruction_term),
        )
        yield _compare(
            name,
            "the KL term",
            kl,
            expected[2],
            _returned_loss_mistakes("kl", expected, alpha),
            diagnose=partial(_loss_kl_hints, probed, name == LOSS_FAR_CASE),
        )
        yield _compare(
            name,
            "the total",
            total,
            expected[0],
            diagnose=partial(_total_hints, probed, total, expected, alpha, len(images)),
        )
        yield _gradient_failure(
            name,
            "the total",
            total,
            leaves,
            expected[0],
            diagnose=lambda: (
                _offset_hints(reconstruction_term)
                or _offset_hints(total_at_the_prior, "the total (at a KL of 0)")
                or _combined_terms_hints(probed)
            ),
        )


def _none_among_failure(where: str, returned: Sequence[object]) -> str:
    """Return '' unless one of the three returned values is None: which one."""
    missing = [label for label, value in zip(LOSS_NAMES, returned) if value is None]
    if not missing:
        return ""
    return _with_hints(
        f"{where}: the {' and the '.join(missing)} returned {'is' if len(missing) == 1 else 'are'} None.",
        ["return each loss itself in its place: (total, reconstruction, kl)."],
    )


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
    if returned is None:
        return _with_hints(message, [_not_a_tensor_hint(returned, "")])
    if isinstance(returned, Iterator):
        return _with_hints(
            message,
            [
                f"a {type(returned).__name__} hands out its values one at a time, once, and is not the three values "
                "themselves (a generator expression `(... for ... in ...)` makes one): return a tuple, "
                "`return total, recon, kl`."
            ],
        )
    return message


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


def _term_of(loss_function: Callable, index: int, images: torch.Tensor, reconstruction: torch.Tensor) -> object:
    """Return the value at `index` a loss function returns for these images (0 the total, 1 the reconstruction term),
    with codes at the prior, whose KL is 0: the total is then the reconstruction term the loss minimises."""
    return loss_function(images, reconstruction, *_prior_code(len(images)), 0.001)[index]


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
    compared = _compared_hints(reconstruction_term, image, drawn) or _offset_hints(reconstruction_term)
    if compared:
        return compared
    other = torch.rand(2, 1, 28, 28, generator=generator) * 2 - 1
    images, reconstructions = torch.cat([image, other[:1]]), torch.cat([drawn, other[1:]])
    two_images = _as_number(reconstruction_term(images, reconstructions))
    every_pair = 0.5 * (reconstructions.unsqueeze(1) - images.unsqueeze(0)).pow(2).mean().item()
    if _near(two_images, every_pair):
        return [
            "x̂ - x compares every reconstruction with every image: the two have different shapes (N × 28 × 28 "
            "against N × 1 × 28 × 28, a channel squeezed or a view of one of them), which broadcast to N × N × 28 × "
            "28. Compare tensors of one shape, as they are given (F.mse_loss warns of this)."
        ]
    averages = 0.5 * (reconstructions.mean(0) - images.mean(0)).pow(2).mean().item()
    if _near(two_images, averages):
        return [
            "the term compares the batch's average reconstruction with its average image (the mean over the images "
            "is taken before the error is squared): square each image's own error, then average, "
            "0.5 · mean((x - x̂)²)."
        ]
    if term == 0:
        return ["the term is 0 where the reconstruction differs from the image: 0.5 · mean((x - x̂)²)."]
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
    if _near(per_copy, 1 / copies):
        summed = "summed over pixels, and " if summed_pixels else ""
        return [
            f"the term shrinks with the number of images ({copies} copies of one image give 1/{copies} of its term): "
            f"{summed}divided by the batch size twice (a mean over the images, then / len(images) again?). The term "
            "is 0.5 · mean((x - x̂)²), averaged over pixels and images once."
        ]
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
    if _near(factor, 0.25):
        parts.append(
            "0.25 times the right size (x and x̂ both rescaled to [0, 1], (x + 1) / 2? That halves every error: "
            "compare them in [-1, 1], as they are given)"
        )
    elif not _near(factor, 1.0):
        parts.append("the factor ½ missing" if _near(factor, 2.0) else f"{factor:.4g} times the right size")
    pair = reconstruction_term(images, reconstructions)
    if not parts and isinstance(pair, torch.Tensor) and pair.numel() == 1 and pair.dim() > 0:
        return [_one_number_shape_hint(pair, torch.tensor(0.0))]  # its value is right on the probes
    if not parts:  # right on these 28 × 28 probes, whatever the failed case got wrong
        return [
            "the term agrees with 0.5 · mean((x - x̂)²) on the check's 28 × 28 probe images, but not on this case: "
            "is a size written in, such as 784 pixels or a batch size? A mean, as F.mse_loss takes, fits any size."
        ]
    return [f"{', '.join(parts)}: the term is 0.5 · mean((x - x̂)²), a mean over pixels and images."]


def _offset_hints(
    reconstruction_term: Callable[[torch.Tensor, torch.Tensor], object], what: str = "the term"
) -> list[str]:
    """Return a hint when the term does not change as every pixel of the reconstruction is made brighter by the same
    amount, though it changes with the error (a variance of x - x̂, which subtracts its mean), else []."""
    generator = torch.Generator().manual_seed(3)
    image, drawn = torch.rand(2, 1, 1, 28, 28, generator=generator) * 2 - 1
    term = _as_number(reconstruction_term(image, drawn))
    brighter = _as_number(reconstruction_term(image, drawn + 0.5))
    doubled = _as_number(reconstruction_term(image, image + 2 * (drawn - image)))
    change = 0.5 * ((image - drawn - 0.5).pow(2).mean() - (image - drawn).pow(2).mean()).item()
    if not math.isfinite(term) or abs(brighter - term) > 1e-3 * abs(change) or _near(doubled, term):
        return []  # it follows the brightness, or follows no change at all (a constant)
    return [
        f"{what} does not change when every pixel of the reconstruction is made brighter by the same amount, so it "
        "subtracts the error's mean (a variance, (x - x̂).var()?): the squared error is 0.5 · mean((x - x̂)²), the "
        "mean of the squares."
    ]


def _compared_hints(
    reconstruction_term: Callable[[torch.Tensor, torch.Tensor], object], image: torch.Tensor, drawn: torch.Tensor
) -> list[str]:
    """Return a hint when the term is not 0 for a reconstruction equal to the image: a constant added, or what it
    compares instead (the images or the reconstruction rescaled to [0, 1]), else []."""
    at_rest = _as_number(reconstruction_term(image, image.clone()))
    if not math.isfinite(at_rest) or abs(at_rest) < 1e-6:
        return []
    if _near(_as_number(reconstruction_term(image, drawn)) - at_rest, 0.5 * (image - drawn).pow(2).mean().item()):
        return [
            f"a constant {at_rest:.4g} is added to the term (½ log 2π = 0.9189 of a full Gaussian log-likelihood, "
            "Normal.log_prob, gaussian_nll_loss(full=True)?): the term is 0.5 · mean((x - x̂)²) alone, 0 for a "
            "perfect reconstruction."
        ]
    rescaled = {
        "the images are rescaled to [0, 1], (x + 1) / 2, and the reconstruction is not: the decoder's tanh output is "
        "in [-1, 1], as the images are given; compare x̂ with x as they are.": (image + 1) / 2,
        "the reconstruction is rescaled to [0, 1], (x̂ + 1) / 2, and the images are not: both are in [-1, 1] as "
        "they are given; compare x̂ with x as they are.": 2 * image - 1,
    }
    for hint, matching in rescaled.items():
        if abs(_as_number(reconstruction_term(image, matching))) < 1e-6:
            return [hint]
    return [
        f"the term is {at_rest:.4g}, not 0, when the reconstruction equals the image: compare x̂ with the images x "
        "themselves, 0.5 · mean((x - x̂)²)."
    ]


def _loss_kl_hints(loss_function: Callable, far: bool = False) -> list[str]:
    """Return what is wrong with the KL term a loss function returns, probed as check_kl_divergence probes a KL; on
    the case far from the prior, where no probe finds a mistake, a clamp's."""

    def kl_of(mean: torch.Tensor, log_var: torch.Tensor) -> object:
        images = torch.zeros(len(mean), 1, 28, 28)
        return loss_function(images, images.clone(), mean, log_var, 0.001)[2]

    hints = _kl_hints(kl_of) or ([KL_CLAMP_HINT] if far else [])
    return [f"{hint} (Check your KL with check_kl_divergence.)" for hint in hints]


def _total_hints(
    loss_function: Callable, total: object, expected: Sequence[torch.Tensor], alpha: float, batch_size: int
) -> list[str]:
    """Return what is wrong with how a loss function combines its two terms, from two inputs at each of two alphas;
    where they find nothing, whether the case's `total` scales the `expected` (total, reconstruction, kl), or one of
    its terms, by its `batch_size`."""
    return _combined_terms_hints(loss_function) or _total_scaled_by_the_batch_hint(total, expected, alpha, batch_size)


def _combined_terms_hints(loss_function: Callable) -> list[str]:
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
        if not torch.isfinite(values).all():  # lstsq refuses NaN
            return [
                "the total is NaN or infinite where your reconstruction and KL terms are numbers: build the total "
                "from the two terms you return, total = reconstruction + alpha · KL."
            ]
        weights = torch.linalg.lstsq(terms[:2], totals[:2].unsqueeze(1)).solution.squeeze(1)
        if not _near(terms[2] @ weights, totals[2]):
            return ["the total is not a sum of your reconstruction and KL terms: total = reconstruction + alpha · KL."]
        recon_weights.append(weights[0].item())
        kl_weights.append(weights[1].item())
    return _weight_hints(recon_weights, kl_weights, PROBE_ALPHAS, "the total")


def _total_scaled_by_the_batch_hint(
    total: object, expected: Sequence[torch.Tensor], alpha: float, batch_size: int
) -> list[str]:
    """Return a hint when the total is the right one, or one of its terms, divided or multiplied by the number of
    images (which the probes of _combined_terms_hints, one image each, cannot see), else []. Compared to float
    rounding: at a small alpha the KL's part of the total is within a looser tolerance of nothing."""
    got = _as_number(total)
    if batch_size < 2 or not math.isfinite(got):
        return []
    reconstruction, weighted_kl = expected[1].item(), alpha * expected[2].item()
    for factor, how in (
        (1 / batch_size, f"divided by the number of images ({batch_size} here, len(images))"),
        (batch_size, f"multiplied by the number of images ({batch_size} here, len(images))"),
        (1 / (batch_size - 1), f"divided by the number of images less one ({batch_size - 1} here, len(images) - 1)"),
    ):
        for scaled, what in (
            (factor * (reconstruction + weighted_kl), "the total is"),
            (factor * reconstruction + weighted_kl, "the reconstruction term in the total is"),
            (reconstruction + factor * weighted_kl, "the KL term in the total is"),
        ):
            if _near(got, scaled, rtol=1e-5):
                return [
                    f"{what} {how}: both terms are averages over the images already, so total = reconstruction + "
                    "alpha · KL as they are."
                ]
    return []


def _weight_hints(
    recon_weights: Sequence[float],
    kl_weights: Sequence[float],
    alphas: Sequence[float],
    loss: str,
    batch_size: int = 1,
    from_gradients: bool = False,
    latent_dim: int = 1,
) -> list[str]:
    """Return what is wrong with a loss = a · reconstruction + b · KL, given a and b measured at several alphas on
    batches of `batch_size` images (a term summed over them, not averaged, is weighted batch_size times) with
    `latent_dim` latent dimensions (a KL averaged over them, not summed, is weighted 1/latent_dim times); with
    `from_gradients` a and b were measured from the loss's gradients, where a detached term weighs 0 too."""
    a, b, alpha = (torch.tensor(values, dtype=torch.float64) for values in (recon_weights, kl_weights, alphas))

    def near(x: torch.Tensor, y: torch.Tensor | float) -> bool:
        return _near(x.tolist(), torch.as_tensor(y, dtype=torch.float64).expand_as(x).tolist(), rtol=0.01, atol=1e-5)

    if near(a, 1.0) and near(b, alpha):
        return []
    kl_detached, recon_detached = (
        (
            ", or carries no gradient (mean and log_var detached, or the KL computed under torch.no_grad())",
            ", or carries no gradient (the reconstruction detached, or computed under torch.no_grad())",
        )
        if from_gradients
        else ("", "")
    )
    named = [
        (-1.0, -alpha, "the wrong sign: minimise reconstruction + alpha · KL (the negative of the ELBO)."),
        (1.0, -alpha, "the KL is subtracted: it is a penalty, added with weight alpha."),
        (1.0, 0.0, f"the KL term is left out of {loss}{kl_detached}: {loss} = reconstruction + alpha · KL."),
        (
            0.0,
            alpha,
            f"the reconstruction term is left out of {loss}{recon_detached}: {loss} = reconstruction + alpha · KL.",
        ),
        (1.0, 1.0, "alpha is missing: minimise reconstruction + alpha · KL."),
        (alpha, 1.0, "alpha weighs the reconstruction instead of the KL."),
    ]
    if batch_size > 1:
        named.append(
            (
                1.0,
                batch_size * alpha,
                f"the KL is summed over the batch's {batch_size} images, not averaged (its weight is {batch_size} · "
                "alpha): sum over the latent dimensions (dim=1), then take the mean over the images.",
            )
        )
    if latent_dim > 1:
        named.append(
            (
                1.0,
                alpha / latent_dim,
                f"the KL's weight is alpha / {latent_dim}: is it averaged over the {latent_dim} latent dimensions "
                "too (a .mean() over everything, where it is summed over them, dim=1, then averaged over the "
                f"images), or divided by {latent_dim} once more (a ½ applied twice)?",
            )
        )
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
            f"the KL's weight in {loss} is {_numbers(b.tolist())} for alpha = {_numbers(alphas)}, expected alpha."
        )
    return hints
