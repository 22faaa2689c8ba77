"""Datasets as PyTensor shared variables, and minibatches taken from them by index.

Compiled functions read their data from shared variables (the tutorial's ``shared_dataset``),
so that a training step receives only a minibatch *index* and never copies data from Python.
"""

from __future__ import annotations

import numpy as np
import pytensor

from sda.data import DEFAULT_DATA_DIR, load_mnist
from sda.validation import check_integers_fit

__all__ = ["shared_dataset", "shared_split", "as_shared", "load_data", "n_batches", "minibatch"]


def shared_dataset(data_xy, borrow: bool = True, name: str | None = None):
    """Images and labels as shared variables ``(shared_x, shared_y)``.

    Images keep ``pytensor.config.floatX``; labels are int32 (the tutorial stored them as
    floats and cast, because old GPUs held floats only).
    """
    data_x, data_y = data_xy
    data_y = np.asarray(data_y)
    if data_y.ndim != 1 or not np.issubdtype(data_y.dtype, np.integer):
        raise TypeError(f"labels must be a 1-d integer array, got shape {data_y.shape} dtype {data_y.dtype}")
    check_integers_fit("labels", data_y, np.int32)  # before the cast, which would wrap them
    shared_x = as_shared(data_x, name=f"{name}_x" if name else "x", borrow=borrow)
    if shared_x.get_value(borrow=True).shape[0] != data_y.shape[0]:
        raise ValueError(f"images must be (n, features) with one label each, got "
                         f"{shared_x.get_value(borrow=True).shape} and {data_y.shape}")
    return shared_x, pytensor.shared(data_y.astype(np.int32), name=f"{name}_y" if name else "y", borrow=borrow)


def as_shared(data, name: str = "x", borrow: bool = True):
    """``data`` as a shared matrix of ``floatX``: a shared variable is returned as it is, a numpy
    array (or anything array-like) is converted, so that model methods take either."""
    if isinstance(data, pytensor.compile.SharedVariable):
        return data
    values = np.asarray(data, dtype=pytensor.config.floatX)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a matrix (n_examples, n_features), got shape {values.shape}")
    return pytensor.shared(values, name=name, borrow=borrow)


def load_data(dataset=DEFAULT_DATA_DIR, **kwargs):
    """The tutorial's ``load_data``: ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``
    as shared variables. Keyword arguments go to :func:`sda.data.load_mnist`."""
    kwargs.setdefault("dtype", pytensor.config.floatX)
    return shared_split(load_mnist(dataset, **kwargs))


def shared_split(split):
    """A :class:`sda.data.Split` (or any three (images, labels) pairs) as shared variables; a
    missing pair (no test set) stays None."""
    return [None if part is None else shared_dataset(part, name=name)
            for part, name in zip(split, ("train", "valid", "test"))]


def n_batches(shared_x, batch_size: int) -> int:
    """How many whole minibatches of ``batch_size`` the shared dataset holds."""
    n = shared_x.get_value(borrow=True).shape[0]
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size} must be between 1 and the dataset size ({n})")
    return n // batch_size


def minibatch(shared_x, index, batch_size: int):
    """Symbolic minibatch number ``index`` of a shared dataset, with a static shape.

    The tutorial sliced ``x[index * batch_size:(index + 1) * batch_size]``; a slice with
    symbolic bounds has a dynamic shape, which JAX cannot compile.  Viewing the data as
    (n_batches, batch_size, ...) and taking ``[index]`` gives the same rows with a shape
    known at compile time, in every mode.  The last incomplete minibatch is dropped, as in
    the tutorial.
    """
    value = shared_x.get_value(borrow=True)
    count = n_batches(shared_x, batch_size)
    batched = shared_x[: count * batch_size].reshape((count, batch_size) + value.shape[1:])
    return batched[index]
