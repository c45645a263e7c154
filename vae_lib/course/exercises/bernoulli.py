"""The check of notebook 07's exercise, the Bernoulli reconstruction term: binary cross-entropy with logits on
(images + 1) / 2, summed over pixels, averaged over images, in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch import nn

from vae_lib.core.objective import reconstruction_loss
from vae_lib.course.exercises.checking import (
    CheckResult,
    Mistake,
    _as_number,
    _as_tensor,
    _call,
    _compare,
    _gradient_failure,
    _kind_failure,
    _near,
    _numbers,
    _probing,
    _result,
    _with_hints,
    _with_hints_instead,
)

BERNOULLI_WHY = "the loss minimised in training must carry its gradient back to the decoder's logits"
PER_IMAGE_HINT = "one term per image: the term is their average over the batch, .mean()."


def bernoulli_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return named (images in [-1, 1], logits) cases: binarised images, grey ones, one image and many."""
    generator = torch.Generator().manual_seed(7)
    binary = (torch.rand(4, 1, 28, 28, generator=generator) > 0.6).float() * 2 - 1
    grey = torch.rand(3, 1, 28, 28, generator=generator) * 2 - 1
    return {
        "four binarised images": (binary, torch.randn(4, 1, 28, 28, generator=generator) * 2),
        "three grey images": (grey, torch.randn(3, 1, 28, 28, generator=generator)),
        "one image": (binary[:1], torch.randn(1, 1, 28, 28, generator=generator) * 3),
        LARGE_LOGITS_CASE: (binary[1:3], _large_logits(generator)),
    }


# A case whose logits are as large as a trained decoder's can be (±30 and ±100), where a sigmoid rounds to 0 or 1 in
# float32 and exp overflows: only a term computed from the logits stays exact there.
LARGE_LOGITS_CASE = "two binarised images, logits of ±30 and ±100"


def _large_logits(generator: torch.Generator) -> torch.Tensor:
    """Return 2 × 1 × 28 × 28 logits of random sign, each 30 or 100 in size."""
    signs = torch.randint(0, 2, (2, 1, 28, 28), generator=generator) * 2 - 1
    sizes = torch.where(torch.rand(2, 1, 28, 28, generator=generator) < 0.5, 30.0, 100.0)
    return signs * sizes


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
    binarised_right = False  # a binarised case came out right (the check stops at the first case that does not)
    for name, (images, logits) in bernoulli_cases().items():
        leaf = logits.clone().requires_grad_()
        grey = not bool(((images == 1) | (images == -1)).all())
        returned = _call(name, bernoulli_reconstruction, images, leaf, hints=partial(_bernoulli_error_hints, grey))
        yield _kind_failure(name, "the reconstruction term", returned, BERNOULLI_WHY)
        expected = reconstruction_loss(images, leaf, "bernoulli")
        diagnose = partial(_bernoulli_hints, _probing(bernoulli_reconstruction), images, logits, returned)
        failure = _compare(
            name, "the reconstruction term", returned, expected, _bernoulli_mistakes(images, logits), diagnose
        )
        if failure and grey and binarised_right and "Looks like" not in failure:
            failure = _with_hints(failure, [GREY_ONLY_HINT])
        if failure and name == LARGE_LOGITS_CASE:  # the moderate cases passed: what fails here is the numerics
            failure = _with_hints_instead(failure, [LARGE_LOGITS_HINT])
        yield failure
        binarised_right = binarised_right or not grey
        yield _gradient_failure(name, "the reconstruction term", returned, {"logits": leaf}, expected, diagnose)


LARGE_LOGITS_HINT = (
    "right for moderate logits, wrong where they are large: there a sigmoid rounds to 0 or 1 in float32 (log of 0, or "
    "binary_cross_entropy's clamp at 100 nats) and exp overflows (log1p(exp(l)) is inf above 88). "
    "binary_cross_entropy_with_logits(logits, (images + 1) / 2), or softplus(logits) - targets · logits, stays exact, "
    "given the logits as they are (not clamped)."
)
GREY_ONLY_HINT = (
    "right on binarised images, wrong on grey ones: are the targets changed in a way that leaves 0 and 1 as they are "
    "(squared, rounded, raised to a power)? A grey pixel's target lies in between, (images + 1) / 2 as it is."
)


def _one_image_mistakes(summed: torch.Tensor) -> list[Mistake]:
    """Return, for each image of a case, its term alone taken for the batch's, named with the statistic of the
    images' terms it also is (the median, largest or smallest): which of the two the code computes, one case
    cannot tell."""
    if len(summed) < 2:
        return []
    statistics = {"median": summed.median(), "largest": summed.max(), "smallest": summed.min()}
    mistakes = []
    for index, term in enumerate(summed):
        alike = [name for name, value in statistics.items() if torch.equal(value, term)]
        also = f", which is also the {' and the '.join(alike)} of their terms" if alike else ""
        mistakes.append(
            (
                f"the term of image {index + 1} of {len(summed)} alone{also}: the term is their average over the "
                "images, .mean().",
                term,
            )
        )
    return mistakes


def _bernoulli_error_hints(grey: bool, error: Exception) -> list[str]:
    """Return the hint on F.binary_cross_entropy refusing logits or targets outside [0, 1], or on a
    torch.distributions distribution refusing the targets it was given (its "support" error): grey targets, or a
    binarised image's -1 and 1 given as they are."""
    if "elements of input should be between 0 and 1" in str(error):
        return [
            "F.binary_cross_entropy takes probabilities, and the decoder gives logits: use "
            "F.binary_cross_entropy_with_logits(logits, targets), which applies the sigmoid itself (and stays exact "
            "where a sigmoid rounds to 0 or 1)."
        ]
    if "elements of target should be between 0 and 1" in str(error):
        return ["the targets are the images in [-1, 1]: the Bernoulli's targets are (images + 1) / 2, in [0, 1]."]
    if "with a bool tensor is not supported" in str(error) or "with two bool tensors is not supported" in str(error):
        return [
            "the targets are a bool tensor (a comparison, such as images > 0), which torch does not subtract: the "
            "targets are floats, (images + 1) / 2, which keeps grey pixels in between as well."
        ]
    if "to be within the support" not in str(error):
        return []
    if not grey:
        return [
            "the distribution refuses the targets it was given: a binarised image's pixels are -1 and 1, and the "
            "Bernoulli's targets are 0 and 1, (images + 1) / 2."
        ]
    return [
        "torch.distributions.Bernoulli refuses targets other than 0 and 1, and a grey image's (x + 1) / 2 lies in "
        "between: pass validate_args=False, or use F.binary_cross_entropy_with_logits, which takes any target in "
        "[0, 1]."
    ]


def _bernoulli_mistakes(images: torch.Tensor, logits: torch.Tensor) -> list[Mistake]:
    """Return what the usual mistakes give on a case, each with the hint that names it."""
    targets = (images + 1) / 2
    summed = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(1)
    with_probabilities = nn.functional.binary_cross_entropy_with_logits(
        torch.sigmoid(logits), targets, reduction="none"
    )
    thresholded = nn.functional.binary_cross_entropy_with_logits(
        logits, (images > 0).to(logits.dtype), reduction="none"
    )
    swapped = nn.functional.binary_cross_entropy_with_logits(targets, logits, reduction="none")
    mistakes = [
        (
            "a mean over pixels (binary_cross_entropy_with_logits' default reduction='mean', or .sum(dim=1) of "
            "images of N × 1 × 28 × 28, which sums over the one channel only): sum over the 784 pixels, "
            "dim=(1, 2, 3), as log p(x | z) is a sum over independent pixels.",
            summed.mean() / 784,
        ),
        (PER_IMAGE_HINT, summed),
        (PER_IMAGE_HINT, summed.view(-1, 1)),
        (
            "the arguments are swapped: binary_cross_entropy_with_logits(input, target) takes the logits first and "
            "the targets, (images + 1) / 2, second.",
            swapped.flatten(1).sum(1).mean(),
        ),
        (
            "the arguments are swapped: binary_cross_entropy(input, target) takes the probabilities first and the "
            "targets second; better, binary_cross_entropy_with_logits(logits, (images + 1) / 2), which takes the "
            "logits and stays exact where a sigmoid rounds to 0 or 1.",
            nn.functional.binary_cross_entropy(targets, torch.sigmoid(logits), reduction="none")
            .flatten(1)
            .sum(1)
            .mean(),
        ),
        ("the sign: the term is −log p(x | z), a positive number of nats.", -summed.mean()),
        ("summed over images: average over the images of the batch.", summed.sum()),
        *_one_image_mistakes(summed),
        (
            "probabilities passed as logits: the decoder's output is already a logit; "
            "binary_cross_entropy_with_logits applies the sigmoid itself.",
            with_probabilities.flatten(1).sum(1).mean(),
        ),
    ]
    if not torch.equal(images > 0, targets == 1):  # grey pixels: thresholding them differs from (x + 1) / 2
        hint = (
            "the targets are thresholded, images > 0, where grey pixels are targets in between: the targets are "
            "(images + 1) / 2, which a binarised image's pixels (-1 or 1) turn into 0 or 1."
        )
        mistakes.append((hint, thresholded.flatten(1).sum(1).mean()))
        clamped = nn.functional.binary_cross_entropy_with_logits(logits, images.clamp(0, 1), reduction="none")
        hint = (
            "the targets are the images clamped to [0, 1], which makes every pixel below 0 a target of 0 (black) and "
            "leaves the others as they were: the targets are (images + 1) / 2, which maps -1 to 0, 0 to 1/2 and 1 to 1."
        )
        mistakes.append((hint, clamped.flatten(1).sum(1).mean()))
        floored = nn.functional.binary_cross_entropy_with_logits(logits, (images + 1) // 2, reduction="none")
        hint = (
            "the targets are (images + 1) // 2, a floor division, which makes every pixel but the white ones 0: "
            "divide with /, (images + 1) / 2, so grey pixels keep the targets in between."
        )
        mistakes.append((hint, floored.flatten(1).sum(1).mean()))
    return mistakes


def _bernoulli_hints(
    bernoulli_reconstruction: Callable, images: torch.Tensor, logits: torch.Tensor, returned: object
) -> list[str]:
    """Probe the learner's term part by part: the targets' range, the sum over pixels, the mean over images.
    `returned` is what it gave on `images` and `logits`."""
    hints = []
    black, white, zero = -torch.ones(1, 1, 28, 28), torch.ones(1, 1, 28, 28), torch.zeros(1, 1, 28, 28)
    per_pixel = _as_tensor(returned)
    if per_pixel is not None and per_pixel.numel() == images.numel() > len(images):
        return [
            f"one term per pixel ({per_pixel.numel()} values for {len(images)} images): sum them over each image's "
            "784 pixels, .flatten(1).sum(1), then average over the images, .mean()."
        ]
    # With logit 0 every pixel has probability 1/2: log 2 nats a pixel, black or white alike. With logit 2 a black
    # pixel costs softplus(2) nats; targets left in [-1, 1] charge it 2 nats more.
    per_black, per_white = (_as_number(bernoulli_reconstruction(image, zero)) for image in (black, white))
    black_at_two = _as_number(bernoulli_reconstruction(black, zero + 2))
    white_at_two = _as_number(bernoulli_reconstruction(white, zero + 2))
    black_at_eight = _as_number(bernoulli_reconstruction(black, zero + 8))
    white_at_eight = _as_number(bernoulli_reconstruction(white, zero + 8))
    right_at_two, right_at_eight = (nn.functional.softplus(torch.tensor(logit)).item() for logit in (2.0, 8.0))
    # A pixel's term is softplus(l) - target · l: the probes at logit 2 give the targets the learner's code uses,
    # and those at logit 8 show whether it is that formula at all.
    black_target, white_target = (
        round((right_at_two - value / 784) / 2, 4) + 0.0 for value in (black_at_two, white_at_two)
    )
    targets_read = _near(black_at_eight, 784 * (right_at_eight - 8 * black_target)) and _near(
        white_at_eight, 784 * (right_at_eight - 8 * white_target)
    )
    if _near(per_black, -784 * math.log(2)) or _near(per_white, -784 * math.log(2)):
        hints.append("the sign: −log p(x | z) is positive.")
    elif _near(per_white, math.log(2)) and _near(per_black, math.log(2)):
        hints.append("a mean over pixels: sum over the 784 pixels, as log p(x | z) sums over independent pixels.")
    elif _near(black_at_two, 784 * (right_at_two + 2)):
        hints.append(
            "the targets: a black pixel's target is 0 and a white one's 1, so pass (images + 1) / 2, "
            "not the images in [-1, 1]."
        )
    elif _near(white_at_two, 784 * (right_at_two - 4)):  # softplus(l) - target · l, with a white pixel's target 2
        hints.append("the targets: a white pixel's target is 1, so pass (images + 1) / 2, not images + 1.")
    elif targets_read and _near(black_target, 1) and _near(white_target, 0):
        hints.append(
            "the targets are flipped, 1 - (images + 1) / 2: a black pixel's target is 0 and a white one's 1, "
            "pass (images + 1) / 2 as it is."
        )
    elif (
        targets_read and _near(per_black, 784 * math.log(2)) and not (_near(black_target, 0) and _near(white_target, 1))
    ):
        hints.append(
            f"the targets: your code gives a black pixel the target {black_target:.4g} and a white one "
            f"{white_target:.4g}, where they are 0 and 1: pass (images + 1) / 2 as it is, without rescaling it "
            "(to 0-255 or otherwise)."
        )
    elif (
        _near(per_black, per_white)
        and not _near(per_black, 0)
        and _near(black_at_two * math.log(2), per_black * right_at_two)
    ):
        share = per_black / (784 * math.log(2))  # each pixel's term is right in its shape; the sum over them is not
        if _near(share, 1 / math.log(2)):
            hints.append("the term is in bits (a log to base 2): it is in nats, natural logarithms, as torch's are.")
        elif not _near(share, 1.0):
            hints.append(
                f"each pixel's term is right, but an image's term is {share:.4g} times their sum over its 784 "
                "pixels: is the sum taken over only some of the image's dimensions (.sum(1) or .sum((1, 2)) of 1 × 28 "
                "× 28), or divided by a number written in? Sum over all the pixels, .sum(dim=(1, 2, 3)), then average "
                "over images."
            )
        elif not _near(black_at_eight, 784 * right_at_eight):
            hints.append(
                f"each pixel's term is right at logits 0 and 2, but at logit 8 a black pixel costs "
                f"{black_at_eight / 784:.4g} nats, not softplus(8) = {right_at_eight:.4g}: are the logits clamped, "
                "or the probabilities? Give binary_cross_entropy_with_logits the logits as they are."
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
    if math.isfinite(one) and _near(twice, 2 * one) and not _near(one, 0):
        hints.append("summed over images: the same image twice should cost what it costs once (average over images).")
    return hints
