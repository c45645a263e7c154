"""A drawing made into a model input as MNIST's images were made: cropped to its ink, the longer side scaled to 20
pixels, the centre of mass moved to pixel (14, 14)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vae_lib.core.drawing import (
    CENTRE,
    INK_BOX,
    centre_of_mass,
    draw_strokes,
    drawing_to_image,
    drawing_warning,
    ink_bounding_box,
)

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


def test_strokes_turn_corners_with_round_joints_as_the_pad_s_pen_does() -> None:
    drawing = draw_strokes(SEVEN, width=18)
    rows, columns = np.mgrid[:280, :280]
    for x, y in SEVEN[0]:  # every pixel within 8 of a corner or an end is ink: no notch at the joint
        assert (drawing[(columns - x) ** 2 + (rows - y) ** 2 <= 8**2] == 255).all()


def _blob_with_a_tail() -> np.ndarray:
    """A disc with a long thin tail below it: its centre of mass is far above the middle of its ink."""
    canvas = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(canvas)
    pen.ellipse((100, 10, 180, 90), fill=255)
    pen.line([(140, 50), (140, 270)], fill=255, width=2)
    return np.asarray(canvas)


@pytest.mark.parametrize(
    ("turns", "box"),
    [(0, (11, 28, 11, 17)), (1, (11, 17, 0, 18)), (2, (0, 18, 12, 18)), (3, (12, 18, 11, 28))],
    ids=["tail cut at the bottom", "tail cut at the left", "tail cut at the top", "tail cut at the right"],
)
def test_ink_moved_past_the_edge_by_the_centring_is_cut_off(turns, box) -> None:
    # the 20-pixel patch is placed 2 or 3 pixels past the edge so that the disc's centre of mass lands at (14, 14)
    image = drawing_to_image(np.rot90(_blob_with_a_tail(), -turns))
    assert image.shape == (28, 28) and ink_bounding_box(image) == box
    edge = [image[27], image[:, 0], image[0], image[:, 27]][turns]
    assert edge.max() > 10  # the tail runs on to the edge


def test_float_drawings_are_clipped_to_0_1_before_they_become_grey_levels() -> None:
    drawing = draw_strokes(SEVEN) / 255.0
    assert np.array_equal(drawing_to_image(drawing * 3 - 1), drawing_to_image(np.clip(drawing * 3 - 1, 0, 1)))
    assert drawing_to_image(np.where(drawing > 0, 2.0, -1.0)).max() == 255  # not 510 wrapped to 254


def test_float_values_become_the_nearest_grey_level() -> None:
    drawing = draw_strokes(SEVEN)
    assert np.array_equal(drawing_to_image(drawing / 255.0 * 0.999), drawing_to_image(drawing))  # 254.7 is 255


def test_fine_detail_is_averaged_when_scaled_down_not_sampled() -> None:
    stripes = np.zeros((280, 280), np.uint8)
    stripes[40:240, 40:240:2] = 255  # 200 x 199 pixels of ink, every other column: 20 x 20 pixels of half ink
    image = drawing_to_image(stripes)
    assert ink_bounding_box(image) == (4, 24, 4, 24)
    assert (np.abs(image[4:24, 4:24].astype(int) - 128) <= 3).all()  # 0 or 255 if sampled


def test_no_test_image_and_no_digit_drawn_large_or_small_is_warned_of(mnist_test) -> None:
    images = mnist_test.images.numpy()
    assert [index for index, image in enumerate(images) if drawing_warning(image, image)] == []
    for image in images[:100]:  # drawn ten times larger, as on the pad, and prepared again
        large = np.kron(image, np.ones((10, 10), np.uint8))
        assert drawing_warning(large, drawing_to_image(large)) is None
    for scale in (0.4, 1.0):  # the seven 56 x 72 pixels of the canvas, and 140 x 180
        strokes = [[(140 + (x - 140) * scale, 140 + (y - 140) * scale) for x, y in SEVEN[0]]]
        drawing = draw_strokes(strokes)
        assert drawing_warning(drawing, drawing_to_image(drawing)) is None


@pytest.mark.parametrize(
    ("drawing", "phrase"),
    [
        (draw_strokes([[(140, 140)]]), "the ink is 19 x 19 pixels of the canvas, and is scaled up to 20"),
        (draw_strokes([[(130, 130), (150, 140)]]), "a dot or a tiny drawing becomes a blot"),
        (255 - draw_strokes(SEVEN), "47% of the image is ink, where an MNIST digit has at most 39.8%"),
        (np.full((280, 280), 255, np.uint8), "no pixel of the drawing is paper (the darkest is 255 of 255)"),
        (np.ones((280, 280)), "no pixel of the drawing is paper"),  # floats in [0, 1], as drawing_to_image takes
        (1 - draw_strokes(SEVEN) / 255, "or invert a dark-on-white drawing (1 - drawing)"),
        (draw_strokes(SEVEN) == 0, "or invert a dark-on-white drawing (1 - drawing)"),  # bools, read as 0 and 1
        (np.maximum(draw_strokes(SEVEN), 100).astype(np.uint8), "no pixel of the drawing is paper (the darkest is 100"),
        (
            (draw_strokes(SEVEN) * 0.25).astype(np.uint8),
            "the ink is faint: 0 pixels of the image are above half ink (its brightest is 63 of 255)",
        ),
        (draw_strokes([[(140, 20)], [(140, 260)]]), "the ink is faint"),  # two dots far apart: scaled to specks
    ],
    ids=[
        "a dot",
        "a short scribble",
        "dark ink on white",
        "all ink",
        "all ink, floats",
        "dark ink on white, floats",
        "dark ink on white, bools",
        "grey paper",
        "faint ink",
        "two far dots",
    ],
)
def test_a_dot_or_a_drawing_that_is_mostly_ink_is_warned_of(drawing, phrase) -> None:
    warning = drawing_warning(drawing, drawing_to_image(drawing))
    assert warning is not None and phrase in warning, warning


def test_a_clear_drawing_has_no_warning() -> None:
    blank = np.zeros((280, 280), np.uint8)
    assert drawing_warning(blank, drawing_to_image(blank)) is None


def test_the_dot_limit_follows_the_pen_s_width() -> None:
    small = draw_strokes([[(130, 120), (150, 120), (138, 150)]], width=4)  # a 7 of 24 x 34 pixels in a thin pen
    image = drawing_to_image(small)
    assert "a dot or a tiny drawing" in drawing_warning(small, image)  # judged by the pad's pen, 18 pixels
    assert drawing_warning(small, image, line_width=4) is None


def test_the_default_pen_scales_with_the_drawing_s_longer_side() -> None:
    seven = draw_strokes([[(120, 120), (160, 120), (135, 160)]])  # 58 x 58 pixels of ink: not a dot on the pad
    assert drawing_warning(seven, drawing_to_image(seven)) is None
    for wide in (np.hstack([seven, np.zeros_like(seven)]), np.vstack([seven, np.zeros_like(seven)])):
        # a canvas twice as long one way: the pad's pen at that scale is 36 pixels, and the same ink a dot
        assert "a dot or a tiny drawing" in drawing_warning(wide, drawing_to_image(wide))
