import re

import pytest
import torch

from vae_lib import VAE, evaluate, to_model_input, vae_loss
from vae_lib.core.data import Batch, ImageDataset
from vae_lib.core.evaluate import encode_means, kl_by_dimension, per_class_recon_error, reconstruct


@pytest.fixture(scope="module")
def model() -> VAE:
    torch.manual_seed(0)
    return VAE(latent_dim=2).eval()


def test_evaluate_matches_a_hand_computation(model: VAE, small_test) -> None:
    images = to_model_input(small_test.images[:200])
    torch.manual_seed(5)
    with torch.no_grad():
        mean, log_var = model.encode(images)
        reconstruction = model.decode(mean + torch.randn_like(mean) * torch.exp(0.5 * log_var))
        total, recon, kl = vae_loss(images, reconstruction, mean, log_var, alpha=0.001)
        at_mean = 0.5 * torch.mean((model.decode(mean) - images) ** 2)
    metrics = evaluate(model, small_test.images[:200], alpha=0.001, seed=5, batch_size=1000)
    assert metrics["recon"] == pytest.approx(recon.item(), rel=1e-6)
    assert metrics["kl"] == pytest.approx(kl.item(), rel=1e-6)
    assert metrics["total"] == pytest.approx(total.item(), rel=1e-6)
    assert metrics["recon_at_mean"] == pytest.approx(at_mean.item(), rel=1e-6)


def test_every_image_counts_including_a_last_partial_batch(model: VAE, small_test) -> None:
    whole = evaluate(model, small_test.images[:250], batch_size=1000)
    in_pieces = evaluate(model, small_test.images[:250], batch_size=100)  # 100 + 100 + 50
    assert in_pieces["recon_at_mean"] == pytest.approx(whole["recon_at_mean"], rel=1e-6)
    assert in_pieces["kl"] == pytest.approx(whole["kl"], rel=1e-6)


def test_evaluate_is_seeded_and_leaves_the_global_rng_alone(model: VAE, small_test) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = evaluate(model, small_test.images[:64], seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert evaluate(model, small_test.images[:64], seed=1) == first
    assert evaluate(model, small_test.images[:64], seed=2)["recon"] != first["recon"]


def test_per_class_error_is_each_class_s_mean_error_at_the_posterior_mean(model: VAE, small_test) -> None:
    dataset = small_test.subset(100)
    images = to_model_input(dataset.images)
    with torch.no_grad():
        per_image = 0.5 * ((model.decode(model.encode(images)[0]) - images) ** 2).mean(dim=(1, 2, 3))
    by_hand = [
        per_image[dataset.labels == digit].mean().item() if (dataset.labels == digit).any() else 0.0
        for digit in range(10)
    ]
    assert per_class_recon_error(model, dataset, batch_size=32).tolist() == pytest.approx(by_hand, rel=1e-5)


def test_evaluate_restores_training_mode(small_test) -> None:
    model = VAE(latent_dim=2).train()
    batch_norm = model.encoder[0][2]
    statistics = batch_norm.running_mean.clone()
    in_training_mode = evaluate(model, small_test.images[:8])
    assert model.training
    assert torch.equal(batch_norm.running_mean, statistics)  # BatchNorm's running statistics used, not updated
    assert in_training_mode == pytest.approx(evaluate(model.eval(), small_test.images[:8]), rel=1e-5)


def test_evaluate_rejects_wrong_image_shapes(model: VAE) -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate(model, torch.zeros(4, 1, 32, 32))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_float_images_of_any_precision_are_evaluated_as_float32(model: VAE, small_test, dtype) -> None:
    images = small_test.images[:64]
    scaled = (images.to(torch.float64) / 127.5 - 1).to(dtype)
    expected = evaluate(model, scaled.float(), seed=3)
    assert evaluate(model, scaled, seed=3) == expected
    assert expected["recon"] == pytest.approx(evaluate(model, images, seed=3)["recon"], rel=1e-2)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5])
def test_a_batch_size_that_is_not_a_positive_integer_is_refused(model: VAE, small_test, batch_size) -> None:
    with pytest.raises(
        ValueError, match=f"batch_size must be a positive integer \\(images per batch\\), got {batch_size}"
    ):
        evaluate(model, small_test.images[:8], batch_size=batch_size)


@pytest.mark.parametrize(
    "function", [encode_means, reconstruct, kl_by_dimension], ids=lambda function: function.__name__
)
@pytest.mark.parametrize("container", ["tensor", "dataset", "batch"])
def test_no_images_are_refused_with_a_message_that_says_so(model: VAE, function, container: str) -> None:
    empty = ImageDataset(
        torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), ("0", "1"), "two"
    )
    images = {"tensor": empty.images, "dataset": empty, "batch": Batch(empty.images, empty.labels)}[container]
    message = f"{function.__name__} needs at least one image, got an empty batch or dataset (0 images)"
    with pytest.raises(ValueError, match=re.escape(message)):
        function(model, images)


def test_per_class_error_of_no_images_is_refused(model: VAE) -> None:
    empty = ImageDataset(torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), ("0",), "one")
    with pytest.raises(ValueError, match="per_class_recon_error needs at least one image"):
        per_class_recon_error(model, empty)


@pytest.mark.parametrize("container", ["tensor", "batch"])
def test_per_class_error_needs_a_dataset_s_classes_and_says_so_before_encoding(
    model: VAE, container: str, monkeypatch
) -> None:
    dataset = ImageDataset(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), ("0",), "one")
    images = dataset.images if container == "tensor" else Batch(dataset.images, dataset.labels)
    monkeypatch.setattr(model, "encode", lambda *args: pytest.fail("encoded before the argument was checked"))
    with pytest.raises(TypeError, match="per_class_recon_error needs an ImageDataset, whose class names"):
        per_class_recon_error(model, images)


def test_active_dimensions_refuses_a_model_one_image_or_nan_and_leaves_the_model_as_it_was() -> None:
    from vae_lib.core.evaluate import active_dimensions

    model = VAE(latent_dim=8)
    with pytest.raises(TypeError, match=r"takes the posterior means, a tensor N x latent_dim \(encode_means"):
        active_dimensions(model)
    assert next(model.parameters()).dtype == torch.float32  # it was turned float64 before the error
    with pytest.raises(ValueError, match=r"two images or more, N x latent_dim, got shape \(1, 8\)"):
        active_dimensions(torch.zeros(1, 8))  # torch only warned, and every dimension was inactive
    with pytest.raises(ValueError, match="NaN or infinite"):
        active_dimensions(torch.full((5, 8), float("nan")))
    assert active_dimensions(torch.tensor([[0.0, 1.0], [0.0, -1.0]])).tolist() == [False, True]


def test_a_class_without_images_has_no_error_rather_than_zero(small_test) -> None:
    subset = small_test.subset(5)  # five images: most of the ten classes are missing
    errors = per_class_recon_error(VAE(latent_dim=2), subset)
    present = torch.bincount(subset.labels, minlength=10) > 0
    assert torch.isnan(errors[~present]).all() and bool((errors[present] > 0).all())  # 0.0, "perfect", before


def test_evaluate_s_seed_must_be_a_whole_number(model: VAE) -> None:
    images = torch.full((2, 1, 28, 28), -1.0)
    with pytest.raises(ValueError, match="seed must be a whole number of at least 0, got 1.5"):
        evaluate(model, images, seed=1.5)  # seeded as 1 before
