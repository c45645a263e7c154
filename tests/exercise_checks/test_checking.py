"""What all exercise checks share: the learner's exceptions, failed backwards, changed inputs, wrong kinds of value."""

import math
import traceback
import warnings

import pytest
import torch
import torch.nn.functional as F

from vae_lib.core.objective import kl_per_dimension
from vae_lib.course.exercises import (
    check_active_units,
    check_bernoulli_reconstruction,
    check_decoder_input,
    check_interpolate,
    check_kl_divergence,
    check_loss,
    check_reparameterise,
    check_sample_prior,
)

from .answers import assert_fails_with, decoder_input, interpolate, kl, loss, reparameterise


def _raises(*_):
    raise ValueError("a mistake of the learner's")


# Each check of a learner's function with the first case it runs.
FIRST_CASES = [
    (check_reparameterise, "20000 draws"),
    (check_kl_divergence, "one image, μ = (1, -2)"),
    (check_loss, "3 images of 28 × 28"),
    (check_sample_prior, "2-D model, 6 samples"),
    (check_interpolate, "2-D model, 5 steps"),
    (check_active_units, "500 images"),
    (check_bernoulli_reconstruction, "four binarised images"),
    (check_decoder_input, "5 latents of 2-D"),
]


@pytest.mark.parametrize(("check", "case"), FIRST_CASES)
def test_an_exception_in_the_learners_code_is_a_failed_check_that_names_the_case(check, case) -> None:
    result = check(_raises)
    assert_fails_with(result, f"Case *{case}", "your function raised ValueError: a mistake of the learner's")


def _noise_scaled_in_place(mean, log_var):
    sigma = torch.exp(0.5 * log_var)
    sigma.mul_(torch.randn_like(sigma))  # exp's output, which its backward needs
    return mean + sigma


def _kl_in_place(mean, log_var):
    terms = log_var.exp()
    terms.sub_(log_var).sub_(1).add_(mean.pow(2))
    return 0.5 * terms.sum(dim=1).mean()


def _bernoulli_clamped_in_place(images, logits):
    probabilities = torch.sigmoid(logits)
    probabilities.clamp_(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(probabilities, (images + 1) / 2, reduction="sum") / len(images)


def _backward_inside(function):
    def answer(*arguments):
        result = function(*arguments)
        (result[0] if isinstance(result, tuple) else result).sum().backward()
        return result

    return answer


@pytest.mark.parametrize(
    ("check", "answer", "phrase"),
    [
        (
            check_reparameterise,
            _noise_scaled_in_place,
            "a tensor autograd saved for the backward pass is changed in place",
        ),
        (check_kl_divergence, _kl_in_place, "a tensor autograd saved for the backward pass is changed in place"),
        (
            check_bernoulli_reconstruction,
            _bernoulli_clamped_in_place,
            "a tensor autograd saved for the backward pass is changed in place",
        ),
        (check_reparameterise, _backward_inside(reparameterise), "backward() is already called inside your function"),
        (check_kl_divergence, _backward_inside(kl), "backward() is already called inside your function"),
        (check_loss, _backward_inside(loss), "backward() is already called inside your function"),
    ],
    ids=["reparameterise", "kl", "bernoulli", "reparameterise, backward", "kl, backward", "loss, backward"],
)
def test_a_result_whose_backward_fails_is_a_failed_check_that_says_why(check, answer, phrase) -> None:
    # the checks' gradient comparison raised the learner's RuntimeError
    assert_fails_with(check(answer), "fails:", f"Looks like: {phrase}")


def test_answers_that_change_their_inputs_in_place_fail_naming_the_input() -> None:
    # the checks computed the expected values from the images the answer had changed; then, given copies, passed
    # answers whose change of μ in place would corrupt the KL computed after them
    def reparameterise_in_place(mean, log_var):
        return mean.add_(torch.exp(0.5 * log_var) * torch.randn_like(mean))

    def bernoulli_in_place(images, logits):
        images += 1
        images /= 2
        return F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(dim=(1, 2, 3)).mean()

    def loss_in_place(images, reconstruction, mean, log_var, alpha):
        difference = images.sub_(reconstruction)
        recon = 0.5 * difference.pow(2).mean()
        return recon + alpha * kl(mean, log_var), recon, kl(mean, log_var)

    for result, name in (
        (check_reparameterise(reparameterise_in_place), "`mean`"),
        (check_bernoulli_reconstruction(bernoulli_in_place), "`images`"),
        (check_loss(loss_in_place), "`images`"),
    ):
        assert_fails_with(result, f"your function changed its input {name} in place", "compute new tensors instead")


@pytest.mark.parametrize(
    ("check", "answer", "phrase"),
    [
        (check_reparameterise, lambda mean, log_var: None, "returns None: is its `return` line missing?"),
        (check_kl_divergence, lambda m, v: (kl(m, v), kl_per_dimension(m, v)), "a tuple of 2 values; the KL should"),
        (check_loss, lambda *args: None, "returns None"),
        (check_interpolate, lambda model, a, b, steps: list(interpolate(model, a, b, steps)), "a list of 5 values"),
        (check_decoder_input, lambda z, y, classes: (z, F.one_hot(y, classes)), "a tuple of 2 values"),
    ],
    ids=["None", "tuple", "loss None", "list of images", "tuple of tensors"],
)
def test_nothing_or_several_values_returned_is_told_so_not_blamed_on_numpy(check, answer, phrase) -> None:
    result = check(answer)
    assert_fails_with(result, phrase)
    assert ".numpy()" not in result.details


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (check_kl_divergence, lambda m, v: {"kl": kl(m, v)}),
        (check_decoder_input, lambda z, y, c: {"codes": decoder_input(z, y, c)}),
    ],
    ids=["kl", "decoder input"],
)
def test_a_dict_returned_is_told_so(check, answer) -> None:
    assert_fails_with(check(answer), "your function returns a dict")


def _sample_then_train(model, count, generator):
    images = model.decode(torch.randn(count, model.latent_dim, generator=generator))
    model.train()
    return images


def _interpolate_then_train(model, start_image, end_image, steps):
    images = interpolate(model, start_image, end_image, steps)
    model.train()
    return images


@pytest.mark.parametrize(
    ("check", "answer"),
    [(check_sample_prior, _sample_then_train), (check_interpolate, _interpolate_then_train)],
    ids=["sample_prior", "interpolate"],
)
def test_an_answer_leaving_the_model_in_training_mode_fails_though_its_images_are_right(check, answer) -> None:
    assert_fails_with(check(answer), "the images are right, but your function leaves the model in training mode")


def test_an_unfinished_exercise_raises_not_implemented_error() -> None:
    def unfinished(mean, log_var):
        raise NotImplementedError

    with pytest.raises(
        NotImplementedError, match=r"^closed-form KL: not written yet .* run that cell, then this one"
    ) as raised:
        check_kl_divergence(unfinished)
    # said in three frames (the cell's call, the check, its result), with no chained traceback of the check's inside
    assert len(traceback.extract_tb(raised.value.__traceback__)) == 3 and raised.value.__suppress_context__
    with pytest.raises(
        NotImplementedError, match="the conditional decoder's input: not written yet"
    ):  # not a RuntimeError's hint
        check_decoder_input(lambda latents, labels, classes: unfinished(latents, labels))


def test_torchs_own_not_implemented_error_is_a_failed_check_not_an_unfinished_exercise() -> None:
    # torch raises NotImplementedError for bool subtraction; only the stub's bare one stops a check cell
    def bool_targets(images, logits):
        return F.binary_cross_entropy_with_logits(logits, images > 0, reduction="sum") / len(images)

    assert_fails_with(check_bernoulli_reconstruction(bool_targets), "your function raised NotImplementedError")
    with pytest.raises(NotImplementedError):
        check_bernoulli_reconstruction(lambda images, logits: (_ for _ in ()).throw(NotImplementedError))


def test_the_checks_leave_the_global_random_state_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_reparameterise(reparameterise)
    assert torch.equal(torch.rand(3), expected)


def _leaving_gradients_off(mean, log_var):
    torch.set_grad_enabled(False)
    return reparameterise(mean, log_var)


def _leaving_float64_the_default(mean, log_var):
    torch.set_default_dtype(torch.float64)
    return reparameterise(mean, log_var)


def _leaving_anomaly_detection_on(mean, log_var):
    torch.autograd.set_detect_anomaly(True)
    return reparameterise(mean, log_var)


@pytest.mark.parametrize(
    ("answer", "phrases"),
    [
        (_leaving_gradients_off, ["your function left gradients off (torch.set_grad_enabled(False))", "no_grad()"]),
        (_leaving_float64_the_default, ["your function left another default dtype", "leave it alone"]),
        (_leaving_anomaly_detection_on, ["left autograd's anomaly detection on", "autograd.detect_anomaly():"]),
    ],
    ids=["gradients off", "float64 default", "anomaly detection on"],
)
def test_an_answer_changing_torchs_global_settings_fails_and_the_settings_are_set_back(answer, phrases) -> None:
    # gradients left off made a later check raise out of itself, and stayed off for the notebook; anomaly detection
    # left on passed, and slowed every backward pass after it
    assert_fails_with(check_reparameterise(answer), *phrases, "The check has set it back")
    assert torch.is_grad_enabled()
    assert torch.get_default_dtype() == torch.float32
    assert not torch.is_anomaly_enabled()


class _BackwardNotWritten(torch.autograd.Function):
    """An identity whose backward pass raises ValueError, as a learner's own autograd.Function might."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, gradient):
        raise ValueError("backward not written yet")


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (check_kl_divergence, lambda mean, log_var: _BackwardNotWritten.apply(kl(mean, log_var))),
        (check_reparameterise, lambda mean, log_var: _BackwardNotWritten.apply(reparameterise(mean, log_var))),
    ],
    ids=["KL", "reparameterisation"],
)
def test_a_backward_pass_raising_other_than_runtime_error_is_a_failed_check(check, answer) -> None:
    # the ValueError came out of the check itself
    assert_fails_with(check(answer), "backward() through", "fails: backward not written yet")


def test_a_result_on_the_meta_device_is_a_failed_check() -> None:
    # copying it out for the comparison raised NotImplementedError out of the check
    result = check_active_units(lambda means, threshold: torch.empty(means.shape[1], dtype=torch.bool, device="meta"))
    assert_fails_with(result, "is a tensor on the meta device")


@pytest.mark.parametrize("check", [check for check, _ in FIRST_CASES])
def test_a_result_passed_instead_of_the_function_is_named(check) -> None:
    with pytest.raises(TypeError, match=r"^a check takes your function itself, got a Tensor: pass the function's name"):
        check(torch.zeros(3))  # "your function raised TypeError: 'Tensor' object is not callable" before


def _kl_in_float32(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(-1).mean()


@pytest.mark.parametrize(
    "answer, hint",
    [
        (
            lambda m, v: _kl_in_float32(m, v) > 0,
            "the KL came back as torch.bool, which cannot hold the answer's fractions",
        ),
        (lambda m, v: _kl_in_float32(m, v).half(), "right to torch.float16's few significant digits"),
        (lambda m, v: _kl_in_float32(m, v).bfloat16(), "right to torch.bfloat16's few significant digits"),
    ],
    ids=["a comparison", "float16", "bfloat16"],
)
def test_a_result_whose_dtype_explains_it_is_told_so_and_nothing_else(answer, hint) -> None:
    result = check_kl_divergence(answer)
    assert_fails_with(result, f"Looks like: {hint}")
    assert "And:" not in result.details  # a bool got five hints about the formula's terms before


def test_uint8_pixels_for_samples_are_told_to_return_the_decoder_s_floats() -> None:
    from vae_lib.core.data import to_pixels

    def sample_pixels(model, count, generator):
        return torch.from_numpy(to_pixels(model.decode(torch.randn(count, model.latent_dim, generator=generator))))

    assert_fails_with(check_sample_prior(sample_pixels), "Looks like: the images came back as uint8 pixels (0-255)")


def test_a_wrong_tensor_whose_first_values_are_right_is_shown_where_it_differs_most() -> None:
    # the message printed the same first six values as expected and got, which read as a contradiction
    from vae_lib.course.exercises.checking import _compare

    expected = torch.zeros(2, 1, 5, 5)
    got = expected.clone().double()
    got[1, 0, 3, 2], got[1, 0, 4, 4] = 0.5, -0.25
    message = _compare("a case", "the images", got, expected)
    assert "values [0, 0, 0, 0, 0, 0, ...], got shape (2, 1, 5, 5), values [0, 0, 0, 0, 0, 0, ...]" in message
    assert message.endswith("They differ most at [1, 0, 3, 2]: expected 0, got 0.5.")
    got[0, 0, 0, 0] = 1.0  # the first values show the difference already
    assert "differ most" not in _compare("a case", "the images", got, expected)
    assert _compare("a case", "the images", expected.double(), expected) == ""


def test_values_that_print_alike_are_told_apart_and_equal_infinities_are_no_difference() -> None:
    from vae_lib.course.exercises.checking import _compare

    expected = torch.full((10,), 0.1234, dtype=torch.float64)
    # every value 0.03 % off: the first six print as 0.1234 in both, which read as no difference at all
    message = _compare("a case", "the value", expected * (1 + 3e-4), expected)
    assert message.endswith("They differ most at [0]: expected 0.1234, got 0.12344.")
    with_infinity = torch.linspace(0.1, 1, 10)
    with_infinity[9] = float("inf")
    got = with_infinity.clone().double()
    got[7] += 0.01
    assert _compare("a case", "the value", got, with_infinity).endswith(
        "They differ most at [7]: expected 0.8, got 0.81."
    )


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda mean, log_var: -0.5 * (1 + log_var - mean**2 - math.exp(log_var)), "use torch's own operations"),
        (
            lambda mean, log_var: (-0.5 * (1 + log_var - mean**2 - log_var.exp())).sum(1).mean(1),
            "each reduction (.sum(dim), .mean(dim)) removes one",
        ),
        (
            lambda mean, log_var: torch.from_numpy(-0.5 * (1 + log_var.numpy() - mean.numpy() ** 2)).sum(1).mean(),
            "NumPy cannot carry gradients",
        ),
    ],
    ids=["math.exp", "a dim reduced away", "NumPy"],
)
def test_torch_errors_any_exercise_meets_get_what_they_mean_there(wrong, phrase) -> None:
    # torch's message alone before, and for NumPy torch's own advice to detach, which would cut the gradient
    assert_fails_with(check_kl_divergence(wrong), phrase)


def test_warnings_of_the_learners_code_are_quoted_below_a_failures_hint_not_printed_above_it() -> None:
    # torch's broadcasting warning printed above the check's message, out of order with it
    def squeezed_mse(images, reconstruction, mean, log_var, alpha):
        reconstruction_term = 0.5 * F.mse_loss(reconstruction.squeeze(1), images)
        kl_term = kl(mean, log_var)
        return reconstruction_term + alpha * kl_term, reconstruction_term, kl_term

    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = check_loss(squeezed_mse)
    assert escaped == []
    assert_fails_with(result, "compares every reconstruction with every image")
    last_line = result.details.splitlines()[-1]
    assert last_line.startswith("Warned while the check ran your code (UserWarning, line ")
    assert "Using a target size" in last_line and "broadcasting" in last_line


def test_a_failure_quotes_two_warnings_each_once_and_counts_the_rest() -> None:
    def warning_kl(mean, log_var):
        warnings.warn(f"first, {len(mean)} images", stacklevel=1)
        warnings.warn("second", stacklevel=1)
        warnings.warn("third", stacklevel=1)
        warnings.warn("fourth", DeprecationWarning, stacklevel=1)
        return 2 * kl(mean, log_var)

    result = check_kl_divergence(warning_kl)
    assert not result.passed
    quoted = [line for line in result.details.splitlines() if line.startswith("Warned while")]
    assert [line.split(": ", 1)[1] for line in quoted] == ["first, 1 images", "second"]
    assert result.details.endswith("\nAnd 2 more warnings.")


def test_after_a_pass_the_learners_warnings_are_given_again() -> None:
    def warning_kl(mean, log_var):
        warnings.warn("a note of the learner's", stacklevel=1)
        return kl(mean, log_var)

    with pytest.warns(UserWarning, match="a note of the learner's") as given:
        assert check_kl_divergence(warning_kl).passed
    assert len(given) == 1


def test_the_notebooks_own_warning_filters_decide_what_a_check_shows_or_raises() -> None:
    # a warning was shown after a pass whatever the filters said, and one the filters turn into an error was raised
    # out of the check after its pass
    def warning_kl(mean, log_var):
        warnings.warn("a note of the learner's", stacklevel=1)
        return kl(mean, log_var)

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="a note")
        assert check_kl_divergence(warning_kl).passed
    assert shown == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = check_kl_divergence(warning_kl)
    assert_fails_with(result, "your function raised UserWarning: a note of the learner's")
