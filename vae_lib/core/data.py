"""Datasets as uint8 tensors in memory (MNIST, EMNIST), and the two pixel conventions.

Images stay uint8 (N x 28 x 28) until a batch is drawn; `to_model_input` turns a whole batch into
floats in [-1, 1], the range of the decoder's tanh, and `to_pixels` turns model output back into
uint8. No per-image Python work anywhere. Getting the files onto disk is vae_lib.core.download's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from vae_lib.core.download import DataError, mnist_problems, mnist_raw_dir, read_idx
from vae_lib.core.model import IMAGE_SIZE
from vae_lib.core.settings import data_dir

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
EMNIST_SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
EMNIST_SOURCE = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"


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

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, count: int) -> ImageDataset:
        """Return the first `count` images (a fixed, reproducible subset)."""
        if count < 1:
            raise ValueError(f"a subset needs at least one image, got {count}")
        return ImageDataset(self.images[:count], self.labels[:count], self.class_names, self.name)


def _load_mnist(root: Path, train: bool) -> ImageDataset:
    problems = mnist_problems(root)
    if problems:
        raise DataError(
            "MNIST is not ready: " + "; ".join(problems) + ".\n"
            "Run `python -m vae_lib prepare-data mnist` (or `make data`) to download and check it."
        )
    prefix = "train" if train else "t10k"
    images, labels = (
        read_idx(mnist_raw_dir(root) / f"{prefix}-{kind}-ubyte") for kind in ("images-idx3", "labels-idx1")
    )
    return ImageDataset(
        torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), MNIST_CLASS_NAMES, "mnist"
    )


def emnist_files(split: str, root: Path | None = None) -> list[Path]:
    """Return the four IDX files torchvision expects for an EMNIST split."""
    raw = (root or data_dir()) / "EMNIST" / "raw"
    return [
        raw / f"emnist-{split}-{part}-{kind}-ubyte"
        for part in ("train", "test")
        for kind in ("images-idx3", "labels-idx1")
    ]


def _load_emnist(root: Path, split: str, train: bool) -> ImageDataset:
    from torchvision import datasets

    if split not in EMNIST_SPLITS:
        raise DataError(f"unknown EMNIST split {split!r}; choose one of {', '.join(EMNIST_SPLITS)}")
    files = emnist_files(split, root)
    missing = [path for path in files if not path.exists()]
    if missing:
        raise DataError(
            f"EMNIST '{split}' files are missing: {', '.join(str(p) for p in missing)}.\n"
            f"Download {EMNIST_SOURCE}, unzip it, gunzip the emnist-{split}-*.gz files from its gzip/ folder "
            f"and put the four uncompressed files in {missing[0].parent}/."
        )
    try:
        dataset = datasets.EMNIST(root, split=split, train=train, download=False)
    except Exception as error:
        raise DataError(
            f"EMNIST '{split}' files under {files[0].parent} are corrupt ({error}); "
            f"replace them with fresh copies from {EMNIST_SOURCE}"
        ) from error
    # EMNIST's files store each image transposed; flip them so letters read upright.
    images = dataset.data.transpose(1, 2).contiguous()
    return ImageDataset(images, dataset.targets.long(), tuple(dataset.classes), f"emnist-{split}")


def load_dataset(name: str = "mnist", train: bool = True, root: Path | None = None) -> ImageDataset:
    """Return a dataset by name: 'mnist' or 'emnist-<split>' (byclass, bymerge, balanced, letters, digits, mnist)."""
    root = Path(root) if root is not None else data_dir()
    if name == "mnist":
        dataset = _load_mnist(root, train)
    elif name.startswith("emnist-"):
        dataset = _load_emnist(root, name.removeprefix("emnist-"), train)
    else:
        raise DataError(f"unknown dataset {name!r}; use 'mnist' or 'emnist-<split>'")
    if dataset.images.dtype != torch.uint8 or tuple(dataset.images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{name} images should be uint8 N x {IMAGE_SIZE} x {IMAGE_SIZE}, got "
            f"{dataset.images.dtype} {tuple(dataset.images.shape)}; the files are not MNIST-style IDX"
        )
    if len(dataset.labels) != len(dataset.images):
        raise DataError(
            f"{name} has {len(dataset.images)} images but {len(dataset.labels)} labels; the files do not match"
        )
    return dataset


def to_model_input(images: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """Return a float32 batch N x channels x 28 x 28 in [-1, 1].

    Accepts uint8 images in [0, 255] (N x 28 x 28 or N x C x 28 x 28), scaled as torchvision's
    ToTensor + Normalize(0.5, 0.5) would, or float images (any precision) already in [-1, 1], which are
    checked and converted to float32, the model's precision.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 3 and channels == 1:
        images = images.unsqueeze(1)
    expected = (channels, IMAGE_SIZE, IMAGE_SIZE)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        side = f"{IMAGE_SIZE} x {IMAGE_SIZE}"
        raise ValueError(
            f"images must have shape N x {channels} x {side} (or N x {side}), got {tuple(images.shape)}; "
            f"resize or crop them to {side} first"
        )
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
    return images.float()


def to_pixels(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return N x 28 x 28 uint8 pixels from uint8 images, or from model images (N x 1 x 28 x 28) in [-1, 1].

    The inverse of to_model_input: a value v in [-1, 1] becomes round((v + 1) * 127.5).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    images = images.detach().cpu()
    if images.dim() == 4:
        images = images[:, 0]
    if images.dtype == torch.uint8:
        return images.numpy()
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
