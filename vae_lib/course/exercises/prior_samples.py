"""The check of exercise 5 (notebook 02), images sampled from the prior: z ~ N(0, I) drawn with the generator given,
decoded in eval mode; z drawn with it another way passes, judged by the latents the decoder is given.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch

from vae_lib.core.model import VAE, ModelInputError
from vae_lib.course.exercises.checking import (
    CheckResult,
    _call,
    _close,
    _compare,
    _converted_model_failure,
    _LearnerError,
    _left_in_training_mode_failure,
    _mirrored_pairs,
    _most_at_an_extreme,
    _near,
    _normal_distance,
    _normalised_over_samples,
    _recording_latents,
    _result,
    _seeded,
    _small_model,
    _with_hints,
)


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
        latents = torch.randn(count, latent_dim, generator=_used_generator(seed))
        with torch.no_grad():
            expected = model.decode(latents)
        with _recording_sampler_latents(model) as (decoded, decoded_by_the_model):
            hints = partial(_sample_error_hints, decoded, latent_dim)
            got = _call(name, sample_prior, model, count, _used_generator(seed), hints=hints)
        converted = _converted_model_failure(name, model)
        if converted:  # the known mistakes below would be decoded by the converted model
            yield converted
            return
        left_training = model.training
        model.eval()  # the rest of the check decodes as the notebook's next cell would, in eval mode
        training_mode = copy.deepcopy(model).train()
        with torch.no_grad():
            mistakes = [
                (
                    "these are the latents z: return the images the decoder draws from them.",
                    torch.randn(count, latent_dim, generator=_used_generator(seed)),
                ),
                (
                    "torch.rand draws from the uniform U(0, 1); the prior is N(0, I): torch.randn.",
                    model.decode(torch.rand(count, latent_dim, generator=_used_generator(seed))),
                ),
                (
                    f"these are the first draws of a generator seeded {seed}: torch's global one right after "
                    f"torch.manual_seed({seed}) (torch.randn without generator=), or one seeded again in your "
                    "function, where the one given has been used already: draw from it as it is given, "
                    "torch.randn(count, model.latent_dim, generator=generator).",
                    model.decode(torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))),
                ),
                (
                    "decoded in training mode, where BatchNorm normalises with the batch's own statistics: "
                    "leave the model in eval mode.",
                    training_mode.decode(torch.randn(count, latent_dim, generator=_used_generator(seed))),
                ),
                (
                    "the images are rescaled to [0, 1], (x + 1) / 2: return them as the decoder gives them, in "
                    "[-1, 1] as the model's input images are; the figures rescale them for display.",
                    (expected + 1) / 2,
                ),
            ]
            clamped = (  # this model's pixels may all lie below 0, so that clamped they are images of zeros
                "the images are clamped to [0, 1], which makes every pixel below 0 (the darker half of [-1, 1]) 0"
                if (expected > 0).any()
                else "every pixel is 0, where this model draws all of them below 0: are the images clamped to [0, 1] "
                "(which makes every pixel below 0 a 0), or made as zeros?"
            )
            mistakes.append(
                (
                    f"{clamped}: return the images as the decoder gives them, in [-1, 1]; the figures rescale them "
                    "for display.",
                    expected.clamp(0, 1),
                )
            )
        hints = partial(_sample_hints, got, decoded, latents, decoded_by_the_model)
        failure = _compare(name, "the images", got, expected, mistakes, hints)
        if failure and _drawn_from_the_prior_another_way(sample_prior, model, count, seed, decoded, got):
            failure = ""
        if not failure:
            failure = _repeated_samples_failure(sample_prior, model, count, seed, name)
        if not failure and left_training:
            failure = _left_in_training_mode_failure(name)
        if failure and "Looks like" not in failure and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            again = _call(name, sample_prior, model, count, _used_generator(seed))
            if not torch.equal(got.detach(), again.detach()):
                failure += "\nLooks like: the generator is not used: pass generator=generator to torch.randn."
        yield failure


def _repeats_with_one_generator(sample_prior: Callable, model: VAE, count: int, seed: int, case: str) -> bool | None:
    """Return whether a second call with the generator of a first call gives the same images (the generator's state
    copied or reset), or None when the two calls do not return tensors of one shape."""
    generator = _used_generator(seed)
    first = _call(case, sample_prior, model, count, generator)
    second = _call("a second call with the same generator", sample_prior, model, count, generator)
    if not (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)) or first.shape != second.shape:
        return None
    return torch.equal(first.detach(), second.detach())


def _repeated_samples_failure(sample_prior: Callable, model: VAE, count: int, seed: int, name: str) -> str:
    """Return '' when two calls with one generator give different images, else a message: the generator's state was
    copied or reset, so a notebook's second call would repeat the first."""
    if not _repeats_with_one_generator(sample_prior, model, count, seed, name):
        return ""
    return _with_hints(
        f"Case *{name}*: two calls with the same generator gave the same images.",
        [
            "the generator's state is copied or reset inside the function, so each call repeats the last: draw from "
            "the generator given, torch.randn(count, latent_dim, generator=generator)."
        ],
    )


# What the generator given to the learner's sample_prior has drawn before.
GENERATOR_DRAWS_BEFORE = 5


def _used_generator(seed: int) -> torch.Generator:
    """Return a generator seeded `seed` that has drawn a few numbers already, as a notebook's generator has: an
    answer that seeds it again (manual_seed(generator.initial_seed())) draws other z than it would."""
    generator = torch.Generator().manual_seed(seed)
    torch.randn(GENERATOR_DRAWS_BEFORE, generator=generator)
    return generator


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
    decoder was given. The images must be eval-mode decodings of as many of those latents, no two of one (more may be
    drawn and some dropped); the same generator seed must give the same images whatever the global random state,
    another seed and a second call with the same generator other images; and the latents of PRIOR_DRAWS images must
    look N(0, I) (those kept, where more were drawn): each dimension within PRIOR_DRAWS_MAX_DISTANCE of N(0, 1), the
    dimensions uncorrelated, no draw the negation of another (antithetic pairs z, -z are not independent draws,
    though each looks N(0, I)), the draws not centred or standardised over the samples (their mean exactly 0 or
    their spread exactly 1) and not clipped (several at exactly a dimension's lowest or highest value). The
    learner's code raising on one of these calls means no."""
    try:
        return _judged_by_its_latents(sample_prior, model, count, seed, decoded, got)
    except _LearnerError:
        return False


def _judged_by_its_latents(
    sample_prior: Callable, model: VAE, count: int, seed: int, decoded: Sequence[torch.Tensor], got: object
) -> bool:
    """Return _drawn_from_the_prior_another_way's answer; the learner's code raising raises _LearnerError."""
    if _kept_latents(model, decoded, got, count) is None:
        return False
    with _seeded(seed + 12345):  # another global random state: the draw must come from the generator alone
        again = _call("the same generator seed again", sample_prior, model, count, _used_generator(seed))
        other = _call("another generator seed", sample_prior, model, count, _used_generator(seed + 1))
    if not isinstance(again, torch.Tensor) or not torch.equal(again.detach(), got.detach()):
        return False
    if not isinstance(other, torch.Tensor) or other.shape != got.shape or torch.equal(other.detach(), got.detach()):
        return False
    if _repeats_with_one_generator(sample_prior, model, count, seed, "a first call") is not False:
        return False  # the generator's seed was read, not its state: a notebook's second call repeats the first
    with _recording_latents(model) as many:
        images = _call(f"{PRIOR_DRAWS} samples", sample_prior, model, PRIOR_DRAWS, _used_generator(seed))
    draws = _kept_latents(model, many, images, PRIOR_DRAWS)  # those kept: picking which to keep changes the draw
    if draws is None or not torch.isfinite(draws).all():
        return False
    draws = draws.double()
    correlations = torch.corrcoef(draws.T) - torch.eye(model.latent_dim, dtype=draws.dtype)
    return (
        not _mirrored_pairs(draws)
        and not _normalised_over_samples(draws)
        and _most_at_an_extreme(draws) < 3  # clipped draws pile up at an extreme
        and _normal_distance(draws) <= PRIOR_DRAWS_MAX_DISTANCE
        and correlations.abs().max().item() <= PRIOR_DRAWS_MAX_CORRELATION
    )


@contextmanager
def _recording_sampler_latents(model: VAE) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Record, in a block, the latents the model decodes at the sampler's call (model.decode) and, apart, those its
    own forward passes decode (model(images): encode, draw z, decode)."""
    decoded: list[torch.Tensor] = []
    decoded_by_the_model: list[torch.Tensor] = []
    depth = [0]  # how many of the model's forward passes are running

    def enter(*_: object) -> None:
        depth[0] += 1

    def leave(*_: object) -> None:
        depth[0] -= 1

    def record(_: torch.nn.Module, inputs: tuple) -> None:
        (decoded_by_the_model if depth[0] else decoded).append(inputs[0].detach().clone())

    hooks = [
        model.register_forward_pre_hook(enter),
        model.register_forward_hook(leave, always_call=True),
        model.from_latent.register_forward_pre_hook(record),
    ]
    try:
        yield decoded, decoded_by_the_model
    finally:
        for hook in hooks:
            hook.remove()


def _latents_decoded(decoded: Sequence[torch.Tensor], count: int, latent_dim: int) -> torch.Tensor | None:
    """Return the latents a block decoded (_recording_latents), in one or several calls, as one tensor of
    `latent_dim` columns (of any leading shape, as the model decodes them); None when they are fewer than `count`
    latents of `latent_dim` values. More than `count` is an answer that draws extra latents and keeps `count` of the
    images."""
    if not decoded or any(z.dim() == 0 or z.shape[-1] != latent_dim for z in decoded):
        return None
    latents = torch.cat([z.reshape(-1, latent_dim) for z in decoded])  # one latent a call decodes too
    return latents if len(latents) >= count else None


def _kept_latents(model: VAE, decoded: Sequence[torch.Tensor], images: object, count: int) -> torch.Tensor | None:
    """Return the latents of the `count` images a sampler returned, among those it decoded (_recording_latents):
    None when they are not `count` images each decoded (in eval mode) from one of those latents, no two from the same
    one (a sample repeated). A sampler may decode more latents than it keeps images."""
    latents = _latents_decoded(decoded, count, model.latent_dim)
    if latents is None or not isinstance(images, torch.Tensor) or images.shape[:1] != (count,):
        return None
    with torch.no_grad():
        right = copy.deepcopy(model).eval().decode(latents).double()
    if images.shape[1:] != right.shape[1:]:
        return None
    got, right = images.detach().double().flatten(1), right.flatten(1)
    # nearest by a projection onto 16 random directions, then checked in full: cdist over all pixels is slow
    directions = torch.randn(right.shape[1], 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nearest = torch.cdist(got @ directions, right @ directions).argmin(dim=1)
    if len(set(nearest.tolist())) != count or not _close(got, right[nearest], rtol=1e-4, atol=1e-5):
        return None
    return latents[nearest]


def _sample_error_hints(decoded: Sequence[torch.Tensor], latent_dim: int, error: Exception) -> list[str]:
    """Return a hint on what the learner's code raised: the generator passed by position, latents of another width,
    or latents given to the whole model, whose encoder takes images."""
    generator_hints = _generator_error_hints(error)
    if generator_hints:
        return generator_hints
    width = _latent_width_hints(decoded, latent_dim, error)
    to_the_encoder = isinstance(error, ModelInputError) and len(error.expected) == 4 and len(error.given or ()) == 2
    if width or not to_the_encoder:  # latents given to the encoder, which takes images
        return width
    return [
        "model(z) runs the whole VAE, whose encoder takes images, N × 1 × 28 × 28: decode the latents alone with "
        "model.decode(z)."
    ]


def _generator_error_hints(error: Exception) -> list[str]:
    """Return a hint for a TypeError torch raised over the generator: given by position to a sampling function (in
    its "got (int, int, torch._C.Generator)" or "failed to unpack the object at pos 3 ... torch._C.Generator"), or
    given to torch.manual_seed as a seed; else []."""
    text = str(error)
    if not isinstance(error, TypeError) or "torch._C.Generator" not in text:
        return []
    if re.search(r"got \((?:[^()=]*, )?torch\._C\.Generator[,)]", text) or re.search(r"unpack the object at pos", text):
        return [
            "the generator is passed by position, where torch reads one more size (or a mean or σ): pass it by name, "
            "torch.randn(count, model.latent_dim, generator=generator)."
        ]
    if text.startswith("int() argument"):
        return [
            "the generator is given where a number belongs (torch.manual_seed(generator)?): it is seeded already, "
            "so draw from it, torch.randn(count, model.latent_dim, generator=generator), and seed nothing."
        ]
    return []


def _latent_width_hints(decoded: Sequence[torch.Tensor], latent_dim: int, error: Exception) -> list[str]:
    """Return a hint when the learner's code raised after decoding latents as wide as another model's latent space,
    or when the decoder refused them (before recording them)."""
    widths = [latents.shape[-1] for latents in decoded if latents.dim() == 2 and latents.shape[-1] != latent_dim]
    refused = error.given if isinstance(error, ModelInputError) and len(error.expected) == 2 else None
    if refused is not None and len(refused) == 2 and latent_dim not in refused:  # not transposed: the model says so
        widths.append(refused[1])
    if not widths:
        return []
    return [
        f"z has {widths[0]} values per sample, where this model's latent space has {latent_dim}: is the latent size "
        "written in? Draw z with torch.randn(count, model.latent_dim, generator=generator)."
    ]


def _sample_hints(
    images: object,
    decoded: Sequence[torch.Tensor],
    latents: torch.Tensor,
    decoded_by_the_model: Sequence[torch.Tensor] = (),
) -> list[str]:
    """Return what is wrong with the latents a sampler decoded itself, else with its images: a sample repeated. First,
    whether it ran the whole model (`decoded_by_the_model`: the latents its forward passes decoded)."""
    if decoded_by_the_model:  # what else is wrong is in the latents the sampler decoded itself
        return [
            "the whole model ran, model(images), which encodes its images, draws a new z with torch's global generator "
            "and decodes that: return the images decoded from your z, model.decode(z).",
            *_sample_hints(None, decoded, latents),
        ]
    hints = _prior_latent_hints(decoded, latents)
    if hints:
        return hints
    decoded_latents = _latents_decoded(decoded, 2, latents.shape[1])
    normalised = "" if decoded_latents is None else _normalised_in_each_sample(decoded_latents)
    if normalised:
        dimensions = latents.shape[1]
        return [
            f"z is normalised in each sample ({normalised}): draws from N(0, I) have lengths that vary around "
            f"√{dimensions} = {math.sqrt(dimensions):.3g}, and normalising each z on its own puts every sample on one "
            "sphere (in 2-D a circle), which the prior is not. Decode the draws as they come, "
            "torch.randn(count, model.latent_dim, generator=generator)."
        ]
    mirrored = [] if decoded_latents is None else _mirrored_pairs(decoded_latents)
    if mirrored:
        first, second = mirrored[0]
        return [
            f"the z of sample {second + 1} is minus that of sample {first + 1} (antithetic pairs z, -z): each looks "
            "N(0, I), but the samples are not independent draws, so half of them are known from the other half. "
            "Draw every z afresh: torch.randn(count, model.latent_dim, generator=generator)."
        ]
    if decoded_latents is not None and _normalised_over_samples(decoded_latents):
        return [
            "z is centred, standardised or normalised over the samples (its mean is exactly 0, its spread exactly 1, "
            "or its length over the samples the same, in every dimension): draws from N(0, I) vary around 0 and 1, "
            "and normalising makes each sample depend on the others. Decode the draws as they come."
        ]
    bound = None if decoded_latents is None else decoded_latents.abs().max()
    clipped = None if bound is None else latents.double().clamp(-bound.item(), bound.item())
    if bound is not None and 0 < bound < latents.abs().max() and _close(decoded_latents.double(), clipped):
        return [
            f"z is clipped at ±{bound:.3g}: the prior N(0, I) has no bound (a draw beyond it is rare, not wrong), "
            "so decode torch.randn(count, model.latent_dim, generator=generator) as it is drawn."
        ]
    if decoded_latents is not None and _rearranged(decoded_latents, latents):
        return [
            "z holds the generator's draws, but arranged otherwise (sorted, or moved between samples or dimensions): "
            "decode torch.randn(count, model.latent_dim, generator=generator) as it is drawn."
        ]
    if not (isinstance(images, torch.Tensor) and images.dim() > 1 and len(images) > 1):
        return []
    rows = images.detach().flatten(1)
    same = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)) if torch.equal(rows[i], rows[j])]
    if not same:
        return []
    first, second = same[0]
    return [
        f"samples {first + 1} and {second + 1} are the same image: each sample decodes a z of its own, drawn with "
        "torch.randn(count, model.latent_dim, generator=generator)."
    ]


def _normalised_in_each_sample(rows: torch.Tensor) -> str:
    """Return how each row of latents was normalised on its own, when every row has the same length (z / |z|, or
    centred and scaled over its own dimensions, which leaves each a length of √(D - 1)); else ''."""
    if rows.dim() != 2 or rows.shape[1] < 2 or len(rows) < 2:
        return ""
    rows = rows.double()
    lengths = rows.norm(dim=1)
    if lengths.min() <= 0 or lengths.max() - lengths.min() > 1e-4 * lengths.max():
        return ""
    if rows.mean(dim=1).abs().max() < 1e-5 * lengths.max():
        return "each z centred and scaled over its own dimensions"
    return f"each z scaled to length {lengths[0].item():.3g}"


def _rearranged(decoded: torch.Tensor, latents: torch.Tensor) -> bool:
    """Return whether the latents decoded are the values of `latents` (the generator's draws) in another order, other
    than the two a right answer may draw them in: as drawn, or transposed (torch.randn(latent_dim, count).T)."""
    if decoded.shape != latents.shape:
        return False
    got, right = decoded.detach().double(), latents.double()
    transposed = right.flatten().view(right.shape[1], right.shape[0]).T
    if _close(got, right) or _close(got, transposed):
        return False
    return bool(_close(got.flatten().sort().values, right.flatten().sort().values))


# What a sampler may have applied to its draws z ~ N(0, I) before decoding them, each named.
LATENT_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "z²": torch.square,
    "|z|": torch.abs,
    "exp(z)": torch.exp,
    "sigmoid(z)": torch.sigmoid,
    "tanh(z)": torch.tanh,
    "a softmax": lambda z: torch.softmax(z, dim=1),
}


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
    shift = (got - right).mean().item()
    if _close(got, right + shift) and not _near(shift, 0.0):
        return [
            f"the decoder is given z {'+' if shift > 0 else '-'} {abs(shift):.3g}: the prior N(0, I) is centred on 0, "
            "so decode torch.randn(count, model.latent_dim, generator=generator) as it is."
        ]
    for name, mapped in LATENT_MAPS.items():
        if _close(got, mapped(right)):
            return [
                f"the decoder is given {name} of the generator's draws z: the prior's samples are the draws "
                "themselves, so decode torch.randn(count, model.latent_dim, generator=generator) as it is."
            ]
    return []
