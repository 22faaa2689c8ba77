"""Argument checks shared by the constructors, trainers and the command line.

Each raises ``ValueError`` (or ``TypeError``) with a message that names the argument and
the offending value.

Numbers are checked as numbers, before any cast: :func:`check_number` (every real-valued
check goes through it) refuses a value that is not finite, or that would not be finite (or
would round to 0) once stored in the floating-point type the graphs compute in;
:func:`check_positive_int` bounds counts by :data:`MAX_COUNT`; :func:`check_integers_fit`
refuses integer arrays (class labels) that a cast would wrap.  A value that gets past them
can be converted with ``float``, ``int`` or ``astype`` without an ``OverflowError`` and
without changing.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import sys

try:
    import resource  # Unix only: the ulimit on memory
except ImportError:
    resource = None  # type: ignore[assignment]

import numpy as np
import pytensor

__all__ = ["MAX_COUNT", "MAX_LAYERS", "GAUSSIAN_STD_LIMIT", "FLOATX", "shown", "check_number", "check_integers_fit", "check_positive_int",
           "check_positive", "check_corruption", "check_layer_sizes", "check_unit_interval", "check_labels_in_range",
           "check_seed", "check_fits_in_memory", "check_noise_level", "check_open_unit_interval",
           "check_non_negative", "check_layer_index"]

#: The largest count accepted (epochs, layer sizes, classes, batch sizes): int32's largest
#: value.  The compiled graphs index minibatches and hold class labels as int32, and every
#: count times a modest factor must stay an exact float.
MAX_COUNT = int(np.iinfo(np.int32).max)
#: The most hidden layers a network may have: far deeper than any stacked autoencoder trained
#: greedily, and still quick to build; thousands would take hours to compile.
MAX_LAYERS = 100

#: The largest standard deviation of Gaussian noise: a few draws of it added to the inputs must
#: stay finite in float32 (3e38 overflows, and the cost becomes NaN at any learning rate).
GAUSSIAN_STD_LIMIT = 1e30

#: ``dtype=FLOATX``: the floating-point type the graphs compute in when the check runs
#: (``pytensor.config.floatX``; float32 in every run of the command line and the estimators).
FLOATX = "floatX"


def shown(value) -> str:
    """``value`` for a message: an integer of thousands of digits as its order of magnitude
    (``str`` refuses integers of more than 4300 digits, and one line should stay short)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)).bit_length() > 64:
        sign = "-" if value < 0 else ""
        return f"{sign}an integer of about 10**{int(abs(int(value)).bit_length() * math.log10(2))}"
    return repr(value) if isinstance(value, str) else str(value)


def check_number(name: str, value, requirement: str = "a finite number", dtype=FLOATX) -> float:
    """``value`` as a float, if it is a real number (not a bool) that is finite as a Python float
    and, when ``dtype`` is not None, still finite and still non-zero once stored in ``dtype``
    (:data:`FLOATX`: the graphs' type).  ``requirement`` completes the message
    "``name`` must be ..." of a value that is not finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer (or Fraction) beyond float64
        raise ValueError(f"{name} must be {requirement}, got {shown(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {requirement}, got {number}")
    if dtype is not None:
        dtype = np.dtype(pytensor.config.floatX if dtype == FLOATX else dtype)
        with np.errstate(over="ignore", under="ignore"):
            stored = np.asarray(number).astype(dtype)
        if not np.isfinite(stored):
            raise ValueError(f"{name} must be at most {float(np.finfo(dtype).max):.4g} in size, the largest "
                             f"{dtype} (the type it is computed in), got {number:g}")
        if number != 0 and stored == 0:
            raise ValueError(f"{name} = {number:g} is 0 as a {dtype} (the type it is computed in, whose "
                             f"smallest number above 0 is {float(np.finfo(dtype).smallest_subnormal):.3g})")
    return number + 0.0  # -0.0 as 0.0


def check_integers_fit(name: str, values, dtype) -> None:
    """An integer array must lie within ``dtype``'s range before it is cast to it (a cast would
    wrap 2**32 + 1 into 1); the message gives the values as they are."""
    values, info = np.asarray(values), np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ValueError(f"{name} must lie in {info.min} .. {info.max} (they are stored as {np.dtype(dtype)}), "
                         f"found {values.min()} .. {values.max()}")


def check_positive_int(name: str, value, minimum: int = 1, maximum: int | None = MAX_COUNT) -> int:
    """``value`` as an int, if it is an integer (not a bool) in ``minimum`` .. ``maximum``
    (None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {shown(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {shown(value)}")
    return int(value)


def check_positive(name: str, value, maximum: float | None = None, dtype=FLOATX) -> float:
    """``value`` as a float, if it is a finite number > 0 (learning rates), at most ``maximum``
    when given, and representable in ``dtype`` (:func:`check_number`)."""
    value = check_number(name, value, "a finite number > 0", dtype=None)
    if value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {value:g}")
    return check_number(name, value, dtype=dtype)  # and representable where it is stored


def _below_one_where_stored(name: str, value: float, requirement: str, dtype) -> float:
    """``value`` (checked to be below 1) must stay below 1 once stored in ``dtype``: 0.99999999
    is 1.0 as a float32, a probability the interval excludes."""
    if dtype is not None:
        dtype = np.dtype(pytensor.config.floatX if dtype == FLOATX else dtype)
        if np.asarray(value).astype(dtype) >= 1:
            raise ValueError(f"{name} must be {requirement}, got {value!r}, which is 1 as a {dtype} "
                             f"(the type it is computed in); its largest number below 1 is "
                             f"{float(1 - np.finfo(dtype).epsneg)!r}")
    return value


def check_corruption(name: str, value, dtype=FLOATX) -> float:
    """``value`` as a float, if it is a corruption probability in [0, 1), also once stored in ``dtype``."""
    value = check_number(name, value, "in [0, 1)", dtype=None)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    value = _below_one_where_stored(name, value, "in [0, 1)", dtype)
    return check_number(name, value, dtype=dtype)  # and representable where it is stored


def check_layer_sizes(name: str, sizes) -> list[int]:
    """``sizes`` as a list of ints, if it is a non-empty sequence of at most :data:`MAX_LAYERS`
    positive integers."""
    try:
        if isinstance(sizes, (str, bytes)):  # a sequence, but of characters
            raise TypeError
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of layer sizes, got {sizes!r}") from None
    if not sizes:
        raise ValueError(f"{name} must not be empty")
    if len(sizes) > MAX_LAYERS:
        raise ValueError(f"{name} must have at most {MAX_LAYERS} hidden layers, got {len(sizes)}")
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
    value = check_positive_int(name, value, minimum=0, maximum=None)
    if value >= 2 ** 32:
        raise ValueError(f"{name} must be below 2**32 = {2 ** 32}, got {shown(value)}")
    return value


def available_memory() -> int:
    """Bytes of memory this process may have: the machine's, or less under ``ulimit -v``.

    Where the operating system does not say (Windows has neither ``os.sysconf`` page counts nor
    the ``resource`` module), no limit is known and nothing is refused here."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return sys.maxsize
    if resource is None:
        return physical
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return physical if limit == resource.RLIM_INFINITY else min(physical, limit)


def check_fits_in_memory(what: str, n_bytes: int) -> None:
    """Refuse, before allocating, what could never fit in this machine's memory."""
    total = available_memory()
    if n_bytes > total:
        needed = f"{n_bytes / 2 ** 30:,.1f}" if n_bytes < 2 ** 1000 else shown(n_bytes // 2 ** 30)
        raise ValueError(f"{what} would need {needed} GiB, more than the "
                         f"{total / 2 ** 30:,.1f} GiB of memory this process may use")


def check_open_unit_interval(name: str, value, dtype=FLOATX) -> float:
    """``value`` as a float, if it is a number strictly between 0 and 1 (a target probability)."""
    value = check_number(name, value, "in (0, 1)", dtype=None)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    value = _below_one_where_stored(name, value, "in (0, 1)", dtype)
    return check_number(name, value, dtype=dtype)  # and representable where it is stored


def check_noise_level(name: str, value, corruption_type: str) -> float:
    """A corruption level for its noise: a probability in [0, 1) for masking and salt-and-pepper
    noise, a standard deviation >= 0 for Gaussian noise."""
    if corruption_type != "gaussian":
        return check_corruption(name, value)
    requirement = "finite and >= 0 (a Gaussian noise's standard deviation)"
    value = check_number(name, value, requirement, dtype=None)
    if value < 0:
        raise ValueError(f"{name} must be {requirement}, got {value}")
    if value > GAUSSIAN_STD_LIMIT:  # inputs plus such noise overflow float32: a NaN cost, not the rate's fault
        raise ValueError(f"{name} must be at most {GAUSSIAN_STD_LIMIT:g} (a Gaussian noise's standard deviation, "
                         f"added to inputs in [0, 1] in float32), got {value:g}")
    return check_number(name, value)  # and finite in the graphs' type


def check_non_negative(name: str, value, dtype=FLOATX) -> float:
    """``value`` as a float, if it is a finite number >= 0 (0 switching something off)."""
    value = check_number(name, value, "a finite number >= 0", dtype=None)
    if value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return check_number(name, value, dtype=dtype)  # and representable where it is stored


def check_layer_index(layer, n_layers: int) -> int:
    """A hidden layer's index counted from 0, or from the top when negative (-1 the top), as
    the index from 0."""
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
        raise TypeError(f"layer must be an integer, got {layer!r}")
    layer = operator.index(layer)
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must be in 0 .. {n_layers - 1} (or -{n_layers} .. -1 from the top), got {layer}")
    return int(layer) % n_layers
