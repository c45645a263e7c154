"""A drawing made into a model input as MNIST's images were made: cropped to its ink, the longer side scaled to 20
pixels, the centre of mass moved to pixel (14, 14)."""

import numpy as np
import pytest

from vae_lib.core.drawing import CENTRE, INK_BOX, centre_of_mass, draw_strokes, drawing_to_image, ink_bounding_box

SEVEN = [[(70, 60), (210, 60), (120, 240)]]


def _box_size(image: np.ndarray) -> tuple[int, int]:
    top, bottom, left, right = ink_bounding_box(image)
    return bottom - top, right - left


def test_a_test_image_comes_back_unchanged(mnist_test) -> None:
    # MNIST's images were made this way, so the recipe leaves them as they are.
    images = mnist_test.images[:300].numpy()
    assert all(np.array_equal(drawing_to_image(image), image) for image in images)


def test_a_test_image_drawn_ten_times_larger_comes_back_close(mnist_test) -> None:
    image = mnist_test.images[0].numpy()
    large = np.kron(image, np.ones((10, 10), dtype=np.uint8))
    back = drawing_to_image(large).astype(int)
    assert np.abs(back - image).mean() < 6  # grey levels of 255: the scaling blurs edges a little
    assert np.corrcoef(back.ravel(), image.ravel())[0, 1] > 0.98


@pytest.mark.parametrize("offset", [(-80, -60), (0, 0), (50, 25)])
@pytest.mark.parametrize("scale", [0.4, 1.0])
def test_a_stroke_lands_centred_and_20_pixels_tall_wherever_and_however_large_it_was_drawn(offset, scale) -> None:
    strokes = [[(140 + (x - 140) * scale + offset[0], 140 + (y - 140) * scale + offset[1]) for x, y in SEVEN[0]]]
    image = drawing_to_image(draw_strokes(strokes, size=280, width=max(4, round(18 * scale))))
    row, column = centre_of_mass(image)
    assert abs(row - CENTRE) <= 0.5 and abs(column - CENTRE) <= 0.5
    height, width = _box_size(image)
    assert height == INK_BOX and 10 <= width < INK_BOX  # the seven is taller than wide: its height sets the scale


def test_moved_and_scaled_copies_of_one_drawing_give_nearly_the_same_image() -> None:
    reference = drawing_to_image(draw_strokes(SEVEN)).astype(int)
    moved = [[(x - 60, y + 20) for x, y in SEVEN[0]]]
    assert np.abs(drawing_to_image(draw_strokes(moved)).astype(int) - reference).max() == 0
    double = drawing_to_image(draw_strokes([[(2 * x, 2 * y) for x, y in SEVEN[0]]], size=560, width=36))
    assert np.abs(double.astype(int) - reference).mean() < 2  # of 255 grey levels; the ink averages 21


def test_a_wide_stroke_is_scaled_by_its_width_and_keeps_its_aspect_ratio() -> None:
    image = drawing_to_image(draw_strokes([[(40, 140), (240, 140)]], width=20))  # 220 x 20 pixels of ink
    assert _box_size(image) == (2, INK_BOX)


def test_an_empty_drawing_gives_a_blank_image_not_nan() -> None:
    for empty in (np.zeros((280, 280), np.uint8), np.zeros((50, 80)), np.full((28, 28), np.nan)):
        image = drawing_to_image(empty)
        assert image.dtype == np.uint8 and image.shape == (28, 28) and not image.any()
    assert centre_of_mass(np.zeros((28, 28))) == (13.5, 13.5)


def test_a_float_drawing_in_0_1_reads_as_its_uint8_version() -> None:
    drawing = draw_strokes(SEVEN)
    assert np.array_equal(drawing_to_image(drawing / 255.0), drawing_to_image(drawing))


def test_a_drawing_must_be_one_grey_image() -> None:
    with pytest.raises(ValueError, match="H x W"):
        drawing_to_image(np.zeros((280, 280, 3), np.uint8))


def test_strokes_are_drawn_in_white_with_round_ends() -> None:
    drawing = draw_strokes([[(100, 100), (180, 100)]], size=280, width=20)
    assert drawing.shape == (280, 280) and drawing.max() == 255
    assert ink_bounding_box(drawing) == (90, 111, 90, 191)  # 10 pixels of round cap beyond each end
    dot = draw_strokes([[(50, 60)]], width=10)
    assert ink_bounding_box(dot) == (55, 66, 45, 56)
