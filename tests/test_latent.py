"""The latent grids and strips the figures and widgets decode: which latent lands in which place."""

import numpy as np
import pytest
import torch

from vae_lib import VAE
from vae_lib.core.latent import decode_latents, dimension_label, grid_latents, traversal_images


def test_a_grid_runs_left_to_right_in_its_first_dimension_and_bottom_to_top_in_its_second() -> None:
    base = torch.tensor([0.0, 0.75, -0.5, 0.0])
    latents = grid_latents(4, 5, 2.0, dims=(3, 0), base=base)
    assert latents.shape == (5, 5, 4)
    assert latents[0, :, 3].tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]  # columns: the first dimension, rising
    assert latents[:, 0, 0].tolist() == [2.0, 1.0, 0.0, -1.0, -2.0]  # rows: the second, highest at the top
    assert (latents[..., 1] == 0.75).all() and (latents[..., 2] == -0.5).all()  # the others as `base` holds them
    assert base.tolist() == [0.0, 0.75, -0.5, 0.0]  # and `base` itself left alone


def test_a_grid_over_a_dimension_the_space_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="do not exist in a 2-D latent space"):
        grid_latents(2, 3, 1.0, dims=(0, 2))


def test_a_traversal_decodes_the_base_with_one_dimension_set_to_each_value() -> None:
    torch.manual_seed(0)
    model = VAE(latent_dim=3).eval()
    base = torch.tensor([0.5, -1.0, 0.25])
    strip = traversal_images(model, base, 1, [-2.0, 0.0, 2.0])
    by_hand = decode_latents(model, torch.tensor([[0.5, -2.0, 0.25], [0.5, 0.0, 0.25], [0.5, 2.0, 0.25]]))
    assert strip.shape == (3, 28, 28) and np.array_equal(strip, by_hand)
    assert not np.array_equal(strip[0], strip[2])


def test_dimensions_are_named_from_one() -> None:
    assert [dimension_label(dim) for dim in (0, 7)] == ["$z_{1}$", "$z_{8}$"]


def test_latents_of_another_size_are_refused_naming_both_sizes() -> None:
    model = VAE(latent_dim=8).eval()
    with pytest.raises(ValueError, match=r"has 8 dimensions, got latents of 2 numbers \(shape \(4, 2\)\)"):
        decode_latents(model, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="has 8 dimensions, got a number"):
        decode_latents(model, torch.tensor(0.5))
    assert decode_latents(model, torch.zeros(3, 8)).shape == (3, 28, 28)


def test_a_traversal_of_a_dimension_the_space_lacks_is_refused() -> None:
    model = VAE(latent_dim=2).eval()
    with pytest.raises(
        ValueError, match=r"dimension 5 does not exist in a 2-D latent space \(a whole number, 0 to 1\)"
    ):
        traversal_images(model, torch.zeros(2), 5, [0.0, 1.0])
    with pytest.raises(ValueError, match="has 2 dimensions, got latents of 8 numbers"):
        traversal_images(model, torch.zeros(8), 0, [0.0, 1.0])  # the 8-D model's base given to the 2-D model


def test_an_interpolation_between_latents_of_other_sizes_or_with_too_few_steps_is_refused() -> None:
    from vae_lib.core.latent import interpolation_latents

    with pytest.raises(ValueError, match=r"two latents of one size.*got shapes \(2,\) and \(1,\)"):
        interpolation_latents(torch.tensor([1.0, 2.0]), torch.tensor([0.0]))  # was broadcast into 10 latents
    for steps in (-1, 0, 1, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a whole number of at least 2"):
            interpolation_latents(torch.zeros(2), torch.ones(2), steps)
    line = interpolation_latents(np.array([0.0, 1.0]), [2.0, 3.0], 3)  # NumPy and lists are taken
    assert torch.equal(line, torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]))


def test_numpy_or_list_latents_are_decoded_and_a_traversal_s_wrong_dimension_or_values_are_named() -> None:
    torch.manual_seed(0)
    model = VAE(latent_dim=2).eval()
    expected = decode_latents(model, torch.tensor([[0.5, -1.0]]))
    assert np.array_equal(decode_latents(model, np.array([[0.5, -1.0]])), expected)  # AttributeError 'dim' before
    assert np.array_equal(decode_latents(model, [[0.5, -1.0]]), expected)
    assert np.array_equal(traversal_images(model, np.array([0.5, 0.0]), np.int64(1), [-1.0]), expected)
    with pytest.raises(ValueError, match=r"dimension 1.5 does not exist in a 2-D latent space \(a whole number"):
        traversal_images(model, torch.zeros(2), 1.5, [0.0])  # a raw IndexError before
    with pytest.raises(ValueError, match="values is empty"):
        traversal_images(model, torch.zeros(2), 0, [])


def test_an_interpolation_takes_rows_of_one_latent_as_encode_means_returns_them() -> None:
    from vae_lib.core.latent import interpolation_latents

    line = interpolation_latents(torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 3.0]]), 3)  # encode_means of one image
    assert torch.equal(line, torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]))
