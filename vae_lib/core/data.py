"""Images in memory and on disk: ImageDataset (uint8 images, labels, class names), the Batch training sees, the
IDX file format datasets ship in, and the two pixel conventions.

Images stay uint8 (N x 28 x 28) until a batch is drawn; `to_model_input` turns a whole batch into
floats in [-1, 1], the range of the decoder's tanh, and `to_pixels` turns model output back into
uint8. No per-image Python work anywhere. Which datasets there are is vae_lib.core.datasets's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from vae_lib.core.model import IMAGE_SIZE


class DataError(RuntimeError):
    """A dataset is missing, corrupt or unknown; the message says what to do."""


def idx_bytes(array: np.ndarray) -> bytes:
    """Return an array of uint8 as an IDX file (the format MNIST ships in)."""
    type_code = 0x08  # unsigned byte
    header = np.array([type_code << 8 | array.ndim, *array.shape], dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def read_idx(path: Path) -> np.ndarray:
    """Return the uint8 array an IDX file holds (what idx_bytes writes); a DataError if it is not one."""
    content = Path(path).read_bytes()
    ndim = content[3] if len(content) >= 4 else 0
    header_size = 4 + 4 * ndim
    if len(content) < header_size or content[:3] != b"\x00\x00\x08" or ndim == 0:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; prepare the data again (make data)")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">i4", count=ndim, offset=4))
    if len(content) - header_size != int(np.prod(shape)):
        raise DataError(f"{path} is cut short or too long for its shape {shape}; prepare the data again (make data)")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


class Batch(NamedTuple):
    """A batch as training and evaluation see it: images (model input, N x C x 28 x 28) and their labels (N),
    or None for images without labels."""

    images: torch.Tensor
    labels: torch.Tensor | None = None


def as_batch(batch: Batch | tuple[torch.Tensor, torch.Tensor | None] | torch.Tensor) -> Batch:
    """Return `batch` as a Batch: an (images, labels) pair as it is, a tensor alone as images without labels."""
    if isinstance(batch, torch.Tensor):
        return Batch(batch)
    if isinstance(batch, tuple) and len(batch) == 2:
        return Batch(*batch)
    raise TypeError(f"a batch is a tensor of images or an (images, labels) pair, got {type(batch).__name__}")


@dataclass(frozen=True)
class ImageDataset:
    """Images (uint8, N x 28 x 28), integer labels (N) and the name of each class."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if self.labels is None:
            raise ValueError(
                "an ImageDataset needs one label per image, got labels=None: for images without classes give "
                "torch.zeros(len(images), dtype=torch.long) and class_names=('none',)"
            )
        for field_name in ("images", "labels"):  # NumPy arrays are taken, as tensors sharing their memory
            object.__setattr__(self, field_name, torch.as_tensor(getattr(self, field_name)))
        if self.images.dim() == 0 or self.labels.shape[:1] != self.images.shape[:1]:
            raise ValueError(
                f"an ImageDataset needs one label per image, got {tuple(self.images.shape)} images and "
                f"{tuple(self.labels.shape)} labels"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, count: int) -> ImageDataset:
        """Return the first `count` images (a fixed, reproducible subset)."""
        if count < 1:
            raise ValueError(f"a subset needs at least one image, got {count}")
        return ImageDataset(self.images[:count], self.labels[:count], self.class_names, self.name)


# The seed of the one fixed binarisation of a test set: every evaluation of a Bernoulli model sees the same 0/1 images.
TEST_BINARISATION_SEED = 0


def binarise(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return uint8 images of 0 and 255: each pixel is 255 with probability grey / 255 (a sample of the Bernoulli
    whose mean is the grey image). Without a generator it draws from torch's global random state on the images'
    device, as training's dynamic binarisation does (a fresh sample for every batch)."""
    probabilities = images.float().div(255)
    noise = torch.rand(probabilities.shape, generator=generator, device=images.device)
    return (noise < probabilities).to(torch.uint8) * 255


def binarised(dataset: ImageDataset, seed: int = TEST_BINARISATION_SEED) -> ImageDataset:
    """Return a dataset's images binarised once with a fixed seed (the static binarisation of a test set)."""
    images = binarise(dataset.images.cpu(), torch.Generator().manual_seed(seed)).to(dataset.images.device)
    return ImageDataset(images, dataset.labels, dataset.class_names, dataset.name)


def check_image_dataset(given: object, name: str) -> None:
    """Raise a TypeError naming `name` unless `given` is an ImageDataset (a tensor of its images is the usual slip)."""
    if not isinstance(given, ImageDataset):
        raise TypeError(
            f"{name} must be an ImageDataset (load_dataset(...) or a subset of one), whose labels and class names go "
            f"with its images, got {type(given).__name__}: for a tensor of images, "
            "ImageDataset(images, labels, class_names, name)"
        )


def check_image_shape(images: torch.Tensor, channels: int = 1) -> None:
    """Raise a ValueError, saying what to do, unless `images` are N x channels x 28 x 28 (or N x 28 x 28 for one
    channel): the shapes to_model_input takes. Functions that cut images into batches check the whole tensor
    first, so that the message names the shape given, not a batch's."""
    given_shape = tuple(images.shape)
    shape = (given_shape[0], 1, *given_shape[1:]) if len(given_shape) == 3 and channels == 1 else given_shape
    expected = (channels, IMAGE_SIZE, IMAGE_SIZE)
    if len(shape) == 4 and shape[1:] == expected:
        return
    side = f"{IMAGE_SIZE} x {IMAGE_SIZE}"
    shapes = f"N x {channels} x {side}" + (f" (or N x {side})" if channels == 1 else "")
    if given_shape in ((IMAGE_SIZE, IMAGE_SIZE), (channels, IMAGE_SIZE, IMAGE_SIZE)):
        advice = "that is one image: give a batch of them, images.unsqueeze(0) for a batch of one"
    elif shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE) and len(shape) in (3, 4):
        given = shape[1] if len(shape) == 4 else 1
        advice = f"the model takes {channels}-channel images, these have {given}: give it images of its dataset"
    else:
        advice = f"resize or crop them to {side} first"
    raise ValueError(f"images must have shape {shapes}, got {given_shape}; {advice}")


def to_model_input(images: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """Return a float32 batch N x channels x 28 x 28 in [-1, 1].

    Accepts uint8 images in [0, 255] (N x 28 x 28 or N x C x 28 x 28), scaled as torchvision's
    ToTensor + Normalize(0.5, 0.5) would, or float images (any precision) already in [-1, 1], which are
    checked and converted to float32, the model's precision.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    check_image_shape(images, channels)
    if images.dim() == 3 and channels == 1:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images.float().div_(127.5).sub_(1.0)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values; clean the batch before passing it in")
    low, high = images.min().item(), images.max().item()
    if low < -1.0 - 1e-4 or high > 1.0 + 1e-4:
        raise ValueError(
            f"float images must lie in [-1, 1] (the decoder's tanh range), got values in [{low:.3g}, {high:.3g}]; "
            "for images in [0, 1] pass 2 * images - 1, for uint8 images pass them unchanged"
        )
    if low >= 0 < high:  # in [-1, 1] the background is -1: no pixel below 0 means images in [0, 1]
        raise ValueError(
            f"these float images have no pixel below 0 (values in [{low:.3g}, {high:.3g}]): images in [0, 1]? The "
            "model takes [-1, 1], where the background is -1: pass 2 * images - 1, or uint8 pixels unchanged"
        )
    return images.float()


def to_pixels(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return N x 28 x 28 uint8 pixels from uint8 images, or from model images (N x 1 x 28 x 28) in [-1, 1].

    The inverse of to_model_input: a value v in [-1, 1] becomes round((v + 1) * 127.5).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    images = images.detach().cpu()
    if images.dim() == 4 and images.shape[1] != 1 and images.shape[-1] in (1, 3) and images.shape[1] == IMAGE_SIZE:
        raise ValueError(
            f"to_pixels draws grey images (N x 1 x 28 x 28 or N x 28 x 28), got {tuple(images.shape)}, channels last "
            "as matplotlib and PIL keep them: "
            + ("take the channel out, images[..., 0]" if images.shape[-1] == 1 else "average them, images.mean(dim=-1)")
        )
    if images.dim() == 4 and images.shape[1] != 1:
        raise ValueError(
            f"to_pixels draws grey images (N x 1 x 28 x 28 or N x 28 x 28), got {images.shape[1]} channels: draw one "
            "channel, or average them (images.mean(dim=1))"
        )
    if images.dim() == 4:
        images = images[:, 0]
    if images.dtype == torch.uint8:
        return images.numpy()
    if images.is_floating_point() and not torch.isfinite(images).all():
        spoilt = int((~torch.isfinite(images)).flatten(1).any(dim=1).sum()) if images.dim() > 2 else 1
        raise ValueError(
            f"{spoilt} of the images to draw hold NaN or infinite values (a diverged model's output?), which would "
            "be drawn as black pixels: draw those of a model that trains, or clean the images first"
        )
    if images.numel() and images.max().item() > 1.0 + 1e-3:  # model images are tanh's [-1, 1]
        raise ValueError(
            f"float images to draw must lie in [-1, 1], got values up to {images.max().item():.4g}: pass uint8 "
            "pixels (0-255) as uint8, and images in [0, 1] as 2 * images - 1"
        )
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
