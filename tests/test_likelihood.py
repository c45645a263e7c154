"""The loss read as a likelihood: alpha as beta or a decoder variance, and the importance-sampled bounds on
log p(x), checked against a linear Gaussian model whose log p(x) and posterior are known exactly."""

import math
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from vae_lib import vae_loss
from vae_lib.core.files import CheckpointError
from vae_lib.core.likelihood import (
    beta_of,
    bound_images,
    bound_summary,
    decoder_variance,
    importance_log_weights,
    log_likelihood_bounds,
    per_image_bounds,
)
from vae_lib.core.model import VAE, ConditionalVAE
from vae_lib.core.objective import gaussian_log_likelihood

PIXELS = 28 * 28


def test_alpha_0001_is_a_kl_weight_of_0784_and_one_784th_is_the_plain_elbo() -> None:
    assert beta_of(0.001) == pytest.approx(0.784)
    assert beta_of(1 / 784) == pytest.approx(1.0)
    assert decoder_variance(0.001) == pytest.approx(0.784)


def test_the_loss_is_the_gaussian_negative_elbo_scaled_by_the_decoder_variance() -> None:
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(5, 1, 28, 28, generator=generator) * 2 - 1
    reconstructions = torch.rand(5, 1, 28, 28, generator=generator) * 2 - 1
    mean, log_var = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    alpha = 0.003
    total, _, kl = vae_loss(images, reconstructions, mean, log_var, alpha)
    variance = decoder_variance(alpha)
    negative_elbo = -gaussian_log_likelihood(images, reconstructions, variance).mean() + kl
    constant = 0.5 * PIXELS * math.log(2 * math.pi * variance)
    assert negative_elbo.item() == pytest.approx(PIXELS * total.item() / variance + constant, rel=1e-5)


class LinearGaussian(nn.Module):
    """z ~ N(0, 1), x = z w + noise of variance s^2; encode returns the exact posterior q(z | x), widened by `widen`."""

    latent_dim, channels, likelihood, needs_labels = 1, 1, "gaussian", False

    def __init__(self, variance: float, widen: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(0.04 * torch.linspace(-1, 1, PIXELS).view(1, 1, 28, 28))
        self.variance, self.widen = variance, widen

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        precision = 1 + self.w.pow(2).sum() / self.variance
        mean = (images * self.w).flatten(1).sum(dim=1, keepdim=True) / self.variance / precision
        return mean, torch.log(self.widen / precision).expand_as(mean)

    def decoder_output(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return latents.view(-1, 1, 1, 1) * self.w

    def exact_log_likelihood(self, image: torch.Tensor) -> float:
        x, w, s2 = image.flatten().double(), self.w.detach().flatten().double(), self.variance
        ww = w @ w
        quadratic = (x @ x - (w @ x) ** 2 / (s2 + ww)) / s2
        log_det = PIXELS * math.log(s2) + math.log(1 + ww / s2)
        return float(-0.5 * (quadratic + log_det + PIXELS * math.log(2 * math.pi)))


def _images() -> torch.Tensor:
    return torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5


def test_with_the_exact_posterior_every_bound_equals_log_p_x() -> None:
    model = LinearGaussian(variance=0.5)
    images = _images()
    log_weights = importance_log_weights(model, images, 100, variance=0.5)
    exact = sum(model.exact_log_likelihood(image) for image in images) / len(images)
    for bound in log_likelihood_bounds(log_weights, [1, 10, 100]).values():
        assert bound == pytest.approx(exact, abs=1e-3)


def test_with_a_wider_posterior_the_bound_rises_with_k_towards_log_p_x() -> None:
    model = LinearGaussian(variance=0.5, widen=4.0)
    images = _images()
    exact = sum(model.exact_log_likelihood(image) for image in images) / len(images)
    bounds = log_likelihood_bounds(importance_log_weights(model, images, 1000, variance=0.5), [1, 10, 100, 1000])
    # The k = 1000 estimate is one draw per image and may land a little above log p(x); its expectation cannot.
    assert bounds[1] < bounds[10] < bounds[100] < bounds[1000] < exact + 0.05
    assert abs(exact - bounds[1000]) < 0.05 * (exact - bounds[1])


def test_each_image_draws_its_samples_from_the_seed_plus_its_index_in_the_dataset() -> None:
    model = LinearGaussian(variance=0.5, widen=4.0)
    image = _images()[:1]
    twice = importance_log_weights(model, image.repeat(2, 1, 1), 5, variance=0.5, seed=3)
    assert not torch.equal(twice[0], twice[1])  # the same image, but the second draws from seed 3 + 1
    assert torch.equal(twice[1], importance_log_weights(model, image, 5, variance=0.5, seed=4)[0])
    assert torch.equal(twice[1], importance_log_weights(model, image, 5, variance=0.5, seed=3, first_index=1)[0])


def test_the_bounds_average_the_log_mean_weight_of_consecutive_groups_of_k() -> None:
    # image 0: weights 1, 3, 2, 6, 4, 8; image 1: six equal weights, whose every bound is their log
    log_weights = torch.tensor([[1.0, 3.0, 2.0, 6.0, 4.0, 8.0], [5.0] * 6]).log()
    bounds = per_image_bounds(log_weights, [1, 2, 3, 6])
    # k = 1: mean log weight; k = 2: groups (1, 3), (2, 6), (4, 8) of means 2, 4, 6; k = 3: means 2 and 6
    image_0 = [math.log(1152) / 6, math.log(48) / 3, math.log(12) / 2, math.log(4)]
    assert bounds.dtype == torch.float64 and bounds.shape == (2, 4)
    assert bounds[0].tolist() == pytest.approx(image_0, rel=1e-6)
    assert bounds[1].tolist() == pytest.approx([math.log(5)] * 4, rel=1e-6)
    means = log_likelihood_bounds(log_weights, [1, 2, 3, 6])
    assert list(means.values()) == pytest.approx([(bound + math.log(5)) / 2 for bound in image_0], rel=1e-6)


def test_the_summary_is_the_mean_bound_and_its_standard_error_and_refuses_unfinished_bounds() -> None:
    bounds = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]], dtype=torch.float64)
    summary = bound_summary(bounds, [1, 10])
    # standard deviations (n - 1) 2 and sqrt(13), over sqrt(3) images
    assert summary[1] == pytest.approx((3.0, 2 / math.sqrt(3)))
    assert summary[10] == pytest.approx((5.0, math.sqrt(13 / 3)))
    assert math.isnan(bound_summary(bounds[:1], [1, 10])[1][1])  # one image has no standard error
    bounds[1, 1] = math.nan
    with pytest.raises(ValueError, match="1 images are not bounded yet: finish the run first"):
        bound_summary(bounds, [1, 10])


def test_sample_counts_that_do_not_split_the_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        log_likelihood_bounds(torch.zeros(2, 10), [3])


def _small_bernoulli_model(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent_dim=3, widths=(4, 4, 8, 8), likelihood="bernoulli")


def _small_bernoulli_model_and_images() -> tuple[VAE, torch.Tensor]:
    model = _small_bernoulli_model()
    images = (torch.rand(120, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.2).to(torch.uint8) * 255
    return model, images


def test_bounding_in_parts_in_two_processes_gives_the_bounds_of_one_pass() -> None:
    model, images = _small_bernoulli_model_and_images()
    counts = [1, 4, 20]
    one_pass = per_image_bounds(importance_log_weights(model, images, 20, seed=5), counts)
    in_parts = bound_images(model, images, 20, counts, seed=5, report=lambda line: None)
    in_two_processes = bound_images(model, images, 20, counts, seed=5, workers=2, report=lambda line: None)
    assert in_parts.shape == (120, 3) and torch.equal(in_parts, one_pass) and torch.equal(in_two_processes, one_pass)
    assert bool((in_parts[:, 0] < in_parts[:, 2]).float().mean() > 0.9)  # the bound tightens with k for most images
    later_images = per_image_bounds(importance_log_weights(model, images[70:], 20, seed=5, first_index=70), counts)
    assert torch.equal(later_images, one_pass[70:])  # image i's samples depend only on seed + i


def test_a_stopped_bounding_continues_from_its_file_and_refuses_another_setting(tmp_path: Path) -> None:
    model, images = _small_bernoulli_model_and_images()
    path = tmp_path / "bounds.pt"
    full = bound_images(model, images, 20, [1, 20], save_to=path, report=lambda line: None)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["bounds"], full)
    saved["bounds"][50:] = math.nan  # as if stopped after the first part of 50 images
    saved["bounds"][0, 0] = 123.0  # a value the run cannot compute, to show the first part is not redone
    torch.save(saved, path)
    lines: list[str] = []
    continued = bound_images(model, images, 20, [1, 20], save_to=path, report=lines.append)
    assert lines == [f"continuing from {path}: 50 of 120 images done"]
    assert continued[0, 0] == 123.0 and torch.equal(continued[1:], full[1:])
    with pytest.raises(CheckpointError, match=r"holds the bounds of another run \(other samples\): pass another path"):
        bound_images(model, images, 40, [1, 20], save_to=path, report=lines.append)
    with pytest.raises(CheckpointError, match=r"holds the bounds of another run \(other images\): pass another path"):
        bound_images(model, images.flip(0), 20, [1, 20], save_to=path, report=lines.append)
    with pytest.raises(CheckpointError, match=r"holds the bounds of another run \(other model\): pass another path"):
        bound_images(_small_bernoulli_model(1), images, 20, [1, 20], save_to=path, report=lines.append)
    path.write_bytes(b"not a file of bounds")
    with pytest.raises(CheckpointError, match="is not a readable file of saved bounds .*: pass another path"):
        bound_images(model, images, 20, [1, 20], save_to=path, report=lines.append)
    # A pickle that would run code, in torch.save's protocol (2): refused without torch's advice
    path.write_bytes(pickle.dumps({"call": print}, protocol=2))
    with pytest.raises(CheckpointError, match="not the tensors and plain values") as refusal:
        bound_images(model, images, 20, [1, 20], save_to=path, report=lines.append)
    assert "weights_only" not in str(refusal.value)


def test_bounding_continues_silently_unless_given_a_report(tmp_path: Path, capsys) -> None:
    model, images = _small_bernoulli_model_and_images()
    path = tmp_path / "bounds.pt"
    bound_images(model, images[:50], 5, [1, 5], save_to=path)
    bound_images(model, images[:50], 5, [1, 5], save_to=path)  # continues from the file: all 50 done
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("samples", [0, -5, 2.5, True])
def test_a_sample_count_that_is_not_a_positive_whole_number_is_refused(samples) -> None:
    model, images = _small_bernoulli_model_and_images()
    message = f"samples is the number of z drawn per image, a positive whole number: got {samples!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        importance_log_weights(model, images[:2], samples)
    with pytest.raises(ValueError, match=re.escape(message)):
        bound_images(model, images[:2], samples, [1])


def test_a_decoder_variance_that_is_not_positive_or_has_no_place_is_refused() -> None:
    from vae_lib.core.objective import log_likelihood

    images = torch.zeros(2, 1, 28, 28)
    for variance in (0.0, -1.0, float("nan")):  # "math domain error" before
        with pytest.raises(ValueError, match="the Gaussian decoder's variance must be a number > 0"):
            log_likelihood(images, images, "gaussian", variance)
    with pytest.raises(ValueError, match=r"a bernoulli decoder has no variance: leave variance out \(got 0.5\)"):
        log_likelihood(images, images, "bernoulli", 0.5)  # ignored before


def test_the_settings_of_a_bounding_are_checked_before_any_work_and_numpy_numbers_are_taken(tmp_path: Path) -> None:
    import numpy as np

    model, images = _small_bernoulli_model_and_images()
    path = tmp_path / "bounds.pt"
    # NumPy numbers in the settings: the file of saved bounds held NumPy scalars, which weights_only cannot read back,
    # so the run could never be continued; now they are plain numbers, and the bounds those of Python's
    numpy_run = bound_images(model, images[:4], np.int64(10), np.array([1, 10]), seed=np.int64(3), save_to=path)
    assert torch.equal(numpy_run, bound_images(model, images[:4], 10, [1, 10], seed=3))  # computed afresh
    assert torch.equal(bound_images(model, images[:4], 10, [1, 10], seed=3, save_to=path), numpy_run)  # read back
    for counts, message in [
        ([0], "a positive whole number, got 0"),
        ([-1], "a positive whole number, got -1"),
        ([2.0], "a positive whole number, got 2.0"),
        ([], "sample_counts is empty"),
        ([3], "10 samples per image do not split into groups of 3"),  # refused after the first part before
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            bound_images(model, images[:60], 10, counts, save_to=tmp_path / "other.pt")
        assert not (tmp_path / "other.pt").exists()
    for seed, message in [
        (1.5, "seed must be a whole number >= 0, got 1.5"),
        (None, "got None"),
        (-1, "got -1"),
        (2**64 - 1, "seed 18446744073709551615 + 3 is more than torch's generators take"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            importance_log_weights(model, images[:4], 2, seed=seed)
    with pytest.raises(ValueError, match="there are no images to bound: give at least one"):
        importance_log_weights(model, images[:0], 2)  # torch.stack's error before
    with pytest.raises(ValueError, match="there are no images to bound"):
        bound_images(model, images[:0], 2, [1])  # a (0, 1) tensor, then a summary of NaN, before


def test_the_bounds_of_a_generator_of_counts_or_numpy_weights_are_those_of_a_list() -> None:
    log_weights = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    expected = log_likelihood_bounds(log_weights, [1, 10])
    assert log_likelihood_bounds(log_weights, (k for k in [1, 10])) == expected  # {} before: read twice
    assert log_likelihood_bounds(log_weights.numpy(), [1, 10]) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"log_weights are images x samples .*got shape \(10,\)"):
        log_likelihood_bounds(log_weights[0], [1])
    with pytest.raises(TypeError, match="sample_counts is a list of k"):
        log_likelihood_bounds(log_weights, 10)


def test_decoder_variance_and_beta_take_numbers_only() -> None:
    import numpy as np

    assert decoder_variance(np.float32(0.001)) == pytest.approx(0.784) and beta_of(0) == 0.0
    for call, message in [
        (lambda: decoder_variance("0.001"), "a decoder variance needs alpha > 0: got alpha = '0.001'"),  # a string
        (lambda: decoder_variance([0.001]), "got alpha = [0.001]"),  # 784 copies of the list before
        (lambda: decoder_variance(0.0), "got alpha = 0.0"),
        (lambda: beta_of(-0.001), "alpha weighs the KL term, a number >= 0: got alpha = -0.001"),
        (lambda: beta_of(0.001, pixels=0), "a whole number: got 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    model = VAE(latent_dim=2, widths=(4, 4, 8, 8)).eval()
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    by_float = importance_log_weights(model, images, 2, variance=0.784)
    assert torch.equal(importance_log_weights(model, images, 2, variance=np.float32(0.784)), by_float.float())
    with pytest.raises(ValueError, match="variance must be a number > 0"):
        importance_log_weights(model, images, 2, variance=True)  # 1.0 before


def test_what_is_not_a_model_or_not_its_images_is_named_by_what_it_is() -> None:
    from vae_lib.core.data import Batch
    from vae_lib.core.evaluate import evaluate

    model, images = _small_bernoulli_model_and_images()

    class SweepPoint:  # what notebook 06's points are: they hold a model
        def __init__(self, model: VAE) -> None:
            self.model = model

    with pytest.raises(TypeError, match=r"got a SweepPoint: it holds one as \.model, pass that \(sweeppoint\.model\)"):
        importance_log_weights(SweepPoint(model), images[:2], 2)  # AttributeError 'training' before
    with pytest.raises(TypeError, match="got a str"):
        evaluate("checkpoint.pt", images[:2])
    with pytest.raises(ValueError, match=r"got \(28, 28\); that is one image"):
        importance_log_weights(model, images[0], 2)  # it named a row of it, (1, 28), and said to resize
    with pytest.raises(ValueError, match=r"float64, and evaluation gives it float32 images .* model\.float\(\)"):
        importance_log_weights(_small_bernoulli_model().double(), images[:2], 2)  # it advised float64 images
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast, which casts the images, a bf16 model is taken
        assert evaluate(_small_bernoulli_model().to(torch.bfloat16), images[:2])["recon"] > 0

    class Trainer:  # holds the trained weights as .model and the weight average as .evaluated_model
        model, evaluated_model = _small_bernoulli_model(), _small_bernoulli_model(1)

    with pytest.raises(TypeError, match=r"got a Trainer: pass trainer\.evaluated_model, the weights its history"):
        evaluate(Trainer(), images[:2])
    for not_binarised, message in [
        (images[:2] > 0, "images must be uint8 or floating point, got torch.bool"),  # "grey pixels" before
        ((images[:2] > 0).float(), r"images in \[0, 1\]\? The model takes \[-1, 1\]"),
        (images[:2].float() / 255 - 0.5, "have grey pixels: binarise them first"),  # -0.5 and 0.5
    ]:
        with pytest.raises(ValueError, match=message):
            importance_log_weights(model, not_binarised, 2)
    nan_model = _small_bernoulli_model()
    with torch.no_grad():
        next(nan_model.parameters()).fill_(math.nan)
    with pytest.raises(ValueError, match="the log weights of image 0 are not finite"):
        bound_images(nan_model, images[:3], 2, [1])  # "3 images are not bounded yet" from the summary before
    # a conditional model's labels: a NumPy array or a list, one per image, in a Batch or an (images, labels) pair
    torch.manual_seed(0)
    conditional = ConditionalVAE(latent_dim=2, widths=(4, 4, 8, 8), likelihood="bernoulli").eval()
    labels = torch.tensor([3, 1, 4])
    expected = importance_log_weights(conditional, Batch(images[:3], labels), 2)
    assert torch.equal(importance_log_weights(conditional, Batch(images[:3], labels.numpy()), 2), expected)
    assert torch.equal(importance_log_weights(conditional, (images[:3], [3, 1, 4]), 2), expected)
    for wrong in (labels[:2], torch.tensor([3, 1, 4, 1, 5])):  # an error at the third image, or extra ones taken
        with pytest.raises(ValueError, match=rf"give one label per image: got labels of shape \({len(wrong)},\)"):
            importance_log_weights(conditional, Batch(images[:3], wrong), 2)
