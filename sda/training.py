"""Training loops shared by every model: SGD updates, greedy layer-wise pretraining, and
the tutorial's patience-based early stopping (written once here; the tutorial repeated it
in each of its scripts).

Early stopping, as in the Deep Learning Tutorials: the model is validated every
``validation_frequency`` minibatches.  Training may run until iteration ``patience``;
each time the validation error drops below ``improvement_threshold`` times the best so
far, patience grows to ``max(patience, iteration * patience_increase)``.  The best
parameters seen are kept and restored at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pytensor.tensor as pt
from tqdm.auto import tqdm

from sda.data import minibatch
from sda.modes import compile_function

__all__ = [
    "DivergenceError",
    "sgd_updates",
    "supervised_functions",
    "EarlyStopping",
    "FitResult",
    "fit_early_stopping",
    "PretrainResult",
    "pretrain_layers",
]


class DivergenceError(FloatingPointError):
    """A cost became NaN or infinite: training stopped, lower the learning rate."""


def sgd_updates(cost, params, learning_rate):
    """Plain gradient descent: ``[(p, p - learning_rate * d cost / d p) for p in params]``."""
    grads = pt.grad(cost, params)
    return [(p, p - pt.cast(learning_rate, p.dtype) * g) for p, g in zip(params, grads)]


def supervised_functions(x, y, cost, errors, params, datasets, batch_size: int,
                         learning_rate, mode: str):
    """Compile ``(train_fn, validate_fn, test_fn)`` for a classifier with input ``x`` and
    labels ``y`` on shared ``datasets = [(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

    ``train_fn(index)`` takes one SGD step on minibatch ``index`` and returns the cost;
    ``validate_fn()`` and ``test_fn()`` return the error rate over the whole set, computed
    in one call so that no example is dropped.
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = datasets
    index = pt.iscalar("index")
    train_fn = compile_function(
        [index], cost, mode,
        updates=sgd_updates(cost, params, learning_rate),
        givens={x: minibatch(train_x, index, batch_size), y: minibatch(train_y, index, batch_size)},
    )
    validate_fn = compile_function([], errors, mode, givens={x: valid_x, y: valid_y})
    test_fn = compile_function([], errors, mode, givens={x: test_x, y: test_y})
    return train_fn, validate_fn, test_fn


def _check_finite(cost, where: str, learning_rate) -> float:
    cost = float(cost)
    if not math.isfinite(cost):
        raise DivergenceError(
            f"{where}: the cost became {cost}; training stopped. "
            f"Lower the learning rate (it is {learning_rate})"
        )
    return cost


class EarlyStopping:
    """The tutorial's patience rule, as a small state machine (no training inside).

    Parameters
    ----------
    patience : look at this many minibatch iterations at least.
    n_train_batches : minibatches per epoch.
    patience_increase : on a significant improvement at iteration ``i``, patience becomes
        at least ``i * patience_increase``.
    improvement_threshold : an improvement is significant when the new error is below
        ``threshold * best``.
    validation_frequency : validate every this many iterations; default
        ``min(n_train_batches, patience // 2)``, so at least once per epoch.
    """

    def __init__(self, patience: int, n_train_batches: int, patience_increase: float = 2.0,
                 improvement_threshold: float = 0.995, validation_frequency: int | None = None):
        if patience < 1 or n_train_batches < 1:
            raise ValueError(f"patience ({patience}) and n_train_batches ({n_train_batches}) must be >= 1")
        if patience_increase < 1 or not 0 < improvement_threshold <= 1:
            raise ValueError(
                f"patience_increase must be >= 1 (got {patience_increase}) and "
                f"improvement_threshold in (0, 1] (got {improvement_threshold})"
            )
        self.patience = patience
        self.patience_increase = patience_increase
        self.improvement_threshold = improvement_threshold
        self.validation_frequency = validation_frequency or max(1, min(n_train_batches, patience // 2))
        self.best_loss = math.inf
        self.best_iteration = -1

    def should_validate(self, iteration: int) -> bool:
        """Whether to validate after minibatch ``iteration`` (counted from 0)."""
        return (iteration + 1) % self.validation_frequency == 0

    def report(self, iteration: int, loss: float) -> bool:
        """Record a validation ``loss`` at ``iteration``; True if it is the best so far."""
        if loss >= self.best_loss:
            return False
        if loss < self.best_loss * self.improvement_threshold:
            self.patience = max(self.patience, int(iteration * self.patience_increase))
        self.best_loss, self.best_iteration = loss, iteration
        return True

    def should_stop(self, iteration: int) -> bool:
        """Whether patience has run out after minibatch ``iteration``."""
        return self.patience <= iteration


@dataclass
class FitResult:
    """Outcome of :func:`fit_early_stopping`; errors are fractions (0.013 = 1.3 %)."""

    best_validation_error: float
    best_iteration: int
    test_error: float | None
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def fit_early_stopping(train_fn, n_train_batches: int, validate, test=None, *, n_epochs: int,
                       patience: int, patience_increase: float = 2.0,
                       improvement_threshold: float = 0.995, params=(), learning_rate=None,
                       progress: bool = True, log=print, name: str = "fine-tuning") -> FitResult:
    """Minibatch training with early stopping: the one loop every model here uses.

    Parameters
    ----------
    train_fn : ``train_fn(minibatch_index) -> cost``, updating the parameters.
    validate, test : ``() -> error`` on the whole validation / test set.
    params : shared variables to snapshot at the best validation error and restore at the end.
    progress : show a progress bar within each epoch.
    log : called with one line per epoch (``None`` for silence).

    Returns a :class:`FitResult`; the test error is the one measured when the
    validation error was at its best.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    rule = EarlyStopping(patience, n_train_batches, patience_increase, improvement_threshold)
    best_params = [p.get_value() for p in params]
    test_error, history, start = None, [], time.perf_counter()
    epoch, done = 0, False
    while epoch < n_epochs and not done:
        epoch += 1
        epoch_start, costs, val_error, improved = time.perf_counter(), [], None, False
        for minibatch_index in tqdm(range(n_train_batches), desc=f"{name} epoch {epoch}",
                                    leave=False, disable=not progress, mininterval=0.5):
            costs.append(train_fn(minibatch_index))
            iteration = (epoch - 1) * n_train_batches + minibatch_index
            if rule.should_validate(iteration):
                _check_finite(np.mean(costs), f"{name}, epoch {epoch}", learning_rate)
                val_error = float(validate())
                if rule.report(iteration, val_error):
                    improved = True
                    best_params = [p.get_value() for p in params]
                    if test is not None:
                        test_error = float(test())
            if rule.should_stop(iteration):
                done = True
                break
        mean_cost = _check_finite(np.mean(costs), f"{name}, epoch {epoch}", learning_rate)
        record = {"epoch": epoch, "cost": mean_cost, "validation_error": val_error,
                  "test_error": test_error if improved else None,
                  "seconds": time.perf_counter() - epoch_start}
        history.append(record)
        if log:
            line = f"{name} epoch {epoch}: cost {mean_cost:.5f}"
            if val_error is not None:
                line += f", validation error {val_error:.2%}"
            if improved and test_error is not None:
                line += f", test error of best model {test_error:.2%}"
            log(line + f" ({record['seconds']:.1f} s)")
    for p, value in zip(params, best_params):
        p.set_value(value)
    return FitResult(rule.best_loss, rule.best_iteration, test_error, epoch,
                     time.perf_counter() - start, history)


@dataclass
class PretrainResult:
    """Mean reconstruction cost per epoch for each layer, and the seconds each layer took."""

    costs: list[list[float]]
    seconds: list[float]


def pretrain_layers(pretraining_fns, n_train_batches: int, n_epochs: int, corruption_levels,
                    learning_rate: float, progress: bool = True, log=print) -> PretrainResult:
    """Greedy layer-wise pretraining: train each layer's dA for ``n_epochs`` in turn.

    ``pretraining_fns[i](index, corruption, lr)`` does one SGD step of layer ``i`` on
    minibatch ``index`` and returns its reconstruction cost.
    """
    if len(corruption_levels) != len(pretraining_fns):
        raise ValueError(
            f"need one corruption level per layer ({len(pretraining_fns)}), got {len(corruption_levels)}"
        )
    costs, seconds = [], []
    for layer, (fn, corruption) in enumerate(zip(pretraining_fns, corruption_levels)):
        layer_start, layer_costs = time.perf_counter(), []
        for epoch in range(1, n_epochs + 1):
            epoch_start = time.perf_counter()
            batch_costs = [
                fn(index, corruption, learning_rate)
                for index in tqdm(range(n_train_batches), desc=f"pretraining layer {layer} epoch {epoch}",
                                  leave=False, disable=not progress, mininterval=0.5)
            ]
            mean_cost = _check_finite(np.mean(batch_costs),
                                      f"pretraining layer {layer}, epoch {epoch}", learning_rate)
            layer_costs.append(mean_cost)
            if log:
                log(f"pretraining layer {layer} epoch {epoch}: cost {mean_cost:.4f} "
                    f"({time.perf_counter() - epoch_start:.1f} s)")
        costs.append(layer_costs)
        seconds.append(time.perf_counter() - layer_start)
    return PretrainResult(costs, seconds)
