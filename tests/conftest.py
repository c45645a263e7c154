"""Shared fixtures: small, fixed slices of MNIST so tests run in seconds."""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    # Results of float reductions depend on the thread count; keep it fixed so comparisons are exact.
    torch.set_num_threads(2)
