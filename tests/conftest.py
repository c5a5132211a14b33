"""Shared fixtures: the real MNIST test set, the committed model and the app's reader."""

import pytest

import app
from mnist import DATA_DIR, load_mnist
from model import load_model


@pytest.fixture(scope="session")
def mnist_test():
    """The 10,000 MNIST test images (uint8, N x 28 x 28) and their labels."""
    return load_mnist(DATA_DIR, train=False)


@pytest.fixture(scope="session")
def model():
    """The committed weights, loaded once."""
    return load_model()


@pytest.fixture(scope="session")
def reader():
    """The app's reader of the committed weights: the model at its threshold."""
    return app.Reader.load()
