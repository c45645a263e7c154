"""A drawing pad in the notebook (an anywidget: an HTML canvas drawn on with a mouse, pen or finger), and what the
models make of the drawing: the image the model sees, where it lands among the test images, its reconstruction
and, with a conditional model, its style written as every class.

The browser keeps the strokes; at the end of each stroke it sends the canvas's pixels once, and the Python side
updates every view from them (`DrawingExplorer.update`, which a test can call without a browser).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import anywidget
import ipywidgets as widgets
import numpy as np
import torch
import traitlets

from vae_lib.core.conditional import decode_as_every_class, likeliest_classes
from vae_lib.core.data import Batch, ImageDataset, check_image_dataset
from vae_lib.core.datasets import legend_title
from vae_lib.core.device import torch_threads
from vae_lib.core.drawing import LINE_WIDTH, PAD_SIZE, drawing_to_image, drawing_warning
from vae_lib.core.evaluate import encode_means
from vae_lib.core.latent import LatentProjection, decode_latents
from vae_lib.core.model import IMAGE_SIZE, VAE, ConditionalVAE
from vae_lib.pictures.explorer import ScatterCanvas, png_bytes

VIEW_SCALE = 4  # the model's input and its reconstruction are shown 112 x 112
REWRITE_SCALE = 3
GUESS = -1  # the label menu's "let the conditional model guess"

# The canvas: white ink on black paper, as the datasets store images. Pointer events cover mouse, pen and touch;
# `touch-action: none` keeps a finger from scrolling the page instead of drawing. Only the end of a stroke (or
# the clear button) sends the pixels: one message a stroke, not one a mouse move. Pixels set from Python are painted.
PAD_MODULE = """
function render({ model, el }) {
  const size = model.get("size");
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  canvas.className = "vae-pad-canvas";
  const pen = canvas.getContext("2d", { willReadFrequently: true });
  const blank = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, size, size); };
  blank();
  const clear = document.createElement("button");
  clear.textContent = "clear";
  clear.className = "vae-pad-clear jupyter-button";
  let last = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * size / box.width, (event.clientY - box.top) * size / box.height];
  };
  const line = (from, to) => {
    pen.strokeStyle = "#fff";
    pen.lineWidth = model.get("line_width");
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.beginPath();
    pen.moveTo(from[0], from[1]);
    pen.lineTo(to[0], to[1]);
    pen.stroke();
  };
  const send = (pixels) => {
    model.set("pixels", new DataView(pixels.buffer));
    model.save_changes();
  };
  const sendCanvas = () => {
    const rgba = pen.getImageData(0, 0, size, size).data;
    const grey = new Uint8Array(size * size);
    for (let index = 0; index < grey.length; index++) grey[index] = rgba[4 * index];
    send(grey);
  };
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    line(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last === null) return;
    const next = at(event);
    line(last, next);
    last = next;
  });
  const finish = () => {
    if (last === null) return;
    last = null;
    sendCanvas();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  clear.addEventListener("click", () => { blank(); send(new Uint8Array(0)); });
  model.on("change:pixels", () => {
    const pixels = model.get("pixels");
    if (!pixels || pixels.byteLength !== size * size) {
      blank();
      return;
    }
    const grey = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    const rgba = pen.createImageData(size, size);
    for (let index = 0; index < grey.length; index++) {
      rgba.data.fill(grey[index], 4 * index, 4 * index + 3);
      rgba.data[4 * index + 3] = 255;
    }
    pen.putImageData(rgba, 0, 0);
  });
  el.classList.add("vae-pad");
  el.append(canvas, clear);
}
export default { render };
"""
PAD_STYLE = """
.vae-pad { display: flex; flex-direction: column; align-items: flex-start; gap: 6px; }
.vae-pad-canvas { touch-action: none; cursor: crosshair; border: 1px solid #888; background: #000; }
"""


def _bytes_from_json(value: object, widget: object) -> bytes:
    """Return the bytes the browser sent (a memoryview of a binary buffer) as bytes."""
    return b"" if value is None else bytes(value)


def _to_pad_shape(drawing: np.ndarray, size: int) -> str:
    """Return how to make a drawing of another shape into the pad's size x size grey canvas."""
    if drawing.ndim == 3 and drawing.shape[-1] in (3, 4):
        return "a colour image: make it one grey image, drawing[..., :3].mean(axis=-1), then 0-255 bytes"
    if drawing.ndim != 2 and np.squeeze(drawing).ndim == 2:  # 1 x H x W, H x W x 1
        return "drop the dimensions of length 1, drawing.squeeze()"
    if drawing.ndim == 1 and drawing.size == size * size:
        return f"the canvas's pixels in one row: drawing.reshape({size}, {size})"
    if drawing.ndim != 2:
        return "give it one grey image, rows of pixels (draw_strokes draws one)"
    height, width = drawing.shape
    if height == width and height and size % height == 0:
        factor = size // height
        return f"enlarge it, np.kron(drawing, np.ones(({factor}, {factor}), np.uint8)), or draw it with draw_strokes"
    square = "" if height == width else "pad it with paper (0) to a square, then "
    return (
        f"{square}resize it to {size} x {size} (PIL.Image.fromarray(drawing).resize(({size}, {size}))), or draw it "
        "with draw_strokes"
    )


def _to_pad_values(drawing: np.ndarray) -> str:
    """Return how to turn a drawing of the right shape but another dtype into the pad's 0-255 bytes."""
    kind = drawing.dtype.kind
    if kind not in "biuf":
        return "give it numbers, 0 to 255, as np.uint8"
    values = drawing.astype(np.float64)
    if not np.isfinite(values).all():
        return "it holds NaN or infinite values: replace them (np.nan_to_num), then give it 0-255 as np.uint8"
    low, high = values.min(), values.max()
    if kind == "b" or (kind in "iu" and low >= 0 and high <= 1):
        return "ink or none: make the ink full, drawing.astype(np.uint8) * 255"
    if kind == "f" and low >= 0 and high <= 1:
        return "these lie in [0, 1]: scale them, (drawing * 255).round().astype(np.uint8)"
    if low >= 0 and high <= 255:
        rounded = ".round()" if kind == "f" else ""
        return f"these lie in 0-255: convert them, drawing{rounded}.astype(np.uint8)"
    return f"these lie in [{low:.4g}, {high:.4g}]: rescale them to 0-255, then .astype(np.uint8)"


class DrawingPad(anywidget.AnyWidget):
    """A canvas to draw on in white ink, with a clear button; `pixels` holds the canvas after the last stroke
    (size x size bytes, row by row), or nothing when it is clear."""

    _esm = PAD_MODULE
    _css = PAD_STYLE
    size = traitlets.Int(PAD_SIZE).tag(sync=True)
    line_width = traitlets.Int(LINE_WIDTH).tag(sync=True)
    pixels = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)

    @property
    def drawing(self) -> np.ndarray:
        """Return the canvas as size x size uint8 values (all 0 when it is clear)."""
        if not self.pixels:
            return np.zeros((self.size, self.size), dtype=np.uint8)
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(self.size, self.size)

    def show(self, drawing: np.ndarray) -> None:
        """Put a size x size uint8 drawing (an array or a tensor) on the pad, as if it had just been drawn; anything
        else is refused before the pad changes, with what to do."""
        if isinstance(drawing, torch.Tensor):
            drawing = drawing.detach().cpu()
            drawing = (drawing.float() if drawing.dtype == torch.bfloat16 else drawing).numpy()
        drawing = np.asarray(drawing)
        wanted = f"the pad shows a {self.size} x {self.size} uint8 drawing (0 = no ink, 255 = full ink), got"
        if drawing.shape != (self.size, self.size):
            raise ValueError(f"{wanted} {drawing.dtype} of shape {drawing.shape}: {_to_pad_shape(drawing, self.size)}")
        if drawing.dtype != np.uint8:
            raise ValueError(f"{wanted} {drawing.dtype} values: {_to_pad_values(drawing)}")
        self.pixels = np.ascontiguousarray(drawing).tobytes()

    def clear(self) -> None:
        """Clear the pad (the canvas too, where one is shown)."""
        self.pixels = b""


@dataclass(frozen=True)
class DrawingReading:
    """What the models made of one drawing: the 28 x 28 image they saw, its latent mean and reconstruction under the
    plain model, and with a conditional model the label it was encoded with and the drawing written as every class
    (classes x 28 x 28), and `warning`, why the models may read it badly (drawing_warning: no paper, a dot, faint
    ink, mostly ink), or None. Everything but `image` is None for a drawing without ink."""

    image: np.ndarray
    latent: np.ndarray | None = None
    reconstruction: np.ndarray | None = None
    label: int | None = None
    rewrites: np.ndarray | None = None
    warning: str | None = None


class DrawingExplorer:
    """The drawing pad beside the image the model sees, the drawing's place among the test images' latent means,
    its reconstruction and, given a conditional model, the drawing's style written as every class."""

    def __init__(
        self,
        model: VAE,
        test_data: ImageDataset,
        conditional_model: ConditionalVAE | None = None,
        scatter_images: int = 2000,
    ) -> None:
        check_image_dataset(test_data, "test_data")
        if getattr(model, "needs_labels", False):
            raise ValueError(
                "the drawing's place and reconstruction come from a plain VAE, which reads a drawing without its "
                "label: give a plain model first, and the conditional one as conditional_model="
            )
        if conditional_model is not None and not getattr(conditional_model, "needs_labels", False):
            raise ValueError(
                "conditional_model rewrites the drawing as every class, which takes a model conditioned on labels "
                f"(a ConditionalVAE), got a {type(conditional_model).__name__} that reads no labels"
            )
        self.model = model.eval()
        self.conditional_model = None if conditional_model is None else conditional_model.eval()
        self.class_names = list(test_data.class_names)
        self.class_word = legend_title(test_data)
        shown = test_data.subset(min(scatter_images, len(test_data)))
        means = encode_means(self.model, shown.images).numpy()
        self.projection = LatentProjection.fit(means)
        self.scatter = ScatterCanvas(
            self.projection(means), shown.labels.numpy(), self.class_names, self.projection.axis_labels
        )
        self.pad = DrawingPad()
        self.input_view = self._image_view("vae-drawing-input")
        self.reconstruction_view = self._image_view("vae-drawing-reconstruction")
        self.scatter_view = widgets.Image(format="png")
        self.scatter_view.add_class("vae-drawing-scatter")
        self.latent_text = widgets.HTML()
        self.latent_text.add_class("vae-drawing-latent")
        views = widgets.VBox(
            [
                self._captioned(self.input_view, "what the model sees (28 x 28)"),
                self._captioned(self.reconstruction_view, "its reconstruction"),
                self.latent_text,
            ]
        )
        rows = [widgets.HBox([self.pad, views, self.scatter_view], layout=widgets.Layout(align_items="flex-start"))]
        if self.conditional_model is not None:
            rows.append(self._build_rewrites())
        self.widget = widgets.VBox(rows)
        self.pad.observe(lambda change: self.update(), names="pixels")
        self.reading = self.update()

    def _image_view(self, css_class: str) -> widgets.Image:
        """Return an empty image view of the 28 x 28 images, shown VIEW_SCALE times larger."""
        side = f"{IMAGE_SIZE * VIEW_SCALE}px"
        view = widgets.Image(format="png", layout=widgets.Layout(width=side, height=side))
        view.add_class(css_class)
        return view

    @staticmethod
    def _captioned(view: widgets.Widget, caption: str) -> widgets.VBox:
        """Return a view with a caption under it."""
        return widgets.VBox([view, widgets.Label(caption)], layout=widgets.Layout(margin="0 12px"))

    def _build_rewrites(self) -> widgets.VBox:
        """Make the label menu and one image per class for the conditional rewrite; return them as a column."""
        self.label_choice = widgets.Dropdown(
            options=[("let the conditional model guess", GUESS)]
            + [(name, index) for index, name in enumerate(self.class_names)],
            value=GUESS,
            description=f"I drew a {self.class_word}:",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="360px"),
        )
        self.label_choice.observe(lambda change: self.update(), names="value")
        side = f"{IMAGE_SIZE * REWRITE_SCALE}px"
        self.rewrite_views = []
        cells = []
        for name in self.class_names:
            view = widgets.Image(format="png", layout=widgets.Layout(width=side, height=side))
            view.add_class("vae-drawing-rewrite")
            self.rewrite_views.append(view)
            cells.append(widgets.VBox([view, widgets.Label(name)], layout=widgets.Layout(align_items="center")))
        self.rewrite_text = widgets.HTML()
        self.rewrite_text.add_class("vae-drawing-rewrite-text")
        return widgets.VBox([widgets.HBox([self.label_choice, self.rewrite_text]), widgets.HBox(cells)])

    def update(self, drawing: np.ndarray | None = None) -> DrawingReading:
        """Redraw every view for a drawing (the pad's, unless one is given) and return what the models made of it."""
        # One drawing is too little work to share out: with two threads on two cores that a training run also uses,
        # each layer waits for a busy core (an update took 382 ms there, 28 ms on one thread).
        with torch_threads(1):
            return self._update(self.pad.drawing if drawing is None else drawing)

    def _update(self, drawing: np.ndarray) -> DrawingReading:
        """Redraw every view for a drawing and return what the models made of it."""
        image = drawing_to_image(drawing)
        self.input_view.value = png_bytes(image, VIEW_SCALE)
        if not image.any():
            self.reading = DrawingReading(image)
            self._show_empty()
            return self.reading
        pixels = torch.from_numpy(image).unsqueeze(0)
        latent = encode_means(self.model, pixels)
        reconstruction = decode_latents(self.model, latent)[0]
        point = self.projection(latent.numpy())[0]
        self.reconstruction_view.value = png_bytes(reconstruction, VIEW_SCALE)
        self.scatter_view.value = png_bytes(self.scatter.with_marker(point))
        warning = drawing_warning(drawing, image, self.pad.line_width, self.pad.size)
        self.latent_text.value = f"z = ({', '.join(f'{value:.2f}' for value in latent[0].tolist())})" + (
            f"<br><b>Unlike the digits the model has seen</b>: {html.escape(warning)}" if warning else ""
        )
        label = rewrites = None
        if self.conditional_model is not None:
            label, rewrites = self._rewrite(pixels)
        self.reading = DrawingReading(image, latent[0].numpy(), reconstruction, label, rewrites, warning)
        return self.reading

    def _rewrite(self, pixels: torch.Tensor) -> tuple[int, np.ndarray]:
        """Show the drawing written as every class: encoded with its label (the menu's, or the conditional model's
        guess), decoded with each; return the label and the images."""
        chosen = self.label_choice.value
        guessed = chosen == GUESS
        label = int(likeliest_classes(self.conditional_model, pixels)[0]) if guessed else chosen
        latent = encode_means(self.conditional_model, Batch(pixels, torch.tensor([label])))
        rewrites = decode_as_every_class(self.conditional_model, latent)[0]
        for view, rewrite in zip(self.rewrite_views, rewrites):
            view.value = png_bytes(rewrite, REWRITE_SCALE)
        how = "the conditional model reads it as" if guessed else "encoded as"
        self.rewrite_text.value = (
            f"{how} <b>{self.class_names[label]}</b>; its style, z = "
            f"({', '.join(f'{value:.2f}' for value in latent[0].tolist())}), written as every {self.class_word}:"
        )
        return label, rewrites

    def _show_empty(self) -> None:
        """Show the views of a clear pad: no marker, blank images and an invitation to draw."""
        blank = png_bytes(np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8), VIEW_SCALE)
        self.reconstruction_view.value = blank
        self.scatter_view.value = png_bytes(self.scatter.pixels)
        self.latent_text.value = f"draw a {self.class_word} on the pad: press, draw, let go"
        if self.conditional_model is not None:
            small = png_bytes(np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8), REWRITE_SCALE)
            for view in self.rewrite_views:
                view.value = small
            self.rewrite_text.value = ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
