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
import pytensor
import pytensor.tensor as pt
from tqdm import tqdm

from sda.data import minibatch, n_batches
from sda.modes import compile_function, keep_on_device

__all__ = [
    "DivergenceError",
    "sgd_updates",
    "supervised_functions",
    "FusedSteps",
    "fuse_steps",
    "compile_steps",
    "steps_per_call_for",
    "EarlyStopping",
    "FitState",
    "FitResult",
    "fit_early_stopping",
    "PretrainResult",
    "pretrain_layers",
]


class DivergenceError(FloatingPointError):
    """A cost became NaN or infinite: training stopped, lower the learning rate."""


def sgd_updates(cost, params, learning_rate, momentum: float = 0.0):
    """Gradient descent updates for ``params``.

    Without momentum: :math:`p \\leftarrow p - \\eta \\, \\partial C / \\partial p`.
    With momentum :math:`\\mu > 0` (classical momentum), each parameter gets a velocity
    :math:`v` (a new shared variable, starting at 0):
    :math:`v \\leftarrow \\mu v - \\eta \\, \\partial C / \\partial p,\\ p \\leftarrow p + v`.
    ``learning_rate`` may be a number, a symbolic scalar or a shared variable (for a schedule).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    grads = pt.grad(cost, params)
    updates = []
    for p, g in zip(params, grads):
        step = pt.cast(learning_rate, p.dtype) * g
        if momentum == 0:
            updates.append((p, p - step))
            continue
        velocity = pytensor.shared(np.zeros_like(p.get_value(borrow=True)), name=f"velocity_{p.name}")
        new_velocity = pt.cast(momentum, p.dtype) * velocity - step
        updates += [(velocity, new_velocity), (p, p + new_velocity)]
    return updates


def supervised_functions(x, y, cost, errors, params, datasets, batch_size: int,
                         learning_rate, mode: str, momentum: float = 0.0, steps_per_call: int = 1,
                         extra_updates=()):
    """Compile ``(train_fn, validate_fn, test_fn)`` for a classifier with input ``x`` and
    labels ``y`` on shared ``datasets = [(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

    ``train_fn(index)`` takes one SGD step on minibatch ``index`` and returns the cost;
    ``validate_fn()`` and ``test_fn()`` return the error rate over the whole set, computed
    in one call so that no example is dropped.  With ``steps_per_call > 1`` the training
    function is a :class:`FusedSteps` (reduced to a divisor of the number of minibatches).
    ``extra_updates`` (e.g. a noise generator's) are applied with each training step.
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = datasets
    keep_on_device([train_x, train_y, valid_x, valid_y, test_x, test_y], mode)
    index = pt.iscalar("index")
    updates = [*extra_updates, *sgd_updates(cost, params, learning_rate, momentum)]
    givens = {x: minibatch(train_x, index, batch_size), y: minibatch(train_y, index, batch_size)}
    steps = steps_per_call_for(n_batches(train_x, batch_size), steps_per_call)
    train_fn = compile_steps(index, [], cost, updates, givens, steps, mode)
    validate_fn = compile_function([], errors, mode, givens={x: valid_x, y: valid_y})
    test_fn = compile_function([], errors, mode, givens={x: test_x, y: test_y})
    return train_fn, validate_fn, test_fn


class FusedSteps:
    """``steps_per_call`` consecutive SGD steps in one compiled call (a ``scan`` loop).

    ``fused(first_index, *args)`` runs minibatches ``first_index .. first_index +
    steps_per_call - 1`` and returns their costs as an array.  It computes what as many calls
    of the one-step function would, with one call's overhead; under JAX the whole loop runs
    on the device without returning to Python.
    """

    def __init__(self, function, steps_per_call: int):
        self.function, self.steps_per_call = function, steps_per_call

    def __call__(self, first_index, *args):
        return self.function(first_index, *args)

    def get_shared(self):
        return self.function.get_shared()


def fuse_steps(index, other_inputs, cost, updates, givens, steps_per_call: int, mode: str) -> FusedSteps:
    """Compile ``steps_per_call`` steps of the one-step function ``(index, *other_inputs) -> cost``
    with ``updates`` and ``givens`` (as they would be given to ``pytensor.function``).

    Every shared variable that ``updates`` changes (parameters, momentum velocities, noise
    generators) becomes a state carried from step to step by ``pytensor.scan``; the final
    states are written back once per call.
    """
    from pytensor.graph.replace import clone_replace

    targets = [target for target, _ in updates]
    step_outputs = clone_replace([cost] + [value for _, value in updates], replace=dict(givens))

    def step(i, *states):
        return clone_replace(step_outputs, replace={index: i, **dict(zip(targets, states))})

    first = pt.iscalar("first_index")
    # arange of a constant length, shifted: a static loop length, as JAX requires
    indices = pt.arange(steps_per_call, dtype="int32") + first
    outputs = pytensor.scan(step, sequences=[indices], outputs_info=[None, *targets],
                            return_updates=False)
    costs, finals = outputs[0], outputs[1:]
    fused_updates = [(target, final if not hasattr(final, "ndim") else final[-1])
                     for target, final in zip(targets, finals)]
    return FusedSteps(compile_function([first, *other_inputs], costs, mode, updates=fused_updates),
                      steps_per_call)


def compile_steps(index, other_inputs, cost, updates, givens, steps_per_call: int, mode: str):
    """The one-step function ``(index, *other_inputs) -> cost``, or its :class:`FusedSteps`
    version when ``steps_per_call > 1``."""
    if steps_per_call > 1:
        return fuse_steps(index, other_inputs, cost, updates, givens, steps_per_call, mode)
    return compile_function([index, *other_inputs], cost, mode, updates=updates, givens=givens)


def steps_per_call_for(count: int, requested: int) -> int:
    """The largest divisor of ``count`` minibatches not above ``requested`` (so every call is full)."""
    requested = max(1, min(int(requested), count))
    return max(d for d in range(1, requested + 1) if count % d == 0)


def run_minibatches(fn, n_train_batches: int, args=(), desc: str = "", progress: bool = True):
    """Yield ``(first_index, costs)`` for one pass over the minibatches, calling ``fn`` once per
    minibatch, or once per ``fn.steps_per_call`` minibatches for a :class:`FusedSteps`."""
    step = getattr(fn, "steps_per_call", 1)
    for first in tqdm(range(0, n_train_batches, step), desc=desc, leave=False,
                      disable=None if progress else True, mininterval=0.5):
        yield first, np.atleast_1d(fn(first, *args))


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

    def should_validate(self, iteration: int, last: int | None = None) -> bool:
        """Whether to validate after minibatch ``iteration`` (counted from 0), or after the
        minibatches ``iteration .. last`` that one fused call ran."""
        last = iteration if last is None else last
        return (last + 1) // self.validation_frequency > iteration // self.validation_frequency

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
class FitState:
    """Where :func:`fit_early_stopping` stands after an epoch: enough to continue from there.

    ``best_params`` holds the parameter values of the best validation error so far.
    """

    epoch: int = 0
    patience: int = 0
    best_loss: float = math.inf
    best_iteration: int = -1
    test_error: float | None = None
    done: bool = False
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    best_params: list = field(default_factory=list)

    def scalars(self) -> dict:
        """Everything but ``best_params``, JSON-ready (infinity as None)."""
        return {"epoch": self.epoch, "patience": self.patience,
                "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
                "best_iteration": self.best_iteration, "test_error": self.test_error,
                "done": self.done, "seconds": self.seconds, "history": self.history}

    @classmethod
    def from_scalars(cls, scalars: dict, best_params) -> "FitState":
        values = dict(scalars)
        values["best_loss"] = math.inf if values["best_loss"] is None else values["best_loss"]
        return cls(**values, best_params=list(best_params))


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
                       progress: bool = True, log=print, name: str = "fine-tuning",
                       on_epoch_end=None, resume: FitState | None = None) -> FitResult:
    """Minibatch training with early stopping: the one loop every model here uses.

    Parameters
    ----------
    train_fn : ``train_fn(minibatch_index) -> cost``, updating the parameters.
    validate, test : ``() -> error`` on the whole validation / test set.
    params : shared variables to snapshot at the best validation error and restore at the end.
    progress : show a progress bar within each epoch.
    log : called with one line per epoch (``None`` for silence).
    on_epoch_end : called with the :class:`FitState` after each epoch (to checkpoint, or to
        change the learning rate).
    resume : a :class:`FitState` from ``on_epoch_end`` to continue from (the caller restores
        the parameters and optimiser state that go with it).

    Returns a :class:`FitResult`; the test error is the one measured when the
    validation error was at its best.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    rule = EarlyStopping(patience, n_train_batches, patience_increase, improvement_threshold)
    state = resume or FitState(patience=rule.patience, best_params=[p.get_value() for p in params])
    rule.patience, rule.best_loss, rule.best_iteration = state.patience, state.best_loss, state.best_iteration
    while state.epoch < n_epochs and not state.done:
        epoch = state.epoch + 1
        epoch_start, costs, val_error, improved = time.perf_counter(), [], None, False
        for first, chunk in run_minibatches(train_fn, n_train_batches, desc=f"{name} epoch {epoch}",
                                            progress=progress):
            costs.extend(chunk)
            first_iteration = (epoch - 1) * n_train_batches + first
            iteration = first_iteration + len(chunk) - 1
            if rule.should_validate(first_iteration, iteration):
                _check_finite(np.mean(costs), f"{name}, epoch {epoch}", learning_rate)
                val_error = float(validate())
                if rule.report(iteration, val_error):
                    improved = True
                    state.best_params = [p.get_value() for p in params]
                    if test is not None:
                        state.test_error = float(test())
            if rule.should_stop(iteration):
                state.done = True
                break
        mean_cost = _check_finite(np.mean(costs), f"{name}, epoch {epoch}", learning_rate)
        record = {"epoch": epoch, "cost": mean_cost, "validation_error": val_error,
                  "test_error": state.test_error if improved else None,
                  "seconds": time.perf_counter() - epoch_start}
        state.epoch, state.seconds = epoch, state.seconds + record["seconds"]
        state.patience, state.best_loss, state.best_iteration = rule.patience, rule.best_loss, rule.best_iteration
        state.history.append(record)
        if log:
            line = f"{name} epoch {epoch}: cost {mean_cost:.5f}"
            if val_error is not None:
                line += f", validation error {val_error:.2%}"
            if improved and state.test_error is not None:
                line += f", test error of best model {state.test_error:.2%}"
            log(line + f" ({record['seconds']:.1f} s)")
        if on_epoch_end is not None:
            on_epoch_end(state)
    for p, value in zip(params, state.best_params):
        p.set_value(value)
    return FitResult(state.best_loss, state.best_iteration, state.test_error, state.epoch,
                     state.seconds, state.history)


@dataclass
class PretrainResult:
    """Mean reconstruction cost per epoch for each layer, and the seconds each layer took.

    Also the progress of an unfinished run: layer ``k`` has done ``len(costs[k])`` epochs.
    """

    costs: list[list[float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def pretrain_layers(pretraining_fns, n_train_batches: int, n_epochs: int, corruption_levels,
                    learning_rate: float, progress: bool = True, log=print,
                    on_epoch_end=None, resume: PretrainResult | None = None) -> PretrainResult:
    """Greedy layer-wise pretraining: train each layer's dA for ``n_epochs`` in turn.

    ``pretraining_fns[i](index, corruption, lr)`` does one SGD step of layer ``i`` on
    minibatch ``index`` and returns its reconstruction cost.  A function with a ``prepare()``
    method (the SdA's cached-input layers) has it called once, just before its layer trains,
    when the layers below it are final.  ``on_epoch_end(result)`` is called after every
    epoch with the progress so far, which ``resume`` takes to continue from.
    """
    if len(corruption_levels) != len(pretraining_fns):
        raise ValueError(
            f"need one corruption level per layer ({len(pretraining_fns)}), got {len(corruption_levels)}"
        )
    result = resume or PretrainResult()
    for layer, (fn, corruption) in enumerate(zip(pretraining_fns, corruption_levels)):
        if layer == len(result.costs):
            result.costs.append([])
            result.seconds.append(0.0)
        done = len(result.costs[layer])
        if done >= n_epochs:
            continue
        if hasattr(fn, "prepare"):
            fn.prepare()
        for epoch in range(done + 1, n_epochs + 1):
            epoch_start = time.perf_counter()
            batch_costs = np.concatenate([
                chunk for _, chunk in run_minibatches(fn, n_train_batches, (corruption, learning_rate),
                                                      f"pretraining layer {layer} epoch {epoch}", progress)
            ])
            mean_cost = _check_finite(np.mean(batch_costs),
                                      f"pretraining layer {layer}, epoch {epoch}", learning_rate)
            seconds = time.perf_counter() - epoch_start
            result.costs[layer].append(mean_cost)
            result.seconds[layer] += seconds
            if log:
                log(f"pretraining layer {layer} epoch {epoch}: cost {mean_cost:.4f} ({seconds:.1f} s)")
            if on_epoch_end is not None:
                on_epoch_end(result)
    return result
