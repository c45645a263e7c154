"""The dataset registry: one entry per dataset, naming its IDX files and their checksums, its classes, how a
legend titles them, and how to get the files. Every other module asks here; adding a dataset of 28 x 28 grey
images is one entry in DATASETS.
"""

from __future__ import annotations

import errno
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vae_lib.core.data import DataError, ImageDataset, read_idx
from vae_lib.core.download import CORRUPT_SUFFIX, download_mnist, md5_of, move_aside
from vae_lib.core.model import IMAGE_SIZE
from vae_lib.core.settings import data_dir

Report = Callable[[str], None]
SPLITS = ("train", "test")
CORRUPT = "is corrupt (md5 differs from the official file)"


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: its four IDX files under data/<folder>/, their md5 (None: not checked), its class names, the
    title of a legend of its classes, how to prepare the files (None: the user places them) and what to do
    when they are missing."""

    name: str
    title: str
    folder: str
    files: dict[str, tuple[str, str]]  # split -> (images file, labels file)
    class_names: tuple[str, ...]
    legend_title: str
    how_to_get: str
    md5: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path, Report | None], None] | None = None
    transposed: bool = False  # files that store each image transposed (EMNIST) are turned upright on loading

    def paths(self, root: Path | None = None) -> list[Path]:
        """Return the dataset's four files: train images, train labels, test images, test labels."""
        folder = (root or data_dir()) / self.folder
        return [folder / name for split in SPLITS for name in self.files[split]]

    def corrupt_paths(self, root: Path | None = None) -> list[Path]:
        """Return the files on disk whose md5 differs from the official file's (a file without an md5 is not
        checked here; reading it checks its format)."""
        return [
            path
            for path in self.paths(root)
            if path.name in self.md5 and path.is_file() and md5_of(path) != self.md5[path.name]
        ]

    def obstacles(self, root: Path | None = None) -> list[str]:
        """Return what stands where the dataset's files belong (a file where one of its folders goes, a folder where
        one of its files goes): nothing can be downloaded or read there until it is moved out of the way."""
        root = root or data_dir()
        folders = [root]
        for part in Path(self.folder).parts:  # MNIST/raw: root, root/MNIST, root/MNIST/raw
            folders.append(folders[-1] / part)
        for folder in folders:
            if folder.exists() and not folder.is_dir():
                return [f"{folder} is a file where a folder of the dataset belongs: move it out of the way"]
        return [
            f"{path} is a folder where a file of the dataset belongs: move it out of the way"
            for path in self.paths(root)
            if path.exists() and not path.is_file()
        ]

    def problems(self, root: Path | None = None) -> list[str]:
        """Return what is wrong with the files on disk (empty when all four are there and match their md5)."""
        obstacles = self.obstacles(root)
        if obstacles:
            return obstacles
        corrupt = self.corrupt_paths(root)
        return [
            f"{path} {CORRUPT}" if path in corrupt else f"{path} is missing"
            for path in self.paths(root)
            if path in corrupt or not path.exists()
        ]


MNIST = DatasetEntry(
    name="mnist",
    title="MNIST",
    folder="MNIST/raw",
    files={
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    },
    # md5 of the official uncompressed IDX files (torchvision.datasets.MNIST reads them from MNIST/raw/ too).
    md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    class_names=tuple(string.digits),
    legend_title="digit",
    how_to_get=(
        "Run `python -m vae_lib prepare-data mnist` (or `make data`) to download and check it; it moves a corrupt "
        f"file aside (renamed <name>{CORRUPT_SUFFIX}) and fetches it again."
    ),
    prepare=download_mnist,
)

EMNIST_SOURCE = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
# EMNIST's class names per split, in label order (as torchvision names them); bymerge and balanced merge the
# letters whose upper and lower case look alike.
_MERGED_LETTERS = set("cijklmopsuvwxyz")
EMNIST_CLASSES = {
    "byclass": tuple(sorted(string.digits + string.ascii_letters)),
    "bymerge": tuple(sorted(set(string.digits + string.ascii_letters) - _MERGED_LETTERS)),
    "balanced": tuple(sorted(set(string.digits + string.ascii_letters) - _MERGED_LETTERS)),
    "letters": ("N/A", *string.ascii_lowercase),
    "digits": tuple(string.digits),
    "mnist": tuple(string.digits),
}


def _emnist_entry(split: str, class_names: tuple[str, ...]) -> DatasetEntry:
    """Return the entry of one EMNIST split, whose files the user downloads and places."""
    return DatasetEntry(
        name=f"emnist-{split}",
        title=f"EMNIST {split}",
        folder="EMNIST/raw",
        files={
            part: tuple(f"emnist-{split}-{part}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1"))
            for part in SPLITS
        },
        class_names=class_names,
        legend_title="digit" if split in ("digits", "mnist") else "character",
        how_to_get=(
            f"Download {EMNIST_SOURCE}, unzip it, gunzip the emnist-{split}-*.gz files from its gzip/ folder "
            "and put the four uncompressed files in {folder}/."
        ),
        transposed=True,
    )


DATASETS: dict[str, DatasetEntry] = {MNIST.name: MNIST} | {
    entry.name: entry for entry in (_emnist_entry(split, names) for split, names in EMNIST_CLASSES.items())
}
DEFAULT_DATASET = MNIST.name


def dataset_entry(name: str) -> DatasetEntry:
    """Return the registry's entry for `name`, or a DataError listing the datasets there are."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def legend_title(dataset: ImageDataset) -> str:
    """Return what a legend of a dataset's classes is titled ('digit' for MNIST); 'class' for an unregistered one."""
    return DATASETS[dataset.name].legend_title if dataset.name in DATASETS else "class"


def load_dataset(name: str = DEFAULT_DATASET, train: bool = True, root: Path | None = None) -> ImageDataset:
    """Return a registered dataset's training or test split, its files checked first."""
    entry = dataset_entry(name)
    root = Path(root) if root is not None else data_dir()
    problems = entry.problems(root)
    if problems:
        folder = root / entry.folder
        raise DataError(
            f"{entry.title} is not ready: " + "; ".join(problems) + ".\n" + entry.how_to_get.format(folder=folder)
        )
    images_path, labels_path = (root / entry.folder / file for file in entry.files["train" if train else "test"])
    try:
        images, labels = read_idx(images_path), read_idx(labels_path)
    except DataError as error:
        raise DataError(
            f"{entry.title}: a file is corrupt ({error}). {entry.how_to_get.format(folder=root / entry.folder)}"
        ) from error
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{images_path} should hold uint8 N x {IMAGE_SIZE} x {IMAGE_SIZE} images, got shape {images.shape}; "
            f"the file is corrupt or not {entry.title}: {entry.how_to_get.format(folder=root / entry.folder)}"
        )
    if labels.shape != (len(images),) or (len(labels) and labels.max() >= len(entry.class_names)):
        raise DataError(
            f"{labels_path} does not hold one label below {len(entry.class_names)} for each of the {len(images)} "
            f"images; the files are corrupt or do not match: {entry.how_to_get.format(folder=root / entry.folder)}"
        )
    pixels = torch.from_numpy(images.copy())
    if entry.transposed:
        pixels = pixels.transpose(1, 2).contiguous()
    return ImageDataset(pixels, torch.from_numpy(labels.astype(np.int64)), entry.class_names, entry.name)


def prepare_dataset(name: str = DEFAULT_DATASET, root: Path | None = None, report: Report | None = None) -> Path:
    """Make sure a dataset's files are on disk and intact (preparing them if the entry knows how); return their
    folder. A corrupt file is moved aside (vae_lib.core.download.move_aside) before it is fetched again, so the
    user's file is kept. `report`, if given, is told which files were moved aside and how they were fetched."""
    entry = dataset_entry(name)
    root = Path(root) if root is not None else data_dir()
    obstacles = entry.obstacles(root)
    if obstacles:
        raise DataError(f"{entry.title} cannot be prepared: {'; '.join(obstacles)}, then run again")
    corrupt = entry.corrupt_paths(root)
    if corrupt or not all(path.exists() for path in entry.paths(root)):
        if entry.prepare is None:
            raise DataError(
                f"{entry.title} cannot be downloaded from here: {entry.how_to_get.format(folder=root / entry.folder)}"
            )
        for path in corrupt:
            kept = move_aside(path)
            if report is not None:
                report(f"{path} {CORRUPT}: moved it aside to {kept}; fetching it again")
        try:
            entry.prepare(root, report)
        except OSError as error:
            if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise DataError(
                f"{entry.title} cannot be prepared in {root}: it cannot be written there ({error.strerror}); prepare "
                f"it in a folder you can write, with VAE_DATA_DIR set to that folder, or ask whoever shares {root} "
                "to prepare it there"
            ) from error
    problems = entry.problems(root)
    if problems:
        raise DataError(f"{entry.title} preparation failed:\n" + "\n".join(problems))
    return root / entry.folder


def load_prepared(name: str = DEFAULT_DATASET, train: bool = True, report: Report | None = None) -> ImageDataset:
    """Return a dataset's split, preparing its files first if they are missing (`report` says so)."""
    entry = dataset_entry(name)
    if entry.problems():  # checked here and again by load_dataset, as before: the md5 of four files
        if report is not None:
            report(f"{entry.title} is not prepared yet: fetching and checking it (once, about a minute)")
        prepare_dataset(name, report=report)
    return load_dataset(name, train=train)
