"""The Bernoulli reconstruction-term check (notebook 07): right terms pass, and each named mistake is recognised."""

import pytest
import torch
import torch.nn.functional as F

from vae_lib.course.exercises import check_bernoulli_reconstruction

from .answers import assert_fails_with


def _bce_sum(images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    targets = (images + 1) / 2
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=(1, 2, 3)).mean()


@pytest.mark.parametrize(
    "answer",
    [
        _bce_sum,
        lambda x, logits: (
            -torch.distributions.Bernoulli(logits=logits, validate_args=False)
            .log_prob((x + 1) / 2)
            .flatten(1)
            .sum(1)
            .mean()
        ),
        lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="sum") / len(x),
        lambda x, logits: (F.softplus(logits) - logits * (x + 1) / 2).flatten(1).sum(1).mean(),
    ],
    ids=["bce with logits", "torch.distributions", "sum then divide", "softplus rearranged"],
)
def test_right_bernoulli_terms_written_in_other_ways_pass(answer) -> None:
    result = check_bernoulli_reconstruction(answer)
    assert result.passed, result.details


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda x, logits: _bce_sum(x, logits) / 784, "a mean over pixels"),
        (lambda x, logits: -_bce_sum(x, logits), "the sign"),
        (lambda x, logits: _bce_sum(x, logits) * len(x), "summed over images"),
        (lambda x, logits: _bce_sum(x, torch.sigmoid(logits)), "probabilities passed as logits"),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean(),
            "the targets",
        ),
        (lambda x, logits: _bce_sum(x, logits).item(), "turned into a Python number"),
        (lambda x, logits: _bce_sum(x, logits.detach()), "carries no gradient"),
        (
            lambda x, logits: (F.softplus(logits.detach()) - logits * (x + 1) / 2).flatten(1).sum(1).mean(),
            "the right value but the wrong gradient with respect to logits",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none").sum(1).mean(),
            ".sum(dim=1) of images of N × 1 × 28 × 28, which sums over the one channel only",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2),
            "binary_cross_entropy_with_logits' default reduction='mean'",
        ),
        (
            lambda x, logits: (
                F.binary_cross_entropy_with_logits(logits, 1 - (x + 1) / 2, reduction="none").sum((1, 2, 3)).mean()
            ),
            "the targets are flipped, 1 - (images + 1) / 2",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none").sum((1, 2, 3)),
            "one term per image: the term is their average over the batch, .mean()",
        ),
        (
            lambda x, logits: (
                F.binary_cross_entropy_with_logits((x + 1) / 2, logits, reduction="none").flatten(1).sum(1).mean()
            ),
            "the arguments are swapped",
        ),
        # not among the listed mistakes: an average over pixels taken with torch.mean over everything
        (lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2), "a mean over pixels"),
    ],
    ids=[
        "pixel mean",
        "sign",
        "image sum",
        "probabilities",
        "targets in [-1, 1]",
        "float",
        "detached",
        "softplus detached",
        "channel sum",
        "default mean",
        "flipped targets",
        "per image",
        "swapped",
        "mean all",
    ],
)
def test_wrong_bernoulli_terms_get_a_hint_that_names_the_mistake(answer, hint: str) -> None:
    result = check_bernoulli_reconstruction(answer)
    assert not result.passed and hint in result.details, result.details


def test_a_term_that_is_not_the_bernoulli_one_is_not_blamed_on_targets_in_minus_one_to_one() -> None:
    result = check_bernoulli_reconstruction(
        lambda x, logits: 0.5 * ((torch.tanh(logits) - x) ** 2).flatten(1).sum(1).mean()
    )
    assert_fails_with(result, "a pixel's term is not the Bernoulli's −log p", "softplus(2) = 2.127")
    assert "not the images in [-1, 1]" not in result.details


@pytest.mark.parametrize(
    ("to_targets", "black", "white"),
    [
        (lambda images: (images + 1) / 2 * 255, "0", "255"),
        (torch.sigmoid, "0.2689", "0.7311"),
        (lambda images: (images + 1) / 4, "0", "0.5"),
    ],
    ids=["rescaled to 0-255", "sigmoid of the images", "halved twice"],
)
def test_bernoulli_targets_of_another_scale_are_named_with_the_values_read(to_targets, black, white) -> None:
    def other_targets(images, logits):
        loss = F.binary_cross_entropy_with_logits(logits, to_targets(images), reduction="none")
        return loss.flatten(1).sum(1).mean()

    result = check_bernoulli_reconstruction(other_targets)
    assert_fails_with(result, f"a black pixel the target {black} and a white one {white}, where they are 0 and 1")
    assert "not the images in [-1, 1]" not in result.details


def test_bernoulli_targets_thresholded_instead_of_rescaled_are_named() -> None:
    def thresholded(images, logits):
        targets = (images > 0).float()
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(images)

    assert_fails_with(
        check_bernoulli_reconstruction(thresholded), "Looks like: the targets are thresholded, images > 0"
    )


@pytest.mark.parametrize("to_targets", [lambda images: images.clamp(0, 1), F.relu], ids=["clamp", "relu"])
def test_bernoulli_targets_clamped_to_zero_and_one_are_named(to_targets) -> None:
    # right on binarised images, wrong on grey pixels only: failed with no hint
    def clamped(images, logits):
        return F.binary_cross_entropy_with_logits(logits, to_targets(images), reduction="sum") / len(images)

    assert_fails_with(
        check_bernoulli_reconstruction(clamped),
        "Case *three grey images*",
        "Looks like: the targets are the images clamped to [0, 1]",
    )


def test_bernoulli_targets_of_a_floor_division_are_named() -> None:
    # (images + 1) // 2: right on binarised images, 0 for every grey pixel; failed with no hint
    def floored(images, logits):
        return F.binary_cross_entropy_with_logits(logits, (images + 1) // 2, reduction="sum") / len(images)

    assert_fails_with(
        check_bernoulli_reconstruction(floored),
        "Case *three grey images*",
        "Looks like: the targets are (images + 1) // 2",
    )


def test_a_bernoulli_of_the_raw_images_is_told_the_targets_are_minus_one_and_one() -> None:
    from torch.distributions import Bernoulli

    result = check_bernoulli_reconstruction(
        lambda x, logits: -Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3)).mean()
    )
    assert_fails_with(result, "a binarised image's pixels are -1 and 1")
    assert "validate_args" not in result.details


def test_a_bernoulli_term_of_torch_distributions_refusing_grey_targets_is_told_validate_args() -> None:
    from torch.distributions import Bernoulli

    def validated(images, logits):
        return -Bernoulli(logits=logits).log_prob((images + 1) / 2).sum(dim=(1, 2, 3)).mean()

    def unvalidated(images, logits):
        return -Bernoulli(logits=logits, validate_args=False).log_prob((images + 1) / 2).sum(dim=(1, 2, 3)).mean()

    assert_fails_with(check_bernoulli_reconstruction(validated), "raised ValueError", "pass validate_args=False")
    assert check_bernoulli_reconstruction(unvalidated).passed


def _bce_per_pixel(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        # each raised with torch's message alone
        (
            lambda x, logits: F.binary_cross_entropy(logits, (x + 1) / 2, reduction="sum") / len(x),
            "takes probabilities",
        ),
        (
            lambda x, logits: F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / len(x),
            "the targets are the images in [-1, 1]",
        ),
        # each told "a pixel's term is not the Bernoulli's −log p", or nothing
        (lambda x, logits: _bce_per_pixel(logits, (x + 1) / 2).sum((1, 2)).mean(), "0.03571 times their sum"),
        (lambda x, logits: _bce_per_pixel(logits, (x + 1) / 2).sum() / 64, "0.01563 times their sum"),
        (lambda x, logits: _bce_per_pixel(logits, (x + 1) / 2).sum((1, 2, 3)).mean() / 0.6931472, "in bits"),
        (lambda x, logits: _bce_per_pixel(logits, x + 1).sum((1, 2, 3)).mean(), "not images + 1"),
        (lambda x, logits: _bce_per_pixel(logits.clamp(-5, 5), (x + 1) / 2).sum((1, 2, 3)).mean(), "at logit 8"),
    ],
    ids=["BCE on logits", "targets in [-1, 1]", "a sum over two dimensions", "64 written in", "bits", "x + 1", "clamp"],
)
def test_bernoulli_terms_raising_or_summed_over_part_of_the_pixels_are_named(wrong, phrase) -> None:
    assert_fails_with(check_bernoulli_reconstruction(wrong), phrase)


def test_a_continuous_bernoulli_is_a_failed_check_not_a_crash() -> None:
    # its log-density is 0 at logit 0, which an intermediate version divided by
    def continuous(x, logits):
        distribution = torch.distributions.ContinuousBernoulli(logits=logits, validate_args=False)
        return -distribution.log_prob((x + 1) / 2).sum((1, 2, 3)).mean()

    assert_fails_with(check_bernoulli_reconstruction(continuous), "a pixel's term is not the Bernoulli's")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda x, logits: -((x > 0) * F.logsigmoid(logits) + (1 - (x > 0)) * F.logsigmoid(-logits)).sum().mean(),
            "the targets are a bool tensor (a comparison, such as images > 0)",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, x > 0, reduction="none").sum((1, 2, 3)).mean(),
            "the targets are a bool tensor (a comparison, such as images > 0)",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none"),
            "one term per pixel (3136 values for 4 images): sum them over each image's 784 pixels",
        ),
        (
            lambda x, logits: F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none").sum((2, 3)),
            "one term per image: the term is their average over the batch, .mean().",
        ),
    ],
    ids=["bool targets subtracted", "bool targets given to bce", "a term per pixel", "a term per image, N x 1"],
)
def test_bool_targets_and_terms_left_per_pixel_or_per_image_are_named(wrong, phrase) -> None:
    result = check_bernoulli_reconstruction(wrong)
    assert_fails_with(result, phrase)
    assert "the distribution refuses" not in result.details and "yours: nan" not in result.details


def test_a_term_per_pixel_of_flattened_images_is_told_a_sum_that_works_on_it() -> None:
    def per_pixel_rows(images, logits):
        return F.binary_cross_entropy_with_logits(logits.flatten(1), (images.flatten(1) + 1) / 2, reduction="none")

    assert_fails_with(check_bernoulli_reconstruction(per_pixel_rows), "one term per pixel", ".flatten(1).sum(1)")


def test_probabilities_and_targets_swapped_in_binary_cross_entropy_are_named() -> None:
    def swapped(images, logits):
        loss = F.binary_cross_entropy((images + 1) / 2, torch.sigmoid(logits), reduction="none")
        return loss.flatten(1).sum(1).mean()

    assert_fails_with(check_bernoulli_reconstruction(swapped), "binary_cross_entropy(input, target) takes the probabil")


@pytest.mark.parametrize(("statistic", "name"), [("median", "median"), ("amax", "largest"), ("amin", "smallest")])
def test_a_statistic_of_the_images_terms_other_than_their_mean_is_named(statistic, name) -> None:
    # the expected and got terms alone before
    def per_image_statistic(images, logits):
        terms = F.binary_cross_entropy_with_logits(logits, (images + 1) / 2, reduction="none").flatten(1).sum(1)
        return getattr(terms, statistic)()

    result = check_bernoulli_reconstruction(per_image_statistic)
    assert_fails_with(result, f"which is also the {name} of their terms: the term is their average over the images")


def test_targets_right_only_where_pixels_are_black_or_white_are_told_so() -> None:
    # squared targets leave a binarised image's 0 and 1 alone: the grey case's expected and got alone before
    def squared_targets(images, logits):
        targets = ((images + 1) / 2) ** 2
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(1).mean()

    result = check_bernoulli_reconstruction(squared_targets)
    assert_fails_with(result, "Case *three grey images*", "right on binarised images, wrong on grey ones")


@pytest.mark.parametrize(
    "unstable",
    [
        lambda x, logits: (torch.log1p(torch.exp(logits)) - logits * (x + 1) / 2).flatten(1).sum(1).mean(),
        lambda x, logits: F.binary_cross_entropy(torch.sigmoid(logits), (x + 1) / 2, reduction="sum") / len(x),
    ],
    ids=["log1p(exp(l))", "binary_cross_entropy of a sigmoid"],
)
def test_a_term_that_is_exact_only_for_moderate_logits_fails_where_they_are_large(unstable) -> None:
    # both passed: no case had logits beyond ±12
    result = check_bernoulli_reconstruction(unstable)
    assert_fails_with(result, "Case *two binarised images, logits of ±30 and ±100*", "right for moderate logits")


def test_one_images_term_is_named_as_one_image_and_as_the_statistic_it_also_is() -> None:
    # the first image's term alone was told it was the largest of the images' terms, which it happens to be
    def first_image(images, logits):
        return F.binary_cross_entropy_with_logits(logits[0], (images[0] + 1) / 2, reduction="sum")

    result = check_bernoulli_reconstruction(first_image)
    assert_fails_with(result, "the term of image 1 of 4 alone, which is also the largest of their terms")
