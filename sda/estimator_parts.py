"""What the two estimators of :mod:`sda.estimators` share: the scaling of their inputs onto
[0, 1], and scikit-learn parameter constraints made from the hyperparameter table
(:mod:`sda.hyperparameters`), for sequences and for mode names."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sda.hyperparameters import Values
from sda.modes import MODES

FLOATX = "float32"


class UnitScaler:
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


def batch_size_for(requested: int, n_samples: int) -> int:
    return max(1, min(int(requested), n_samples))


def epoch_log(verbose):
    return print if verbose else None


class NonEmptySequenceOf(Interval):
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


class SequenceOfOptions(StrOptions):
    """A non-empty sequence of the options (one pretraining criterion per layer)."""

    def is_satisfied_by(self, val):
        return (isinstance(val, Sequence) and not isinstance(val, str) and len(val) > 0
                and all(isinstance(item, str) and item in self.options for item in val))

    def __str__(self):
        return f"a non-empty sequence of {super().__str__()}"


class ModeNames(StrOptions):
    """Compile mode names, compared case-insensitively as :func:`sda.modes.resolve_mode` does."""

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val.upper() in {option.upper() for option in self.options}

    def __str__(self):
        return f"a str among {', '.join(sorted(self.options))} (in any case)"


def sklearn_constraints(values: Values) -> list:
    """scikit-learn's constraints for a hyperparameter's :class:`sda.hyperparameters.Values`: its
    interval or options, for one value and (one per layer) for a sequence of them.  They check
    each parameter alone and in float64; :func:`sda.config.validate_config` checks the rest in
    ``fit`` (one level per layer, bounds that depend on other parameters, float32)."""
    if values.options:
        one, sequence = StrOptions(set(values.options)), SequenceOfOptions(set(values.options))
    else:
        number = Integral if values.integer else Real
        one = Interval(number, values.low, values.high, closed=values.closed)
        sequence = NonEmptySequenceOf(number, values.low, values.high, closed=values.closed)
    constraints = [sequence] if values.per_layer else [one]
    if values.per_layer and values.one_for_all:
        constraints.insert(0, one)
    return [None, *constraints] if values.none else constraints


#: constraints that both estimators share
COMMON_CONSTRAINTS = {
    "scale_inputs": ["boolean"],
    "random_state": ["random_state"],
    "mode": [None, ModeNames({"auto", *MODES})],
    "verbose": ["verbose"],
}


def set_common_params(estimator, scale_inputs, random_state, mode, verbose) -> None:
    """The parameters both estimators share, stored as given (scikit-learn's rule for __init__)."""
    estimator.scale_inputs = scale_inputs
    estimator.random_state = random_state
    estimator.mode = mode
    estimator.verbose = verbose
