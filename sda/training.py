"""The training loops every model here shares: greedy layer-wise pretraining and the tutorial's
patience-based early stopping (written once here; the tutorial repeated it in each of its scripts).

The loops are plain Python over :class:`sda.steps.Step` objects: a step knows how many
minibatches make an epoch, and the loops only call it, validate, and keep the state needed to
continue (:class:`FitState`, :class:`PretrainResult`).

Early stopping, as in the Deep Learning Tutorials: the model is validated every
``validation_frequency`` minibatches.  Training may run until iteration ``patience``;
each time the validation error drops below ``improvement_threshold`` times the best so
far, patience grows to ``max(patience, iteration * patience_increase)``.  The best
parameters seen are kept and restored at the end; or (``keep="last"``, UFLDL's way) every
epoch runs and the last parameters are kept, the validation set (which may then be absent)
choosing nothing.

Every epoch's record carries the time it ended (:func:`utc_now`): the records of a run resumed
from a checkpoint keep the times of the epochs the checkpoint holds.

Divergence: after every epoch the cost must be finite and every parameter (and momentum
velocity) finite and below :data:`PARAMETER_LIMIT` in magnitude; otherwise
:class:`DivergenceError` stops training before anything of that epoch is saved.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field

import numpy as np

from sda.full_batch import FullBatchObjective, minimize_lbfgs
from sda.utils import format_duration
from sda.validation import check_positive_int

__all__ = ["KEEP_MODELS", "DivergenceError", "PARAMETER_LIMIT", "EarlyStopping", "FitState", "FitResult",
           "fit_early_stopping", "fit_lbfgs", "PretrainResult", "pretrain_layers", "train_epoch", "time_left", "utc_now"]

#: Which fine-tuned parameters a run keeps: those of the best validation error (the tutorial's
#: early stopping), or the last ones (UFLDL's: every iteration runs, the validation set chooses nothing).
KEEP_MODELS = ("best", "last")

#: No weight of a sigmoid or softmax layer trained on inputs in [0, 1] gets anywhere near this;
#: a parameter beyond it means SGD is running away, even while the cost stays finite.
PARAMETER_LIMIT = 1e6


class DivergenceError(FloatingPointError):
    """A cost or a parameter became NaN, infinite or exploded: training stopped."""


def utc_now() -> str:
    """The time now in UTC, ISO 8601 to the millisecond (``2026-12-03T14:58:20.123+00:00``): when an
    epoch ended.  UTC, so that the records of a run resumed in another time zone still sort."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _rate(learning_rate) -> str:
    """The text " (learning rate 0.1)" for a rate given as a number or a shared variable."""
    if learning_rate is None:
        return ""
    value = learning_rate.get_value() if hasattr(learning_rate, "get_value") else learning_rate
    return f" (learning rate {float(value):g})"


def _overflow_unwarned():
    """numpy's overflow warnings off while an epoch runs: a run that overflows is stopped after
    it, in one line (:class:`DivergenceError`); the warnings on the way (graphs that run in
    Python in some modes) would only repeat it, over many lines."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _check_cost(cost, where: str, learning_rate) -> float:
    cost = float(cost)
    if not math.isfinite(cost):
        remedy = "lower the learning rate" if learning_rate is not None else "lower the penalty weights"
        raise DivergenceError(f"{where}: the cost became {cost}{_rate(learning_rate)}; {remedy}")
    return cost


def _check_state(step, where: str, learning_rate) -> None:
    """Every floating-point variable ``step`` updates must be finite and below PARAMETER_LIMIT."""
    for variable in step.updated:
        value = variable.get_value(borrow=True)
        if not (hasattr(value, "dtype") and np.issubdtype(value.dtype, np.floating)) or value.size == 0:
            continue
        largest = float(np.max(np.abs(value)))
        if not largest <= PARAMETER_LIMIT:  # NaN fails this too
            raise DivergenceError(f"{where}: {variable.name} reached {largest:g}{_rate(learning_rate)}; "
                                  "lower the learning rate")


class EarlyStopping:
    """The tutorial's patience rule, as a small state machine (no training inside).

    Parameters
    ----------
    patience
        look at this many minibatch iterations at least.
    n_train_batches
        minibatches per epoch.
    patience_increase
        on a significant improvement at iteration ``i``, patience becomes
        at least ``i * patience_increase``.
    improvement_threshold
        an improvement is significant when the new error is below
        ``threshold * best``.
    validation_frequency
        validate every this many iterations; default
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
    def from_scalars(cls, scalars: dict, best_params) -> FitState:
        values = dict(scalars)
        values["best_loss"] = math.inf if values["best_loss"] is None else values["best_loss"]
        return cls(**values, best_params=list(best_params))


@dataclass
class FitResult:
    """Outcome of :func:`fit_early_stopping`; errors are fractions (0.013 = 1.3 %), of the kept
    parameters (None without a validation set)."""

    best_validation_error: float | None
    best_iteration: int
    test_error: float | None
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def fit_early_stopping(train_step, validate, test=None, *, n_epochs: int, patience: int,
                       patience_increase: float = 2.0, improvement_threshold: float = 0.995, params=(),
                       learning_rate=None, progress: bool = True, log=print, name: str = "fine-tuning",
                       on_epoch_end=None, resume: FitState | None = None,
                       validation_name: str = "validation error", keep: str = "best") -> FitResult:
    """Minibatch training with early stopping: the one loop every model here uses.

    Parameters
    ----------
    train_step
        a :class:`sda.steps.Step`: ``train_step(index) -> cost`` updates the parameters.
    validate, test
        ``() -> error`` on the whole validation / test set (``test`` may be None, and
        ``validate`` too when ``keep="last"``).
    n_epochs
        at most this many passes over the training minibatches.
    patience
        look at least this many minibatch iterations ahead (the tutorial's rule).
    params
        shared variables to snapshot at the best validation error and restore at the end.
    learning_rate
        number or shared variable, for messages only.
    progress
        show a progress bar within each epoch.
    log
        called with one line per epoch (``None`` for silence): ``epoch k/N``, the cost, the
        errors, the epoch's seconds and an estimate of the time left.
    on_epoch_end
        called with the :class:`FitState` after each epoch (to checkpoint, or to
        change the learning rate).
    resume
        a :class:`FitState` from ``on_epoch_end`` to continue from (the caller restores
        the parameters and optimiser state that go with it).
    validation_name
        what the log calls ``validate``'s error ("training error" when the
        caller validates on the training set).
    keep
        ``"best"``: the parameters of the best validation error, with early stopping;
        ``"last"``: every epoch runs, and the last parameters are kept.

    Returns
    -------
    FitResult
        The test error in it is that of the kept parameters (the best validation error's, or the last).
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    _check_keep(keep, validate)
    n_batches = train_step.n_batches
    rule = EarlyStopping(patience, n_batches, patience_increase, improvement_threshold)
    state = resume or FitState(patience=rule.patience, best_params=[p.get_value() for p in params])
    rule.patience, rule.best_loss, rule.best_iteration = state.patience, state.best_loss, state.best_iteration
    while state.epoch < n_epochs and not state.done:
        epoch = state.epoch + 1
        where = f"{name}, epoch {epoch}"
        epoch_start, costs, val_error, improved = time.perf_counter(), [], None, False
        with _overflow_unwarned():
            for first, chunk in train_step.epoch(desc=f"{name} epoch {epoch}", progress=progress):
                costs.extend(chunk)
                first_iteration = (epoch - 1) * n_batches + first
                iteration = first_iteration + len(chunk) - 1
                if validate is not None and rule.should_validate(first_iteration, iteration):
                    _check_cost(np.mean(costs), where, learning_rate)
                    val_error = float(validate())
                    if rule.report(iteration, val_error) and keep == "best":
                        improved = True
                        _keep(state, params, test)
                if keep == "best" and rule.should_stop(iteration):
                    state.done = True
                    break
        mean_cost = _check_cost(np.mean(costs), where, learning_rate)
        _check_state(train_step, where, learning_rate)
        state.patience, state.best_loss, state.best_iteration = rule.patience, rule.best_loss, rule.best_iteration
        if keep == "last":
            improved = True
            _keep(state, params, test, math.inf if val_error is None else val_error, epoch * n_batches - 1)
        record = {"epoch": epoch, "cost": mean_cost, "validation_error": val_error,
                  "test_error": state.test_error if improved else None,
                  "seconds": time.perf_counter() - epoch_start, "time": utc_now()}
        _end_epoch(state, record, improved, f"{name} epoch {epoch}/{n_epochs}", validation_name, log, on_epoch_end,
                   lambda: _fit_time_left(state, n_epochs, rule, n_batches), keep)
    return _best_result(state, params)


def fit_lbfgs(objective, validate, test=None, *, n_iterations: int, params=(), log=print, name: str = "fine-tuning",
              on_epoch_end=None, resume: FitState | None = None,
              validation_name: str = "validation error", keep: str = "best") -> FitResult:
    """Full-batch training by L-BFGS (:func:`sda.full_batch.minimize_lbfgs`) with the selection
    :func:`fit_early_stopping` makes: the network is validated after every iteration (what the
    history calls an epoch here) and the parameters of the best validation error are kept, then
    restored at the end (``keep="last"``: the last ones, as UFLDL; ``validate`` may then be
    None).  It runs ``n_iterations`` iterations, or fewer when L-BFGS converges.

    ``objective`` is a :class:`sda.full_batch.FullBatchObjective` over ``params``; the other
    arguments are those of :func:`fit_early_stopping`.  A resumed fit continues from the
    parameters its caller restored, with a fresh curvature estimate.
    """
    n_iterations = check_positive_int("n_iterations", n_iterations)
    _check_keep(keep, validate)
    state = resume or FitState(best_params=[p.get_value() for p in params])
    where, last_end = f"{name} (L-BFGS)", [time.perf_counter()]

    def iteration_end(cost):
        cost = _check_cost(cost, where, None)
        _check_state(objective, where, None)
        val_error = None if validate is None else float(validate())
        improved = keep == "last" or val_error < state.best_loss
        if improved:
            _keep(state, params, test, math.inf if val_error is None else val_error, state.epoch + 1)
        iteration = state.epoch + 1
        record = {"epoch": iteration, "cost": cost, "validation_error": val_error,
                  "test_error": state.test_error if improved else None, "seconds": time.perf_counter() - last_end[0],
                  "time": utc_now()}
        state.done = iteration >= n_iterations
        _end_epoch(state, record, improved, f"{name} iteration {iteration}/{n_iterations}", validation_name, log,
                   on_epoch_end, lambda: _lbfgs_time_left(state, n_iterations), keep)
        last_end[0] = time.perf_counter()

    if not state.done and state.epoch < n_iterations:
        objective.prepare()
        outcome = minimize_lbfgs(objective, n_iterations - state.epoch, iteration_end)
        _check_cost(outcome.fun, where, None)  # L-BFGS ends at once, without an iteration, on an infinite cost
        if not state.done and log:
            log(f"{name}: L-BFGS stopped after {state.epoch} iterations ({outcome.message})")
        state.done = True  # converged: a resumed run has nothing left to do
    return _best_result(state, params)


def _end_epoch(state: FitState, record: dict, improved: bool, title: str, validation_name: str, log, on_epoch_end,
               time_left_text, keep: str = "best") -> None:
    """Record an epoch's ``record`` in ``state``, log its line (``title``: cost, errors, seconds,
    ``time_left_text()``; the test error of the ``keep`` model) and call ``on_epoch_end``."""
    state.epoch, state.seconds = record["epoch"], state.seconds + record["seconds"]
    state.history.append(record)
    if log:
        line = f"{title}: cost {record['cost']:.5f}"
        if record["validation_error"] is not None:
            line += f", {validation_name} {record['validation_error']:.2%}"
        if improved and state.test_error is not None:
            line += f", test error of {keep} model {state.test_error:.2%}"
        log(line + f" ({record['seconds']:.1f} s{time_left_text()})")
    if on_epoch_end is not None:
        on_epoch_end(state)


def _check_keep(keep: str, validate) -> None:
    if keep not in KEEP_MODELS:
        raise ValueError(f"keep must be one of {', '.join(KEEP_MODELS)}, got {keep!r}")
    if validate is None and keep == "best":
        raise ValueError("without a validation set the last parameters are kept: keep='last'")


def _keep(state: FitState, params, test, loss: float | None = None, iteration: int = -1) -> None:
    """Keep the parameters as they are now, with their test error (and validation ``loss``, ``iteration``)."""
    if loss is not None:
        state.best_loss, state.best_iteration = loss, iteration
    state.best_params = [p.get_value() for p in params]
    if test is not None:
        state.test_error = float(test())


def _best_result(state: FitState, params) -> FitResult:
    """Restore the kept parameters; the :class:`FitResult` of ``state``."""
    for p, value in zip(params, state.best_params):
        p.set_value(value)
    return FitResult(None if math.isinf(state.best_loss) else state.best_loss, state.best_iteration, state.test_error, state.epoch,
                     state.seconds, state.history)


def _lbfgs_time_left(state: FitState, n_iterations: int) -> str:
    seconds = time_left([r["seconds"] for r in state.history], max(0, n_iterations - state.epoch))
    return f"; at most about {format_duration(seconds)} left" if seconds >= 1 and not state.done else ""


def time_left(epoch_seconds, epochs_left: int) -> float:
    """Seconds that ``epochs_left`` more epochs should take, from the epochs timed so far: their
    median, so that one epoch stretched by a pause (SIGSTOP, a suspended laptop) or a busy moment
    does not inflate every later estimate.  The first epoch is left out once there are others, as
    it also paid for JAX's compilation."""
    timed = list(epoch_seconds)[1:] or list(epoch_seconds)
    return epochs_left * float(np.median(timed)) if timed else 0.0


def _fit_time_left(state: FitState, n_epochs: int, rule: EarlyStopping, n_batches: int) -> str:
    """"; about 4 min left" for the log: up to ``n_epochs``, or to the epoch where patience,
    as it stands, runs out (it may still grow)."""
    if state.done or state.epoch >= n_epochs:
        return ""
    last = min(n_epochs, math.ceil((rule.patience + 1) / n_batches))
    seconds = time_left([r["seconds"] for r in state.history], max(0, last - state.epoch))
    until = f", to epoch {last} as patience stands" if last < n_epochs else ""
    return f"; about {format_duration(seconds)} left{until}" if seconds >= 1 else ""


@dataclass
class PretrainResult:
    """Mean reconstruction cost per epoch for each layer, the seconds each layer took, the
    seconds of each epoch (``epoch_seconds[k][e]``) and when it ended (``epoch_times[k][e]``,
    :func:`utc_now`; None where the checkpoint a run resumed from did not record it).

    Also the progress of an unfinished run: layer ``k`` has done ``len(costs[k])`` epochs, or is
    done when listed in ``converged`` (L-BFGS met its tolerance before its iteration count).
    """

    costs: list[list[float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[list[float]] = field(default_factory=list)
    converged: list[int] = field(default_factory=list)  # L-BFGS layers that stopped before their count
    epoch_times: list[list[str]] = field(default_factory=list)


def train_epoch(step, args=(), where: str = "", learning_rate=None, progress: bool = True) -> float:
    """One pass of ``step`` (a :class:`sda.steps.Step`) over its minibatches; returns the mean cost.

    Raises :class:`DivergenceError` when the cost or a variable the step updates runs away.
    """
    with _overflow_unwarned():
        costs = np.concatenate([chunk for _, chunk in step.epoch(args, where, progress)])
        mean_cost = _check_cost(np.mean(costs), where, learning_rate)
    _check_state(step, where, learning_rate)
    return mean_cost


def pretrain_layers(pretraining_fns, n_epochs, corruption_levels, learning_rate: float,
                    progress: bool = True, log=print, on_epoch_end=None,
                    resume: PretrainResult | None = None, names=None) -> PretrainResult:
    """Greedy layer-wise pretraining: train each layer's autoencoder for ``n_epochs`` in turn
    (one count for every layer, or a list of one per layer; ``names``: what the log calls each,
    by default ``pretraining layer k``).

    ``pretraining_fns[i]`` is layer ``i``'s :class:`sda.steps.Step`: ``step(index, corruption,
    lr)`` does one SGD step of its dA on minibatch ``index`` and returns the reconstruction
    cost.  Or it is a :class:`sda.full_batch.FullBatchObjective`, trained by L-BFGS, and then an
    "epoch" is one L-BFGS iteration over the whole training set (the objective holds its
    corruption; ``corruption_levels`` and ``learning_rate`` do not apply).  Each step's
    ``prepare()`` is called once, just before its layer trains, when the layers below it are
    final.  ``on_epoch_end(result)`` is called after every epoch with the progress so far,
    which ``resume`` takes to continue from (an L-BFGS layer continues from its parameters with
    a fresh curvature estimate).
    """
    if len(corruption_levels) != len(pretraining_fns):
        raise ValueError(
            f"need one corruption level per layer ({len(pretraining_fns)}), got {len(corruption_levels)}"
        )
    result = resume or PretrainResult()
    epochs = list(n_epochs) if isinstance(n_epochs, (list, tuple)) else [n_epochs] * len(pretraining_fns)
    names = names or [f"pretraining layer {k}" for k in range(len(pretraining_fns))]
    for layer, (step, corruption) in enumerate(zip(pretraining_fns, corruption_levels)):
        if layer == len(result.costs):
            result.costs.append([])
            result.seconds.append(0.0)
        while len(result.epoch_seconds) <= layer:  # a checkpoint of sda < 0.3 kept no epoch times
            result.epoch_seconds.append([])
        while len(result.epoch_times) <= layer:
            result.epoch_times.append([])
        done, n_epochs, name = len(result.costs[layer]), epochs[layer], names[layer]
        if done >= n_epochs or layer in result.converged:
            continue
        step.prepare()
        unit = "iteration" if isinstance(step, FullBatchObjective) else "epoch"
        last_end = [time.perf_counter()]

        def epoch_end(mean_cost):
            seconds = time.perf_counter() - last_end[0]
            epoch = len(result.costs[layer]) + 1
            result.costs[layer].append(mean_cost)
            result.seconds[layer] += seconds
            result.epoch_seconds[layer].append(seconds)
            result.epoch_times[layer].append(utc_now())
            if log:
                # the layers above are not timed yet: this layer's epochs stand in for theirs
                left = time_left(result.epoch_seconds[layer], (n_epochs - epoch) + sum(epochs[layer + 1:]))
                ends = f"; pretraining ends in about {format_duration(left)}" if left >= 1 else ""
                log(f"{name} {unit} {epoch}/{n_epochs}: cost {mean_cost:.4f} ({seconds:.1f} s{ends})")
            if on_epoch_end is not None:
                on_epoch_end(result)
            last_end[0] = time.perf_counter()  # the next epoch's time leaves out this one's checkpoint

        if unit == "iteration":
            where = f"{name} (L-BFGS)"

            def iteration_end(cost):
                _check_state(step, where, None)
                epoch_end(_check_cost(cost, where, None))

            outcome = minimize_lbfgs(step, n_epochs - done, iteration_end)
            _check_cost(outcome.fun, where, None)  # L-BFGS ends at once, without an iteration, on an infinite cost
            if len(result.costs[layer]) < n_epochs:
                result.converged.append(layer)
                if log:
                    log(f"{name}: L-BFGS stopped after {len(result.costs[layer])} iterations "
                        f"({outcome.message})")
            continue
        for epoch in range(done + 1, n_epochs + 1):
            epoch_end(train_epoch(step, (corruption, learning_rate), f"{name}, epoch {epoch}",
                                  learning_rate, progress))
    return result
