"""The conditional decoder's input check: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch
import torch.nn.functional as F

from vae_lib.core.model import ConditionalVAE
from vae_lib.course.exercises import check_decoder_input

from .answers import assert_fails_with, decoder_input


def test_the_decoder_input_reference_passes_and_is_what_the_conditional_model_decodes() -> None:
    assert check_decoder_input(decoder_input).passed
    torch.manual_seed(0)
    model = ConditionalVAE(latent_dim=2, widths=(4, 8, 8, 16)).eval()
    latents, labels = torch.randn(5, 2), torch.tensor([0, 3, 9, 3, 1])
    features = model.from_latent(decoder_input(latents, labels, 10)).view(-1, *model.feature_shape)
    assert torch.equal(model.decoder(features), model.decoder_output(latents, labels))


@pytest.mark.parametrize(
    "right",
    [
        lambda z, y, classes: torch.cat((z, torch.eye(classes)[y]), 1),
        lambda z, y, classes: torch.hstack([z, torch.zeros(len(y), classes).scatter_(1, y.view(-1, 1), 1.0)]),
        lambda z, y, classes: torch.cat([z, F.one_hot(y, classes)], dim=-1),  # long one-hot: cat promotes to float
    ],
    ids=["rows of an identity", "scatter into zeros", "long one-hot, dim -1"],
)
def test_a_decoder_input_written_another_way_passes(right) -> None:
    assert check_decoder_input(right).passed


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda z, y, classes: torch.cat([z, y.view(-1, 1).float()], dim=1), "appended as one number"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y).float()], dim=1), "as wide as the batch's largest label"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).float()]), "along dim 0, the batch"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).float()], dim=0), "along dim 0, the batch"),
        (lambda z, y, classes: z, "the label is left out"),
        (lambda z, y, classes: F.one_hot(y, classes).float(), "z is left out"),
        (lambda z, y, classes: torch.cat([F.one_hot(y, classes).float(), z], dim=1), "the label comes first"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y.float(), classes)], dim=1), "do not turn them into floats"),
        (
            lambda z, y, classes: torch.cat([z, F.one_hot(y, classes - 1).float()], dim=1),
            "and the one-hot label's 10, one per class",
        ),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, 3).float()], dim=1), "narrower than the labels"),
        (lambda z, y, classes: decoder_input(z.detach(), y, classes), "carries no gradient"),
        (lambda z, y, classes: decoder_input(z, (y + 1) % classes, classes), "each 1 sits one place after its label"),
        (lambda z, y, classes: decoder_input(z, (y - 1) % classes, classes), "each 1 sits one place before its label"),
        (lambda z, y, classes: decoder_input(z, y + 1, classes), "each 1 sits one place after its label"),
        (lambda z, y, classes: decoder_input(z, y - 1, classes), "a label became negative (labels - 1?)"),
        (lambda z, y, classes: decoder_input(z, y, classes).tolist(), "should be a tensor"),
        (lambda z, y, classes: z + F.one_hot(y, classes).float(), "z and the one-hot labels are added"),
    ],
)
def test_decoder_input_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_decoder_input(wrong), phrase)


def _scattered_from_a_row_of_labels(z: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.cat([z, torch.zeros(len(y), classes).scatter_(1, y, 1.0)], dim=1)


def _every_label_set_in_every_row(z: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    one_hot = torch.zeros(len(y), classes)
    one_hot[:, y] = 1
    return torch.cat([z, one_hot], dim=1)


def _rows_indexed_with_the_labels(z: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    one_hot = torch.zeros(len(y), classes)
    one_hot[y] = 1
    return torch.cat([z, one_hot], dim=1)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_scattered_from_a_row_of_labels, "scatter_ takes one column of indices per row, N × 1"),
        (_rows_indexed_with_the_labels, "the labels index the rows: one_hot[labels] = 1 fills whole rows"),
        (_every_label_set_in_every_row, "a 1 at every label of the batch, what one_hot[:, labels] = 1 sets"),
    ],
    ids=["scatter_ with 1-D labels", "the rows indexed with the labels", "every row indexed with every label"],
)
def test_one_hot_rows_built_by_indexing_wrongly_are_named(wrong, phrase) -> None:
    assert_fails_with(check_decoder_input(wrong), phrase)


def test_a_failed_decoder_input_check_says_which_case_and_expected_against_got() -> None:
    result = check_decoder_input(lambda z, y, classes: torch.cat([z, F.one_hot(y).float()], dim=1))
    assert result.details.startswith("Case *5 latents of 2-D, labels 3, 0, 2, 1, 3 of 10 classes*: the decoder input ")
    assert "expected shape (5, 12)" in result.details and "got shape (5, 6)" in result.details


def test_a_decoder_input_cut_from_z_and_made_a_leaf_again_fails() -> None:
    result = check_decoder_input(lambda z, y, c: decoder_input(z.detach(), y, c).requires_grad_())
    assert_fails_with(result, "the right value but the wrong gradient with respect to latents")


def test_a_decoder_input_of_float64_fails_because_the_decoder_takes_float32() -> None:
    result = check_decoder_input(lambda z, y, classes: torch.cat([z, F.one_hot(y, classes).double()], dim=1))
    assert_fails_with(result, "the decoder input is torch.float64, where z is torch.float32")


def test_a_decoder_input_in_half_precision_is_told_its_dtype() -> None:
    result = check_decoder_input(lambda z, y, c: decoder_input(z, y, c).half())
    assert_fails_with(result, "the decoder input is torch.float16, where z is torch.float32")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda z, y, classes: torch.stack([z, F.one_hot(y, classes).float()], dim=1), "torch.stack puts tensors"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, classes)], dim=1).long(), "z is turned into integers"),
        (lambda z, y, classes: torch.cat([z, F.one_hot(y, len(y)).float()], dim=1), "each row has 7 values"),
        (
            lambda z, y, classes: torch.cat([z, 0.9 * F.one_hot(y, classes) + 0.01], dim=1),
            "for label 3 it is 0.01, 0.01, 0.01, 0.91, 0.01",
        ),
        (
            lambda z, y, classes: torch.cat([z, 2.0 * F.one_hot(y, classes) - 1], dim=1),
            "for label 3 it is -1, -1, -1, 1",
        ),
    ],
    ids=["stack", "long", "as wide as the batch", "smoothed", "±1"],
)
def test_decoder_inputs_stacked_made_integers_or_with_another_label_code_are_named(wrong, phrase) -> None:
    # the first raised with torch's message alone; the second and the last two got no hint; the third was told
    # its rows were as wide as the largest label + 1, which the batch of 4 with labels up to 3 could not tell apart
    assert_fails_with(check_decoder_input(wrong), phrase)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda z, labels, classes: torch.cat([z, F.one_hot(labels, classes).float().T], dim=1),
            "z and the one-hot labels have different numbers of rows",
        ),
        (
            lambda z, labels, classes: torch.cat([z, F.one_hot(labels, classes).float().unsqueeze(0)], dim=1),
            "the one-hot labels have another number of dimensions",
        ),
        (
            lambda z, labels, classes: torch.cat([z, F.one_hot(labels, classes).float(), z], dim=1),
            "each row is z and its one-hot label, then z again",
        ),
    ],
    ids=["one-hot transposed", "one-hot unsqueezed", "z twice"],
)
def test_a_one_hot_of_another_shape_or_z_appended_twice_is_named(wrong, phrase) -> None:
    # torch's error alone, or "the one-hot label needs 10" for z twice
    assert_fails_with(check_decoder_input(wrong), "Looks like:", phrase)


def test_a_one_hot_one_class_too_wide_is_told_its_width_not_that_values_follow_it() -> None:
    # a hint for z appended twice first took any row that begins with z and the one-hot label: one_hot(labels,
    # classes + 1) begins so too, and was told "then 1 values more"
    result = check_decoder_input(lambda z, labels, classes: torch.cat([z, F.one_hot(labels, classes + 1).float()], 1))
    assert_fails_with(result, "each row has 13 values: z's 2 and 11 more, where it needs 12")


def test_a_latent_size_written_in_is_not_told_the_row_begins_with_z() -> None:
    # z[:, :2] on the 8-D case was told "z's 8 and 4 more"
    result = check_decoder_input(
        lambda z, labels, classes: torch.cat([z[:, :2], F.one_hot(labels, classes).float()], 1)
    )
    assert_fails_with(result, "values, where it needs 18: z's 8 values (every one: is a latent size written in?)")
    assert "z's 8 and" not in result.details
