"""Label-conditioned pictures of a conditional VAE: one z decoded as every class, an image rewritten in every class,
how much of the class a latent space keeps, and the class the conditional model's loss picks."""

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from vae_lib import VAE, Batch, reconstruct, to_model_input
from vae_lib.core.conditional import (
    chance_agreement,
    class_losses,
    decode_as_every_class,
    likeliest_classes,
    neighbour_class_agreement,
    rewrite_in_every_class,
)
from vae_lib.core.data import to_pixels
from vae_lib.core.evaluate import encode_means
from vae_lib.core.latent import decode_latents
from vae_lib.core.model import ConditionalVAE
from vae_lib.core.objective import kl_per_dimension, reconstruction_loss
from vae_lib.pictures import viz

WIDTHS = (4, 8, 8, 16)


@pytest.fixture(scope="module")
def conditional_model() -> ConditionalVAE:
    torch.manual_seed(0)
    return ConditionalVAE(latent_dim=2, widths=WIDTHS).eval()


def test_one_z_decoded_as_every_class_gives_one_image_per_class(conditional_model) -> None:
    latents = torch.tensor([[0.0, 0.0], [1.5, -0.5], [-2.0, 1.0]])
    images = decode_as_every_class(conditional_model, latents)
    assert images.shape == (3, 10, 28, 28) and images.dtype == np.uint8
    with torch.no_grad():
        expected = conditional_model.decode(latents[1:2].repeat(10, 1), torch.arange(10))
    assert np.abs(images[1].astype(int) - to_pixels(expected).astype(int)).max() <= 1
    assert all(not np.array_equal(images[0, 0], images[0, label]) for label in range(1, 10)), "the label changes it"
    assert not np.array_equal(images[0, 3], images[1, 3]), "and so does z"


def test_some_classes_only(conditional_model) -> None:
    latents = torch.tensor([[0.5, 0.5]])
    every = decode_as_every_class(conditional_model, latents)
    some = decode_as_every_class(conditional_model, latents, classes=[7, 2])
    assert some.shape == (1, 2, 28, 28)
    assert np.array_equal(some[0, 0], every[0, 7]) and np.array_equal(some[0, 1], every[0, 2])


def test_decode_latents_passes_one_label_per_latent_whatever_the_leading_shape(conditional_model) -> None:
    latents = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 4, 9], [0, 0, 5]])
    images = decode_latents(conditional_model, latents, labels)
    assert images.shape == (2, 3, 28, 28)
    single = decode_latents(conditional_model, latents[1, 2:3], labels[1, 2:3])[0]
    assert np.array_equal(images[1, 2], single)
    with pytest.raises(ValueError, match="label"):
        decode_latents(conditional_model, latents)


def test_rewriting_keeps_the_images_z_and_its_own_class_is_its_reconstruction(conditional_model, small_test) -> None:
    batch = Batch(small_test.images[:6], small_test.labels[:6])
    means, rewrites = rewrite_in_every_class(conditional_model, batch)
    assert means.shape == (6, 2) and rewrites.shape == (6, 10, 28, 28)
    assert torch.equal(means, encode_means(conditional_model, batch))
    own = rewrites[np.arange(6), batch.labels.numpy()]
    assert np.abs(own.astype(int) - to_pixels(reconstruct(conditional_model, batch)).astype(int)).max() <= 1
    other_label = Batch(batch.images, (batch.labels + 1) % 10)
    assert not torch.allclose(means, encode_means(conditional_model, other_label)), "the encoder is given the label"


def test_rewriting_needs_the_labels(conditional_model, small_test) -> None:
    with pytest.raises(ValueError, match="label"):
        rewrite_in_every_class(conditional_model, small_test.images[:3])


def test_neighbour_agreement_of_separated_and_of_mixed_classes() -> None:
    separated = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert neighbour_class_agreement(separated, labels, neighbours=2) == 1.0
    # On a line with alternating classes each point's two nearest neighbours are of the other class...
    line = torch.arange(6.0).view(-1, 1) * torch.tensor([[1.0, 0.0]])
    alternating = torch.tensor([0, 1, 0, 1, 0, 1])
    assert neighbour_class_agreement(line, alternating, neighbours=2) == pytest.approx(2 / 12)
    # ... except at the ends, whose second neighbour is two steps away, of their own class: 2 of the 12 pairs.
    assert chance_agreement(labels) == 0.5 and chance_agreement(torch.tensor([0, 1, 2, 2])) == 0.375
    with pytest.raises(ValueError, match="neighbours"):
        neighbour_class_agreement(line, alternating, neighbours=6)


def test_a_class_loss_is_the_training_loss_of_that_label_at_the_mean(conditional_model, small_test) -> None:
    images = small_test.images[:3]
    losses = class_losses(conditional_model, images, alpha=0.01)
    assert losses.shape == (3, 10)
    batch = to_model_input(images[1:2])
    label = torch.tensor([6])
    with torch.no_grad():
        mean, log_var = conditional_model.encode(batch, label)
        recon = reconstruction_loss(batch, conditional_model.decoder_output(mean, label))
        expected = recon + 0.01 * kl_per_dimension(mean, log_var).sum()
    assert losses[1, 6].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(likeliest_classes(conditional_model, images, alpha=0.01), losses.argmin(dim=1))


def test_a_bernoulli_model_s_class_loss_is_its_bernoulli_term_at_the_mean(small_test) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE(latent_dim=2, widths=WIDTHS, likelihood="bernoulli").eval()
    images = small_test.images[:2]
    losses = class_losses(model, images, alpha=0.5)
    batch, label = to_model_input(images[:1]), torch.tensor([3])
    with torch.no_grad():
        mean, log_var = model.encode(batch, label)
        recon = reconstruction_loss(batch, model.decoder_output(mean, label), "bernoulli")
        expected = recon + 0.5 * kl_per_dimension(mean, log_var).sum()
    assert recon.item() > 100  # nats summed over the pixels, not a Gaussian's 0.5 MSE
    assert losses[0, 3].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_comparison_titles_each_space_with_its_neighbour_agreement(conditional_model, small_test) -> None:
    torch.manual_seed(0)
    plain = VAE(latent_dim=2, widths=WIDTHS).eval()
    figure = viz.plot_latent_space_comparison(
        {"plain": plain, "conditional": conditional_model}, small_test, scatter_images=200
    )
    titles = [axis.get_title() for axis in figure.axes]
    agreement = neighbour_class_agreement(encode_means(plain, small_test.subset(200)), small_test.labels[:200])
    assert titles[0] == f"plain\n{agreement:.0%} of 10 nearest neighbours share the class"
    assert titles[1].startswith("conditional\n")
    assert len(figure.axes[0].collections[0].get_offsets()) == 200
    plt.close(figure)


def test_the_class_grid_and_the_rewrites_show_every_class(conditional_model, small_test) -> None:
    grid = viz.plot_class_grid(conditional_model, torch.tensor([[0.0, 0.0], [1.0, -1.0]]), small_test.class_names)
    assert len(grid.axes) == 2 * 10
    assert [axis.get_title() for axis in grid.axes[:10]] == list(small_test.class_names)
    assert np.array_equal(
        grid.axes[13].images[0].get_array(), decode_as_every_class(conditional_model, torch.tensor([[1.0, -1.0]]))[0, 3]
    )
    rewrites = viz.plot_rewrites(conditional_model, small_test.subset(3), small_test.class_names)
    assert len(rewrites.axes) == 3 * 11 and rewrites.axes[0].get_title() == "original"
    assert np.array_equal(rewrites.axes[11].images[0].get_array(), small_test.images[1].numpy())
    plt.close(grid)
    plt.close(rewrites)


def test_the_shipped_conditional_model_keeps_the_style_and_leaves_the_class_to_the_label(mnist_test) -> None:
    from vae_lib import load_model
    from vae_lib.course.shipped import shipped_checkpoint

    plain, conditional = (load_model(shipped_checkpoint(name)) for name in ("2d", "cvae-2d"))
    images = mnist_test.subset(2000)
    chance = chance_agreement(images.labels)
    assert neighbour_class_agreement(encode_means(plain, images), images.labels) > 0.6  # the plane sorts classes
    assert neighbour_class_agreement(encode_means(conditional, images), images.labels) < chance + 0.1
    guesses = likeliest_classes(conditional, mnist_test.images[:300])
    assert (guesses == mnist_test.labels[:300]).double().mean() > 0.9, "its loss reads the class of a test image"


def test_latents_of_another_size_or_labels_outside_the_classes_are_named(conditional_model) -> None:
    with pytest.raises(ValueError, match=r"latent space has 2 dimensions, got latents of 4 numbers \(shape \(3, 4\)\)"):
        decode_as_every_class(conditional_model, torch.zeros(3, 4))  # reshaped into 6 rows before
    latents = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"index in \[0, 10\) per row \(2 rows\), got shape \(2,\), values 3 to 11$"):
        decode_latents(conditional_model, latents, torch.tensor([3, 11]))
    with pytest.raises(ValueError, match=r"got shape \(2,\), values 2 to 2.5, not whole numbers$"):
        decode_latents(conditional_model, latents, torch.tensor([2.0, 2.5]))  # 2.5 was read as 2


def test_a_plain_model_given_to_the_conditional_helpers_is_named(small_test) -> None:
    plain = VAE(latent_dim=2)
    for call in (
        lambda: decode_as_every_class(plain, torch.zeros(1, 2)),
        lambda: likeliest_classes(plain, small_test.images[:3]),
    ):  # "'VAE' object has no attribute 'classes'" before
        with pytest.raises(TypeError, match=r"needs a conditional VAE, which takes a label .*, got a VAE$"):
            call()
    with pytest.raises(ValueError, match=r"needs one label per latent mean: got 5 labels for 10 means"):
        neighbour_class_agreement(torch.zeros(10, 2), small_test.labels[:5])  # blamed `neighbours` before


def test_agreement_of_nan_means_or_of_no_labels_is_refused_not_a_number() -> None:
    means, labels = torch.randn(20, 2), torch.arange(20) % 2
    assert 0 <= neighbour_class_agreement(means, labels, neighbours=3) <= 1
    means[4, 1] = float("nan")
    with pytest.raises(ValueError, match="the latent means contain NaN or infinite values"):
        neighbour_class_agreement(means, labels, neighbours=3)  # 0.45 before
    with pytest.raises(ValueError, match="chance_agreement needs at least one label"):
        chance_agreement(torch.zeros(0, dtype=torch.long))  # 0.0 before
