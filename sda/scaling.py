"""Inputs onto [0, 1], the range the dAs' cross-entropy reconstruction needs: :class:`UnitScaler`,
which the estimators (:mod:`sda.estimators`) and the command line's own data
(:mod:`sda.own_data`) both fit on their training rows and save with their models."""

from __future__ import annotations

import numpy as np

__all__ = ["UnitScaler", "FLOATX"]

#: The dtype the models compute in, and so the scaled inputs'.
FLOATX = "float32"


class UnitScaler:
    """Training data onto [0, 1]: left as it is when it lies there already, else each feature by
    its own minimum and maximum (a constant feature to 0); clipped to [0, 1] afterwards."""

    def __init__(self, X, enabled: bool = True):
        in_unit_interval = X.size == 0 or (X.min() >= 0 and X.max() <= 1)
        self.enabled = enabled and not in_unit_interval
        if self.enabled:
            # halves: the span of features from -1e308 to 1e308 is beyond float64, half of it is not
            self.low, high = X.min(axis=0) / 2, X.max(axis=0) / 2
            self.span = np.where(high > self.low, high - self.low, 1.0)

    def __call__(self, X):
        scaled = (X / 2 - self.low) / self.span if self.enabled else X
        return np.clip(scaled, 0.0, 1.0).astype(FLOATX)

    def tensors(self) -> dict:
        """What a model's file holds of this scaler (nothing when it leaves the data as they are)."""
        return {"scaler.low": self.low, "scaler.span": self.span} if self.enabled else {}

    @classmethod
    def from_tensors(cls, tensors: dict) -> UnitScaler:
        """The scaler whose :meth:`tensors` these are."""
        scaler = cls.__new__(cls)
        scaler.enabled = "scaler.low" in tensors
        if scaler.enabled:
            scaler.low, scaler.span = tensors["scaler.low"], tensors["scaler.span"]
        return scaler
