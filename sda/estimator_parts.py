"""What the two estimators of :mod:`sda.estimators` share: the scaling of their inputs onto
[0, 1], scikit-learn parameter constraints for sequences and mode names, and per-layer
corruption levels."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sda.modes import MODES
from sda.validation import MAX_COUNT

FLOATX = "float32"


class _UnitScaler:
    """Training data onto [0, 1]: left as it is when it lies there already, else each feature by
    its own minimum and maximum (a constant feature to 0); clipped to [0, 1] afterwards."""

    def __init__(self, X, enabled: bool):
        in_unit_interval = X.size == 0 or (X.min() >= 0 and X.max() <= 1)
        self.enabled = enabled and not in_unit_interval
        if self.enabled:
            # halves: the span of features from -1e308 to 1e308 is beyond float64, half of it is not
            self.low, high = X.min(axis=0) / 2, X.max(axis=0) / 2
            self.span = np.where(high > self.low, high - self.low, 1.0)

    def __call__(self, X):
        scaled = (X / 2 - self.low) / self.span if self.enabled else X
        return np.clip(scaled, 0.0, 1.0).astype(FLOATX)


def _batch_size(requested: int, n_samples: int) -> int:
    return max(1, min(int(requested), n_samples))


def _log(verbose):
    return print if verbose else None


class _NonEmptySequenceOf(Interval):
    """A non-empty 1-d sequence whose every item lies in the interval (layer sizes, one
    corruption level per layer).

    scikit-learn's constraints check a value as a whole; subclassing ``Interval`` lets this
    per-item check take part in ``_validate_params`` and its messages.
    """

    def is_satisfied_by(self, val):
        items = val.tolist() if isinstance(val, np.ndarray) and val.ndim == 1 else val
        if isinstance(items, str) or not isinstance(items, Sequence) or not items:
            return False
        in_interval = super().is_satisfied_by
        return all(in_interval(item) for item in items)

    def __str__(self):
        return f"a non-empty sequence, each item {super().__str__()}"


class _SequenceOfOptions(StrOptions):
    """A non-empty sequence of the options (one pretraining criterion per layer)."""

    def is_satisfied_by(self, val):
        return (isinstance(val, Sequence) and not isinstance(val, str) and len(val) > 0
                and all(isinstance(item, str) and item in self.options for item in val))

    def __str__(self):
        return f"a non-empty sequence of {super().__str__()}"


class _ModeNames(StrOptions):
    """Compile mode names, compared case-insensitively as :func:`sda.modes.resolve_mode` does."""

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val.upper() in {option.upper() for option in self.options}

    def __str__(self):
        return f"a str among {', '.join(sorted(self.options))} (in any case)"


#: ``corruption_levels=None``: the tutorial's 0.1, 0.2, 0.3 continued, 0.1 more per layer up to this.
_MOST_DEFAULT_CORRUPTION = 0.5


def _corruption_per_layer(levels, n_layers: int) -> list[float]:
    """One corruption level per layer from ``corruption_levels`` (None, a number or a sequence)."""
    if levels is None:
        return [min(0.1 * (k + 1), _MOST_DEFAULT_CORRUPTION) for k in range(n_layers)]
    return [float(levels)] * n_layers if np.ndim(levels) == 0 else [float(v) for v in levels]


def _check_one_level_per_layer(levels, sizes) -> None:
    """A sequence of corruption levels must match the layers; the constraints check each
    parameter alone, so this pair is checked in ``fit``."""
    if levels is not None and np.ndim(levels) != 0 and len(levels) != len(sizes):
        raise ValueError(
            f"corruption_levels needs one value per hidden layer ({len(sizes)}), got {len(levels)} "
            "(or one number for every layer)")


_POSITIVE_INT = Interval(Integral, 1, MAX_COUNT, closed="both")
_LEARNING_RATE = Interval(Real, 0, None, closed="neither")  # > 0 and finite
_CORRUPTION = Interval(Real, 0, 1, closed="left")
#: constraints that both estimators share
_COMMON_CONSTRAINTS = {
    "scale_inputs": ["boolean"],
    "random_state": ["random_state"],
    "mode": [None, _ModeNames({"auto", *MODES})],
    "verbose": ["verbose"],
}


def _set_common_params(estimator, scale_inputs, random_state, mode, verbose) -> None:
    """The parameters both estimators share, stored as given (scikit-learn's rule for __init__)."""
    estimator.scale_inputs = scale_inputs
    estimator.random_state = random_state
    estimator.mode = mode
    estimator.verbose = verbose
