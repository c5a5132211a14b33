"""Shared fixtures: the real MNIST test set and the committed model."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import load_model  # noqa: E402
from train import DATA_DIR, load_mnist  # noqa: E402


@pytest.fixture(scope="session")
def mnist_test():
    """The 10,000 MNIST test images (uint8, N x 28 x 28) and their labels."""
    return load_mnist(DATA_DIR, train=False)


@pytest.fixture(scope="session")
def model():
    """The committed weights, loaded once."""
    return load_model()
