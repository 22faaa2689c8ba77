"""Steps: compiled SGD steps that know how many minibatches make an epoch.

A :class:`Step` is what every training loop here calls: ``step(index, *args)`` takes one SGD
step on minibatch ``index`` of the data it was compiled for and returns the cost.  It carries
``n_batches`` (the minibatches in one epoch, computed once, here) and ``steps_per_call``:
with ``steps_per_call = K > 1`` one call runs minibatches ``index .. index + K - 1`` inside a
compiled ``scan`` loop and returns their K costs, so that JAX (above all on a GPU) does not
wait on Python between minibatches.  The loops in :mod:`sda.training` need nothing else.

SGD itself, with the classical momentum the fast presets use:

.. math::  v \\leftarrow \\mu v - \\eta\\,\\partial C/\\partial p, \\qquad p \\leftarrow p + v

(:math:`\\mu = 0` is the tutorial's plain :math:`p \\leftarrow p - \\eta\\,\\partial C/\\partial p`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from sda.datasets import minibatch, n_batches
from sda.modes import compile_function, keep_on_device
from sda.utils import tqdm


def gradients(cost, params) -> list:
    """``d cost / d p`` for each ``p`` of the list ``params``, as a list (PyTensor's ``grad``)."""
    return list(pt.grad(cost, list(params)))  # type: ignore[arg-type]  # grad returns a list for a list

__all__ = ["sgd_updates", "max_norm", "Step", "compile_step", "compile_cached_input_step", "input_cache",
           "score_function", "supervised_functions", "steps_per_call_for"]


def sgd_updates(cost, params, learning_rate, momentum: float = 0.0, constraint=None):
    """``[(shared, new value), ...]`` for one SGD step on ``cost`` (see the module docstring).

    With momentum > 0 each parameter gets a velocity (a new shared variable, starting at 0).
    ``learning_rate`` may be a number, a symbolic scalar or a shared variable (for a schedule).
    ``constraint(param, new_value)``, if given, maps each parameter's new value onto its
    allowed set (e.g. :func:`max_norm`), a projected gradient step.
    """
    constrain = constraint or (lambda param, value: value)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    updates = []
    for p, g in zip(params, gradients(cost, params)):
        step = pt.cast(learning_rate, p.dtype) * g
        if momentum == 0:
            updates.append((p, constrain(p, p - step)))
            continue
        velocity = pytensor.shared(np.zeros_like(p.get_value(borrow=True)), name=f"velocity_{p.name}")
        new_velocity = pt.cast(momentum, p.dtype) * velocity - step
        updates += [(velocity, new_velocity), (p, constrain(p, p + new_velocity))]
    return updates


def max_norm(weights, limit: float):
    """``weights`` (n_in, n_out) with each unit's incoming weight vector (a column) rescaled to
    norm at most ``limit``: :math:`w_j \\leftarrow w_j \\min(1, c / \\|w_j\\|)` (Srivastava et al. 2014)."""
    norms = pt.sqrt(pt.sum(pt.sqr(weights), axis=0, keepdims=True))
    return weights * pt.minimum(1, pt.cast(limit, weights.dtype) / pt.maximum(norms, 1e-12))


@dataclass
class Step:
    """A compiled SGD step and the epoch it walks through.

    Attributes
    ----------
    function
        ``function(first_index, *args)``: one minibatch's cost, or ``steps_per_call`` costs.
    n_batches
        minibatches per epoch.
    steps_per_call
        minibatches per call (a divisor of ``n_batches``, so every call is full).
    updated
        the shared variables the step changes: parameters, momentum velocities, noise
        generators; what a checkpoint must save to continue the step exactly.
    prepare
        called once before the step's first epoch (e.g. to fill an input cache).
    """

    function: Callable
    n_batches: int
    steps_per_call: int = 1
    updated: list = field(default_factory=list)
    prepare: Callable[[], None] = lambda: None
    #: seconds of the first call through :meth:`epoch`, and of the later ones (sum, count)
    first_call_seconds: float | None = field(default=None, init=False)
    _later: list = field(default_factory=lambda: [0.0, 0], init=False, repr=False)

    def __call__(self, first_index, *args):
        return self.function(first_index, *args)

    def epoch(self, args=(), desc: str = "", progress: bool = True):
        """Yield ``(first_index, costs)`` for each call of one pass over the minibatches."""
        for first in tqdm(range(0, self.n_batches, self.steps_per_call), desc=desc, leave=False,
                          disable=None if progress else True, mininterval=0.5):
            start = time.perf_counter()
            costs = np.atleast_1d(self.function(first, *args))
            self._time(time.perf_counter() - start)
            yield first, costs

    def _time(self, seconds: float) -> None:
        if self.first_call_seconds is None:
            self.first_call_seconds = seconds
        else:
            self._later[0] += seconds
            self._later[1] += 1

    def warm_up_seconds(self) -> float:
        """How much longer the first call took than the later ones: the compiling that NUMBA and
        JAX do at a function's first call (0 before a second call)."""
        if self.first_call_seconds is None or not self._later[1]:
            return 0.0
        return max(0.0, self.first_call_seconds - self._later[0] / self._later[1])


def steps_per_call_for(count: int, requested: int) -> int:
    """The largest divisor of ``count`` minibatches not above ``requested`` (so every call is full)."""
    requested = max(1, min(int(requested), count))
    return max(d for d in range(1, requested + 1) if count % d == 0)


def compile_step(index, inputs, cost, updates, data: dict, batch_size: int, mode: str,
                 steps_per_call: int = 1) -> Step:
    """Compile ``(index, *inputs) -> cost`` with ``updates`` into a :class:`Step`.

    ``data`` maps each symbolic variable of the graph that stands for a minibatch (the input
    ``x``, the labels ``y``) to the shared dataset it is taken from; minibatch ``index`` of each
    replaces it.  The datasets go to the device once (JAX), and the number of minibatches is
    the first dataset's.
    """
    keep_on_device(list(data.values()), mode)
    count = n_batches(next(iter(data.values())), batch_size)
    givens = {var: minibatch(shared, index, batch_size) for var, shared in data.items()}
    per_call = steps_per_call_for(count, steps_per_call)
    if per_call > 1:
        function = _fused(index, inputs, cost, updates, givens, per_call, mode)
    else:
        function = compile_function([index, *inputs], cost, mode, updates=updates, givens=givens)
    return Step(function, count, per_call, [target for target, _ in updates])


def _fused(index, inputs, cost, updates, givens, steps_per_call: int, mode: str):
    """``steps_per_call`` steps of the one-step graph in one compiled ``scan`` loop.

    Every shared variable that ``updates`` changes becomes a state carried from step to step;
    the final states are written back once per call.
    """
    targets = [target for target, _ in updates]
    step_outputs = clone_replace([cost] + [value for _, value in updates], replace=dict(givens))

    def one_step(i, *states):
        return clone_replace(step_outputs, replace={index: i, **dict(zip(targets, states))})

    first = pt.iscalar("first_index")
    # arange of a constant length, shifted: a static loop length, as JAX requires
    indices = pt.arange(steps_per_call, dtype="int32") + first
    outputs = pytensor.scan(one_step, sequences=[indices], outputs_info=[None, *targets],
                            return_updates=False)
    costs, finals = outputs[0], outputs[1:]
    fused_updates = [(target, final if not hasattr(final, "ndim") else final[-1])
                     for target, final in zip(targets, finals)]
    return compile_function([first, *inputs], costs, mode, updates=fused_updates)


def compile_cached_input_step(index, inputs, cost, updates, layer_input, width: int, x, train_x,
                              batch_size: int, mode: str, steps_per_call: int = 1) -> Step:
    """A :class:`Step` whose minibatches are ``layer_input`` (a graph of ``x`` through frozen
    layers, ``width`` columns) computed once for the whole of ``train_x`` rather than at every step.

    Its ``prepare()`` encodes ``train_x`` (clean, without noise) into a shared cache, and the
    steps read minibatches from that cache: greedy pretraining of layer k then costs no more
    than training a lone autoencoder on the codes of layer k - 1.  Call ``prepare()`` again if
    the layers below change.
    """
    cache, prepare = input_cache(layer_input, width, x, train_x, mode)
    step = compile_step(index, inputs, cost, updates, {layer_input: cache}, batch_size, mode, steps_per_call)
    step.prepare = prepare
    return step


def input_cache(layer_input, width: int, x, train_x, mode: str):
    """``(cache, prepare)``: a shared matrix to stand for ``layer_input`` (a graph of ``x``, ``width``
    columns) on the whole of ``train_x``, and the function that fills it by encoding ``train_x``."""
    n_examples = train_x.get_value(borrow=True).shape[0]
    # zeros from calloc: no memory is touched until prepare() fills it
    cache = pytensor.shared(np.zeros((n_examples, width), dtype=pytensor.config.floatX),
                            name=f"layer_input_{width}", borrow=True)
    encode = compile_function([], layer_input, mode, givens={x: train_x})

    def prepare():
        cache.set_value(np.asarray(encode(), dtype=cache.dtype), borrow=True)
        keep_on_device([cache], mode)

    return cache, prepare


def score_function(x, y, errors, dataset, mode: str):
    """Compiled ``() -> error`` of the symbolic ``errors`` on a whole shared ``(images, labels)``
    dataset, in one call so that no example is dropped."""
    images, labels = dataset
    keep_on_device([images, labels], mode)
    return compile_function([], errors, mode, givens={x: images, y: labels})


def supervised_functions(x, y, cost, errors, params, datasets, batch_size: int, learning_rate, mode: str,
                         momentum: float = 0.0, steps_per_call: int = 1, extra_updates=(), constraint=None):
    """``(train_step, validate, test)`` for a classifier with input ``x`` and labels ``y`` on
    shared ``datasets = [(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

    ``train_step`` is a :class:`Step` minimising ``cost``; ``validate()`` and ``test()`` return
    the error rate on their whole set (``test`` is None when there is no test set).
    ``extra_updates`` (e.g. a noise generator's) are applied with each training step;
    ``constraint`` goes to :func:`sgd_updates`.
    """
    (train_x, train_y), valid, test = datasets
    index = pt.iscalar("index")
    updates = [*extra_updates, *sgd_updates(cost, params, learning_rate, momentum, constraint)]
    train_step = compile_step(index, [], cost, updates, {x: train_x, y: train_y}, batch_size, mode,
                              steps_per_call)
    return (train_step, *(None if pair is None else score_function(x, y, errors, pair, mode)
                          for pair in (valid, test)))
