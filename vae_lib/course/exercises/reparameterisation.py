"""The check of exercise 1 (notebook 01), the reparameterisation trick z = μ + σ·ε: judged by the distribution
of 20,000 draws, so any way of drawing ε from torch's random stream passes (one that torch.manual_seed does not
repeat, NumPy's, fails), and by the gradients z hands back to μ and log σ².
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from vae_lib.course.exercises.checking import (
    CheckResult,
    _as_tensor,
    _backward_failure,
    _call,
    _dtype_failure,
    _kind_failure,
    _LearnerError,
    _mirrored_pairs,
    _most_at_an_extreme,
    _near,
    _normal_distance,
    _normalised_over_samples,
    _numbers,
    _probing,
    _result,
    _seeded,
    _show,
    _with_hints,
)

REPARAMETERISATION_SAMPLES = 20_000
# Standardised draws of N(0, 1) lie within this Kolmogorov-Smirnov distance of it (20,000 draws: about 0.005).
NORMAL_DISTANCE_LIMIT = 0.02
# Normal draws do not repeat: when this share of a dimension's draws sits at exactly its lowest or highest value
# (20 of 20,000), the noise was clipped there.
CLIPPED_SHARE = 0.001
# Below this share of distinct values among a dimension's draws between its extremes, the noise takes few values
# (rounded, or drawn from a discrete distribution).
DISTINCT_SHARE = 0.2


def check_reparameterise(reparameterise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check z = reparameterise(mean, log_var): its shape, its noise's distribution over many draws, its gradients."""
    return _result("reparameterisation", _reparameterise_failures(reparameterise), "z = μ + σ·ε, with gradients.")


CLAMP_WHY = (
    "Use σ = exp(0.5 · log_var) as it is: a clamp of σ, or of log_var at a value the encoder reaches, changes the "
    "distribution z is drawn from."
)


def _clamped_spread_hint(
    spread: torch.Tensor, sigma: torch.Tensor, two_sided: bool = False, added: str = ""
) -> str | None:
    """Return a hint when z spreads as σ clamped to one bound (or, with `two_sided`, to two), the dimensions beyond it
    spreading as the bound; else None. A small constant added to σ or σ² (`added`, _added_to_sigma's) can fit as well
    as a clamp from below on these three dimensions, so the hint then names both."""
    low, high = spread.min().item(), spread.max().item()
    # a spread the same in every dimension is not a clamp: one bound leaves some dimension its own σ, two differ
    bounds = (
        [
            (
                f"≈ {low:.3g} and {high:.3g}: the dimensions whose σ lies beyond them",
                sigma.clamp(low, high),
                low < 0.97 * high,
            )
        ]
        if two_sided
        else [
            (f"≈ {high:.3g}: the dimensions whose σ lies above it", sigma.clamp(max=high), (sigma < 0.97 * high).any()),
            (f"≈ {low:.3g}: the dimensions whose σ lies below it", sigma.clamp(min=low), (sigma > 1.03 * low).any()),
        ]
    )
    for where, clamped, possible in bounds:
        if possible and not torch.allclose(spread, sigma, rtol=0.03) and torch.allclose(spread, clamped, rtol=0.03):
            also = f", or as if {added} (a small number added for safety)" if added else ""
            return f"z spreads as σ clamped at {where} spread as the bound{also}. {CLAMP_WHY}"
    return None


def _added_to_sigma(spread: torch.Tensor, sigma: torch.Tensor) -> str:
    """Return 'c were added to σ' (or to the variance σ²) when z spreads as σ + c or √(σ² + c) for a constant c,
    read from the dimension of the smallest σ, where the draws measure it best; else ''."""
    smallest = sigma.argmin()
    for what, added, spread_of in (
        ("σ", spread[smallest] - sigma[smallest], lambda c: sigma + c),
        ("the variance σ²", spread[smallest] ** 2 - sigma[smallest] ** 2, lambda c: (sigma**2 + c).clamp_min(0).sqrt()),
    ):
        if abs(added.item()) > 1e-3 and torch.allclose(spread, spread_of(added), rtol=0.03):
            return f"{added.item():.3g} were added to {what}"
    return ""


def _added_to_sigma_hint(added: str) -> str | None:
    """Return the hint for z spreading as σ + c or as √(σ² + c) (`added`, _added_to_sigma's), else None."""
    if not added:
        return None
    return (
        f"z spreads as if {added}: σ = exp(0.5 · log_var) needs nothing added (exp is positive already), and ε is "
        "scaled by σ alone."
    )


def _log_variance_multiple_hint(spread: torch.Tensor, variances: torch.Tensor) -> str | None:
    """Return a hint when z spreads as a constant times |log σ²| (math.exp(0.5) * log_var, the exp applied to the
    constant instead of to half the log-variance), else None."""
    log_variances = variances.log().abs()
    factor = (spread * log_variances).sum() / (log_variances * log_variances).sum()
    if not torch.allclose(spread, factor * log_variances, rtol=0.03):
        return None
    return (
        f"z spreads as {factor.item():.3g} · |log σ²|, a multiple of log_var (math.exp(0.5) * log_var is e^0.5 = "
        "1.65 times it): σ is the exponential of half the log-variance, σ = torch.exp(0.5 * log_var)."
    )


def _reparameterise_failures(reparameterise: Callable) -> Iterator[str]:
    """Yield a failure message for each property the learner's reparameterise gets wrong, one part at a time."""
    means = torch.tensor([2.0, -1.0, 0.0])
    variances = torch.tensor([0.25, 4.0, 9.0])
    mean = means.repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    log_var = variances.log().repeat(REPARAMETERISATION_SAMPLES, 1).requires_grad_()
    case = f"{REPARAMETERISATION_SAMPLES} draws with μ = (2, -1, 0), σ² = (0.25, 4, 9)"
    # A first look at 4 rows: a z of another shape fails here, before a broadcast over 20,000 rows (20,000 × 20,000
    # × 3 floats, 4.8 GB) can exhaust the memory of the machine the notebook runs on.
    first = _first_look(reparameterise, mean[:4].detach(), log_var[:4].detach())
    first_shape = "" if first is None else _shape_message("4 draws with the same μ and σ²", first, mean[:4])
    if first_shape:
        yield first_shape
        return
    with _seeded(0):
        z = _call(
            case, reparameterise, mean, log_var, hints=_kept_from_the_first_look_hints if first is not None else None
        )
        z_again = _call("two calls with the same inputs", reparameterise, mean, log_var)
    why = "the decoder's gradient reaches the encoder through z"
    if not isinstance(z, torch.Tensor):
        yield _kind_failure(case, "z", z, why)
        return
    yield _shape_message(case, z, mean)
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
        yield _no_spread_failure(case, draws, means.double(), sigma, z, log_var, z_again)
        return
    misplaced = _misplaced_noise_hint(draws, means.double(), sigma, centre, spread)
    if misplaced:
        yield _with_hints(f"Case *{case}*: z is not distributed as N(μ, σ²): {misplaced[0]}", misplaced[1:])
        return
    still = spread <= 1e-6 * sigma
    if still.any():  # no distribution or spread can be judged where z does not move
        yield _still_dimensions_failure(case, variances.double(), still, reparameterise)
        return
    repeated = _repeated_values_hint(draws)
    yield _distribution_failure(case, (draws - centre) / spread, repeated)
    yield _centre_failure(case, centre, means.double(), sigma, spread)
    yield _spread_failure(case, spread, variances.double(), repeated)
    if repeated:  # a clamp far out (at ±3) leaves the spread and the distance within their tolerances
        yield _with_hints(f"Case *{case}*: the draws of z repeat values, where normal draws never do.", [repeated])
    yield _independence_failure(case, draws)
    yield _dependent_images_failure(case, (draws - means.double()) / sigma)
    if isinstance(z_again, torch.Tensor) and torch.equal(z_again.detach().double(), draws):
        yield _with_hints(
            "Case *two calls with the same inputs*: z is the same both times.",
            ["the noise is drawn once and reused, or a seed is set inside the function: draw a new ε on every call."],
        )
    with _seeded(0):
        z_seeded_again = _call("the same torch seed again", reparameterise, mean, log_var)
    if isinstance(z_seeded_again, torch.Tensor) and not torch.equal(z_seeded_again.detach().double(), draws):
        yield _with_hints(
            "Case *the same torch seed again*: z differs from the first call's, made after the same "
            "torch.manual_seed(0).",
            [
                "the noise comes from a random stream torch.manual_seed does not set (NumPy's np.random, Python's "
                "random, a torch.Generator of your own), so no run can be repeated: draw ε from torch's, "
                "torch.randn_like(mean)."
            ],
        )
    yield _gradient_failure_of_z(z, mean, log_var)


def _misplaced_noise_hint(
    draws: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor, centre: torch.Tensor, spread: torch.Tensor
) -> list[str]:
    """Return what the draws show and a hint where σ and ε are put together wrongly: added (z = μ + σ + ε), the mean
    multiplying the noise (z = μ·σ·ε, μ + μ·σ·ε), ε made positive, or ε centred, standardised or scaled to one length
    in each row; else []. `centre` and `spread` are the draws' mean and standard deviation in each dimension."""
    if _near((centre - means - sigma).tolist(), 0.0, atol=0.05) and _near(spread.tolist(), 1.0, rtol=0.05):
        return [
            f"its average is μ + σ ({_numbers((means + sigma).tolist())}) and its spread 1 in every dimension.",
            "σ and ε are added, z = mean + σ + ε, where σ multiplies ε: z = mean + σ · ε.",
        ]
    if _near(spread.tolist(), (means.abs() * sigma).tolist(), atol=0.05):
        written = "mean · σ · ε" if _near(centre.tolist(), 0.0, atol=0.05) else "mean + mean · σ · ε"
        return [
            f"its spread is |μ|·σ ({_numbers((means.abs() * sigma).tolist())}), 0 where μ is 0.",
            f"the mean multiplies the noise, z = {written}, where σ · ε alone is added to it: z = mean + σ · ε.",
        ]
    noise = (draws - means) / sigma
    folded = {  # the mean and spread of |ε| and of ε², for ε ~ N(0, 1)
        "abs": (math.sqrt(2 / math.pi), math.sqrt(1 - 2 / math.pi)),
        "square": (1.0, math.sqrt(2.0)),
    }
    for name, (average, spread_of_it) in folded.items():
        if (noise >= 0).all() and _near([noise.mean().item(), noise.std().item()], [average, spread_of_it], rtol=0.03):
            return [
                f"(z - μ)/σ is never negative, and averages {noise.mean().item():.3g}, as the {name} of N(0, 1) "
                "draws does.",
                f"ε is made positive ({'.abs()' if name == 'abs' else 'squared'}): ε ~ N(0, I) takes both signs, "
                "as torch.randn_like(mean) draws it.",
            ]
    leave = "leave ε as torch.randn_like(mean) draws it, each element N(0, 1) on its own."
    if _near(noise.mean(dim=1).tolist(), 0.0, atol=1e-5):  # float32 rounding leaves a few 1e-6
        standardised = _near(noise.std(dim=1).tolist(), 1.0, rtol=1e-4)
        done = "standardised (its mean subtracted, divided by its spread)" if standardised else "centred"
        return [
            f"(z - μ)/σ averages 0 in every row{', with spread 1' if standardised else ''}.",
            f"ε is {done} in each row, over an image's dimensions, which ties the dimensions together: {leave}",
        ]
    lengths = noise.norm(dim=1)
    many_values = noise[:1000].unique().numel() > 1500  # of 3,000: not ε of few values (signs), all of one length
    if many_values and _near(lengths.tolist(), lengths[0].item(), rtol=1e-4):
        return [
            f"(z - μ)/σ has length {lengths[0].item():.4g} in every row.",
            f"ε is scaled to one length in each row (divided by its norm): {leave}",
        ]
    return []


def _first_look(reparameterise: Callable, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor | None:
    """Return z for a few rows, or None when the learner's function raises or returns no tensor there (the full case
    reports those)."""
    with _seeded(1):
        try:
            z = _probing(reparameterise)(mean.clone().requires_grad_(), log_var.clone().requires_grad_())
        except _LearnerError:
            return None
    return z if isinstance(z, torch.Tensor) else None


def _kept_from_the_first_look_hints(error: Exception) -> list[str]:
    """Return the hint for a function that raises on the full case after the first look's 4 rows went through: a
    tensor of 4 rows kept from that call (ε drawn once and reused), which the 20,000 rows do not fit."""
    if "must match the size of tensor" not in str(error) or "(4)" not in str(error):
        return []
    return [
        "the call before, on 4 rows, went through, and this one meets a tensor of 4 rows: is something kept from "
        "an earlier call (ε drawn once and reused)? Draw a new ε on every call, torch.randn_like(mean)."
    ]


def _shape_message(case: str, z: torch.Tensor, mean: torch.Tensor) -> str:
    """Return '' when z has mean's shape, else both shapes and what made z's."""
    if z.shape == mean.shape:
        return ""
    message = f"Case *{case}*: z has shape {tuple(z.shape)}, expected {tuple(mean.shape)}, the shape of mean."
    if z.numel() == mean.numel():
        hint = "z holds the right number of values, reshaped (a flatten, view or unsqueeze): keep mean's shape."
    elif z.numel() > mean.numel():
        hint = (
            "z holds more values than mean: a tensor of another shape (an unsqueeze, or ε drawn as N × 1 × D) was "
            "broadcast against mean. ε must have mean's shape, torch.randn_like(mean), and so must σ."
        )
    else:
        hint = "z holds fewer values than mean: is it reduced (a sum or mean) or sliced? z has one value per element."
    return _with_hints(message, [hint])


def _no_spread_failure(
    case: str,
    draws: torch.Tensor,
    means: torch.Tensor,
    sigma: torch.Tensor,
    z: torch.Tensor,
    log_var: torch.Tensor,
    z_again: object,
) -> str:
    """Return the message for z that does not vary over draws: no noise at all (z the same on a second call), or one
    ε shared by every image."""
    message = f"Case *{case}*: z's standard deviation over the draws expected ≈ {_show(sigma)}, got 0."
    noise = (draws[0] - means) / sigma
    uses_log_var = z.requires_grad and torch.autograd.grad(z.sum(), log_var, retain_graph=True, allow_unused=True)[0]
    drawn_nothing = isinstance(z_again, torch.Tensor) and torch.equal(z_again.detach().double(), draws)
    one_multiple = torch.allclose(noise, noise.flatten()[0].expand_as(noise), rtol=1e-4)
    if not (isinstance(uses_log_var, torch.Tensor) and uses_log_var.abs().sum() > 0):
        hint = "z is not random: add noise, z = mean + σ·ε with ε ~ N(0, I) (torch.randn_like(mean))."
    elif drawn_nothing and one_multiple:
        c = noise.flatten()[0].item()
        sign = "+" if c > 0 else "-"
        term = f"{sign} σ" if math.isclose(abs(c), 1, rel_tol=1e-4) else f"{sign} {abs(c):.3g}·σ"
        hint = (
            f"z = mean {term}: σ is not multiplied by any noise, so z is one fixed point, not a draw. Multiply it "
            "by ε ~ N(0, I), a fresh one per element: z = mean + σ · torch.randn_like(mean)."
        )
    elif drawn_nothing:
        hint = (
            "z is the same on every call: nothing in it is drawn (is σ², log σ² or σ itself added where σ·ε "
            "belongs?). z = mean + σ·ε, with a fresh ε ~ N(0, I) per element, torch.randn_like(mean)."
        )
    elif one_multiple:
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


def _still_dimensions_failure(case: str, variances: torch.Tensor, still: torch.Tensor, reparameterise: Callable) -> str:
    """Return the message for z that varies over the draws in some dimensions and not in others, and whether that
    follows σ² (a relu of log σ², a NaN replaced by 0) or the position (part of z left out), probed with the
    dimensions in another order."""
    message = f"Case *{case}*: z does not vary over the draws in the dimensions with σ² = {_numbers(variances[still])}."
    order = torch.roll(torch.arange(len(variances)), 1)  # each σ² one dimension further on
    try:
        with _seeded(1):
            probe = _probing(reparameterise)(
                torch.zeros(200, len(variances)), variances[order].float().log().repeat(200, 1)
            )
    except _LearnerError:
        probe = None
    probe = _as_tensor(probe)
    still_in_probe = (
        None if probe is None or probe.shape != (200, len(variances)) else probe.double().std(dim=0) <= 1e-6
    )
    if still_in_probe is not None and torch.equal(still_in_probe, still) and not torch.equal(still[order], still):
        where = ", ".join(str(int(index)) for index in still.nonzero().flatten())
        hint = (
            f"z's dimension {where} stays still wherever its σ² is: the noise is left out of part of z (a slice, or "
            "an index) rather than computed wrong: z = μ + σ·ε in every dimension."
        )
    elif bool((variances[still] < 1).all()) and bool((variances[~still] > 1).all()):
        hint = (
            "σ is 0 where log σ² is negative (σ² < 1): a relu or clamp of log_var, or a NaN of a square root or log "
            "of log_var replaced by 0? σ = exp(0.5 · log_var) is positive for every log σ²."
        )
    else:
        hint = "the noise is missing in those dimensions: z = μ + σ·ε with one ε per element, torch.randn_like(mean)."
    return _with_hints(message, [hint])


def _repeated_values_hint(draws: torch.Tensor) -> str:
    """Return a hint when the draws of some dimension of z repeat values, which normal draws never do: few distinct
    values (noise rounded, or drawn from a discrete distribution), or a pile at the lowest or highest value, as
    clipped noise has (torch.clamp); else ''."""
    for column in draws.T:  # the draws between the extremes, where a clamp leaves them as they are
        interior = column[(column > column.min()) & (column < column.max())]
        if len(torch.unique(interior)) < DISTINCT_SHARE * max(len(interior), len(column) // 2):
            return (
                f"ε takes few values: a dimension's {len(column)} draws of z hold only {len(torch.unique(column))} "
                "distinct values, where normal draws never repeat (rounded, sign or randint?): ε ~ N(0, I) is "
                "continuous, torch.randn_like(mean)."
            )
    share = _most_at_an_extreme(draws) / len(draws)
    if share < CLIPPED_SHARE:
        return ""
    return (
        f"ε is clipped: {share:.1%} of a dimension's draws of z sit at exactly the same lowest or highest value, "
        "where normal draws never repeat (a clamp of ε or z?): use ε = torch.randn_like(mean) as it is drawn."
    )


def _distribution_failure(case: str, standardised: torch.Tensor, repeated: str = "") -> str:
    """Return '' when the draws of z, standardised per dimension, look like N(0, 1), else what ε looks like
    (`repeated`, the hint on draws that repeat values, when they do)."""
    distance = _normal_distance(standardised)
    if distance < NORMAL_DISTANCE_LIMIT:
        return ""
    message = (
        f"Case *{case}*: the draws of z are not normally distributed (Kolmogorov-Smirnov distance {distance:.3f} "
        f"from a normal distribution, expected below {NORMAL_DISTANCE_LIMIT})."
    )
    if repeated:
        hint = repeated
    elif standardised.abs().max() < 1.8:  # a uniform variable lies within √3 ≈ 1.73 standard deviations of its mean
        hint = "ε is uniform: torch.rand / torch.rand_like draw from U(0, 1); ε ~ N(0, I) is torch.randn_like(mean)."
    else:
        hint = "ε is not drawn from a normal distribution: ε ~ N(0, I) is torch.randn_like(mean)."
    return _with_hints(message, [hint])


def _centre_failure(
    case: str, centre: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor, spread: torch.Tensor
) -> str:
    """Return '' when z averages to μ, else whether the mean is missing, added k times, or ε is off-centre.

    The average of 20,000 draws is within about 0.007 of their spread of its expectation: the tolerance is measured
    in the larger of σ and the draws' own spread, so z spread far wider than σ (σ⁴ for σ) is told its spread."""
    tolerance = 0.05 * torch.maximum(sigma, spread)
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
    elif ((centre - means * sigma).abs() < tolerance).all():
        hint = "the average z is μ·σ: the mean is scaled by σ too, as in (mean + ε)·σ: z = mean + σ·ε scales ε alone."
    elif ((times_mean - times_mean[0]).abs() < 0.05).all() and (centre[~moving].abs() < tolerance[~moving]).all():
        hint = f"the average z is {times_mean[0].item():.2g}·μ: z = mean + σ·ε adds the mean once."
    else:
        hint = "z should average to μ over many draws: z = mean + σ·ε with ε of mean 0."
    return _with_hints(message, [hint])


def _spread_failure(case: str, spread: torch.Tensor, variances: torch.Tensor, repeated: str = "") -> str:
    """Return '' when z's standard deviation over draws is σ, else a message naming the scale used instead
    (`repeated`, the hint on draws that repeat values, when they do: clipping narrows the spread)."""
    sigma = variances.sqrt()
    if torch.allclose(spread, sigma, rtol=0.03):
        return ""
    candidates = {
        "the noise is scaled by the variance exp(log_var); scale it by the standard deviation "
        "σ = exp(0.5 · log_var).": variances,
        "log_var is used as σ; σ = exp(0.5 · log_var).": variances.log().abs(),
        "σ is taken as 0.5 · log_var, ½ · log σ², with the exp forgotten: σ = exp(0.5 · log_var).": 0.5
        * variances.log().abs(),
        "σ is taken as the square root of log_var, as if log_var were the variance σ²; it is log σ², so "
        "σ = exp(0.5 · log_var).": variances.log().abs().sqrt(),
        "ε is not scaled by σ = exp(0.5 · log_var).": torch.ones(3, dtype=torch.float64),
        "exp(-0.5 · log_var) is 1/σ: the sign in the exponent is wrong.": 1 / sigma,
        "a σ below 1 comes out as 1/σ: is log_var's sign lost (its absolute value taken, or max(σ, 1/σ))? "
        "σ = exp(0.5 · log_var).": torch.maximum(sigma, 1 / sigma),
        "σ is computed as softplus(log_var), which is not σ: log_var is log σ², so σ = exp(0.5 · log_var).": (
            torch.nn.functional.softplus(variances.log())
        ),
    }
    hint = repeated or next(
        (hint for hint, scale in candidates.items() if torch.allclose(spread, scale, rtol=0.03)), None
    )
    ratio = spread / sigma
    same_everywhere = torch.allclose(spread, spread.mean().expand_as(spread), rtol=0.03)
    # log spread = power · log σ + log factor: how z's spread grows with σ
    power, log_factor = torch.linalg.lstsq(
        torch.stack([sigma.log(), torch.ones_like(sigma)], dim=1), spread.log().unsqueeze(1)
    ).solution.squeeze(1)
    added = _added_to_sigma(spread, sigma)
    hint = hint or _clamped_spread_hint(spread, sigma, added=added) or _added_to_sigma_hint(added)
    if hint is None and torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=0.03):
        hint = (
            f"z spreads {ratio.mean().item():.3g} times σ: ε should have standard deviation 1 (torch.randn_like), "
            "and σ = exp(0.5 · log_var) with no further factor."
        )
    elif hint is None and same_everywhere:
        hint = (
            f"z spreads the same in every dimension (≈ {spread.mean().item():.3g}) where σ differs: is σ averaged or "
            "summed over the dimensions, or one σ used for all? Scale each dimension's ε by its own "
            "σ = exp(0.5 · log_var), elementwise."
        )
    elif hint is None and torch.allclose(log_factor.exp() * sigma**power, spread, rtol=0.03):
        hint = f"z spreads as σ to the power {power.item():.2g}, not as σ: σ = exp(0.5 · log_var)."
    # after the power law: on three dimensions a curve right at one σ can look clamped at the other two
    hint = hint or _clamped_spread_hint(spread, sigma, two_sided=True) or _log_variance_multiple_hint(spread, variances)
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


def _dependent_images_failure(case: str, noise: torch.Tensor) -> str:
    """Return '' when each image's ε (one row of `noise`) is drawn on its own, else how the rows depend on each other:
    rows repeated, rows that are others' negations (antithetic), or ε centred or standardised over the batch."""
    repeated = len(noise) - len(torch.unique(noise, dim=0))
    if repeated:
        return _with_hints(
            f"Case *{case}*: {repeated} of the {len(noise)} images' ε repeat another image's.",
            ["part of the noise is reused for other images (e.g. cat([ε, ε])): draw every ε afresh, randn_like(mean)."],
        )
    if 4 * len(_mirrored_pairs(noise)) >= len(noise):
        return _with_hints(
            f"Case *{case}*: the images' ε come in pairs ε, -ε.",
            [
                "antithetic noise (cat([ε, -ε])): each image's ε looks N(0, I), but half the batch's noise is known "
                "from the other half, so the images are not independent draws: draw every ε afresh, randn_like(mean)."
            ],
        )
    if _normalised_over_samples(noise):
        return _with_hints(
            f"Case *{case}*: ε has a mean of exactly 0, a spread of exactly 1 or one length over the batch in every "
            "dimension.",
            [
                "ε is centred, standardised or normalised over the batch, which makes each image's noise depend on the "
                "others': "
                "use randn_like(mean)'s draws as they come."
            ],
        )
    return ""


def _gradient_failure_of_z(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> str:
    """Return '' when dz/dmean = 1 and dz/dlog_var = (z - mean) / 2, each image's z from its own mean and log_var,
    else a message on the missing gradient. The gradients are those of a sum of z weighted differently for each
    image, so z computed from the batch's average mean or log_var shows."""
    case = "gradients of z"
    if not z.requires_grad:
        return (
            f"Case *{case}*: z carries no gradient.\nLooks like: z is drawn with torch.normal or detached; "
            "compute it as mean + σ·ε so gradients reach mean and log_var."
        )
    try:
        weights = (torch.arange(len(z)) % 5 + 1).to(z.dtype).unsqueeze(1)  # 1 to 5, by image
        d_mean, d_log_var = torch.autograd.grad((weights * z).sum(), (mean, log_var), allow_unused=True)
    except Exception as error:  # a backward of the learner's own (an autograd.Function) may raise anything
        return _backward_failure(case, "z", error)
    if d_mean is None and d_log_var is None:
        return (
            f"Case *{case}*: z has no gradient with respect to mean or log_var.\nLooks like: z is computed, then "
            "detached and made a new leaf (.detach().requires_grad_(), numpy): compute it as mean + σ·ε."
        )
    if d_mean is not None and torch.allclose(d_mean, weights.mean().expand_as(mean)) and len(z) > 1:
        return _with_hints(
            f"Case *{case}*: each image's z depends on the means of every image in the batch.",
            ["the mean is averaged over the batch (mean.mean(0)): z = mean + σ·ε, each image from its own mean."],
        )
    if d_mean is None or not d_mean.any():
        return _with_hints(
            f"Case *{case}*: dz/dmean should be 1 everywhere, got no gradient to mean.",
            [
                "mean is detached (mean.detach(), mean.data, numpy), left out of z, or z is drawn by "
                "torch.normal(mean, σ), which passes no gradient to mean, so the encoder's means would never learn: "
                "z = mean + σ·ε with mean as given."
            ],
        )
    if not torch.allclose(d_mean, weights.expand_as(mean)):
        return f"Case *{case}*: dz/dmean should be 1 everywhere.\nLooks like: z = mean + σ·ε is not what is computed."
    expected = 0.5 * weights.double() * (z.detach().double() - mean.detach().double())
    if d_log_var is None or not torch.allclose(d_log_var.double(), expected, rtol=1e-3, atol=1e-5):
        return (
            f"Case *{case}*: dz/dlog_var should be σ·ε/2 = (z - mean)/2.\n"
            "Looks like: σ is not computed from log_var as exp(0.5 · log_var), or is detached."
        )
    return ""
