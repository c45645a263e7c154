"""An ipywidgets explorer for a trained VAE's latent space.

One slider per latent dimension drives the decoded image; beside it the test images' latent scatter
with a marker at the current point, a traversal strip along a chosen dimension, interpolation between
two test images, and buttons to sample from the prior or reset. An update decodes one latent and a
strip and re-encodes three small PNGs; the scatter is drawn once and only the marker moves.
"""

from __future__ import annotations

import io
import math

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from vae_lib.core.data import ImageDataset, check_image_dataset
from vae_lib.core.evaluate import encode_means
from vae_lib.core.latent import LatentProjection, decode_latents, interpolation_images, traversal_images
from vae_lib.core.model import IMAGE_SIZE, VAE
from vae_lib.pictures.viz import draw_class_scatter

IMAGE_SCALE = 8  # the decoded 28 x 28 image is shown 224 x 224, each pixel an 8 x 8 block
STRIP_STEPS = 9


def png_bytes(pixels: np.ndarray, scale: int = 1) -> bytes:
    """Return PNG bytes of a uint8 grey (H x W) or RGB (H x W x 3) array, each pixel repeated `scale` times."""
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ScatterCanvas:
    """The latent scatter drawn once with matplotlib; a marker is then stamped into a copy of its pixels."""

    def __init__(
        self, points: np.ndarray, labels: np.ndarray, class_names: list[str], axis_labels: tuple[str, str]
    ) -> None:
        figure = Figure(figsize=(4.4, 4.0), dpi=100)
        canvas = FigureCanvasAgg(figure)
        axis = figure.add_subplot()
        handles = draw_class_scatter(axis, points, labels, class_names)
        axis.set(xlabel=axis_labels[0], ylabel=axis_labels[1], title="test images in latent space")
        axis.legend(handles=handles, fontsize=6, loc="upper right", ncol=2, framealpha=0.7)
        figure.tight_layout()
        canvas.draw()
        self.pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        self.transform = axis.transData
        self.height = self.pixels.shape[0]
        (self.left, self.bottom), (self.right, self.top) = axis.bbox.get_points()

    def with_marker(self, point: np.ndarray) -> np.ndarray:
        """Return the scatter's pixels with a ring and cross at `point` (data coordinates).

        A point outside the axes is drawn at their edge, so the marker never disappears.
        """
        x, y = self.transform.transform(point.reshape(1, 2))[0]
        x, y = np.clip(x, self.left, self.right), np.clip(y, self.bottom, self.top)
        column, row = int(round(x)), int(round(self.height - y))
        pixels = self.pixels.copy()
        rows, columns = np.ogrid[: pixels.shape[0], : pixels.shape[1]]
        distance = np.hypot(rows - row, columns - column)
        pixels[(distance >= 6) & (distance <= 9)] = (0, 0, 0)
        pixels[(distance >= 4.5) & (distance < 6)] = (255, 255, 255)
        cross = (distance < 4.5) & ((rows == row) | (columns == column))
        pixels[cross] = (0, 0, 0)
        return pixels


class LatentExplorer:
    """Sliders over a trained VAE's latent space, with the decoded image, scatter, traversal and interpolation."""

    def __init__(
        self,
        model: VAE,
        test_data: ImageDataset,
        limit: float = 3.0,
        scatter_images: int = 2000,
        seed: int = 0,
    ) -> None:
        check_image_dataset(test_data, "test_data")
        if len(test_data) < 2:
            raise ValueError(
                f"the explorer interpolates between two test images and shows where they lie: give it two or more, "
                f"got {len(test_data)}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < math.inf:
            raise ValueError(f"limit must be a positive number (how far the sliders reach from 0), got {limit!r}")
        if model.needs_labels:
            raise ValueError(
                "the explorer decodes a latent alone, and a conditional VAE also needs a label: explore it with "
                "notebook 08's drawing pad, or decode with vae_lib.core.latent.decode_latents(model, latents, labels)"
            )
        self.model = model.eval()
        self.test_data = test_data
        self.limit = limit
        self.generator = torch.Generator().manual_seed(seed)
        self.test_means = encode_means(model, test_data.subset(scatter_images))
        means = self.test_means.numpy()
        self.projection = LatentProjection.fit(means)
        self.scatter = ScatterCanvas(
            self.projection(means),
            test_data.labels[:scatter_images].numpy(),
            list(test_data.class_names),
            self.projection.axis_labels,
        )
        self._holding = False
        controls = self._build_sliders(model.latent_dim)
        side = f"{IMAGE_SIZE * IMAGE_SCALE}px"
        self.decoded = widgets.Image(format="png", layout=widgets.Layout(width=side, height=side, margin="0 12px"))
        self.decoded.add_class("vae-decoded")
        self.scatter_view = widgets.Image(format="png")
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [controls, self.decoded, self.scatter_view], layout=widgets.Layout(align_items="flex-start")
                ),
                self._build_traversal(model.latent_dim),
                *self._build_interpolation(len(test_data)),
            ]
        )
        self.update()
        self.interpolate()

    def _build_sliders(self, latent_dim: int) -> widgets.VBox:
        """Make one slider per latent dimension and the sample and reset buttons; return them as a column."""
        self.sliders = [
            widgets.FloatSlider(
                value=0.0,
                min=-self.limit,
                max=self.limit,
                step=0.05,
                description=f"z{dim + 1}",
                continuous_update=True,
                readout_format=".2f",
                layout=widgets.Layout(width="320px"),
            )
            for dim in range(latent_dim)
        ]
        for dim, slider in enumerate(self.sliders):
            slider.add_class(f"vae-slider-z{dim + 1}")
            slider.observe(self._on_slider, names="value")
        sample_button = widgets.Button(
            description="sample from prior", icon="dice", button_style="info", layout=widgets.Layout(width="160px")
        )
        reset_button = widgets.Button(description="reset", icon="undo", layout=widgets.Layout(width="100px"))
        sample_button.on_click(lambda _: self.sample_prior())
        reset_button.on_click(lambda _: self.reset())
        return widgets.VBox([*self.sliders, widgets.HBox([sample_button, reset_button])])

    def _build_traversal(self, latent_dim: int) -> widgets.HBox:
        """Make the traversal's dimension menu and strip; return them as a row."""
        self.traversal_dim = widgets.Dropdown(
            options=[(f"z{d + 1}", d) for d in range(latent_dim)],
            value=0,
            description="traverse",
            layout=widgets.Layout(width="180px"),
        )
        self.traversal_dim.observe(lambda change: self.update(), names="value")
        self.traversal_view = widgets.Image(format="png")
        return widgets.HBox([self.traversal_dim, self.traversal_view])

    def _build_interpolation(self, image_count: int) -> list[widgets.Widget]:
        """Make the interpolation's image choices, buttons and strip; return the row of controls and the strip."""
        self.first_index = widgets.BoundedIntText(
            value=0, min=0, max=image_count - 1, description="from image", layout=widgets.Layout(width="180px")
        )
        self.second_index = widgets.BoundedIntText(
            value=1, min=0, max=image_count - 1, description="to image", layout=widgets.Layout(width="180px")
        )
        interpolate_button = widgets.Button(description="interpolate", icon="arrows-h")
        random_pair_button = widgets.Button(description="random pair", icon="random")
        interpolate_button.on_click(lambda _: self.interpolate())
        random_pair_button.on_click(lambda _: self.random_pair())
        self.interpolation_view = widgets.Image(format="png")
        row = widgets.HBox([self.first_index, self.second_index, interpolate_button, random_pair_button])
        return [row, self.interpolation_view]

    @property
    def latent(self) -> torch.Tensor:
        """Return the current latent vector (the slider values)."""
        return torch.tensor([slider.value for slider in self.sliders], dtype=torch.float32)

    def set_latent(self, values: torch.Tensor | np.ndarray | list[float]) -> None:
        """Move every slider at once (clipped to the slider range) and update the views once; `values` holds one
        number per latent dimension (a 1 x latent_dim row, as encode_means gives one image's, is taken too)."""
        values = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
        values = values.reshape(-1) if values.ndim == 2 and len(values) == 1 else values
        if values.shape != (len(self.sliders),):
            raise ValueError(
                f"set_latent takes {len(self.sliders)} numbers, one per latent dimension of this model, got shape "
                f"{values.shape}: a latent of another model has another size"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"set_latent takes finite numbers, got {values.tolist()}: a diverged model's latent?")
        self._holding = True
        try:
            for slider, value in zip(self.sliders, values, strict=True):
                slider.value = float(np.clip(value, -self.limit, self.limit))
        finally:
            self._holding = False
        self.update()

    def _on_slider(self, change: dict) -> None:
        if not self._holding:
            self.update()

    def decode_current(self) -> np.ndarray:
        """Return the decoded image for the current sliders as 28 x 28 uint8."""
        return decode_latents(self.model, self.latent.view(1, -1))[0]

    def update(self) -> None:
        """Redraw the decoded image, the scatter marker and the traversal strip for the current sliders."""
        latent = self.latent
        self.decoded.value = png_bytes(self.decode_current(), IMAGE_SCALE)
        self.scatter_view.value = png_bytes(self.scatter.with_marker(self.projection(latent.numpy()[None])[0]))
        values = np.linspace(-self.limit, self.limit, STRIP_STEPS)
        strip = traversal_images(self.model, latent, self.traversal_dim.value, values)
        self.traversal_view.value = png_bytes(np.concatenate(list(strip), axis=1), 3)

    def sample_prior(self) -> None:
        """Set the sliders to a latent drawn from the prior N(0, I)."""
        self.set_latent(torch.randn(self.model.latent_dim, generator=self.generator))

    def reset(self) -> None:
        """Set every slider back to 0, the prior's mean."""
        self.set_latent(torch.zeros(self.model.latent_dim))

    def random_pair(self) -> None:
        """Pick two random test images and interpolate between them."""
        first, second = torch.randperm(len(self.test_data), generator=self.generator)[:2].tolist()
        self.first_index.value, self.second_index.value = first, second
        self.interpolate()

    def interpolate(self, steps: int = 10) -> np.ndarray:
        """Show (and return) images decoded along the straight line between two test images' latent means."""
        pair = self.test_data.images[[self.first_index.value, self.second_index.value]]
        start, end = encode_means(self.model, pair)
        strip = np.concatenate(list(interpolation_images(self.model, start, end, steps)), axis=1)
        originals = pair.numpy()
        gap = np.full((IMAGE_SIZE, 6), 255, np.uint8)
        row = np.concatenate([originals[0], gap, strip, gap, originals[1]], axis=1)
        self.interpolation_view.value = png_bytes(row, 3)
        return strip

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
