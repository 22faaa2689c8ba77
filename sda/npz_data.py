"""Your own data: numpy arrays in one ``.npz`` file (``--data FILE.npz``).

The file holds

* ``X``: the training examples, one per row (n, d), or images (n, rows, cols) that are flattened;
  pixel bytes (``uint8``, divided by 255), booleans, or numbers of any range (integers or
  floats), which :mod:`sda.own_data` scales onto [0, 1] unless the training rows lie there already;
* ``y``: their integer class labels (n,), from 0;
* optionally ``X_test`` and ``y_test``, the same for a test set (without them no test error is
  reported).

Make such a file with ``numpy.savez("mine.npz", X=X, y=y, X_test=X_test, y_test=y_test)``.  The
file is read with ``allow_pickle=False``: it cannot run code.  Anything wrong with it raises
:class:`DataError`.  :func:`read_npz` reads it; :mod:`sda.own_data` splits and scales it.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from sda.archive import READ_ERRORS, check_zip_signature, npy_layout, npz_members, read_member
from sda.data import DataError, Examples
from sda.validation import available_memory, check_integers_fit

__all__ = ["read_npz", "REQUIRED_ARRAYS", "TEST_ARRAYS"]

REQUIRED_ARRAYS = ("X", "y")
TEST_ARRAYS = ("X_test", "y_test")
#: A data file holds four arrays; more members than this is not one.
MAX_MEMBERS = 64


def _examples(path: Path, name: str, values: np.ndarray, dtype: str) -> np.ndarray:
    """The rows of ``values`` as numbers: pixel bytes divided by 255 and booleans as ``dtype``,
    other numbers as saved (integers as float64), once they are all finite."""
    if values.ndim < 2 or values.shape[0] == 0:
        raise DataError(f"{path}: {name} must hold examples in rows, (n, features) or (n, rows, cols), "
                        f"got shape {values.shape}")
    values = values.reshape(values.shape[0], -1)
    if values.shape[1] == 0:
        raise DataError(f"{path}: {name} has no features: shape {values.shape}")
    if values.dtype == np.uint8:
        return (values / np.asarray(255, dtype)).astype(dtype)
    if values.dtype == np.bool_:
        return values.astype(dtype)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float64)
    if np.issubdtype(values.dtype, np.floating):
        # as saved: scaling works in float64, where 1e39 is finite (float32 would make it infinite)
        if not np.isfinite(values).all():
            raise DataError(f"{path}: {name} holds NaN or infinite values")
        return values
    raise DataError(f"{path}: {name} holds {values.dtype}; save numbers (pixel bytes as uint8)")


def _image_shape(values: np.ndarray) -> tuple[int, int] | None:
    """One example's (rows, cols) as an image: the saved shape of (n, rows, cols) examples, a
    square for (n, d) ones whose d is a square number; None otherwise (not drawn as images)."""
    if values.ndim == 3:
        return values.shape[1], values.shape[2]
    side = math.isqrt(values.shape[1]) if values.ndim == 2 else 0
    return (side, side) if values.ndim == 2 and side * side == values.shape[1] else None


def _labels(path: Path, name: str, values: np.ndarray, n_rows: int) -> np.ndarray:
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{path}: {name} must be a 1-d array of integer class labels, "
                        f"got shape {values.shape} dtype {values.dtype}")
    if len(values) != n_rows:
        raise DataError(f"{path}: {name} has {len(values)} labels for {n_rows} examples")
    if len(values) and values.min() < 0:
        raise DataError(f"{path}: {name} must be >= 0, found {values.min()}")
    try:  # on the values as saved: a cast first would wrap 2**32 + 1 into the valid class 1
        check_integers_fit(name, values, np.int32)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    return values.astype(np.int32)


def _read_arrays(path: Path) -> dict:
    """The arrays of the archive, refusing pickles and anything that is not an .npz file.

    Checked before anything large is read (:mod:`sda.archive`): that the file is a zip archive,
    that each member is one distinctly named, readable .npy array, whose header's shape fits the
    member's size, and that the arrays fit in memory."""
    try:
        check_zip_signature(path, DataError)
        with zipfile.ZipFile(path) as archive:
            members = npz_members(path, archive, DataError, MAX_MEMBERS, "a data file")
            layouts = {name: npy_layout(path, archive, name, info, DataError, kinds="fiub")
                       for name, info in members.items()}
            total = sum(math.prod(shape) * dtype.itemsize for dtype, shape in layouts.values())
            available = available_memory()
            if total > available:
                raise DataError(f"{path}: its arrays take {total / 2 ** 30:,.1f} GiB, more than the "
                                f"{available / 2 ** 30:,.1f} GiB of memory this process may use")
            return {name: read_member(archive, info) for name, info in members.items()}
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except READ_ERRORS as exc:
        raise DataError(f"{path}: not a readable .npz archive of plain arrays "
                        f"({' '.join(str(exc).split())[:160] or type(exc).__name__})") from None


def read_npz(path: str | os.PathLike, dtype: str = "float32") -> Examples:
    """The examples of ``path`` (see the module docstring), unsplit and unscaled."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist (expected an .npz archive with arrays X and y)")
    if not path.is_file():  # a folder, a device (/dev/zero never ends), a FIFO (reading it would wait)
        raise DataError(f"data file {path} is not a regular file (expected an .npz archive with arrays X and y)")
    arrays = _read_arrays(path)
    missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise DataError(f"{path}: lacks the array{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"(it holds {', '.join(sorted(arrays)) or 'none'})")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: give both X_test and y_test, or neither")
    x = _examples(path, "X", arrays["X"], dtype)
    y = _labels(path, "y", arrays["y"], len(x))
    test = None
    if "X_test" in arrays:
        test_x = _examples(path, "X_test", arrays["X_test"], dtype)
        if test_x.shape[1] != x.shape[1]:
            raise DataError(f"{path}: X_test has {test_x.shape[1]} features per example, X has {x.shape[1]}")
        test = (test_x, _labels(path, "y_test", arrays["y_test"], len(test_x)))
    return Examples(x, y, test, _image_shape(arrays["X"]))
