"""The drawing pad, driven from Python as the browser drives it: pixels arrive at a stroke's end and every view
updates from them (tests/test_browser.py draws on it in JupyterLab)."""

import inspect
import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_lib import VAE, Batch
from vae_lib.core.conditional import decode_as_every_class, likeliest_classes
from vae_lib.core.data import to_pixels
from vae_lib.core.datasets import legend_title
from vae_lib.core.drawing import PAD_SIZE, draw_strokes, drawing_to_image
from vae_lib.core.evaluate import encode_means, reconstruct
from vae_lib.core.latent import LatentProjection
from vae_lib.core.model import ConditionalVAE
from vae_lib.pictures.drawing_pad import GUESS, REWRITE_SCALE, VIEW_SCALE, DrawingExplorer, DrawingPad
from vae_lib.pictures.explorer import ScatterCanvas

WIDTHS = (4, 8, 8, 16)
SEVEN = draw_strokes([[(70, 60), (210, 60), (120, 240)]])
ZERO = draw_strokes([[(140, 40), (80, 80), (70, 150), (90, 220), (140, 240), (190, 220), (210, 150), (140, 40)]])


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.fixture(scope="module")
def explorer(small_test) -> DrawingExplorer:
    torch.manual_seed(0)
    plain = VAE(latent_dim=2, widths=WIDTHS).eval()
    conditional = ConditionalVAE(latent_dim=2, widths=WIDTHS).eval()
    return DrawingExplorer(plain, small_test, conditional, scatter_images=200)


def test_the_pad_holds_what_the_browser_sent_and_clears() -> None:
    pad = DrawingPad()
    assert pad.drawing.shape == (PAD_SIZE, PAD_SIZE) and not pad.drawing.any()
    pad.show(SEVEN)
    assert np.array_equal(pad.drawing, SEVEN)
    # The browser's message carries a binary buffer: it arrives as a memoryview and is kept as bytes.
    pad.set_state({"pixels": memoryview(ZERO.tobytes())})
    assert np.array_equal(pad.drawing, ZERO)
    pad.clear()
    assert pad.pixels == b"" and not pad.drawing.any()


def test_a_stroke_updates_the_input_the_point_and_the_reconstruction(explorer: DrawingExplorer) -> None:
    explorer.pad.clear()
    blank_scatter = _pixels(explorer.scatter_view.value)
    threads = torch.get_num_threads()
    explorer.pad.show(SEVEN)
    assert torch.get_num_threads() == threads, "the update runs on one thread and gives the others back"
    reading = explorer.reading
    image = drawing_to_image(SEVEN)
    assert np.array_equal(reading.image, image)
    assert np.array_equal(_pixels(explorer.input_view.value)[::VIEW_SCALE, ::VIEW_SCALE], image)
    latent = encode_means(explorer.model, torch.from_numpy(image)[None])[0]
    assert np.allclose(reading.latent, latent.numpy())
    assert explorer.latent_text.value == f"z = ({latent[0]:.2f}, {latent[1]:.2f})"
    expected = to_pixels(reconstruct(explorer.model, torch.from_numpy(image)[None]))[0]
    assert np.abs(reading.reconstruction.astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(
        _pixels(explorer.reconstruction_view.value)[::VIEW_SCALE, ::VIEW_SCALE], reading.reconstruction
    )
    marked = _pixels(explorer.scatter_view.value)
    assert (marked != blank_scatter).any(axis=2).sum() > 50  # the ring and cross of the marker

    explorer.pad.show(ZERO)
    assert not np.allclose(explorer.reading.latent, latent.numpy()), "another drawing lands elsewhere"
    assert not np.array_equal(_pixels(explorer.scatter_view.value), marked)


def test_the_conditional_rewrite_shows_the_drawing_as_every_class(explorer: DrawingExplorer) -> None:
    explorer.label_choice.value = GUESS
    explorer.pad.show(SEVEN)
    pixels = torch.from_numpy(drawing_to_image(SEVEN))[None]
    guess = int(likeliest_classes(explorer.conditional_model, pixels)[0])
    reading = explorer.reading
    assert reading.label == guess and reading.rewrites.shape == (10, 28, 28)
    style = encode_means(explorer.conditional_model, Batch(pixels, torch.tensor([guess])))
    assert np.array_equal(reading.rewrites, decode_as_every_class(explorer.conditional_model, style)[0])
    assert len(explorer.rewrite_views) == 10
    shown = [_pixels(view.value)[::REWRITE_SCALE, ::REWRITE_SCALE] for view in explorer.rewrite_views]
    assert all(np.array_equal(image, rewrite) for image, rewrite in zip(shown, reading.rewrites))
    assert "reads it as" in explorer.rewrite_text.value

    explorer.label_choice.value = (guess + 3) % 10  # the learner says which class it is
    assert explorer.reading.label == (guess + 3) % 10 and "encoded as" in explorer.rewrite_text.value
    assert not np.array_equal(explorer.reading.rewrites, reading.rewrites)
    explorer.label_choice.value = GUESS


def test_a_clear_pad_shows_no_point_and_invites_a_drawing(explorer: DrawingExplorer, small_test) -> None:
    explorer.pad.show(SEVEN)
    explorer.pad.clear()
    reading = explorer.reading
    assert reading.latent is None and reading.rewrites is None and not reading.image.any()
    assert np.array_equal(_pixels(explorer.scatter_view.value), explorer.scatter.pixels)
    assert not _pixels(explorer.reconstruction_view.value).any()
    assert explorer.latent_text.value.startswith(f"draw a {legend_title(small_test)} on the pad")
    assert all(not _pixels(view.value).any() for view in explorer.rewrite_views)


def test_without_a_conditional_model_there_is_no_rewrite(small_test) -> None:
    torch.manual_seed(0)
    explorer = DrawingExplorer(VAE(latent_dim=8, widths=WIDTHS).eval(), small_test, scatter_images=200)
    reading = explorer.update(ZERO)
    assert reading.latent.shape == (8,) and reading.label is None and reading.rewrites is None
    assert explorer.projection.axes.shape == (8, 2)  # eight dimensions are shown in the plane of their PCA
    assert len(explorer.widget.children) == 1


def test_the_pad_s_canvas_and_pen_are_what_draw_strokes_draws_with() -> None:
    defaults = inspect.signature(draw_strokes).parameters
    pad = DrawingPad()
    assert (pad.size, pad.line_width) == (defaults["size"].default, defaults["width"].default) == (280, 18)


def test_the_scatter_shows_the_first_test_images_in_their_classes(explorer: DrawingExplorer, small_test) -> None:
    shown = small_test.subset(200)
    means = encode_means(explorer.model, shown.images).numpy()
    projection = LatentProjection.fit(means)
    expected = ScatterCanvas(projection(means), shown.labels.numpy(), list(shown.class_names), projection.axis_labels)
    assert np.array_equal(explorer.scatter.pixels, expected.pixels)


def test_the_marker_is_drawn_at_the_drawing_s_latent_mean(explorer: DrawingExplorer) -> None:
    for drawing in (SEVEN, ZERO):
        explorer.pad.show(drawing)
        point = explorer.projection(explorer.reading.latent[None])[0]
        assert np.array_equal(_pixels(explorer.scatter_view.value), explorer.scatter.with_marker(point))


def test_the_pad_refuses_a_drawing_of_another_size_or_type_and_keeps_what_it_holds() -> None:
    pad = DrawingPad()
    pad.show(SEVEN)
    for drawing in (SEVEN[::10, ::10], SEVEN.astype(np.float32) / 255):  # a 28 x 28 image; a float drawing
        with pytest.raises(ValueError, match=rf"the pad shows a {PAD_SIZE} x {PAD_SIZE} uint8 drawing"):
            pad.show(drawing)  # a reshape error, then every update failed until clear(), before
        assert np.array_equal(pad.drawing, SEVEN)


@pytest.mark.parametrize(
    ("drawing", "advice"),
    [
        (SEVEN[::10, ::10], "enlarge it, np.kron(drawing, np.ones((10, 10), np.uint8))"),
        (np.stack([SEVEN] * 3, axis=-1), "a colour image: make it one grey image"),
        (SEVEN[None], "drop the dimensions of length 1, drawing.squeeze()"),
        (np.kron(SEVEN, np.ones((2, 2), np.uint8)), "resize it to 280 x 280"),
        ((SEVEN > 127).astype(np.int64), "ink or none: make the ink full, drawing.astype(np.uint8) * 255"),
        (SEVEN[:, :200], "pad it with paper (0) to a square, then resize it to 280 x 280"),
        (SEVEN.ravel(), "the canvas's pixels in one row: drawing.reshape(280, 280)"),
        (np.where(SEVEN > 0, np.nan, 0.0), "it holds NaN or infinite values: replace them (np.nan_to_num)"),
        (SEVEN.astype(np.float32) / 255, "these lie in [0, 1]: scale them, (drawing * 255).round().astype(np.uint8)"),
        (SEVEN.astype(np.float64), "these lie in 0-255: convert them, drawing.round().astype(np.uint8)"),
        (SEVEN.astype(np.int64), "these lie in 0-255: convert them, drawing.astype(np.uint8)"),
        (SEVEN > 0, "ink or none: make the ink full, drawing.astype(np.uint8) * 255"),
        (SEVEN.astype(np.float32) * 2 - 255, "these lie in [-255, 255]: rescale them to 0-255"),
    ],
    ids=[
        "28 x 28",
        "colour",
        "1 x 280 x 280",
        "560 x 560",
        "int64 0 and 1",
        "280 x 200",
        "one row",
        "NaN",
        "floats in [0, 1]",
        "floats 0-255",
        "int64",
        "bool",
        "floats -255 to 255",
    ],
)
def test_the_pad_says_how_to_make_a_drawing_it_refuses_into_its_bytes(drawing, advice: str) -> None:
    pad = DrawingPad()
    with pytest.raises(ValueError, match="the pad shows a") as refusal:
        pad.show(drawing)
    assert advice in str(refusal.value)
    if drawing.shape == (PAD_SIZE, PAD_SIZE):  # the size is right: no advice to enlarge it
        assert "enlarge" not in str(refusal.value)


def test_a_drawing_unlike_the_digits_is_read_with_a_warning_shown_beside_z(explorer: DrawingExplorer) -> None:
    explorer.pad.show(255 - SEVEN)  # dark ink on white
    reading = explorer.reading
    assert reading.latent is not None and "of the image is ink" in reading.warning
    assert "<br><b>Unlike the digits the model has seen</b>: " in explorer.latent_text.value
    assert "(255 - drawing)" in explorer.latent_text.value
    explorer.pad.show(SEVEN)
    assert explorer.reading.warning is None and "Unlike" not in explorer.latent_text.value


def test_the_pad_takes_a_torch_tensor_and_refuses_one_that_is_not_bytes_with_advice() -> None:
    pad = DrawingPad()
    pad.show(torch.from_numpy(SEVEN.copy()))
    assert np.array_equal(pad.drawing, SEVEN)
    with pytest.raises(ValueError, match=r"these lie in \[0, 1\]: scale them"):
        pad.show(torch.tensor(SEVEN / 255.0, requires_grad=True))  # a RuntimeError of numpy's conversion, before


def test_a_drawing_given_to_update_is_judged_by_the_pad_s_pen_at_its_scale(small_test) -> None:
    torch.manual_seed(0)
    explorer = DrawingExplorer(VAE(latent_dim=2, widths=WIDTHS).eval(), small_test, scatter_images=200)
    explorer.pad.line_width = 6  # a thin pen: a small 7 is a digit, not a dot
    small_seven = draw_strokes([[(125, 120), (155, 120), (135, 152)]], width=6)
    assert explorer.update(small_seven).warning is None
    explorer.pad.show(small_seven)
    assert explorer.reading.warning is None
    explorer.pad.line_width = 18  # the default pen: the same ink is a dot
    assert "a dot or a tiny drawing" in explorer.update(small_seven).warning


def test_the_explorer_s_two_models_are_each_of_the_kind_its_views_read(small_test) -> None:
    plain, conditional = VAE(latent_dim=2, widths=WIDTHS).eval(), ConditionalVAE(latent_dim=2, widths=WIDTHS).eval()
    with pytest.raises(ValueError, match=r"come from a plain VAE, .* the conditional one as conditional_model="):
        DrawingExplorer(conditional, small_test, scatter_images=20)  # "pass an ImageDataset or a Batch" before
    with pytest.raises(ValueError, match=r"takes a model conditioned on labels \(a ConditionalVAE\), got a VAE that"):
        DrawingExplorer(plain, small_test, plain, scatter_images=20)  # accepted, and the first stroke failed
