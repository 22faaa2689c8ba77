"""Checkpoints: everything a training run needs to continue exactly where it stopped.

A checkpoint is an archive in the same safe format as model files (``.npz`` of numeric
arrays + JSON header, never a pickle, written atomically) holding

* ``state_<i>``: the values of the run's shared variables, in an order the run defines
  (model parameters, then optimiser state such as momentum velocities and the learning rate);
* ``best_<i>``: the parameters at the best validation error so far (fine-tuning only);
* the header: the run's configuration, the fingerprint of its data (shapes and sha256 of each
  array, so that a resume on other data is refused) and where they came from, the state of
  each corruption noise generator, the pretraining progress
  (:class:`~sda.training.PretrainResult`) and the fine-tuning state (:class:`~sda.training.FitState`).

Every field is checked on loading: a damaged or forged checkpoint raises :class:`CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sda.persistence import FORMAT_VERSION, ModelFileError, read_archive, write_archive
from sda.training import DivergenceError, FitState, PretrainResult

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "restore_state", "restore_generators"]

FORMAT = "sda-checkpoint"


class CheckpointError(ModelFileError):
    """A checkpoint is unreadable or does not fit the run that tries to resume from it."""


@dataclass
class Checkpoint:
    config: dict
    state: list[np.ndarray]
    rng_states: list[dict]
    pretrain: PretrainResult
    fit: FitState | None
    data: dict | None = None
    data_source: dict | None = None
    execution: dict | None = None


def _rng_state(shared_rng) -> dict:
    return shared_rng.get_value(borrow=True).bit_generator.state


def save_checkpoint(path, config: dict, state_vars, rngs, pretrain: PretrainResult,
                    fit: FitState | None = None, data: dict | None = None, data_source: dict | None = None,
                    execution: dict | None = None) -> Path:
    """Write a checkpoint of a run atomically (the previous one stays until this one is whole).

    A state holding a NaN or an infinity is never written (:class:`~sda.training.DivergenceError`):
    :func:`load_checkpoint` would refuse it, and the previous checkpoint is the last good one."""
    arrays = {f"state_{i}": np.asarray(v.get_value()) for i, v in enumerate(state_vars)}
    if fit is not None:
        arrays.update({f"best_{i}": np.asarray(a) for i, a in enumerate(fit.best_params)})
    for (entry, value), var in itertools.zip_longest(arrays.items(), state_vars):
        if not np.all(np.isfinite(value)):
            raise DivergenceError(f"{getattr(var, 'name', None) or entry} is not finite: no checkpoint of "
                                  "this epoch was written")
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "config": config,
        "n_state": len(state_vars), "rngs": [_rng_state(r) for r in rngs],
        "pretrain": dataclasses.asdict(pretrain),
        "fit": None if fit is None else fit.scalars(),
        "data": data, "data_source": data_source, "execution": execution,
    }
    return write_archive(path, header, arrays)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; anything missing or of the wrong
    kind raises :class:`CheckpointError` naming the file."""
    header, arrays = read_archive(path, FORMAT, CheckpointError)
    try:
        n_state = header["n_state"]
        if not isinstance(n_state, int) or not 0 <= n_state <= len(arrays):
            raise ValueError(f"n_state {n_state!r} does not match the {len(arrays)} arrays")
        state = [arrays[f"state_{i}"] for i in range(n_state)]
        fit = None
        if header["fit"] is not None:
            n_best = len([k for k in arrays if k.startswith("best_")])
            fit = FitState.from_scalars(header["fit"], [arrays[f"best_{i}"] for i in range(n_best)])
        if not isinstance(header["config"], dict) or not isinstance(header["rngs"], list):
            raise TypeError("config must be an object and rngs a list")
        checkpoint = Checkpoint(config=dict(header["config"]), state=state, rng_states=list(header["rngs"]),
                                pretrain=PretrainResult(**header["pretrain"]), fit=fit,
                                data=header.get("data"), data_source=header.get("data_source"),
                                execution=header.get("execution"))
        _check_values(checkpoint)
        return checkpoint
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"{path}: damaged or incomplete checkpoint ({type(exc).__name__}: {exc})"[:300]) from None


def _check_values(checkpoint: Checkpoint) -> None:
    """Every field of the right kind and finite: a checkpoint edited by hand must not train on
    nonsense (TypeError / ValueError name the field)."""
    for i, array in enumerate([*checkpoint.state, *(checkpoint.fit.best_params if checkpoint.fit else [])]):
        if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
            raise ValueError(f"array {i} is not finite floating point ({array.dtype})")
    if checkpoint.execution is not None and not isinstance(checkpoint.execution, dict):
        raise ValueError("execution must be an object")
    pretrain = checkpoint.pretrain
    if (not isinstance(pretrain.costs, list) or not isinstance(pretrain.seconds, list)
            or len(pretrain.costs) != len(pretrain.seconds)
            or not all(isinstance(c, list) and all(_is_number(v) for v in c) for c in pretrain.costs)
            or not all(_is_number(v) for v in pretrain.seconds)):
        raise ValueError("pretraining progress must be lists of numbers, one per layer")
    if not isinstance(pretrain.converged, list) or not all(
            type(k) is int and 0 <= k < len(pretrain.costs) for k in pretrain.converged):
        raise ValueError("the converged layers must be a list of layer numbers")
    fit = checkpoint.fit
    if fit is not None:
        counts = (fit.epoch, fit.patience, fit.best_iteration)
        if not all(type(n) is int for n in counts) or fit.epoch < 0 or fit.patience < 0 or fit.best_iteration < -1:
            raise ValueError(f"fine-tuning counts {counts} must be integers >= 0")
        if not (_is_number(fit.best_loss) and _is_number(fit.seconds) and type(fit.done) is bool
                and (fit.test_error is None or _is_number(fit.test_error))
                and isinstance(fit.history, list) and all(isinstance(r, dict) for r in fit.history)):
            raise ValueError("fine-tuning state has values of the wrong kind")
    for state in checkpoint.rng_states:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError(f"unsupported noise generator state {state!r:.80}")
        words = state.get("state")
        # PCG64's state and increment are 128-bit integers; one below 2**32 (a chance of 2**-96 for a
        # real generator) is forged, and would stop JAX's compiling, which splits them into 32-bit words
        if not (isinstance(words, dict) and all(type(words.get(k)) is int and 2 ** 32 <= words[k] < 2 ** 128
                                                for k in ("state", "inc"))):
            raise ValueError(f"damaged noise generator state (state and inc must be 128-bit integers, "
                             f"got {words!r:.80})")
        try:
            np.random.Generator(np.random.PCG64()).bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"damaged noise generator state ({exc})") from None


def _is_number(value) -> bool:
    return type(value) in (int, float) and (value == value)  # not NaN; inf is a valid best_loss


def restore_state(checkpoint: Checkpoint, state_vars, best_vars=()) -> None:
    """Set the run's shared variables to the checkpoint's values, once every shape fits
    (``best_vars``: the variables the best parameters are kept for); the noise generators are
    restored apart, before compiling (:func:`restore_generators`)."""
    if len(checkpoint.state) != len(state_vars):
        raise CheckpointError(f"checkpoint holds {len(checkpoint.state)} variables; this run has {len(state_vars)}")
    for i, (var, value) in enumerate(zip(state_vars, checkpoint.state)):
        expected = np.shape(var.get_value(borrow=True))
        if value.shape != expected:
            raise CheckpointError(f"checkpoint variable {i} ({var.name}) has shape {value.shape}, expected {expected}")
    if checkpoint.fit is not None:
        best = [np.shape(a) for a in checkpoint.fit.best_params]
        if best != [np.shape(v.get_value(borrow=True)) for v in best_vars]:
            raise CheckpointError(f"checkpoint's {len(best)} best parameters do not fit the model's {len(best_vars)}")
    for var, value in zip(state_vars, checkpoint.state):
        var.set_value(value.astype(var.dtype, copy=False))


def restore_generators(checkpoint: Checkpoint, rngs) -> None:
    """Set the noise generators ``rngs`` to the states of a checkpoint read by
    :func:`load_checkpoint` (which checked them).  Under JAX this must come
    before the functions are compiled: each compiles a copy of the generators' states then
    (:func:`sda.modes.write_back_compiled_noise`)."""
    if len(checkpoint.rng_states) != len(rngs):
        raise CheckpointError(f"checkpoint holds {len(checkpoint.rng_states)} generators; this run has {len(rngs)}")
    for rng, state in zip(rngs, checkpoint.rng_states):
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = state  # a PCG64 state: load_checkpoint checked each field
        rng.set_value(generator)
