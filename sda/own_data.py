"""Your own data on the command line, ``--data FILE.npz`` (:mod:`sda.npz_data`) or ``--data
FILE.csv`` (:mod:`sda.csv_data`): read, split into training and validation rows, and scaled.

* **Split.**  The validation set is ``n_valid`` rows (by default :func:`default_valid_size`).
  The rows are first shuffled, stratified by label, with the run's seed (scikit-learn's
  ``train_test_split``): a file sorted by class, as many are, would otherwise validate on its
  last class alone and train without it.  Without shuffling (``--no-shuffle``), the last
  ``n_valid`` rows validate and the rows before them train, as the tutorial split MNIST.
  ``--train-size`` then keeps the first training rows.
* **Scaling.**  As the estimators scale (:class:`sda.scaling.UnitScaler`): fitted on the
  training rows only, and applied to every set.  Training rows that lie in [0, 1] already
  (pixel bytes / 255, a ``MinMaxScaler``'s output) are left as they are; others are mapped
  feature by feature from their minimum and maximum.  Either way the inputs are clipped to
  [0, 1].  The scaler is saved with the model (:func:`sda.persistence.save_model`), so that
  ``--evaluate`` scales new data exactly as the training data were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType

import numpy as np

from sda.csv_data import read_csv
from sda.data import VALID_SIZE, DataError, Examples, Split, load_mnist
from sda.datasets import shared_split
from sda.npz_data import read_npz
from sda.scaling import UnitScaler

__all__ = ["OwnData", "default_valid_size", "is_csv", "read_examples", "split_examples", "load_own_data", "load_split",
           "evaluation_examples"]


def default_valid_size(n_rows: int) -> int:
    """The validation rows of a file of ``n_rows``: MNIST's :data:`~sda.data.VALID_SIZE`, or a sixth
    of a smaller file (as 10,000 is of MNIST's 60,000 training images)."""
    return max(1, min(VALID_SIZE, n_rows // 6))


@dataclass
class OwnData:
    """A file's examples made ready to train on: the ``split`` (scaled), the ``scaler`` fitted on
    its training rows, whether the rows were ``shuffled``, and one example's ``image_shape``
    (None: not images)."""

    split: Split
    scaler: UnitScaler
    shuffled: bool
    image_shape: tuple[int, int] | None


def is_csv(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == ".csv"


def read_examples(path: str | os.PathLike, label_column: str | None = None) -> Examples:
    """The examples of a ``.csv`` file, else of an ``.npz`` archive, unsplit and unscaled."""
    if is_csv(path):
        return read_csv(path, label_column)
    if label_column is not None:
        raise DataError(f"--label-column names a column of a .csv file; {path} is read as an .npz archive")
    return read_npz(path)


def _shuffled_rows(labels: np.ndarray, n_valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row numbers, shuffled with ``seed``, each class in both sets in
    the proportion it has in the file."""
    from sklearn.model_selection import train_test_split  # imported when used: a second of start-up

    try:
        train, valid = train_test_split(np.arange(len(labels)), test_size=n_valid, stratify=labels,
                                        random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot split the rows stratified by label ({' '.join(str(exc).split())}): give a "
                        f"--valid-size of at least one row per class, or --no-shuffle") from None
    return train, valid


def split_examples(examples: Examples, n_valid: int | None = None, train_size: int | None = None,
                   shuffle: bool = True, seed: int = 0) -> OwnData:
    """``examples`` split and scaled as the module docstring says."""
    x, y = examples.x, examples.y
    if len(y) < 2:
        raise DataError(f"the data hold {len(y)} example: a run needs at least 2, one to train on and one to "
                        f"validate on")
    n_valid = default_valid_size(len(y)) if n_valid is None else n_valid
    if not 0 < n_valid < len(y):
        raise DataError(f"--valid-size must be between 1 and the examples less one ({len(y) - 1}), got {n_valid}")
    if shuffle:
        train, valid = _shuffled_rows(y, n_valid, seed)
    else:
        train, valid = np.arange(len(y) - n_valid), np.arange(len(y) - n_valid, len(y))
    held_out = x[valid], y[valid]
    split = Split(train=(x[train], y[train]), valid=held_out, test=examples.test).with_train_size(train_size)
    scaler = UnitScaler(split.train[0])
    test = None if split.test is None else (scaler(split.test[0]), split.test[1])
    scaled = Split(train=(scaler(split.train[0]), split.train[1]), valid=(scaler(held_out[0]), held_out[1]),
                   test=test)
    return OwnData(scaled, scaler, shuffle, examples.image_shape)


def load_own_data(path: str | os.PathLike, n_valid: int | None = None, train_size: int | None = None,
                  shuffle: bool = True, seed: int = 0, label_column: str | None = None) -> OwnData:
    """The examples of ``path`` (:func:`read_examples`) split and scaled (:func:`split_examples`)."""
    return split_examples(read_examples(path, label_column), n_valid, train_size, shuffle, seed)


def evaluation_examples(path: str | os.PathLike, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What ``--evaluate`` scores, unscaled: an ``.npz`` file's test arrays, or all the rows of a CSV file."""
    examples = read_examples(path, label_column)
    if is_csv(path):
        return examples.x, examples.y
    if examples.test is None:
        raise DataError(f"{path} has no test set (arrays X_test and y_test) to evaluate on")
    return examples.test


def load_split(source: dict, download: bool = False, seed: int = 0):
    """The data of ``source``: ``(datasets, scaler, image_shape)``, the datasets as shared
    ``[train, valid, test]`` (test None when a file has none), the scaler that put a file's
    features onto [0, 1] (None for MNIST, whose pixels are there already) and one example's
    shape as an image (:func:`sda.run.train_SdA`'s).  Fills in ``source["valid_size"]`` when it
    was left to the default, and ``source["scaled"]``."""
    scaler = None
    image_shape: tuple[int, int] | EllipsisType | None = ...  # MNIST's: unscaled, drawn as square images
    if source["data_file"]:
        data = load_own_data(source["data_file"], source["valid_size"], source["train_size"], source["shuffle"],
                             seed, source["label_column"])
        split, scaler, image_shape = data.split, data.scaler, data.image_shape
    else:
        n_valid = VALID_SIZE if source["valid_size"] is None else source["valid_size"]
        split = load_mnist(source["data_dir"], n_valid=n_valid, verify=source["verify"],
                           download=download).with_train_size(source["train_size"])
    source["valid_size"] = 0 if split.valid is None else len(split.valid[1])
    source["scaled"] = scaler is not None and scaler.enabled
    return shared_split(split), scaler, image_shape
