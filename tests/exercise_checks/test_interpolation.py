"""The latent-interpolation check: the reference passes, and each named mistake is recognised by its hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vae_lib import VAE
from vae_lib.core.latent import interpolation_latents
from vae_lib.course.exercises import check_interpolate

from .answers import assert_fails_with, interpolate


def test_the_interpolation_reference_passes() -> None:
    assert check_interpolate(interpolate).passed


def _encode_pair(model, start_image, end_image):
    return model.encode(torch.stack([start_image, end_image]))[0]


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, a, b, steps: (lambda w: (1 - w) * a + w * b)(torch.linspace(0, 1, steps).view(-1, 1, 1, 1)),
            "blends of the two images' pixels",
        ),
        (lambda model, a, b, steps: interpolate(model, b, a, steps), "from end to start"),
        (
            lambda model, a, b, steps: model.decode(interpolation_latents(*_encode_pair(model, a, b), steps + 2)[1:-1]),
            "the two end points are left out",
        ),
        (
            lambda model, a, b, steps: model.decode(interpolation_latents(*_encode_pair(model, a, b), steps + 1)[:-1]),
            "the end point is left out",
        ),
        (
            lambda model, a, b, steps: model.decode(
                interpolation_latents(*VAE.reparameterise(*model.encode(torch.stack([a, b]))), steps)
            ),
            "z is sampled",
        ),
    ],
)
def test_interpolation_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_interpolate(wrong), phrase)


def _slerp(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    angle = torch.acos(F.cosine_similarity(start, end, dim=0).clamp(-1, 1))
    return model.decode((torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / angle.sin())


def _interpolate_unevenly(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).pow(2).view(-1, 1)
    return model.decode((1 - weights) * start + weights * end)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_slerp, "Looks like: the path starts and ends at the two means, but its codes leave the straight line"),
        (_interpolate_unevenly, "Looks like: the codes lie on the line between the means, but at t = 0, 0.0625,"),
    ],
    ids=["slerp", "uneven straight line"],
)
def test_a_path_off_the_straight_line_or_uneven_along_it_is_named(wrong, phrase) -> None:
    # a spherical interpolation passed the 2-D case: a random model's means pointed almost the same way
    assert_fails_with(check_interpolate(wrong), "Case *2-D model, 5 steps*", phrase)


def _interpolate_in_training_mode(model, start_image, end_image, steps):
    model.train()
    return interpolate(model, start_image, end_image, steps)


def _interpolate_the_log_variances(model, start_image, end_image, steps):
    _, log_vars = model.encode(torch.stack([start_image, end_image]))
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * log_vars[0] + weights * log_vars[1])


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_interpolate_in_training_mode, "the model ran in training mode (model.train())"),
        (_interpolate_the_log_variances, "the path runs between the log-variances"),
    ],
    ids=["training mode", "log-variances"],
)
def test_an_interpolation_in_training_mode_or_between_log_variances_is_named(wrong, phrase) -> None:
    result = check_interpolate(wrong)
    assert_fails_with(result, f"Looks like: {phrase}")
    assert "z is sampled" not in result.details


def test_float64_weights_from_numpy_are_named_when_the_decoder_refuses_them() -> None:
    # the check said only "mat1 and mat2 must have the same dtype, but got Double and Float"
    def numpy_weights(model, start_image, end_image, steps):
        weights = torch.from_numpy(np.linspace(0, 1, steps)).view(-1, 1)
        means, _ = model.encode(torch.stack([start_image, end_image]))
        return model.decode((1 - weights) * means[0] + weights * means[1])

    assert_fails_with(
        check_interpolate(numpy_weights),
        "your function raised RuntimeError",
        "a float64 tensor met the model's float32 weights",
    )


def test_an_interpolation_converting_the_model_fails() -> None:
    # it passed: only the model's mode was checked afterwards
    def in_float64(model, start_image, end_image, steps):
        model.double()
        weights = torch.linspace(0, 1, steps, dtype=torch.float64).view(-1, 1)
        means, _ = model.encode(torch.stack([start_image, end_image]).double())
        return model.decode((1 - weights) * means[0] + weights * means[1])

    assert_fails_with(check_interpolate(in_float64), "leaves the model's weights in float64")


def test_an_interpolation_returning_none_on_its_second_call_is_a_failed_check() -> None:
    # a wrong first answer without a hint is called again to see whether z is sampled: None there raised
    # AttributeError out of the check
    calls = []

    def every_second_call_none(model, start_image, end_image, steps):
        calls.append(steps)
        return None if len(calls) % 2 == 0 else interpolate(model, start_image, end_image, steps) + 0.001

    assert_fails_with(check_interpolate(every_second_call_none), "the images expected")
