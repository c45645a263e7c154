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
            "is z sampled",
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
        (_interpolate_unevenly, "Looks like: the codes lie on the line through the means, but at t = 0, 0.0625,"),
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
        "your function raised ModelInputError",
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


def _along_the_line(weights_of):
    def wrong(model, start_image, end_image, steps):
        start, end = _encode_pair(model, start_image, end_image)
        weights = weights_of(steps).view(-1, 1)
        return model.decode((1 - weights) * start + weights * end)

    return wrong


def _sampled_with_a_seed(model, start_image, end_image, steps):
    torch.manual_seed(0)
    means, log_vars = model.encode(torch.stack([start_image, end_image]))
    z = means + torch.randn_like(means) * log_vars.mul(0.5).exp()
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * z[0] + weights * z[1])


def _blend_of_the_decoded_ends(model, start_image, end_image, steps):
    ends = model.decode(_encode_pair(model, start_image, end_image))
    weights = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
    return (1 - weights) * ends[:1] + weights * ends[1:]


def _start_plus_weighted_end(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    return model.decode(start + torch.linspace(0, 1, steps).view(-1, 1) * end)


def _one_weight_on_both(weights_of):
    """A path weighing both means by the same weights_of(t) (a typo of (1 - t)·μ_start + t·μ_end)."""

    def wrong(model, start_image, end_image, steps):
        start, end = _encode_pair(model, start_image, end_image)
        weights = weights_of(torch.linspace(0, 1, steps).view(-1, 1))
        return model.decode(weights * start + weights * end)

    return wrong


def _combination(codes_of):
    """A path of codes codes_of(t, μ_start, μ_end), t a column of steps evenly from 0 to 1."""

    def wrong(model, start_image, end_image, steps):
        start, end = _encode_pair(model, start_image, end_image)
        return model.decode(codes_of(torch.linspace(0, 1, steps).view(-1, 1), start, end))

    return wrong


def _ends_replaced_by_the_images(model, start_image, end_image, steps):
    images = interpolate(model, start_image, end_image, steps)
    return torch.cat([start_image.unsqueeze(0), images[1:-1], end_image.unsqueeze(0)])


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_along_the_line(lambda steps: torch.arange(1, steps + 1) / steps), "but at t = 0.2, 0.4, 0.6, 0.8, 1"),
        (_along_the_line(lambda steps: torch.linspace(-0.5, 1.5, steps)), "but at t = -0.5, 0, 0.5, 1, 1.5"),
        (_along_the_line(lambda steps: torch.full((steps,), 0.5)), "but at t = 0.5, 0.5, 0.5, 0.5, 0.5"),
        (_sampled_with_a_seed, "between codes a few σ from the two means"),
        (_start_plus_weighted_end, "the codes are μ_start + t·μ_end"),
        (_one_weight_on_both(lambda t: t), "each code is w·(μ_start + μ_end), one weight on both means (w = 0, 0.25"),
        (
            _one_weight_on_both(lambda t: 1 - t),
            "each code is w·(μ_start + μ_end), one weight on both means (w = 1, 0.75",
        ),
        (_combination(lambda t, start, end: t * end), "a straight line from 0 to μ_end, where it runs from μ_start"),
        (_combination(lambda t, start, end: t * start + t * end + start), "from μ_start to 2·μ_start + μ_end, where"),
        (lambda model, a, b, steps: model.decode(torch.zeros(steps, model.latent_dim)), "every code is 0"),
        (_blend_of_the_decoded_ends, "blends of the two decoded end images"),
        (lambda model, a, b, steps: (interpolate(model, a, b, steps) + 1) / 2, "rescaled to [0, 1]"),
        (_ends_replaced_by_the_images, "the end points are the two input images themselves"),
    ],
    ids=[
        "start left out",
        "extrapolated",
        "the midpoint",
        "seeded sample",
        "μ + t·μ",
        "t·μ + t·μ",
        "(1 - t)·μ + (1 - t)·μ",
        "t·μ_end",
        "t·μ + t·μ + μ",
        "zeros",
        "blend",
        "[0, 1]",
        "inputs",
    ],
)
def test_interpolations_at_other_points_of_the_line_or_off_it_are_named(wrong, phrase) -> None:
    # each failed with no hint
    result = check_interpolate(wrong)
    assert_fails_with(result, "Case *2-D model, 5 steps*", phrase)
    assert "Looks like:" in result.details


def test_a_straight_path_between_codes_moved_off_the_means_without_noise_is_not_told_only_that_z_is_sampled() -> None:
    # z = μ + σ, no noise: was told "z is sampled", which it is not
    def sigma_added(model, start_image, end_image, steps):
        means, log_vars = model.encode(torch.stack([start_image, end_image]))
        codes = means + log_vars.mul(0.5).exp()
        weights = torch.linspace(0, 1, steps).view(-1, 1)
        return model.decode((1 - weights) * codes[0] + weights * codes[1])

    assert_fails_with(check_interpolate(sigma_added), "is z sampled (reparameterise, or model(images)), σ added")


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, a, b, steps: ((interpolate(model, a, b, steps) + 1) * 127.5).to(torch.uint8),
            "made torch.uint8",
        ),
        (lambda model, a, b, steps: (interpolate(model, a, b, steps) + 1) * 127.5, "127.5 · image + 127.5"),
        (lambda model, a, b, steps: interpolate(model, a, b, steps) * 255, "rescaled, 255 · image (to [0, 255]"),
        (lambda model, a, b, steps: interpolate(model, a, b, steps).clamp(0, 1), "the images are clamped to [0, 1]"),
    ],
    ids=["uint8", "[0, 255]", "times 255", "clamped to [0, 1]"],
)
def test_images_rescaled_or_clamped_for_display_are_named(wrong, phrase) -> None:
    # each failed with no hint
    result = check_interpolate(wrong)
    assert_fails_with(result, "Case *2-D model, 5 steps*", phrase)
    assert "Looks like:" in result.details


def test_a_path_stopping_just_short_of_the_end_is_told_where_its_codes_lie() -> None:
    # its positions along the line were compared within 1e-3: no hint. (An end whose quarters are whole at four
    # decimals: 0.9995's, 0.249875 ..., round either way by the CPU's last bit.)
    result = check_interpolate(_along_the_line(lambda steps: torch.linspace(0, 0.9992, steps)))
    assert_fails_with(
        result, "Looks like: the codes lie on the line", "at t = 0, 0.2498, 0.4996, 0.7494, 0.9992 (up to"
    )


def _weights_as_a_row(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps)
    return model.decode((1 - weights) * start + weights * end)


def _one_image_at_a_time(model, start_image, end_image, steps):
    start, end = model.encode(start_image)[0], model.encode(end_image)[0]
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * start + weights * end)


def _between_latent_dimensions(model, start_image, end_image, steps):
    means = model.encode(torch.stack([start_image, end_image]))[0]
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * means[:, 0] + weights * means[:, 1])


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_weights_as_a_row, "make t a column, torch.linspace(0, 1, steps).unsqueeze(1)"),
        (_one_image_at_a_time, "the model takes a batch of images"),
        (_between_latent_dimensions, "the path runs from means[:, 0] to means[:, 1]"),
    ],
    ids=["weights a row", "one image to encode", "columns of the means"],
)
def test_shape_slips_of_an_interpolation_are_named(wrong, phrase) -> None:
    # torch's error alone, or "is z sampled, σ added ...?" for the columns
    result = check_interpolate(wrong)
    assert_fails_with(result, "Case *2-D model, 5 steps*", "Looks like:", phrase)


def test_images_squashed_by_a_tanh_are_not_told_they_are_rescaled() -> None:
    # a tanh of images near -0.3 is nearly linear there: was told "0.9282 · image + -0.0129 (to [0, 255]?)"
    result = check_interpolate(lambda model, a, b, steps: torch.tanh(interpolate(model, a, b, steps)))
    assert_fails_with(result, "the images expected")
    assert "rescaled" not in result.details


def _the_codes_themselves(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return (1 - weights) * start + weights * end


def test_an_interpolation_returning_its_codes_is_told_to_decode_them() -> None:
    # was told only "the shape is (5, 2), expected (5, 1, 28, 28)"
    result = check_interpolate(_the_codes_themselves)
    assert_fails_with(result, "Case *2-D model, 5 steps*", "these are the path's codes z", "model.decode(z)")


def _zeros_of_two(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    codes = torch.zeros(steps, 2)
    for row, weight in enumerate(torch.linspace(0, 1, steps)):
        codes[row] = (1 - weight) * start + weight * end
    return model.decode(codes)


def _first_two_values(model, start_image, end_image, steps):
    means = model.encode(torch.stack([start_image, end_image]))[0][:, :2]
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return model.decode((1 - weights) * means[0] + weights * means[1])


def _weights_of_two_columns(model, start_image, end_image, steps):
    start, end = _encode_pair(model, start_image, end_image)
    weights = torch.linspace(0, 1, steps).view(-1, 1).expand(steps, 2)
    return model.decode((1 - weights) * start + weights * end)


def _viewed_as_two(model, start_image, end_image, steps):
    return model.decode(_the_codes_themselves(model, start_image, end_image, steps).view(steps, 2))


@pytest.mark.parametrize(
    "wrong",
    [_zeros_of_two, _first_two_values, _weights_of_two_columns, _viewed_as_two],
    ids=["zeros(steps, 2)", "means[:, :2]", "expand(steps, 2)", "view(steps, 2)"],
)
def test_a_latent_size_of_2_written_into_an_interpolation_is_named(wrong) -> None:
    # each passes the 2-D case and raised torch's error alone on the 8-D one (the view: "read sizes from the tensor
    # ... or take a mean over all of it")
    result = check_interpolate(wrong)
    assert_fails_with(
        result, "Case *8-D model, 7 steps*", "Looks like: the 2-D case passed", "codes have 8 values", "latent_dim"
    )
    assert "take a mean" not in result.details


def _codes(model, start_image, end_image, steps):
    means, _ = model.encode(torch.stack([start_image, end_image]))
    weights = torch.linspace(0, 1, steps).view(-1, 1)
    return (1 - weights) * means[0] + weights * means[1]


@pytest.mark.parametrize(
    "decode",
    [
        lambda model, codes: torch.cat([model.decode(code) for code in codes]),  # one code at a time
        lambda model, codes: model.decode(codes.unsqueeze(1)),  # steps x 1 x latent_dim
    ],
    ids=["one code at a time", "codes of shape steps x 1 x d"],
)
def test_right_interpolations_decoding_codes_of_other_leading_shapes_pass(decode) -> None:
    # the model's check of its latents must not refuse what its layers always decoded
    result = check_interpolate(lambda model, a, b, steps: decode(model, _codes(model, a, b, steps)))
    assert result.passed, result.details
