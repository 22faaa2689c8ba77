"""The ``[data]`` table of a sweep file: where its trials' data come from, in the form the command
line records them, and the command-line flags that give the same data to ``python -m sda.SdA``.

MNIST's IDX files (``data_dir``, ``valid_size``, ``verify``, ``train_size``) or a file of one's own
(``data = "mine.npz"`` or ``"mine.csv"``, with ``label_column`` and ``shuffle``: ``--data``,
``--label-column`` and ``--no-shuffle``).  A relative ``data`` lies in the sweep file's folder, so
that a sweep file and its data travel together; ``data_dir`` is relative to the current directory,
as on the command line.  Whether the file loads is checked by :mod:`sda.sweep` before Ray starts.
"""

from __future__ import annotations

from pathlib import Path

from sda.data import DEFAULT_DATA_DIR, VALID_SIZE
from sda.validation import MAX_COUNT, shown

__all__ = ["SweepConfigError", "DATA_KEYS", "OWN_DATA_KEYS", "count", "data_source", "data_flags"]

DATA_KEYS = {"data_dir", "valid_size", "verify", "train_size", "data", "label_column", "shuffle"}
OWN_DATA_KEYS = ("label_column", "shuffle")  # what goes with data = FILE only


class SweepConfigError(ValueError):
    """The sweep's configuration file cannot be run as written."""


def count(raw: dict, key: str, default: int) -> int:
    """``raw[key]`` (or ``default``), an integer from 1 to :data:`~sda.validation.MAX_COUNT`."""
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SweepConfigError(f"{key} must be an integer >= 1, got {shown(value)}")
    if value > MAX_COUNT:
        raise SweepConfigError(f"{key} must be at most {MAX_COUNT:,}, got {shown(value)}")
    return value


def data_source(data: dict, folder: Path) -> dict:
    """Where the data come from, in the form the command line records them (``data`` in a run's
    ``results.json``): an MNIST folder (``data_dir``) or a file of one's own (``data_file``, with
    ``label_column`` and ``shuffle`` as ``--label-column`` and ``--no-shuffle`` give them).  ``data``
    is the ``[data]`` table, its keys already checked; ``folder`` the sweep file's."""
    data_file = data.get("data")
    if data_file is not None:
        if not isinstance(data_file, str) or not data_file:
            raise SweepConfigError(f"data.data must be a file name (.npz or .csv), got {data_file!r}")
        if "data_dir" in data:
            raise SweepConfigError("give data.data (a file of your own) or data.data_dir (MNIST's IDX files), not both")
    else:
        for key in OWN_DATA_KEYS:
            if key in data:
                raise SweepConfigError(f"data.{key} goes with data.data = FILE; MNIST keeps the tutorial's split")
    data_dir = data.get("data_dir", str(DEFAULT_DATA_DIR))
    if not isinstance(data_dir, str) or not data_dir:
        raise SweepConfigError(f"data.data_dir must be a folder name, got {data_dir!r}")
    verify = data.get("verify", True)
    if not isinstance(verify, bool):
        raise SweepConfigError(f"data.verify must be true or false, got {verify!r}")
    train_size = data.get("train_size")
    if train_size is not None:
        train_size = count(data, "train_size", 1)
    if data_file is None:
        return {"data_file": None, "data_dir": str(Path(data_dir).resolve()),
                "valid_size": count(data, "valid_size", VALID_SIZE), "verify": verify, "train_size": train_size,
                "shuffle": False, "label_column": None}
    shuffle, label_column = data.get("shuffle", True), data.get("label_column")
    if not isinstance(shuffle, bool):
        raise SweepConfigError(f"data.shuffle must be true or false, got {shuffle!r}")
    if label_column is not None and (not isinstance(label_column, str) or not label_column):
        raise SweepConfigError(f"data.label_column must be a column name, got {label_column!r}")
    valid_size = data.get("valid_size")
    return {"data_file": str((folder / data_file).resolve()), "data_dir": None,
            "valid_size": None if valid_size is None else count(data, "valid_size", 1), "verify": verify,
            "train_size": train_size, "shuffle": shuffle, "label_column": label_column}


def data_flags(data: dict) -> list[str]:
    """The flags of ``python -m sda.SdA`` that train on ``data`` (:func:`data_source`'s)."""
    if data["data_file"] is not None:
        args = ["--data", data["data_file"]]
        if data["label_column"] is not None:
            args += ["--label-column", data["label_column"]]
        if not data["shuffle"]:
            args.append("--no-shuffle")
        if data["valid_size"] is not None:
            args += ["--valid-size", str(data["valid_size"])]
    else:
        args = ["--data-dir", data["data_dir"]]
        if data["valid_size"] != VALID_SIZE:
            args += ["--valid-size", str(data["valid_size"])]
        if not data["verify"]:
            args.append("--no-verify")
    if data["train_size"] is not None:
        args += ["--train-size", str(data["train_size"])]
    return args
