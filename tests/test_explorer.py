import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_lib import VAE
from vae_lib.core.evaluate import encode_means
from vae_lib.pictures.explorer import IMAGE_SCALE, STRIP_STEPS, LatentExplorer


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _expected(model: VAE, latent: list[float]) -> np.ndarray:
    with torch.no_grad():
        image = model.decode(torch.tensor([latent]))[0, 0].numpy()
    return np.rint(np.clip((image + 1) / 2, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def explorer(small_test) -> LatentExplorer:
    torch.manual_seed(0)
    return LatentExplorer(VAE(latent_dim=2).eval(), small_test, scatter_images=200)


def test_moving_a_slider_redraws_the_decoded_image(explorer: LatentExplorer) -> None:
    before = explorer.decoded.value
    explorer.sliders[0].value = 1.25
    after = _pixels(explorer.decoded.value)
    assert explorer.decoded.value != before
    assert after.shape == (28 * IMAGE_SCALE, 28 * IMAGE_SCALE)
    assert np.array_equal(after[::IMAGE_SCALE, ::IMAGE_SCALE], _expected(explorer.model, [1.25, 0.0]))


def test_the_scatter_marker_follows_the_latent_point(explorer: LatentExplorer) -> None:
    explorer.set_latent([0.0, 0.0])
    at_origin = _pixels(explorer.scatter_view.value)
    explorer.set_latent([2.0, -2.0])
    moved = _pixels(explorer.scatter_view.value)
    assert at_origin.shape == moved.shape and not np.array_equal(at_origin, moved)
    changed_rows, changed_columns = np.nonzero((at_origin != moved).any(axis=2))
    assert changed_rows.size > 50  # the ring left one place and appeared at another
    scatter = explorer.scatter
    for point in ([0.0, 0.0], [2.0, -2.0]):  # each ring is centred where the axes draw that point (rows run down),
        x, y = scatter.transform.transform(np.array([point]))[0]  # or at their edge when it lies outside them
        x, y = np.clip(x, scatter.left, scatter.right), np.clip(y, scatter.bottom, scatter.top)
        near = np.hypot(changed_rows - (scatter.height - y), changed_columns - x) < 10
        assert near.sum() > 20


def test_sample_reset_and_clipping(explorer: LatentExplorer) -> None:
    explorer.generator.manual_seed(5)
    explorer.sample_prior()
    drawn = torch.randn(2, generator=torch.Generator().manual_seed(5)).clamp(-explorer.limit, explorer.limit)
    assert torch.allclose(explorer.latent, drawn, atol=1e-6)
    explorer.sample_prior()
    assert not torch.allclose(explorer.latent, drawn)  # the next draw, not the same point again
    explorer.reset()
    assert explorer.latent.tolist() == [0.0, 0.0]
    explorer.set_latent([10.0, -10.0])
    assert explorer.latent.tolist() == [explorer.limit, -explorer.limit]


def test_traversal_strip_shows_the_chosen_dimension(explorer: LatentExplorer) -> None:
    explorer.set_latent([0.5, 0.0])
    explorer.traversal_dim.value = 1
    strip = _pixels(explorer.traversal_view.value)
    assert strip.shape == (28 * 3, 28 * 3 * STRIP_STEPS)
    first = strip[::3, : 28 * 3 : 3]
    assert np.abs(first.astype(int) - _expected(explorer.model, [0.5, -explorer.limit])).max() <= 1


def test_interpolation_runs_from_one_test_image_to_the_other(explorer: LatentExplorer, small_test) -> None:
    explorer.first_index.value, explorer.second_index.value = 3, 7
    strip = explorer.interpolate(steps=10)
    assert strip.shape == (28, 280)
    start, end = encode_means(explorer.model, small_test.images[[3, 7]]).tolist()
    assert np.abs(strip[:, :28].astype(int) - _expected(explorer.model, start)).max() <= 1
    assert np.abs(strip[:, -28:].astype(int) - _expected(explorer.model, end)).max() <= 1
    explorer.generator.manual_seed(9)
    explorer.random_pair()
    expected = torch.randperm(len(small_test), generator=torch.Generator().manual_seed(9))[:2].tolist()
    assert [explorer.first_index.value, explorer.second_index.value] == expected
    pairs = set()
    for _ in range(5):
        explorer.random_pair()
        pairs.add((explorer.first_index.value, explorer.second_index.value))
    assert len(pairs) > 1 and all(first != second for first, second in pairs)


def test_the_8d_explorer_has_eight_sliders_and_a_pca_projection(small_test) -> None:
    explorer = LatentExplorer(VAE(latent_dim=8).eval(), small_test, scatter_images=200)
    assert len(explorer.sliders) == 8 and explorer.projection.axes.shape == (8, 2)
    explorer.sliders[5].value = -1.0
    assert np.array_equal(
        _pixels(explorer.decoded.value)[::IMAGE_SCALE, ::IMAGE_SCALE],
        _expected(explorer.model, [0, 0, 0, 0, 0, -1.0, 0, 0]),
    )


def test_a_conditional_model_is_refused_with_where_to_explore_it(small_test) -> None:
    from vae_lib.core.model import ConditionalVAE

    with pytest.raises(ValueError, match="a conditional VAE also needs a label: explore it with notebook 08"):
        LatentExplorer(ConditionalVAE(latent_dim=2, classes=10).eval(), small_test, scatter_images=50)


def test_set_latent_takes_one_number_per_dimension_and_refuses_others(explorer: LatentExplorer, small_test) -> None:
    before = [slider.value for slider in explorer.sliders]
    refused = (
        ([0.5], r"set_latent takes 2 numbers, one per latent dimension of this model, got shape \(1,\): a latent of"),
        ([0.1, 0.2, 0.3], r"set_latent takes 2 numbers, .* got shape \(3,\)"),  # zip kept the others silently before
        ([float("nan"), 0.0], r"set_latent takes finite numbers, got \[nan, 0.0\]: a diverged model's latent\?$"),
    )  # NaN was told "a latent of another model has another size"
    for values, message in refused:
        with pytest.raises(ValueError, match=message):
            explorer.set_latent(values)
        assert [slider.value for slider in explorer.sliders] == before
    means = encode_means(explorer.model, small_test.subset(1))  # 1 x 2, as one image's means come
    explorer.set_latent(means)
    assert [slider.value for slider in explorer.sliders] == pytest.approx(means[0].clamp(-3, 3).tolist(), abs=0.051)


def test_the_explorers_given_the_test_images_instead_of_the_dataset_say_what_to_pass(small_test) -> None:
    from vae_lib.pictures.drawing_pad import DrawingExplorer

    for make in (LatentExplorer, DrawingExplorer):
        with pytest.raises(TypeError, match=r"test_data must be an ImageDataset .* got Tensor"):
            make(VAE(latent_dim=2), small_test.images)  # AttributeError deep inside before


@pytest.mark.parametrize("limit", [float("nan"), -1.0, 0, float("inf"), "3"])
def test_the_explorer_s_limit_must_be_a_positive_number(small_test, limit) -> None:
    with pytest.raises(ValueError, match="limit must be a positive number"):  # NaN was taken, -1 met a TraitError
        LatentExplorer(VAE(latent_dim=2), small_test, limit=limit)


def test_an_explorer_of_one_test_image_is_refused_when_made(small_test) -> None:
    model = VAE(latent_dim=2, widths=(4, 8, 8, 16)).eval()
    with pytest.raises(ValueError, match=r"interpolates between two test images .*: give it two or more, got 1"):
        LatentExplorer(model, small_test.subset(1))  # random_pair() failed with "not enough values to unpack"
