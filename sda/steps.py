"""Steps: compiled SGD steps that know how many minibatches make an epoch.

A :class:`Step` is what every training loop here calls: ``step(index, *args)`` takes one SGD
step on minibatch ``index`` of the data it was compiled for and returns the cost.  It carries
``n_batches`` (the minibatches in one epoch, computed once, here) and ``steps_per_call``:
with ``steps_per_call = K > 1`` one call runs minibatches ``index .. index + K - 1`` inside a
compiled ``scan`` loop and returns their K costs, so that JAX (above all on a GPU) does not
wait on Python between minibatches.  The loops in :mod:`sda.training` need nothing else.

The update rules (:data:`UPDATE_RULES`, :func:`update_rule`), with :math:`g = \\partial C/\\partial p`
on the minibatch and :math:`\\eta` the learning rate:

* ``"sgd"``, with the classical momentum the fast presets use:
  :math:`v \\leftarrow \\mu v - \\eta g,\\; p \\leftarrow p + v` (:math:`\\mu = 0` is the tutorial's plain
  :math:`p \\leftarrow p - \\eta g`);
* ``"nesterov"``, Nesterov's accelerated gradient (Sutskever et al. 2013) with the gradient taken
  at :math:`p` itself (Bengio, Boulanger-Lewandowski & Pascanu 2013):
  :math:`v \\leftarrow \\mu v - \\eta g,\\; p \\leftarrow p + \\mu v - \\eta g`;
* ``"adam"`` (Kingma & Ba 2015), bias-corrected: :func:`adam_updates`;
* ``"adamw"``, Adam with decoupled weight decay (Loshchilov & Hutter 2019): :func:`adam_updates`.
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

__all__ = ["UPDATE_RULES", "ADAM_DEFAULTS", "sgd_updates", "adam_updates", "update_rule", "max_norm", "Step", "compile_step", "compile_cached_input_step", "input_cache",
           "score_function", "score_functions", "supervised_functions", "steps_per_call_for"]


#: The fine-tuning update rules (see the module docstring).
UPDATE_RULES = ("sgd", "nesterov", "adam", "adamw")
#: Adam's :math:`\\beta_1, \\beta_2, \\epsilon`: Kingma & Ba's defaults.
ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def _unconstrained(param, value):
    return value


def sgd_updates(cost, params, learning_rate, momentum: float = 0.0, constraint=None, nesterov: bool = False):
    """``[(shared, new value), ...]`` for one SGD step on ``cost`` (see the module docstring).

    With momentum > 0 each parameter gets a velocity (a new shared variable, starting at 0);
    ``nesterov`` takes Nesterov's step instead of the classical one (it needs momentum > 0).
    ``learning_rate`` may be a number, a symbolic scalar or a shared variable (for a schedule).
    ``constraint(param, new_value)``, if given, maps each parameter's new value onto its
    allowed set (e.g. :func:`max_norm`), a projected gradient step.
    """
    constrain = constraint or _unconstrained
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if nesterov and momentum == 0:
        raise ValueError("Nesterov's momentum needs momentum > 0 (at 0 it is plain SGD)")
    updates = []
    for p, g in zip(params, gradients(cost, params)):
        step = pt.cast(learning_rate, p.dtype) * g
        if momentum == 0:
            updates.append((p, constrain(p, p - step)))
            continue
        velocity = pytensor.shared(np.zeros_like(p.get_value(borrow=True)), name=f"velocity_{p.name}")
        mu = pt.cast(momentum, p.dtype)
        new_velocity = mu * velocity - step
        new_p = p + mu * new_velocity - step if nesterov else p + new_velocity
        updates += [(velocity, new_velocity), (p, constrain(p, new_p))]
    return updates


def adam_updates(cost, params, learning_rate, beta1: float = ADAM_DEFAULTS["beta1"],
                 beta2: float = ADAM_DEFAULTS["beta2"], epsilon: float = ADAM_DEFAULTS["epsilon"],
                 weight_decay: float = 0.0, constraint=None):
    """``[(shared, new value), ...]`` for one step of Adam (Kingma & Ba 2015, Algorithm 1) on ``cost``:

    .. math::
        m \\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\qquad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2, \\qquad
        p \\leftarrow p - \\eta \\left(\\frac{\\hat m}{\\sqrt{\\hat v} + \\epsilon} + \\lambda p\\right),

    with the bias-corrected :math:`\\hat m = m / (1 - \\beta_1^t)`, :math:`\\hat v = v / (1 - \\beta_2^t)`
    at step :math:`t = 1, 2, \\dots` and :math:`\\lambda` = ``weight_decay``: 0 is Adam; > 0 is AdamW's
    decoupled weight decay (Loshchilov & Hutter 2019), applied to the weight matrices (the
    parameters with two dimensions) as the L2 penalty of :meth:`sda.SdA.SdA.build_finetune_functions`
    is, and scaled by the learning rate (and so by its schedule) as in PyTorch's ``AdamW``.

    The moments :math:`m, v` of each parameter (starting at 0) and :math:`\\beta_1^t, \\beta_2^t` (shared
    scalars starting at 1, the step counter in the form the step needs: bounded, where a count
    would pass :data:`sda.training.PARAMETER_LIMIT`) are shared variables the step updates, so
    that a checkpoint holds them.  ``constraint`` as for :func:`sgd_updates`.
    """
    constrain = constraint or _unconstrained
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if not epsilon > 0 or not weight_decay >= 0:
        raise ValueError(f"epsilon must be > 0 and weight_decay >= 0, got {epsilon} and {weight_decay}")
    dtype = pytensor.config.floatX
    powers = [pytensor.shared(np.asarray(1.0, dtype=dtype), name=f"adam_beta{k}_power") for k in (1, 2)]
    new_powers = [power * pt.cast(beta, dtype) for power, beta in zip(powers, (beta1, beta2))]
    updates = list(zip(powers, new_powers))
    for p, g in zip(params, gradients(cost, params)):
        cast = lambda value: pt.cast(value, p.dtype)
        m, v = (pytensor.shared(np.zeros_like(p.get_value(borrow=True)), name=f"adam_{kind}_{p.name}")
                for kind in ("m", "v"))
        new_m = cast(beta1) * m + cast(1 - beta1) * g
        new_v = cast(beta2) * v + cast(1 - beta2) * pt.sqr(g)
        m_hat, v_hat = new_m / (1 - cast(new_powers[0])), new_v / (1 - cast(new_powers[1]))
        direction = m_hat / (pt.sqrt(v_hat) + cast(epsilon))
        if weight_decay > 0 and p.ndim == 2:
            direction = direction + cast(weight_decay) * p
        updates += [(m, new_m), (v, new_v), (p, constrain(p, p - cast(learning_rate) * direction))]
    return updates


def update_rule(rule: str, cost, params, learning_rate, momentum: float = 0.0, weight_decay: float = 0.0,
                constraint=None) -> list:
    """The updates of one step of ``rule`` (one of :data:`UPDATE_RULES`): ``momentum`` is that of
    ``"sgd"`` and ``"nesterov"``, ``weight_decay`` the decoupled decay of ``"adamw"`` (the other
    rules take weight decay as an L2 penalty in ``cost``); Adam's constants are :data:`ADAM_DEFAULTS`."""
    if rule not in UPDATE_RULES:
        raise ValueError(f"update rule must be one of {', '.join(UPDATE_RULES)}, got {rule!r}")
    if rule in ("sgd", "nesterov"):
        return sgd_updates(cost, params, learning_rate, momentum, constraint, nesterov=rule == "nesterov")
    if momentum:
        raise ValueError(f"momentum belongs to sgd and nesterov; {rule}'s first moment takes its place")
    return adam_updates(cost, params, learning_rate, weight_decay=weight_decay if rule == "adamw" else 0.0,
                        constraint=constraint)


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


def score_functions(x, y, errors, datasets, mode: str) -> tuple:
    """:func:`score_function` of each shared pair of ``datasets``, None for a missing one (no
    validation or no test set)."""
    return tuple(None if pair is None else score_function(x, y, errors, pair, mode) for pair in datasets)


def supervised_functions(x, y, cost, errors, params, datasets, batch_size: int, learning_rate, mode: str,
                         momentum: float = 0.0, steps_per_call: int = 1, extra_updates=(), constraint=None,
                         update: str = "sgd", decoupled_decay: float = 0.0):
    """``(train_step, validate, test)`` for a classifier with input ``x`` and labels ``y`` on
    shared ``datasets = [(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

    ``train_step`` is a :class:`Step` minimising ``cost`` by the rule ``update`` (:func:`update_rule`,
    with ``momentum``, ``constraint`` and ``decoupled_decay``, AdamW's weight decay);
    ``validate()`` and ``test()`` return the error rate on their whole set (``test`` is None when
    there is no test set).  ``extra_updates`` (e.g. a noise generator's) are applied with each
    training step.
    """
    (train_x, train_y), valid, test = datasets
    index = pt.iscalar("index")
    updates = [*extra_updates, *update_rule(update, cost, params, learning_rate, momentum, decoupled_decay, constraint)]
    train_step = compile_step(index, [], cost, updates, {x: train_x, y: train_y}, batch_size, mode,
                              steps_per_call)
    return (train_step, *score_functions(x, y, errors, (valid, test), mode))
