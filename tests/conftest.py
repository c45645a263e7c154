"""Shared fixtures: small, fixed slices of MNIST so tests run in seconds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from vae_lib.core.data import ImageDataset
from vae_lib.core.datasets import load_dataset


@pytest.fixture(scope="session")
def mnist_train() -> ImageDataset:
    return load_dataset("mnist", train=True)


@pytest.fixture(scope="session")
def mnist_test() -> ImageDataset:
    return load_dataset("mnist", train=False)


@pytest.fixture(scope="session")
def small_train(mnist_train: ImageDataset) -> ImageDataset:
    return mnist_train.subset(512)


@pytest.fixture(scope="session")
def small_test(mnist_test: ImageDataset) -> ImageDataset:
    return mnist_test.subset(256)


@pytest.fixture(scope="session")
def flip_exponent_bit() -> Callable[[bytes, torch.Tensor], bytes]:
    """Return a function that flips the top exponent bit of a weight's first value in a checkpoint's bytes."""
    return _flip_exponent_bit


def _flip_exponent_bit(data: bytes, weight: torch.Tensor) -> bytes:
    """Return the file's bytes with the top exponent bit of the weight's first value flipped, as bit rot would."""
    start = data.find(weight.contiguous().numpy().tobytes()[:64])
    assert start > 0
    flipped = bytearray(data)
    flipped[start + 3] ^= 0x40  # float32, little-endian: byte 3 holds the sign and the exponent's top bits
    return bytes(flipped)


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    # Results of float reductions depend on the thread count; keep it fixed so comparisons are exact.
    torch.set_num_threads(2)
