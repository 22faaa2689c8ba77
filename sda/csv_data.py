"""Your own data as a CSV file (``--data FILE.csv``).

The file is comma-separated, with a header row naming the columns, then one row per example.
One column holds the class labels, the integers 0 .. k-1 (``--label-column NAME``; by default
the last column); every other column is a numeric feature, of any range (:mod:`sda.own_data`
scales them onto [0, 1]).  A CSV file has no test set of its own: a run on it reports no test
error, and ``--evaluate`` scores all its rows.  The examples are not images (no filters are drawn).

numpy parses the numbers (:func:`numpy.loadtxt`); when it cannot, the csv module reads the file
again to say where, in one line: the line and column of the first cell that is not a number, or
the first row whose cells do not match the header.  Anything wrong raises :class:`DataError`.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from sda.data import DataError, Examples

__all__ = ["read_csv"]

#: How a file is read: a UTF-8 BOM (as spreadsheets write one) is not part of the first column's name.
_ENCODING = "utf-8-sig"
#: Column names shown in a message, at most.
_SHOWN_COLUMNS = 10


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _label_index(path: Path, names: list[str], label_column: str | None) -> int:
    """Where the label column is among ``names``: ``label_column``'s, or the last."""
    if len(names) < 2:
        raise DataError(f"{path}: has {len(names)} column; it needs a label column and at least one feature")
    if label_column is None:
        return len(names) - 1
    found = [i for i, name in enumerate(names) if name == label_column]
    if not found:
        listed = ", ".join(map(_shown, names[:_SHOWN_COLUMNS])) + (", ..." if len(names) > _SHOWN_COLUMNS else "")
        raise DataError(f"{path}: has no column {_shown(label_column)} for --label-column (its columns: {listed})")
    if len(found) > 1:
        raise DataError(f"{path}: {len(found)} columns are named {_shown(label_column)}; the label column's "
                        f"name must be unique")
    return found[0]


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding=_ENCODING) as f:
        header = next(csv.reader(f), None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header row naming the columns, then one row per example")
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # --label-column and the model's features are named by column
        raise DataError(f"{path}: the header names column {repeated[0]!r} more than once; every column needs its own name")
    try:
        [float(name) for name in names]
    except ValueError:
        return names
    raise DataError(f"{path}: the first line must be a header naming the columns, but it holds numbers only")


def _first_problem(path: Path, names: list[str], label: int) -> str | None:
    """Where numpy could not read the file: the first ragged row or cell that is not a number."""
    with open(path, newline="", encoding=_ENCODING) as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            if not "".join(row).strip():  # a blank line, which numpy skips too
                continue
            if len(row) != len(names):
                return (f"{path}: line {reader.line_num} has {len(row)} cells, the header {len(names)} columns: "
                        f"every row needs one cell per column")
            for i, (name, cell) in enumerate(zip(names, row)):
                try:
                    float(cell)
                except ValueError:
                    what = "the labels must be integers 0 .. k-1" if i == label else "the features must be numbers"
                    return f"{path}: line {reader.line_num}, column {_shown(name)}: {_shown(cell)} is not a number " \
                           f"({what})"
    return None


def read_csv(path: str | os.PathLike, label_column: str | None = None) -> Examples:
    """The examples of the CSV file ``path`` (see the module docstring), unsplit and unscaled:
    features as float64, labels as int32, no test set."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist (expected a CSV file with a header row)")
    if not path.is_file():  # a folder, a device, a FIFO: never read
        raise DataError(f"data file {path} is not a regular file (expected a CSV file with a header row)")
    try:
        names = _header(path)
        label = _label_index(path, names, label_column)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data": said below
                table = np.loadtxt(path, delimiter=",", skiprows=1, quotechar='"', comments=None, ndmin=2,
                                   dtype=np.float64, encoding=_ENCODING)
        except ValueError as exc:
            raise DataError(_first_problem(path, names, label) or f"{path}: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if table.shape[0] == 0:
        raise DataError(f"{path}: has a header but no rows of examples")
    if table.shape[1] != len(names):  # every row alike, but not as wide as the header
        raise DataError(_first_problem(path, names, label) or f"{path}: rows of {table.shape[1]} cells, header of "
                        f"{len(names)} columns")
    rows, columns = np.nonzero(~np.isfinite(table))
    if len(rows):
        raise DataError(f"{path}: line {rows[0] + 2}, column {_shown(names[columns[0]])}: "
                        f"{table[rows[0], columns[0]]} is not a finite number")
    labels = table[:, label]
    odd = np.nonzero((labels != np.round(labels)) | (labels < 0) | (labels > np.iinfo(np.int32).max))[0]
    if len(odd):
        raise DataError(f"{path}: line {odd[0] + 2}, label column {_shown(names[label])}: {labels[odd[0]]:g} is not "
                        f"a class label (the labels must be integers 0 .. k-1)")
    return Examples(np.delete(table, label, axis=1), labels.astype(np.int32), None, None)
