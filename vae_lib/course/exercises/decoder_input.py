"""The check of notebook 08's exercise, the conditional decoder's input: each latent with its one-hot class label
appended, what a conditional VAE's decoder is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch import nn

from vae_lib.course.exercises.checking import (
    CheckResult,
    _call,
    _close,
    _compare,
    _dtype_failure,
    _gradient_failure,
    _kind_failure,
    _numbers,
    _result,
)

# How to set one 1 a row, at that row's label: the end of the hints for one-hot rows set by hand.
ONE_PER_ROW = "one_hot[torch.arange(len(labels)), labels] = 1, or use one_hot(labels, classes)."
ROWS_INDEXED_HINT = (
    "the labels index the rows: one_hot[labels] = 1 fills whole rows (the rows numbered like the labels) with 1: index "
    f"each row's own column, {ONE_PER_ROW}"
)


def decoder_input_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """Return the decoder-input check's cases, name -> (latents, labels, classes).

    The first case's labels stop short of the last class, so one-hot rows as wide as the batch's largest label differ
    from rows as wide as the classes, and from rows as wide as the batch (5 images, largest label 3); the last has as
    many latent dimensions as classes, so joining along the batch does not fail there but doubles the rows.
    """
    generator = torch.Generator().manual_seed(0)
    return {
        "5 latents of 2-D, labels 3, 0, 2, 1, 3 of 10 classes": (
            torch.randn(5, 2, generator=generator),
            torch.tensor([3, 0, 2, 1, 3]),
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
        got = _call(name, decoder_input, latents, labels, classes, hints=_decoder_input_error_hints)
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
                    "z is turned into integers (.long() or .int() of the joined rows), which cuts off its fractions: "
                    "make the one-hot label z's dtype instead, one_hot(labels, classes).to(latents.dtype), then join.",
                    torch.cat([latents.trunc(), one_hot], dim=1),
                ),
                (
                    "z is left out: the decoder is given the label alone, so every image of a class is the same.",
                    one_hot,
                ),
                (
                    "the label comes first: the model's layer takes z first, then the one-hot label.",
                    torch.cat([one_hot, latents], dim=1),
                ),
            ]
            for shift, way in ((1, "after"), (-1, "before")):  # labels count from 0, as one_hot's positions do
                shifted = nn.functional.one_hot((labels + shift) % classes, classes).to(latents.dtype)
                hint = (
                    f"each 1 sits one place {way} its label: labels count from 0 to classes - 1, as one_hot's "
                    "positions do; give one_hot the labels as they are."
                )
                mistakes.append((hint, torch.cat([latents, shifted], dim=1)))
            every_label = torch.zeros(len(labels), classes, dtype=latents.dtype)
            every_label[:, labels] = 1
            hint = (
                "each row has a 1 at every label of the batch, what one_hot[:, labels] = 1 sets: index the rows as "
                f"well, {ONE_PER_ROW}"
            )
            mistakes.append((hint, torch.cat([latents, every_label], dim=1)))
            if int(labels.max()) < len(labels):  # otherwise indexing the rows with the labels raises
                rows_of_labels = torch.zeros(len(labels), classes, dtype=latents.dtype)
                rows_of_labels[labels] = 1
                mistakes.append((ROWS_INDEXED_HINT, torch.cat([latents, rows_of_labels], dim=1)))
            if latents.shape[1] == classes:  # otherwise torch.cat refuses to join them along the batch
                hint = "z and the labels are joined along dim 0, the batch (torch.cat's default): append each label "
                mistakes.append((hint + "to its own row, dim=1.", torch.cat([latents, one_hot], dim=0)))
        width_hints = partial(_decoder_layout_hints, got, latents.detach(), labels, classes)
        how = "one_hot(labels, classes).to(latents.dtype) or .float(), not .double()"
        # first: float16's rounding fails the compare; an integer tensor has no graph, which _kind_failure names
        yield (
            (got.is_floating_point() and _dtype_failure(name, "the decoder input", got, latents.dtype, "z", how))
            or _compare(name, "the decoder input", got, expected, mistakes, width_hints)
            or _kind_failure(name, "the decoder input", got, why)
            or _gradient_failure(name, "the decoder input", got, {"latents": latents}, expected)
        )


def _decoder_layout_hints(got: torch.Tensor, latents: torch.Tensor, labels: torch.Tensor, classes: int) -> list[str]:
    """Return a hint on rows of the wrong width (how many values follow z, against one per class), or on rows that
    begin with z but go on with something else than the one-hot label (smoothed, ±1, cumulative, another order)."""
    latent_dim = latents.shape[1]
    if got.dim() != 2:
        return []
    right = torch.cat([latents, nn.functional.one_hot(labels, classes).to(latents.dtype)], dim=1).double()
    if got.shape == (len(right), right.shape[1] + latent_dim) and _close(
        got.detach().double(), torch.cat([right, latents.double()], dim=1)
    ):
        return [
            "each row is z and its one-hot label, then z again: the decoder input is z and the one-hot label alone, "
            "torch.cat([latents, one_hot], dim=1)."
        ]
    if got.shape[1] != latent_dim + classes:
        starts_with_z = len(got) == len(latents) and _close(got.detach()[:, :latent_dim].double(), latents.double())
        parts = f": z's {latent_dim} and {got.shape[1] - latent_dim} more" if starts_with_z else ""
        return [
            f"each row has {got.shape[1]} values{parts}, where it needs {latent_dim + classes}: z's {latent_dim} "
            f"values (every one: is a latent size written in?) and the one-hot label's {classes}, one per class, "
            "one_hot(labels, classes)."
        ]
    label_part = got.detach()[:, latent_dim:].double()
    if len(got) != len(latents) or not _close(got.detach()[:, :latent_dim].double(), latents.double()):
        return []
    return [
        f"each row begins with z, but what follows is not the one-hot label: for label {labels[0].item()} it is "
        f"{_numbers(label_part[0].tolist())}, where one_hot gives {classes} values, all 0 but a 1 at position "
        f"{labels[0].item()} (counting from 0)."
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
            "one_hot(labels, classes), and the labels as they are, 0 to classes - 1 (not labels + 1)."
        ),
        "stack expects each tensor to be equal size": (
            "torch.stack puts tensors of one shape side by side in a new dimension, and z and the one-hot labels "
            "differ in width: join them with torch.cat([latents, one_hot], dim=1)."
        ),
        "must match except in dimension 1": (
            "z and the one-hot labels have different numbers of rows: one_hot(labels, classes) is already one row "
            "per latent, N × classes (no .T, no .view(classes, -1)); join the two with torch.cat(..., dim=1)."
        ),
        "must have same number of dimensions": (
            "z is N × latent_dim and the one-hot labels have another number of dimensions (an unsqueeze, or labels "
            "of shape N × 1 given to one_hot): both must be N rows of values, one_hot(labels, classes)."
        ),
        "Index tensor must have the same number of dimensions as self tensor": (
            "scatter_ takes one column of indices per row, N × 1, and the labels are a row of N: "
            "zeros.scatter_(1, labels.view(-1, 1), 1.0), or one_hot(labels, classes)."
        ),
        "is out of bounds for dimension 0 with size": ROWS_INDEXED_HINT,
        "must be non-negative": (
            "a label became negative (labels - 1?): labels count from 0 to classes - 1, as one_hot's positions do; "
            "give one_hot the labels as they are."
        ),
        "must match the size of tensor b": (
            "z and the one-hot labels are added (or multiplied), where the label is appended to z: each row is z's "
            "values, then the label's, torch.cat([latents, one_hot], dim=1)."
        ),
    }
    return [hint for phrase, hint in hints.items() if phrase in text]
