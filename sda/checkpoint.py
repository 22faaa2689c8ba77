"""Checkpoints: everything a training run needs to continue exactly where it stopped.

A checkpoint (``checkpoint.safetensors``) is a file in the same safe format as model files
(:mod:`sda.persistence`: safetensors, named float tensors plus a JSON header in the metadata,
never a pickle, checked before any tensor is read, written atomically) holding

* ``state_<i>``: the values of the run's shared variables, in an order the run defines
  (model parameters, then optimiser state such as momentum velocities or Adam's moments and
  :math:`\\beta^t`, and the learning rate);
* ``best_<i>``: the parameters at the best validation error so far (fine-tuning only);
* the header: the run's configuration, the fingerprint of its data (shapes and sha256 of each
  array, so that a resume on other data is refused) and where they came from, the state of
  each corruption noise generator, the pretraining progress
  (:class:`~sda.training.PretrainResult`) and the fine-tuning state (:class:`~sda.training.FitState`).

* ``digest``: the sha256 of everything else in the file (:func:`checkpoint_digest`).

The tensors are named by position, as the run orders its variables: their shapes are those of
the run's variables, checked when it restores them (:func:`restore_state`); before then, their
names must be the ones the header's counts imply, and their sizes are bounded by the file's.
Every field is checked on loading, its kind and its keys before any value is used, then the
digest: a damaged checkpoint, or one edited after it was written, raises :class:`CheckpointError`.
Parameters must be finite and within the bound training stops at
(:data:`sda.training.PARAMETER_LIMIT`); the run checks that the learning rate is the one its
schedule gives at the checkpoint's epoch.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sda.persistence import ModelFileError, read_tensor_file, write_tensor_file
from sda.training import PARAMETER_LIMIT, DivergenceError, FitState, PretrainResult

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "restore_state", "restore_generators",
           "checkpoint_digest", "CHECKPOINT_VERSION"]

FORMAT = "sda-checkpoint"
#: Version 5's configuration holds every key of :data:`sda.hyperparameters.HYPERPARAMETERS` (4 lacked
#: those of UFLDL's protocol and of the update rules; 3 and earlier were ``.npz``): checkpoints of
#: another version are refused, naming it.
CHECKPOINT_VERSION = 5
_HEADER_KEYS = {"format", "format_version", "config", "n_state", "rngs", "pretrain", "fit", "data", "data_source",
                "execution", "digest"}
_HISTORY_KEYS = {"epoch", "cost", "validation_error", "test_error", "seconds", "time"}
_FIT_KEYS = {"epoch", "patience", "best_loss", "best_iteration", "test_error", "done", "seconds", "history"}
#: The command line's data source (:func:`sda.cli._data_source`): each key's allowed types.
_SOURCE_TYPES = {"data_file": (str, type(None)), "data_dir": (str, type(None)), "valid_size": (int, type(None)),
                 "train_size": (int, type(None)), "verify": (bool,), "shuffle": (bool,),
                 "label_column": (str, type(None)), "scaled": (bool,)}


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
        "format": FORMAT, "format_version": CHECKPOINT_VERSION, "config": config,
        "n_state": len(state_vars), "rngs": [_rng_state(r) for r in rngs],
        "pretrain": dataclasses.asdict(pretrain),
        "fit": None if fit is None else fit.scalars(),
        "data": data, "data_source": data_source, "execution": execution,
    }
    header = json.loads(json.dumps(header))  # as it will be read back (tuples as lists)
    header["digest"] = checkpoint_digest(header, arrays)
    return write_tensor_file(path, header, arrays)


def checkpoint_digest(header: dict, arrays: dict) -> str:
    """The sha256 of a checkpoint's header (but its ``digest``) and of every array's name, dtype,
    shape and bytes: any change to the file after it was written changes it."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "digest"}, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\n{name} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; anything missing or of the wrong
    kind raises :class:`CheckpointError` naming the file."""
    header, arrays = read_tensor_file(path, FORMAT, CheckpointError, CHECKPOINT_VERSION,
                                      check_layout=lambda header, layout: _check_names(path, header, layout))
    try:
        n_state, n_best = header["n_state"], len(arrays) - header["n_state"]
        state = [arrays[f"state_{i}"] for i in range(n_state)]
        fit = None
        if header["fit"] is not None:
            fit = FitState.from_scalars(header["fit"], [arrays[f"best_{i}"] for i in range(n_best)])
        if not isinstance(header["config"], dict) or not isinstance(header["rngs"], list):
            raise TypeError("config must be an object and rngs a list")
        checkpoint = Checkpoint(config=dict(header["config"]), state=state, rng_states=list(header["rngs"]),
                                pretrain=PretrainResult(**header["pretrain"]), fit=fit,
                                data=header.get("data"), data_source=header.get("data_source"),
                                execution=header.get("execution"))
        _check_values(checkpoint)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"{path}: damaged or incomplete checkpoint ({type(exc).__name__}: {exc})"[:300]) from None
    if header["digest"] != checkpoint_digest(header, arrays):
        raise CheckpointError(f"{path}: the checkpoint was changed after it was written (its digest does not match "
                              f"its contents); a run's settings cannot be edited: start a new run instead")
    return checkpoint


def _is_time(value) -> bool:
    """An epoch's end time as :func:`sda.training.utc_now` writes it."""
    if not (isinstance(value, str) and len(value) <= 64):
        return False
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_names(path, header: dict, layout: dict) -> None:
    """The header's fields are of the kinds :func:`save_checkpoint` writes, and the tensors are
    exactly ``state_0`` .. and (while fine-tuning) ``best_0`` ..: checked before any is read."""
    try:
        _check_structure(header)
        n_state = header["n_state"]
        if type(n_state) is not int or not 0 <= n_state <= len(layout):  # type(): not a bool
            raise ValueError(f"n_state {n_state!r:.40} does not match the {len(layout)} tensors")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: damaged or incomplete checkpoint ({type(exc).__name__}: {exc})"[:300]) from None
    n_best = len(layout) - n_state if header["fit"] is not None else 0
    odd = set(layout) ^ {*(f"state_{i}" for i in range(n_state)), *(f"best_{i}" for i in range(n_best))}
    if odd:
        raise CheckpointError(f"{path}: damaged or incomplete checkpoint (tensors {sorted(odd)[:3]!r:.80} "
                              f"do not fit n_state={n_state})")


def _check_structure(header: dict) -> None:
    """The header's fields, of the kinds and with the keys :func:`save_checkpoint` writes, before
    any of them is used (TypeError / ValueError name the field)."""
    unknown = set(header) - _HEADER_KEYS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)!r:.80}")
    if not isinstance(header["digest"], str):
        raise TypeError("digest must be a string")
    pretrain = header["pretrain"]
    fields = {f.name for f in dataclasses.fields(PretrainResult)}
    if not isinstance(pretrain, dict) or set(pretrain) != fields:
        raise ValueError(f"pretrain must be an object with the keys of the pretraining progress, got {pretrain!r:.80}")
    if not (isinstance(pretrain["epoch_seconds"], list) and isinstance(pretrain["costs"], list)
            and len(pretrain["epoch_seconds"]) == len(pretrain["costs"])
            and all(isinstance(s, list) and isinstance(c, list) and len(s) == len(c) and all(map(_is_number, s))
                    for s, c in zip(pretrain["epoch_seconds"], pretrain["costs"]))):
        raise ValueError("pretrain.epoch_seconds must hold one list of seconds per layer, one per epoch")
    times = pretrain["epoch_times"]
    if not (
            isinstance(times, list) and len(times) == len(pretrain["costs"])
            and all(isinstance(t, list) and len(t) == len(c) and all(map(_is_time, t))
                    for t, c in zip(times, pretrain["costs"]))):
        raise ValueError("pretrain.epoch_times must hold one list of times per layer, one per epoch")
    fit = header["fit"]
    if fit is not None:
        if not isinstance(fit, dict) or set(fit) != _FIT_KEYS:
            raise ValueError(f"fit must be an object with the keys of the fine-tuning state, got {fit!r:.80}")
        history = fit["history"]
        if not isinstance(history, list) or (type(fit["epoch"]) is int and len(history) != fit["epoch"]) or not all(
                isinstance(r, dict) and set(r) == _HISTORY_KEYS
                and r["epoch"] == k and type(r["epoch"]) is int and _is_time(r["time"])
                and _is_number(r["cost"]) and _is_number(r["seconds"])
                and all(r[key] is None or _is_number(r[key]) for key in ("validation_error", "test_error"))
                for k, r in enumerate(history, start=1)):
            raise ValueError("fit.history must hold one record per fine-tuning epoch (epoch, cost, "
                             "validation_error, test_error, seconds, time), wrong kind")
    source = header["data_source"]
    if source is not None and not (isinstance(source, dict) and all(isinstance(k, str) for k in source)
                                   and all(isinstance(source[k], types) for k, types in _SOURCE_TYPES.items()
                                           if k in source)):
        raise ValueError(f"data_source must be an object of the data flags, got {source!r:.80}")
    if header["data"] is not None and not (isinstance(header["data"], dict) and all(
            isinstance(v, dict) and set(v) == {"shape", "dtype", "sha256"} for v in header["data"].values())):
        raise ValueError("data must be the data's fingerprint (shape, dtype and sha256 of each array)")
    execution = header["execution"]
    if execution is not None and not (isinstance(execution, dict) and all(
            isinstance(execution.get(k, ""), str) for k in ("mode",))
            and type(execution.get("steps_per_call", 1)) is int and execution.get("steps_per_call", 1) >= 1):
        raise ValueError("execution must be an object of the mode and the steps per call")


def _check_values(checkpoint: Checkpoint) -> None:
    """Every field of the right kind and finite: a checkpoint edited by hand must not train on
    nonsense (TypeError / ValueError name the field)."""
    arrays = [*checkpoint.state, *(checkpoint.fit.best_params if checkpoint.fit else [])]
    for i, array in enumerate(arrays):
        if not np.all(np.isfinite(array)):  # float32 or float64: the reader takes no other dtype
            raise ValueError(f"array {i} is not finite")
        # training stops at this bound, so no checkpoint holds more; the last state is the learning
        # rate, which the run checks against its schedule
        if i != len(checkpoint.state) - 1 and array.size and not np.max(np.abs(array)) <= PARAMETER_LIMIT:
            raise ValueError(f"array {i} holds {np.max(np.abs(array)):g}, beyond the {PARAMETER_LIMIT:g} "
                             f"at which training stops as diverged")
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
        if value.dtype != var.dtype:  # a cast would round: the resumed run would not be the same
            raise CheckpointError(f"checkpoint variable {i} ({var.name}) is {value.dtype}, this run's is {var.dtype}")
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
    (:mod:`sda.jax_noise`)."""
    if len(checkpoint.rng_states) != len(rngs):
        raise CheckpointError(f"checkpoint holds {len(checkpoint.rng_states)} generators; this run has {len(rngs)}")
    for rng, state in zip(rngs, checkpoint.rng_states):
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = state  # a PCG64 state: load_checkpoint checked each field
        rng.set_value(generator)
