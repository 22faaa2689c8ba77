"""Argument checks shared by the constructors, trainers and the command line.

Each raises ``ValueError`` (or ``TypeError``) with a message that names the argument and
the offending value.
"""

from __future__ import annotations

import math
import numbers
import os
import resource

import numpy as np

__all__ = ["check_positive_int", "check_positive", "check_corruption", "check_layer_sizes",
           "check_unit_interval", "check_labels_in_range", "check_seed", "check_fits_in_memory",
           "check_noise_level", "check_open_unit_interval", "check_non_negative", "check_layer_index"]


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value) -> float:
    """``value`` as a float, if it is a finite number > 0 (learning rates)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_corruption(name: str, value) -> float:
    """``value`` as a float, if it is a corruption probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_layer_sizes(name: str, sizes) -> list[int]:
    """``sizes`` as a list of ints, if it is a non-empty sequence of positive integers."""
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of layer sizes, got {sizes!r}") from None
    if not sizes:
        raise ValueError(f"{name} must not be empty")
    return [check_positive_int(f"{name}[{i}]", s) for i, s in enumerate(sizes)]


def _values(data):
    """The numpy values of an array or a shared variable."""
    return np.asarray(data.get_value(borrow=True) if hasattr(data, "get_value") else data)


def check_unit_interval(name: str, data) -> None:
    """Inputs of a cross-entropy reconstruction must lie in [0, 1]."""
    values = _values(data)
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(
            f"{name} must hold values in [0, 1] for the cross-entropy reconstruction, "
            f"found {values.min():g} .. {values.max():g} (scale the data, e.g. pixels / 255)"
        )


def check_labels_in_range(name: str, labels, n_classes: int) -> None:
    """Class labels must be integers in 0 .. n_classes - 1."""
    values = _values(labels)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= n_classes):
        raise ValueError(f"{name} must be in 0 .. {n_classes - 1}, found {values.min()} .. {values.max()}")


def check_seed(name: str, value) -> int:
    """``value`` as an int, if it can seed numpy's generators (0 .. 2**32 - 1)."""
    value = check_positive_int(name, value, minimum=0)
    if value >= 2 ** 32:
        raise ValueError(f"{name} must be below 2**32 = {2 ** 32}, got {value}")
    return value


def available_memory() -> int:
    """Bytes of memory this process may have: the machine's, or less under ``ulimit -v``."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return physical if limit == resource.RLIM_INFINITY else min(physical, limit)


def check_fits_in_memory(what: str, n_bytes: int) -> None:
    """Refuse, before allocating, what could never fit in this machine's memory."""
    total = available_memory()
    if n_bytes > total:
        raise ValueError(f"{what} would need {n_bytes / 2 ** 30:,.1f} GiB, more than the "
                         f"{total / 2 ** 30:,.1f} GiB of memory this process may use")


def check_open_unit_interval(name: str, value) -> float:
    """``value`` as a float, if it is a number strictly between 0 and 1 (a target probability)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


def check_noise_level(name: str, value, corruption_type: str) -> float:
    """A corruption level for its noise: a probability in [0, 1) for masking and salt-and-pepper
    noise, a standard deviation >= 0 for Gaussian noise."""
    if corruption_type != "gaussian":
        return check_corruption(name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} (a Gaussian noise's standard deviation) must be finite and >= 0, got {value}")
    return float(value)


def check_non_negative(name: str, value) -> float:
    """``value`` as a float, if it is a finite number >= 0 (0 switching something off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def check_layer_index(layer, n_layers: int) -> int:
    """A hidden layer's index counted from 0, or from the top when negative (-1 the top), as
    the index from 0."""
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
        raise TypeError(f"layer must be an integer, got {layer!r}")
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must be in 0 .. {n_layers - 1} (or -{n_layers} .. -1 from the top), got {layer}")
    return int(layer) % n_layers
