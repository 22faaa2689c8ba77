"""Full-batch objectives and L-BFGS: how UFLDL trains (``minFunc``), beside the minibatch SGD of
:mod:`sda.steps`.

A :class:`FullBatchObjective` is a compiled cost over a whole data set and its gradient with
respect to some shared parameters, seen as a function of one flat float64 vector
:math:`\\theta` (all the parameters, concatenated), which is what scipy's optimisers take.
:func:`minimize_lbfgs` runs scipy's L-BFGS on it; the parameters are left at the optimiser's
point after every iteration, so a callback can validate, checkpoint or log the network as it is.

L-BFGS keeps an estimate of the curvature from its last ``memory`` steps (scipy's ``maxcor``): by
default scipy's 10 (:data:`LBFGS_MEMORY`).  UFLDL used ``minFunc``'s 100 (the hyperparameter
``lbfgs_memory``), which costs scipy about 2.5 times as much per iteration for a 784-200
autoencoder (its bookkeeping runs on the CPU, whatever computes the cost).  The objective must be
deterministic for the line search: a noise in the cost (a dA's corruption) is drawn once and
kept (the compiled function does not advance the generator).
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from sda.modes import compile_function, keep_on_device
from sda.steps import gradients

__all__ = ["FullBatchObjective", "minimize_lbfgs", "LBFGS_MEMORY"]

#: Correction pairs L-BFGS keeps (scipy's default; UFLDL's minFunc kept 100).
LBFGS_MEMORY = 10


class FullBatchObjective:
    """``objective(theta) -> (cost, gradient)`` for ``cost``, a symbolic scalar over whole data
    sets, and the shared ``params``.

    Parameters
    ----------
    cost
        symbolic scalar.
    params
        shared variables it is minimised over (their order fixes the layout of theta).
    givens
        ``{symbolic input: shared data}`` (whole data sets, no minibatch index).
    mode
        a resolved compile mode.
    prepare
        called once before the first iteration (e.g. to fill an input cache).

    Notes
    -----
    ``updated`` lists ``params`` (what a checkpoint saves, as for :class:`sda.steps.Step`);
    ``memory`` is how many correction pairs L-BFGS keeps when it minimises this objective
    (scipy's ``maxcor``): :data:`LBFGS_MEMORY`, or what a run's ``lbfgs_memory`` sets.
    """

    def __init__(self, cost, params, givens: dict, mode: str, prepare=None):
        self.params = list(params)
        self.memory = LBFGS_MEMORY
        self.updated = self.params
        keep_on_device(list(givens.values()), mode)
        self.function = compile_function([], [cost, *gradients(cost, self.params)], mode, givens=givens)
        self.prepare = prepare or (lambda: None)
        self._shapes = [np.shape(p.get_value(borrow=True)) for p in self.params]
        self._dtypes = [p.dtype for p in self.params]
        self.n_evaluations = 0

    def warm_up_seconds(self) -> float:
        """What the first call took beyond the others (as :meth:`sda.steps.Step.warm_up_seconds`):
        not measured for an objective, whose calls L-BFGS times all together."""
        return 0.0

    def get(self) -> np.ndarray:
        """The parameters' current values as one float64 vector."""
        return np.concatenate([np.asarray(p.get_value(), dtype=np.float64).ravel() for p in self.params])

    def set(self, theta) -> None:
        """Give the parameters the values of the flat vector ``theta``."""
        offset = 0
        for p, shape, dtype in zip(self.params, self._shapes, self._dtypes):
            size = int(np.prod(shape))
            p.set_value(np.asarray(theta[offset:offset + size], dtype=dtype).reshape(shape))
            offset += size

    def __call__(self, theta):
        self.set(theta)
        cost, *grads = self.function()
        self.n_evaluations += 1
        return float(cost), np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grads])


def minimize_lbfgs(objective: FullBatchObjective, max_iterations: int, on_iteration=None):
    """Minimise ``objective`` from its parameters' current values with scipy's L-BFGS (L-BFGS-B
    without bounds) for at most ``max_iterations`` iterations, keeping ``objective.memory``
    correction pairs; returns scipy's result.

    ``on_iteration(cost)`` is called after every iteration with the parameters set to the new
    point.  At the end the parameters hold the optimiser's final point.
    """
    def callback(intermediate_result):
        objective.set(intermediate_result.x)
        if on_iteration is not None:
            on_iteration(float(intermediate_result.fun))

    result = scipy.optimize.minimize(objective, objective.get(), jac=True, method="L-BFGS-B", callback=callback,
                                     options={"maxiter": int(max_iterations), "maxcor": objective.memory})
    objective.set(result.x)
    return result
