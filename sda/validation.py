"""Argument checks shared by the constructors, trainers and the command line.

Each raises ``ValueError`` (or ``TypeError``) with a message that names the argument and
the offending value.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_positive_int", "check_positive", "check_corruption", "check_layer_sizes"]


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
