"""Shared fixtures: tiny IDX files written by the tests, and a small separable dataset."""

import gzip
import struct

import numpy as np
import pytensor
import pytest

from sda.data import _IDX_DTYPES, MNIST_FILES


def idx_bytes(array: np.ndarray, dtype=np.uint8) -> bytes:
    """``array`` in IDX format as ``dtype`` (uint8 by default; any type IDX has, e.g. float32)."""
    dtype = np.dtype(dtype)
    code = next(c for c, t in _IDX_DTYPES.items() if (t.kind, t.itemsize) == (dtype.kind, dtype.itemsize))
    array = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code])  # big-endian, as IDX stores it
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path, array, gz=True, dtype=np.uint8):
    data = idx_bytes(array, dtype)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def synthetic_digits(n: int, side: int = 8, n_classes: int = 10, seed: int = 0):
    """Images (n, side, side) uint8 and labels: class k lights up its own band of pixels."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(n_classes, size=n).astype(np.uint8)
    images = rng.randint(0, 60, size=(n, side * side))
    band = side * side // n_classes
    for i, k in enumerate(labels):
        images[i, k * band:(k + 1) * band] = rng.randint(180, 256, size=band)
    return images.reshape(n, side, side).astype(np.uint8), labels


def write_tiny_mnist(folder):
    """The four MNIST files in ``folder``: 300 training and 100 test 8x8 synthetic digits."""
    train_x, train_y = synthetic_digits(300, seed=1)
    test_x, test_y = synthetic_digits(100, seed=2)
    for key, array in (("train_images", train_x), ("train_labels", train_y),
                       ("test_images", test_x), ("test_labels", test_y)):
        write_idx(folder / MNIST_FILES[key], array)
    return folder


@pytest.fixture
def tiny_mnist_dir(tmp_path):
    """A folder with the four MNIST files: 300 training and 100 test 8x8 synthetic digits."""
    return write_tiny_mnist(tmp_path)


@pytest.fixture
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


@pytest.fixture
def float32():
    with pytensor.config.change_flags(floatX="float32"):
        yield
