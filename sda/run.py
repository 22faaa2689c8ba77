"""The run: the tutorial's ``test_SdA`` experiment as one function, :func:`train_SdA`.

A run pretrains an :class:`sda.SdA.SdA` layer by layer, fine-tunes it with early stopping,
and reports the best validation error and the test error at that point.  With an output
directory it also makes the run safe to interrupt and to inspect:

* ``checkpoint.safetensors`` after every epoch of either phase (parameters, momentum velocities,
  learning rate, noise generators, progress, the configuration and the data's fingerprint);
* ``best_model.safetensors`` whenever the validation error improves;
* ``metrics.jsonl``, one record per epoch appended as each epoch is saved
  (:func:`sda.run_record.epoch_records`; a resumed run first rewrites it from its checkpoint, so
  that it holds each epoch once), ``results.json`` at the end, and optionally the pictures of :mod:`sda.plots`.

Nothing is lost or mixed: a directory holding another run's files is refused unless the run
continues it (``resume``) or replaces it (``overwrite``); a lock keeps a second process out
while a run writes there; a resume takes its configuration from the checkpoint, refuses
settings that contradict it, and refuses data that are not the data it was trained on.

The command line (:mod:`sda.cli`), the scikit-learn estimator (:mod:`sda.estimators`) and
sweeps all call :func:`train_SdA`; configurations are plain dictionaries (:data:`PRESETS`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytensor
from pytensor.tensor.random.type import RandomType

from sda.config import (PRESET_NOTES, PRESETS, TUTORIAL, display_names, finetune_learning_rate, preset_settings,
                        preset_summary, validate_config)
from sda.checkpoint import CheckpointError, load_checkpoint, restore_generators, restore_state
from sda.datasets import shared_dataset
from sda.hyperparameters import finetune_arguments, model_arguments
from sda.jax_noise import load_compiled_noise, write_back_compiled_noise
from sda.modes import device_description, resolve_mode, training_phases
from sda.persistence import model_parameters
from sda.plots import save_run_pictures
from sda.run_folder import LOCK_FILE, RUN_FILES, OutputDir, RunError
from sda.run_record import RunRecorder
from sda.SdA import SdA
from sda.training import FitResult, PretrainResult, fit_early_stopping, fit_lbfgs, pretrain_layers
from sda.utils import write_json
from sda.version import __version__
from sda.validation import check_fits_in_memory, check_labels_in_range, check_positive_int, check_unit_interval

__all__ = ["TUTORIAL", "PRESETS", "PRESET_NOTES", "RunError", "Run", "validate_config", "data_fingerprint",
           "train_SdA", "RUN_FILES", "LOCK_FILE", "stored_config", "finetune_learning_rate",
           "preset_summary", "preset_settings", "run_phases", "versions"]

#: Minibatches per compiled call under JAX, when the caller does not choose (a scan loop).
DEFAULT_JAX_STEPS_PER_CALL = 250

#: With L-BFGS, the longest wait between two checkpoints (seconds).
LBFGS_SAVE_SECONDS = 30.0


@dataclass
class Run:
    """What :func:`train_SdA` returns: the model (at its best validation error), both phases'
    results, the JSON-ready summary also written to ``results.json``, and the compiled
    fine-tuning step with its learning rate (a shared variable), to continue fine-tuning
    (:meth:`sda.estimators.SdAClassifier.partial_fit`)."""

    model: SdA
    pretraining: PretrainResult
    finetuning: FitResult
    results: dict
    train_step: object = None
    learning_rate: object = None


def _check_datasets(datasets, config: dict, names: dict | None) -> int:
    """Inputs in [0, 1], equal widths, labels in range, batches no larger than the training set;
    returns the input width."""
    n_outs, widths = config["n_outs"], {}
    for part, pair in zip(("train", "valid", "test"), datasets):
        if pair is None:
            continue
        images, labels = pair
        check_unit_interval(f"{part} images", images)
        check_labels_in_range(f"{part} labels", labels, n_outs)
        widths[part] = images.get_value(borrow=True).shape[1]
    if len(set(widths.values())) > 1:
        raise ValueError(f"the images of the sets differ in width: {widths}")
    n_train = datasets[0][0].get_value(borrow=True).shape[0]
    if datasets[1] is None and config["keep_model"] != "last":
        raise ValueError(f"without a validation set nothing chooses the best model: set {display_names(names)('keep_model')} last")
    if config["pretrain_size"] > n_train:
        raise ValueError(f"{display_names(names)('pretrain_size')} is {config['pretrain_size']}, more than the {n_train} "
                         f"training examples")
    if config["optimizer"] == "sgd":  # L-BFGS takes whole sets
        for key, available in (("pretrain_batch_size", config["pretrain_size"] or n_train),
                               ("finetune_batch_size", n_train)):
            if config[key] > available:
                raise ValueError(f"{display_names(names)(key)} is {config[key]}, more than the {available} training examples")
    return widths["train"]


def data_fingerprint(datasets) -> dict:
    """Shapes and sha256 of every array of ``datasets``: what a checkpoint records to make sure
    a resumed run trains on the very data it started on."""
    fingerprint = {}
    for part, pair in zip(("train", "valid", "test"), datasets):
        if pair is None:
            continue
        for kind, shared in zip(("x", "y"), pair):
            value = np.ascontiguousarray(shared.get_value(borrow=True))
            fingerprint[f"{part}_{kind}"] = {"shape": list(value.shape), "dtype": str(value.dtype),
                                             "sha256": hashlib.sha256(value.data).hexdigest()}
    return fingerprint


def train_SdA(datasets, *, output_dir=None, resume: bool = False, overwrite: bool = False,
              mode: str | None = None, steps_per_call: int | None = None, progress: bool = True, log=print,
              pictures: bool = False, data_source: dict | None = None, on_epoch_end=None,
              names: dict | None = None, scaler=None, image_shape=..., **config) -> Run:
    """Pretrain then fine-tune an SdA (the tutorial's ``test_SdA``); returns a :class:`Run`.

    Parameters
    ----------
    datasets
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]`` as shared
        variables (:func:`sda.datasets.load_data`) or arrays; the test pair may be None (no
        test error is reported).  A validation pair that *is* the training pair (the same
        object) is called the training error in the log.
    **config
        hyperparameters, the keys of :data:`TUTORIAL` (missing ones take its values):
        ``finetune_momentum`` adds classical momentum; the fine-tuning learning rate of epoch
        ``e`` (from 1) is ``finetune_lr * finetune_lr_decay ** (e - 1)``; ``finetune_corruption``
        masks that share of the input pixels in each fine-tuning step.
    output_dir
        where checkpoints, the best model, metrics and results go (None: nowhere).
    resume
        continue the run in ``output_dir`` from its checkpoint, with its configuration
        (a value in ``config`` that differs from it is refused); it continues the noise where the
        checkpoint left it, so its final parameters are those of an uninterrupted run (under JAX
        through :mod:`sda.jax_noise`; up to rounding).
    overwrite
        replace the files of an earlier run in ``output_dir``.
    mode, steps_per_call
        how to compute (:mod:`sda.modes`; minibatches per compiled call,
        by default 250 under JAX and 1 otherwise).  Not part of the configuration.
    pictures
        write filters, reconstructions and learning curves (PNG) at the end.
        The results (``results.json``) include ``compile_seconds``: PyTensor's compiling of the
        training functions plus what their first calls took beyond the later ones (NUMBA and JAX
        compile there).
    data_source
        JSON-ready description of where the data came from, kept in the checkpoint
        and results (the command line records its data flags there, to reuse on resume).
    on_epoch_end
        ``on_epoch_end(pretrain_result, fit_state)`` after every epoch of either
        phase (``fit_state`` is None while pretraining), e.g. to report to a sweep.
    names
        how messages name each configuration key (the command line's flags).
    scaler
        the :class:`sda.scaling.UnitScaler` that put the inputs onto [0, 1], saved with the best
        model so that new data are scaled alike (None: the inputs were not scaled).
    image_shape
        one input's (rows, cols) as an image, for the pictures; None: the inputs are not images,
        and only the learning curves are drawn (default: square inputs are images).
    """
    if resume and output_dir is None:
        raise ValueError("resume=True needs the output_dir of the run to continue")
    if steps_per_call is not None:
        check_positive_int("steps_per_call", steps_per_call)
    datasets = [pair if pair is None or isinstance(pair[0], pytensor.compile.SharedVariable)
                else shared_dataset(pair) for pair in datasets]
    out = None if output_dir is None else OutputDir(output_dir, resume)
    try:
        if out is not None:
            out.check_free(overwrite)
        checkpoint = None
        if out is not None and resume:
            checkpoint = load_checkpoint(out.file("checkpoint.safetensors"))
            config = _resumed_config(checkpoint, config, names)  # validated there
        else:
            config = validate_config({**TUTORIAL, **config}, names)
        n_ins = _check_datasets(datasets, config, names)
        check_fits_in_memory("the network", _parameter_bytes(n_ins, config))
        mode = resolve_mode(mode, phases=run_phases(datasets[0][0].get_value(borrow=True).shape[0], n_ins, config))
        if steps_per_call is None:
            steps_per_call = DEFAULT_JAX_STEPS_PER_CALL if mode == "JAX" else 1
        fingerprint = data_fingerprint(datasets) if out is not None else None
        if out is not None and checkpoint is not None and checkpoint.data != fingerprint:
            raise RunError(f"{out.file('checkpoint.safetensors')} was trained on other data; "
                           f"resume with the data "
                           f"it started on (the same data folder and validation size)")
        if out is not None:
            out.claim()
        return _train(datasets, config, mode, steps_per_call, out, checkpoint, progress, log, pictures,
                      {"source": data_source, "fingerprint": fingerprint, "scaler": scaler, "image_shape": image_shape},
                      on_epoch_end)
    finally:
        if out is not None:
            out.release()


def run_phases(n_train: int, n_ins: int, config: dict) -> dict:
    """Rough arithmetic and minibatch size of each phase of a run (:func:`sda.modes.training_phases`;
    L-BFGS takes the whole set at once), which the automatic mode choice weighs."""
    sizes = [n_ins, *config["hidden_layer_sizes"], config["n_outs"]]
    full_batch = config["optimizer"] == "lbfgs"
    return training_phases(n_train, sizes, config["pretraining_epochs"], config["training_epochs"],
                           n_train if full_batch else config["pretrain_batch_size"],
                           n_train if full_batch else config["finetune_batch_size"])


def _resumed_config(checkpoint, given: dict, names: dict | None) -> dict:
    """The checkpoint's configuration; a given value that contradicts it is refused (values are
    compared in the form :func:`validate_config` gives them)."""
    # the checkpoint's own keys only: a run writes them all, and a missing one would take its default
    saved, name = validate_config(checkpoint.config), display_names(names)
    asked = validate_config({**saved, **given}, names)
    conflicts = [k for k in given if _normal(asked[k]) != _normal(saved[k])]
    if conflicts:
        # keys one flag sets together (--batch-size: both phases') are named once
        named = {name(k): k for k in reversed(conflicts)}
        raise RunError("a resumed run keeps its configuration; the checkpoint's differs in "
                       + ", ".join(f"{flag} (checkpoint: {saved[k]}, given: {given[k]})"
                                   for flag, k in reversed(named.items())))
    return saved


def _normal(value):
    """Values as JSON stores them, so that (1000, 1000) equals [1000, 1000]."""
    return json.loads(json.dumps(value))


def stored_config(config: dict) -> dict:
    """``config`` validated, with :data:`TUTORIAL`'s values for missing keys, as JSON stores it:
    a checkpoint's or ``results.json``'s configuration equals that of the run that wrote it."""
    return _normal(validate_config({**TUTORIAL, **config}))


def _parameter_bytes(n_ins: int, config: dict) -> int:
    """Memory the network's parameters take, with the momentum velocities (Adam's two moments),
    the best parameters kept by early stopping and the copy a checkpoint writes (four copies,
    five with Adam), plus the float64 draw a layer's weights are initialised from, and under
    L-BFGS its ``lbfgs_memory`` pairs of float64 correction vectors."""
    sizes = [n_ins, *config["hidden_layer_sizes"], config["n_outs"]]
    layers = [(a + 1) * b for a, b in zip(sizes, sizes[1:])]
    copies = 5 if config["finetune_update"] in ("adam", "adamw") else 4
    corrections = 2 * config["lbfgs_memory"] * sum(layers) * 8 if config["optimizer"] == "lbfgs" else 0
    return copies * sum(layers) * np.dtype(pytensor.config.floatX).itemsize + 8 * max(layers) + corrections


def _train(datasets, config, mode, steps_per_call, out, checkpoint, progress, log, pictures, data, on_epoch_end):
    """The run proper, once everything is checked (see :func:`train_SdA`)."""
    start = time.perf_counter()
    model = SdA(np.random.RandomState(config["seed"]), n_ins=datasets[0][0].get_value(borrow=True).shape[1],
                **model_arguments(config))
    lr = pytensor.shared(np.asarray(config["finetune_lr"], dtype=pytensor.config.floatX), name="finetune_lr")
    rngs = model.noise_generators()
    if checkpoint is not None:  # before compiling: JAX compiles copies of the generators' states
        restore_generators(checkpoint, rngs)
    pretraining_steps, train_step, validate, test = _training_functions(model, datasets, config, mode,
                                                                        steps_per_call, lr)
    # PyTensor's part of compiling; NUMBA and JAX compile more at each function's first call, which
    # the steps time (Step.warm_up_seconds) and the results add
    compile_seconds = time.perf_counter() - start
    if log:
        log(f"compiled the training functions in {compile_seconds:.1f} s (some backends compile more "
            f"at a function's first call: the summary counts that too)")

    # what a checkpoint holds: the model, then what the steps update beside it, and the rate
    model_vars = model_parameters(model)
    step_vars = [v for step in [*pretraining_steps, train_step] for v in step.updated
                 if not isinstance(v.type, RandomType)]
    state_vars = model_vars + [v for v in dict.fromkeys(step_vars) if v not in model_vars] + [lr]
    pretrain_progress, fit_state = None, None
    if checkpoint is not None:  # the generators were restored before compiling
        restore_state(checkpoint, state_vars, model.trained_params(config["finetune_layers"]))
        pretrain_progress, fit_state = checkpoint.pretrain, checkpoint.fit
        _check_progress(checkpoint, config, len(pretraining_steps), lr, out.file("checkpoint.safetensors"))
        if log:
            log(f"resuming from {out.file('checkpoint.safetensors')}: pretraining epochs done per layer "
                f"{[len(c) for c in pretrain_progress.costs]}, fine-tuning epochs done "
                f"{0 if fit_state is None else fit_state.epoch}")
    # an L-BFGS iteration can take milliseconds: its checkpoints and best models are written at most
    # every LBFGS_SAVE_SECONDS, and at the end of each phase
    recorder = RunRecorder(out, model, config, state_vars, rngs, data, {"mode": mode, "steps_per_call": steps_per_call},
                           pretraining_steps, train_step, LBFGS_SAVE_SECONDS if config["optimizer"] == "lbfgs" else 0.0,
                           pretrain_progress, fit_state)

    def pretraining_epoch_end(pretrain):
        recorder.save(pretrain)
        if on_epoch_end is not None:
            on_epoch_end(pretrain, None)

    softmax_first = len(pretraining_steps) - model.n_layers  # the softmax alone on the features, after the layers
    pretrain_result = pretrain_layers(pretraining_steps, [config["pretraining_epochs"]] * model.n_layers
                                      + [config["softmax_epochs"]] * softmax_first,
                                      [*model.corruption_levels, 0.0][:len(pretraining_steps)], config["pretrain_lr"],
                                      progress=progress, log=log, on_epoch_end=pretraining_epoch_end,
                                      resume=pretrain_progress, names=[f"pretraining layer {k}" for k in range(
                                          model.n_layers)] + ["softmax alone"] * softmax_first)
    if recorder.save_every > 0:  # L-BFGS's last pretraining iterations may not be saved yet
        recorder.save(pretrain_result, fit_state, force=True)
    # JAX compiled the fine-tuning step before pretraining drew any noise: its copy of the first
    # dA's generator (finetune_corruption's noise) must start where pretraining left it, as the
    # generator itself does in the other modes, not draw from the keys of pretraining's first steps
    write_back_compiled_noise([step.function for step in pretraining_steps])
    load_compiled_noise([train_step.function])
    trained = model.trained_params(config["finetune_layers"])

    def finetuning_epoch_end(state):
        lr.set_value(np.asarray(finetune_learning_rate(config, state.epoch), dtype=lr.dtype))
        recorder.finetuning_epoch(state, trained)
        recorder.save(pretrain_result, state)
        if on_epoch_end is not None:
            on_epoch_end(pretrain_result, state)

    if fit_state is None:
        lr.set_value(np.asarray(finetune_learning_rate(config, 0), dtype=lr.dtype))
    validation_name = "training error" if datasets[1] is datasets[0] else "validation error"
    if config["optimizer"] == "lbfgs":
        finetune_result = fit_lbfgs(train_step, validate, test, n_iterations=config["training_epochs"], params=trained,
                                    log=log, name="fine-tuning", on_epoch_end=finetuning_epoch_end, resume=fit_state,
                                    validation_name=validation_name, keep=config["keep_model"])
        recorder.save(pretrain_result, recorder.fit_state, force=True)
    else:
        patience = max(1, int(config["patience_epochs"] * train_step.n_batches))
        finetune_result = fit_early_stopping(
            train_step, validate, test, n_epochs=config["training_epochs"], patience=patience, params=trained,
            learning_rate=lr, progress=progress, log=log, name="fine-tuning", on_epoch_end=finetuning_epoch_end,
            resume=fit_state, validation_name=validation_name, keep=config["keep_model"])
    write_back_compiled_noise([train_step.function])  # the model's generators hold where its noise stands
    results = _results(config, mode, data["source"], pretrain_result, finetune_result, time.perf_counter() - start)
    warm_up = sum(step.warm_up_seconds() for step in [*pretraining_steps, train_step])
    results.update(compile_seconds=compile_seconds + warm_up, pytensor_compile_seconds=compile_seconds,
                   first_call_compile_seconds=warm_up)
    if out is not None:
        write_json(out.file("results.json"), results)
        if pictures:
            sample = (datasets[2] or datasets[1])[0].get_value(borrow=True)[:10]
            for path in save_run_pictures(model, results, np.asarray(sample), out.path, data["image_shape"], mode=mode,
                                          log=log):
                if log:
                    log(f"wrote {path}")
    return Run(model, pretrain_result, finetune_result, results, train_step, lr)


def _check_progress(checkpoint, config: dict, n_layers: int, lr, path) -> None:
    """A checkpoint's progress must fit the run: no more layers than it has, and the learning rate
    the schedule gives at its fine-tuning epoch (0 is one: a linear schedule's last epoch)."""
    epoch = checkpoint.fit.epoch if checkpoint.fit is not None else 0
    stored, scheduled = lr.get_value(), np.asarray(finetune_learning_rate(config, epoch), dtype=lr.dtype)
    if epoch > config["training_epochs"]:
        raise CheckpointError(f"{path}: progress for {epoch} fine-tuning epochs does not fit this run of "
                              f"{config['training_epochs']}")
    if len(checkpoint.pretrain.costs) > n_layers or stored != scheduled:
        raise CheckpointError(f"{path}: progress for {len(checkpoint.pretrain.costs)} layers with a learning rate "
                              f"of {float(stored)} does not fit this run of {n_layers} layers, whose schedule "
                              f"gives {float(scheduled)} after {epoch} fine-tuning epochs")


def _training_functions(model: SdA, datasets, config: dict, mode: str, steps_per_call: int, lr):
    """``(pretraining steps, fine-tuning step, validate, test)`` of the run: minibatch SGD steps
    (:class:`sda.steps.Step`), or full-batch objectives for L-BFGS (``optimizer="lbfgs"``).
    Pretraining sees the first ``pretrain_size`` training examples (0: all); with
    ``softmax_epochs`` the softmax's objective on the frozen features follows the layers'."""
    train_x = datasets[0][0]
    if config["pretrain_size"]:
        train_x = pytensor.shared(train_x.get_value(borrow=True)[:config["pretrain_size"]], name="pretrain_x")
    if config["optimizer"] == "lbfgs":
        objective, validate, test = model.finetune_objective(datasets, mode, config["finetune_weight_decay"],
                                                             config["finetune_layers"], config["finetune_weight_decay_on"])
        objectives = model.pretraining_objectives(train_x, mode)
        if config["softmax_epochs"]:
            objectives.append(model.softmax_objective(datasets[0], mode, config["finetune_weight_decay"]))
        for each in [*objectives, objective]:
            each.memory = config["lbfgs_memory"]
        return objectives, objective, validate, test
    steps = model.pretraining_functions(train_x, config["pretrain_batch_size"], mode, steps_per_call=steps_per_call)
    train_step, validate, test = model.build_finetune_functions(
        datasets, config["finetune_batch_size"], lr, mode, steps_per_call=steps_per_call, **finetune_arguments(config))
    return steps, train_step, validate, test


@functools.cache
def _installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, None when it is not installed (read from its
    metadata: asking costs no import of jax).  Kept for the process: finding the metadata scans
    every installed distribution (about half a second in a large environment), which each fit
    would otherwise pay again."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """What computed a run, for ``results.json``: the versions of Python, sda and the numeric
    libraries (None for one not installed) and the BLAS PyTensor's C backend links
    (``pytensor.config.blas__ldflags``; None when it found none, and CVM then runs without)."""
    return {"sda": __version__, "pytensor": pytensor.__version__, "numpy": np.__version__,
            "scipy": _installed_version("scipy"), "jax": _installed_version("jax"),
            "jaxlib": _installed_version("jaxlib"), "python": sys.version.split()[0],
            "blas": pytensor.config.blas__ldflags.strip() or None}


def _results(config, mode, data_source, pretrain: PretrainResult, finetune: FitResult, seconds: float) -> dict:
    """The run's summary, JSON-ready (``results.json``)."""
    return {
        "config": config,
        "mode": mode,
        "device": device_description(mode),
        "versions": versions(),
        "data": data_source,
        "pretraining": {"costs": pretrain.costs, "seconds_per_layer": pretrain.seconds,
                        "seconds_per_epoch": pretrain.epoch_seconds, "seconds": sum(pretrain.seconds)},
        "finetuning": {"best_validation_error": finetune.best_validation_error,
                       "test_error": finetune.test_error, "best_iteration": finetune.best_iteration,
                       "epochs": finetune.epochs, "seconds": finetune.seconds, "history": finetune.history},
        "total_seconds": seconds,
    }
