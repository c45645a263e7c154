"""A drawing turned into a model input the way MNIST's images were made, and strokes rasterised into a drawing.

LeCun et al. scaled each digit's bounding box so its longer side is 20 pixels (keeping the aspect ratio, with
anti-aliasing) and placed it in a 28 x 28 field with its centre of mass at the centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from vae_lib.core.model import IMAGE_SIZE

# The longer side of the ink's bounding box after scaling (the MNIST recipe's 20 of 28 pixels).
INK_BOX = 20
# The pixel the centre of mass is moved to, by a whole-pixel shift: MNIST's test images have theirs at row 13.99,
# column 14.01 on average, spread by 0.29 pixels, the spread a rounded shift leaves.
CENTRE = IMAGE_SIZE // 2
# Canvas values at or below this count as paper, not ink (anti-aliased edges of strokes are kept above it).
PAPER_LEVEL = 0
# The drawing pad's canvas, in pixels a side: ten per pixel of the 28 x 28 image.
PAD_SIZE = 280
# The pad's pen, in pixels of the canvas: about two pixels of the 28 x 28 image once the ink is scaled to 20 pixels.
LINE_WIDTH = 18
# A drawing whose ink fits in a square of this many pen widths a side is a dot or a scribble, which scaling to
# INK_BOX turns into a blot.
SMALLEST_DRAWING = 3
# What MNIST's 70,000 digits have of pixels above half ink: at least 15 pixels, and at most 39.8 % of the image
# (40.4 % for one training digit drawn ten times larger and prepared again by drawing_to_image).
MNIST_FEWEST_INKED = 15
MNIST_MOST_INKED = 0.398
# A drawing is warned of below LEAST_INK such pixels (faint) or above MOST_INK of the image (mostly ink).
LEAST_INK = 10
MOST_INK = 0.41


def ink_bounding_box(drawing: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return (top, bottom, left, right) of the ink, bottom and right exclusive; None for a drawing without ink."""
    ink = np.asarray(drawing) > PAPER_LEVEL
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """Return the (row, column) centre of mass of an image's values; the image's centre when it is empty."""
    weights = np.asarray(image, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return (weights.shape[0] - 1) / 2, (weights.shape[1] - 1) / 2
    rows, columns = np.arange(weights.shape[0]), np.arange(weights.shape[1])
    return float(weights.sum(axis=1) @ rows / total), float(weights.sum(axis=0) @ columns / total)


def canvas_bytes(drawing: np.ndarray) -> np.ndarray:
    """Return a drawing (H x W, uint8 or floats in [0, 1]) as uint8 values, 0 paper to 255 full ink."""
    drawing = np.asarray(drawing)
    if drawing.ndim != 2:
        raise ValueError(f"a drawing is one grey image, H x W, got shape {drawing.shape}")
    if drawing.dtype != np.uint8:
        drawing = (np.clip(np.nan_to_num(drawing.astype(np.float64)), 0, 1) * 255).round().astype(np.uint8)
    return drawing


def drawing_to_image(drawing: np.ndarray) -> np.ndarray:
    """Return a 28 x 28 uint8 image of a drawing (H x W, ink bright on dark paper, uint8 or floats in [0, 1]),
    made as MNIST's were: cropped to the ink, the longer side scaled to 20 pixels with anti-aliasing, the centre of
    mass moved to pixel (14, 14). A drawing without ink gives an all-zero image."""
    drawing = canvas_bytes(drawing)
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    box = ink_bounding_box(drawing)
    if box is None:
        return image
    top, bottom, left, right = box
    height, width = bottom - top, right - left
    scale = INK_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL sizes are (width, height)
    # Bilinear resampling averages over the whole footprint of each new pixel when it shrinks: anti-aliased.
    ink = np.asarray(Image.fromarray(drawing[top:bottom, left:right]).resize(size, Image.Resampling.BILINEAR))
    row, column = centre_of_mass(ink)
    _paste(image, ink, CENTRE - round(row), CENTRE - round(column))
    return image


def drawing_warning(
    drawing: np.ndarray, image: np.ndarray, line_width: float = LINE_WIDTH, canvas_size: int = PAD_SIZE
) -> str | None:
    """Return why the model will read a drawing unlike MNIST's digits, or None. `image` is the drawing's 28 x 28 image
    (drawing_to_image); the pen was `line_width` pixels wide on a canvas `canvas_size` pixels a side (the pad's, by
    default), scaled here to the drawing's longer side. The model reads any drawing; it has only seen full white ink on
    black paper, in strokes: no paper (every pixel inked), ink within SMALLEST_DRAWING pen widths (a dot, which scaling
    makes a blot), faint ink (fewer than LEAST_INK pixels above half ink), or more than MOST_INK of the image above half
    ink (dark ink on white, a filled area) is named."""
    as_bytes = np.asarray(drawing).dtype == np.uint8  # canvas_bytes reads any other drawing as values in [0, 1]
    drawing = canvas_bytes(drawing)
    box = ink_bounding_box(drawing)
    if box is None:
        return None
    paper = int(drawing.min())
    if paper > PAPER_LEVEL:
        return (
            f"no pixel of the drawing is paper (the darkest is {paper} of 255), so all of it is read as ink: the "
            "model has seen white ink on black paper only. Clear the paper to 0, or draw with strokes."
        )
    top, bottom, left, right = box
    pen = line_width * max(drawing.shape) / canvas_size
    if bottom - top < SMALLEST_DRAWING * pen and right - left < SMALLEST_DRAWING * pen:
        return (
            f"the ink is {right - left} x {bottom - top} pixels of the canvas, and is scaled up to {INK_BOX} of the "
            "28 x 28 image: a dot or a tiny drawing becomes a blot. Draw the digit larger, across the pad."
        )
    image = np.asarray(image)
    inked = image > 127
    inked_pixels = int(inked.sum())
    if inked_pixels < LEAST_INK:
        return (
            f"the ink is faint: {inked_pixels} pixels of the image are above half ink (its brightest is "
            f"{int(image.max())} of 255), where every MNIST digit has at least {MNIST_FEWEST_INKED}: pale ink, or "
            "specks far apart that scaling made thin. Draw in full white, with strokes across the pad."
        )
    share = float(inked.mean())
    if share > MOST_INK:
        invert = "255 - drawing" if as_bytes else "1 - drawing"
        return (
            f"{share:.0%} of the image is ink, where an MNIST digit has at most {MNIST_MOST_INKED:.1%}: the model has "
            "seen white ink on black paper only. Draw with strokes (not a filled area), or invert a dark-on-white "
            f"drawing ({invert})."
        )
    return None


def _paste(image: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Write `patch` into `image` with its top-left corner at (top, left), cutting off what falls outside."""
    rows = slice(max(top, 0), min(top + patch.shape[0], image.shape[0]))
    columns = slice(max(left, 0), min(left + patch.shape[1], image.shape[1]))
    image[rows, columns] = patch[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left]


def draw_strokes(
    strokes: Sequence[Sequence[tuple[float, float]]], size: int = PAD_SIZE, width: int = LINE_WIDTH
) -> np.ndarray:
    """Return a size x size uint8 drawing of strokes (each a list of (x, y) points on the canvas) in white ink of
    `width` pixels on black, with round ends: what the drawing pad's canvas holds after those strokes."""
    canvas = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(canvas)
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if len(points) > 1:
            pen.line(points, fill=255, width=width, joint="curve")
        radius = width / 2
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(canvas)
