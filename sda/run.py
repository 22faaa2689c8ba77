"""The run: the tutorial's ``test_SdA`` experiment as one function, :func:`train_SdA`.

A run pretrains an :class:`sda.SdA.SdA` layer by layer, fine-tunes it with early stopping,
and reports the best validation error and the test error at that point.  With an output
directory it also makes the run safe to interrupt and to inspect:

* ``checkpoint.npz`` after every epoch of either phase (parameters, momentum velocities,
  learning rate, noise generators, progress, the configuration and the data's fingerprint);
* ``best_model.npz`` whenever the validation error improves;
* ``metrics.jsonl`` (one record per epoch), ``results.json`` at the end, and optionally the
  pictures of :mod:`sda.plots`.

Nothing is lost or mixed: a directory holding another run's files is refused unless the run
continues it (``resume``) or replaces it (``overwrite``); a lock keeps a second process out
while a run writes there; a resume takes its configuration from the checkpoint, refuses
settings that contradict it, and refuses data that are not the data it was trained on.

The command line (:mod:`sda.cli`), the scikit-learn estimator (:mod:`sda.estimators`) and
sweeps all call :func:`train_SdA`; configurations are plain dictionaries (:data:`PRESETS`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytensor
from pytensor.tensor.random.type import RandomType

from sda.checkpoint import CheckpointError, load_checkpoint, restore_generators, restore_state, save_checkpoint
from sda.dA import CORRUPTION_TYPES
from sda.datasets import shared_dataset
from sda.modes import (device_description, load_compiled_noise, resolve_mode, training_phases,
                       write_back_compiled_noise)
from sda.persistence import model_parameters, save_model
from sda.plots import save_run_pictures
from sda.run_folder import LOCK_FILE, RUN_FILES, OutputDir, RunError
from sda.SdA import FINETUNE_LAYERS, SdA, check_criteria
from sda.training import FitResult, PretrainResult, fit_early_stopping, fit_lbfgs, pretrain_layers
from sda.utils import atomic_write, write_json
from sda.version import __version__
from sda.validation import (check_corruption, check_fits_in_memory, check_labels_in_range, check_layer_sizes,
                            check_non_negative, check_noise_level, check_open_unit_interval, check_positive,
                            check_positive_int, check_seed, check_unit_interval, MAX_COUNT)

__all__ = ["TUTORIAL", "PRESETS", "PRESET_NOTES", "OPTIMIZERS", "RunError", "Run", "validate_config", "data_fingerprint",
           "train_SdA", "RUN_FILES", "LOCK_FILE", "stored_config", "epoch_records", "finetune_learning_rate",
           "preset_summary", "preset_settings", "run_phases"]

#: The Deep Learning Tutorials' protocol: every hyperparameter of a run.
TUTORIAL = {
    "hidden_layers_sizes": [1000, 1000, 1000],
    "corruption_levels": [0.1, 0.2, 0.3],
    "corruption_type": "masking",
    "pretraining_epochs": 15,
    "pretrain_lr": 0.001,
    "pretrain_batch_size": 1,
    "training_epochs": 1000,
    "finetune_lr": 0.1,
    "finetune_batch_size": 1,
    "finetune_momentum": 0.0,
    "finetune_lr_decay": 1.0,
    "finetune_lr_schedule": "exponential",
    "finetune_corruption": 0.0,
    "finetune_dropout_input": 0.0,
    "finetune_dropout_hidden": 0.0,
    "finetune_weight_decay": 0.0,
    "finetune_max_norm": 0.0,
    "patience_epochs": 10,
    "n_outs": 10,
    "seed": 89677,
    # beyond the tutorial: UFLDL's sparse autoencoder, L-BFGS, and what to leave out
    "criteria": "denoising",
    "sparsity_target": 0.1,
    "sparsity_weight": 3.0,
    "sparse_weight_decay": 3e-3,
    "optimizer": "sgd",
    "pretrain_size": 0,
    "finetune_layers": "all",
}

#: Presets as the tutorial's values with what each changes (docs/RESULTS.md measures them).
#: ``fast``: minibatches of 100 with momentum, 5 + 80 epochs (under 10 minutes on 2 cores), light
#: dropout (0.1 on the input, 0.25 on the hidden units) and a rate falling linearly to 0.
#: ``best``: ``fast``'s pretraining, then 800 fine-tuning epochs with dropout (0.2 on the input,
#: 0.5 on the hidden units), a max-norm bound of 3 and a rate falling linearly to 0 (a GPU run).
#: ``quick``: a first run of a minute or two.
#: ``ufldl``: the stacked sparse autoencoder of UFLDL's exercise "Implement deep networks for digit
#: classification": 784-200-200-10, sparse autoencoders (ρ 0.1, β 3, λ 3e-3) and fine-tuning
#: (weight decay 1e-4) by full-batch L-BFGS, 400 iterations each ("epochs" are iterations).
PRESETS = {
    "tutorial": TUTORIAL,
    "fast": {**TUTORIAL, "pretraining_epochs": 5, "pretrain_lr": 0.1, "pretrain_batch_size": 100,
             "training_epochs": 80, "finetune_batch_size": 100, "finetune_momentum": 0.9,
             "finetune_lr_schedule": "linear", "finetune_dropout_input": 0.1, "finetune_dropout_hidden": 0.25,
             "patience_epochs": 100},
    "best": {**TUTORIAL, "pretraining_epochs": 5, "pretrain_lr": 0.1, "pretrain_batch_size": 100,
             "training_epochs": 800, "finetune_batch_size": 100, "finetune_momentum": 0.9,
             "finetune_lr_schedule": "linear", "finetune_dropout_input": 0.2, "finetune_dropout_hidden": 0.5,
             "finetune_max_norm": 3.0, "patience_epochs": 1000},
    "quick": {**TUTORIAL, "pretraining_epochs": 1, "pretrain_lr": 0.01, "pretrain_batch_size": 20,
              "training_epochs": 1, "finetune_batch_size": 20},
    "ufldl": {**TUTORIAL, "hidden_layers_sizes": [200, 200], "corruption_levels": [0.0, 0.0], "criteria": "sparse",
              "optimizer": "lbfgs", "pretraining_epochs": 400, "training_epochs": 400,
              "finetune_weight_decay": 1e-4},
}

#: What each preset is for and how long it takes, as measured (README, docs/RESULTS.md): said before
#: a run starts, and in ``--help``.
PRESET_NOTES = {
    "tutorial": "the tutorial's protocol (batch 1, early stopping); about 2 h on 2 CPU cores",
    "fast": "minibatches of 100, momentum, light dropout, a linear rate; about 9 min on 2 CPU cores",
    "best": "the lowest test error (1.19 % over 3 seeds); 800 fine-tuning epochs: about 0.2 s an epoch on a GPU, "
            "6 s on 2 CPU cores (81 min)",
    "quick": "a first look: one epoch of each phase; about 1 min on 2 CPU cores",
    "ufldl": "UFLDL's stacked sparse autoencoder, 784-200-200-10, L-BFGS; about 9 min on 2 CPU cores, 3 min on a GPU",
}


def preset_settings(name: str, names: dict | None = None) -> str:
    """What preset ``name`` sets: every value for the tutorial's, the differences for the others;
    each key as ``names[key]`` when given (the command line's flags)."""
    display = _display(names)

    def setting(key, value):
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        return f"{display(key)} {shown}" if names else f"{key}={shown}"

    if name == "tutorial":
        return "sets " + ", ".join(setting(key, value) for key, value in TUTORIAL.items())
    return "the tutorial's but " + ", ".join(setting(key, value) for key, value in PRESETS[name].items()
                                             if TUTORIAL[key] != value)


def preset_summary(name: str) -> str:
    """``name: what it is for and how long it takes``."""
    return f"{name}: {PRESET_NOTES[name]}"


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


def _display(names: dict | None):
    return lambda key: (names or {}).get(key, key)


def validate_config(config: dict, names: dict | None = None) -> dict:
    """Check every hyperparameter of a run once; returns a normalised copy.

    Raises ValueError / TypeError naming the first bad one (as ``names[key]`` when given, e.g.
    the command line's flag).
    """
    name = _display(names)
    unknown, missing = set(config) - set(TUTORIAL), set(TUTORIAL) - set(config)
    if unknown or missing:
        raise ValueError(f"configuration has unknown keys {sorted(unknown)} and lacks {sorted(missing)}")
    config = copy.deepcopy(config)
    sizes = check_layer_sizes(name("hidden_layers_sizes"), config["hidden_layers_sizes"])
    levels = config["corruption_levels"]
    if np.ndim(levels) != 1 or len(levels) != len(sizes):
        raise ValueError(f"{name('corruption_levels')} needs one value per hidden layer ({len(sizes)}), "
                         f"got {levels}")
    if config["corruption_type"] not in CORRUPTION_TYPES:
        raise ValueError(f"{name('corruption_type')} must be one of {', '.join(CORRUPTION_TYPES)}, "
                         f"got {config['corruption_type']!r}")
    config["hidden_layers_sizes"] = sizes
    config["corruption_levels"] = [check_noise_level(name("corruption_levels"), c, config["corruption_type"])
                                   for c in levels]
    for key in ("pretrain_lr", "finetune_lr", "patience_epochs"):  # patience: epochs, bounded as counts are
        config[key] = check_positive(name(key), config[key], MAX_COUNT if key == "patience_epochs" else None)
    config["pretraining_epochs"] = check_positive_int(name("pretraining_epochs"), config["pretraining_epochs"], 0)
    for key in ("training_epochs", "pretrain_batch_size", "finetune_batch_size"):
        config[key] = check_positive_int(name(key), config[key])
    config["n_outs"] = check_positive_int(name("n_outs"), config["n_outs"], 2)
    config["finetune_momentum"] = check_corruption(name("finetune_momentum"), config["finetune_momentum"])
    config["finetune_lr_decay"] = check_positive(name("finetune_lr_decay"), config["finetune_lr_decay"])
    if config["finetune_lr_decay"] > 1:
        raise ValueError(f"{name('finetune_lr_decay')} must be in (0, 1] (the rate is multiplied by it "
                         f"after every epoch), got {config['finetune_lr_decay']}")
    if config["finetune_lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"{name('finetune_lr_schedule')} must be one of {', '.join(LR_SCHEDULES)}, "
                         f"got {config['finetune_lr_schedule']!r}")
    config["finetune_corruption"] = check_noise_level(name("finetune_corruption"), config["finetune_corruption"],
                                                      config["corruption_type"])
    for key in ("finetune_dropout_input", "finetune_dropout_hidden"):
        config[key] = check_corruption(name(key), config[key])  # a probability in [0, 1)
    for key in ("finetune_weight_decay", "finetune_max_norm"):
        config[key] = check_non_negative(name(key), config[key])
    config["seed"] = check_seed(name("seed"), config["seed"])
    criteria = check_criteria(config["criteria"], len(sizes), name("criteria"))
    # one canonical form, so that "sparse" and ["sparse", "sparse"] are the same configuration
    config["criteria"] = criteria[0] if len(set(criteria)) == 1 else criteria
    config["sparsity_target"] = check_open_unit_interval(name("sparsity_target"), config["sparsity_target"])
    for key in ("sparsity_weight", "sparse_weight_decay"):
        config[key] = check_non_negative(name(key), config[key])
    for key in ("sparsity_weight", "sparse_weight_decay", "finetune_weight_decay", "finetune_max_norm"):
        if config[key] > FLOAT32_LIMIT:  # the graphs compute in float32, where such a weight is infinite
            raise ValueError(f"{name(key)} must be at most {FLOAT32_LIMIT:g}, got {config[key]:g}")
    config["pretrain_size"] = check_positive_int(name("pretrain_size"), config["pretrain_size"], 0)
    for key, choices in (("optimizer", OPTIMIZERS), ("finetune_layers", FINETUNE_LAYERS)):
        if config[key] not in choices:
            raise ValueError(f"{name(key)} must be one of {', '.join(choices)}, got {config[key]!r}")
    if config["optimizer"] == "lbfgs":
        minibatch_only = [name(key) for key in ("finetune_momentum", "finetune_corruption", "finetune_dropout_input",
                                                "finetune_dropout_hidden", "finetune_max_norm") if config[key] > 0]
        if minibatch_only:
            raise ValueError(f"{', '.join(minibatch_only)} belong to minibatch SGD, not to {name('optimizer')} lbfgs "
                             f"(full-batch, deterministic); set them to 0")
    return config


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
    if config["pretrain_size"] > n_train:
        raise ValueError(f"{_display(names)('pretrain_size')} is {config['pretrain_size']}, more than the {n_train} "
                         f"training examples")
    if config["optimizer"] == "sgd":  # L-BFGS takes whole sets
        for key, available in (("pretrain_batch_size", config["pretrain_size"] or n_train),
                               ("finetune_batch_size", n_train)):
            if config[key] > available:
                raise ValueError(f"{_display(names)(key)} is {config[key]}, more than the {available} training examples")
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


#: The largest penalty weight a float32 graph can hold (and then some room for the penalties' sums).
FLOAT32_LIMIT = 1e30

#: How both phases train: minibatch SGD (the tutorial), or full-batch L-BFGS (UFLDL), where an
#: "epoch" of the configuration is one L-BFGS iteration and learning rates and batch sizes do
#: not apply.
OPTIMIZERS = ("sgd", "lbfgs")

#: Fine-tuning learning-rate schedules: the rate of epoch ``e + 1`` after ``e`` epochs.
LR_SCHEDULES = ("exponential", "linear")


def finetune_learning_rate(config: dict, epochs_done: int) -> float:
    """The fine-tuning learning rate after ``epochs_done`` epochs: ``lr * decay ** epochs_done``
    (exponential), or falling linearly from ``lr`` to 0 at ``training_epochs`` (linear, then
    also times ``decay ** epochs_done``)."""
    rate = config["finetune_lr"] * config["finetune_lr_decay"] ** epochs_done
    if config["finetune_lr_schedule"] == "linear":
        rate *= max(0.0, 1 - epochs_done / config["training_epochs"])
    return rate


def train_SdA(datasets, *, output_dir=None, resume: bool = False, overwrite: bool = False,
              mode: str | None = None, steps_per_call: int | None = None, progress: bool = True, log=print,
              pictures: bool = False, data_source: dict | None = None, on_epoch_end=None,
              names: dict | None = None, **config) -> Run:
    """Pretrain then fine-tune an SdA (the tutorial's ``test_SdA``); returns a :class:`Run`.

    Parameters
    ----------
    datasets : ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]`` as shared
        variables (:func:`sda.datasets.load_data`) or arrays; the test pair may be None (no
        test error is reported).  A validation pair that *is* the training pair (the same
        object) is called the training error in the log.
    **config : hyperparameters, the keys of :data:`TUTORIAL` (missing ones take its values):
        ``finetune_momentum`` adds classical momentum; the fine-tuning learning rate of epoch
        ``e`` (from 1) is ``finetune_lr * finetune_lr_decay ** (e - 1)``; ``finetune_corruption``
        masks that share of the input pixels in each fine-tuning step.
    output_dir : where checkpoints, the best model, metrics and results go (None: nowhere).
    resume : continue the run in ``output_dir`` from its checkpoint, with its configuration
        (a value in ``config`` that differs from it is refused); it continues the noise where the
        checkpoint left it, so its final parameters are those of an uninterrupted run (under JAX
        through :func:`sda.modes.write_back_compiled_noise`; up to rounding).
    overwrite : replace the files of an earlier run in ``output_dir``.
    mode, steps_per_call : how to compute (:mod:`sda.modes`; minibatches per compiled call,
        by default 250 under JAX and 1 otherwise).  Not part of the configuration.
    pictures : write filters, reconstructions and learning curves (PNG) at the end.
        The results (``results.json``) include ``compile_seconds``: PyTensor's compiling of the
        training functions plus what their first calls took beyond the later ones (NUMBA and JAX
        compile there).
    data_source : JSON-ready description of where the data came from, kept in the checkpoint
        and results (the command line records its data flags there, to reuse on resume).
    on_epoch_end : ``on_epoch_end(pretrain_result, fit_state)`` after every epoch of either
        phase (``fit_state`` is None while pretraining), e.g. to report to a sweep.
    names : how messages name each configuration key (the command line's flags).
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
            checkpoint = load_checkpoint(out.file("checkpoint.npz"))
            config = _resumed_config(checkpoint, config, names)  # validated there
        else:
            config = validate_config({**TUTORIAL, **config}, names)
        n_ins = _check_datasets(datasets, config, names)
        check_fits_in_memory("the network", _parameter_bytes(n_ins, config))
        mode = resolve_mode(mode, phases=run_phases(datasets[0][0].get_value(borrow=True).shape[0], n_ins, config))
        if steps_per_call is None:
            steps_per_call = DEFAULT_JAX_STEPS_PER_CALL if mode == "JAX" else 1
        fingerprint = data_fingerprint(datasets) if out is not None else None
        if checkpoint is not None and checkpoint.data != fingerprint:
            raise RunError(f"{out.file('checkpoint.npz')} was trained on other data; resume with the data "
                           f"it started on (the same data folder and validation size)")
        if out is not None:
            out.claim()
        return _train(datasets, config, mode, steps_per_call, out, checkpoint, progress, log, pictures,
                      {"source": data_source, "fingerprint": fingerprint}, on_epoch_end)
    finally:
        if out is not None:
            out.release()


def run_phases(n_train: int, n_ins: int, config: dict) -> dict:
    """Rough arithmetic and minibatch size of each phase of a run (:func:`sda.modes.training_phases`;
    L-BFGS takes the whole set at once), which the automatic mode choice weighs."""
    sizes = [n_ins, *config["hidden_layers_sizes"], config["n_outs"]]
    full_batch = config["optimizer"] == "lbfgs"
    return training_phases(n_train, sizes, config["pretraining_epochs"], config["training_epochs"],
                           n_train if full_batch else config["pretrain_batch_size"],
                           n_train if full_batch else config["finetune_batch_size"])


def _resumed_config(checkpoint, given: dict, names: dict | None) -> dict:
    """The checkpoint's configuration; a given value that contradicts it is refused (values are
    compared in the form :func:`validate_config` gives them)."""
    saved, name = validate_config({**TUTORIAL, **checkpoint.config}), _display(names)
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
    """Memory the network's parameters take, with the momentum velocities, the best parameters
    kept by early stopping and the copy a checkpoint writes (four copies), plus the float64
    draw a layer's weights are initialised from."""
    sizes = [n_ins, *config["hidden_layers_sizes"], config["n_outs"]]
    layers = [(a + 1) * b for a, b in zip(sizes, sizes[1:])]
    return 4 * sum(layers) * np.dtype(pytensor.config.floatX).itemsize + 8 * max(layers)


def _train(datasets, config, mode, steps_per_call, out, checkpoint, progress, log, pictures, data, on_epoch_end):
    """The run proper, once everything is checked (see :func:`train_SdA`)."""
    start = time.perf_counter()
    model = SdA(np.random.RandomState(config["seed"]), n_ins=datasets[0][0].get_value(borrow=True).shape[1],
                hidden_layers_sizes=config["hidden_layers_sizes"], n_outs=config["n_outs"],
                corruption_levels=config["corruption_levels"], corruption_type=config["corruption_type"],
                criteria=config["criteria"], sparsity_target=config["sparsity_target"],
                sparsity_weight=config["sparsity_weight"], sparse_weight_decay=config["sparse_weight_decay"])
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
        _check_progress(checkpoint, config, model.n_layers, lr, out.file("checkpoint.npz"))
        if log:
            log(f"resuming from {out.file('checkpoint.npz')}: pretraining epochs done per layer "
                f"{[len(c) for c in pretrain_progress.costs]}, fine-tuning epochs done "
                f"{0 if fit_state is None else fit_state.epoch}")

    # an L-BFGS iteration can take milliseconds: its checkpoints and best models are written at most
    # every LBFGS_SAVE_SECONDS, and at the end of each phase
    save_every = LBFGS_SAVE_SECONDS if config["optimizer"] == "lbfgs" else 0.0
    last_save, unsaved_best, last_state = [-math.inf], [None], [None]

    def save(pretrain, state=None, force=False):
        if out is None or not (force or time.perf_counter() - last_save[0] >= save_every):
            return
        # the noise where the running phase's step has drawn it (JAX keeps it in a compiled copy),
        # so that a resumed run continues it exactly
        running = train_step if state is not None else pretraining_steps[max(0, len(pretrain.costs) - 1)]
        write_back_compiled_noise([running.function])
        if unsaved_best[0] is not None:
            save_model(model, out.file("best_model.npz"), **unsaved_best[0])
            unsaved_best[0] = None
        save_checkpoint(out.file("checkpoint.npz"), config, state_vars, rngs, pretrain, state, data["fingerprint"],
                        data["source"], {"mode": mode, "steps_per_call": steps_per_call, "noise": NOISE_WRITTEN_BACK})
        _write_metrics(out.file("metrics.jsonl"), pretrain, state)
        last_save[0] = time.perf_counter()

    def pretraining_epoch_end(pretrain):
        save(pretrain)
        if on_epoch_end is not None:
            on_epoch_end(pretrain, None)

    pretrain_result = pretrain_layers(pretraining_steps, config["pretraining_epochs"], model.corruption_levels,
                                      config["pretrain_lr"], progress=progress, log=log,
                                      on_epoch_end=pretraining_epoch_end, resume=pretrain_progress)
    if save_every > 0:  # L-BFGS's last pretraining iterations may not be saved yet
        save(pretrain_result, fit_state, force=True)
    # JAX compiled the fine-tuning step before pretraining drew any noise: its copy of the first
    # dA's generator (finetune_corruption's noise) must start where pretraining left it, as the
    # generator itself does in the other modes, not draw from the keys of pretraining's first steps
    write_back_compiled_noise([step.function for step in pretraining_steps])
    load_compiled_noise([train_step.function])
    trained = model.trained_params(config["finetune_layers"])

    def finetuning_epoch_end(state):
        lr.set_value(np.asarray(finetune_learning_rate(config, state.epoch), dtype=lr.dtype))
        if state.history[-1]["test_error"] is not None:  # improved in this epoch
            best = dict(zip(trained, state.best_params))
            unsaved_best[0] = {"training_state": {"epoch": state.epoch, "validation_error": state.best_loss,
                                                  "test_error": state.test_error, "config": config},
                               "values": [best[v] if v in best else v.get_value() for v in model.saved_variables()]}
        last_state[0] = state
        save(pretrain_result, state)
        if on_epoch_end is not None:
            on_epoch_end(pretrain_result, state)

    if fit_state is None:
        lr.set_value(np.asarray(finetune_learning_rate(config, 0), dtype=lr.dtype))
    validation_name = "training error" if datasets[1] is datasets[0] else "validation error"
    if config["optimizer"] == "lbfgs":
        finetune_result = fit_lbfgs(train_step, validate, test, n_iterations=config["training_epochs"], params=trained,
                                    log=log, name="fine-tuning", on_epoch_end=finetuning_epoch_end, resume=fit_state,
                                    validation_name=validation_name)
        save(pretrain_result, last_state[0] or fit_state, force=True)
    else:
        patience = max(1, int(config["patience_epochs"] * train_step.n_batches))
        finetune_result = fit_early_stopping(
            train_step, validate, test, n_epochs=config["training_epochs"], patience=patience, params=trained,
            learning_rate=lr, progress=progress, log=log, name="fine-tuning", on_epoch_end=finetuning_epoch_end,
            resume=fit_state, validation_name=validation_name)
    write_back_compiled_noise([train_step.function])  # the model's generators hold where its noise stands
    results = _results(config, mode, data["source"], pretrain_result, finetune_result, time.perf_counter() - start)
    warm_up = sum(step.warm_up_seconds() for step in [*pretraining_steps, train_step])
    results.update(compile_seconds=compile_seconds + warm_up, pytensor_compile_seconds=compile_seconds,
                   first_call_compile_seconds=warm_up)
    if out is not None:
        write_json(out.file("results.json"), results)
        if pictures:
            sample = (datasets[2] or datasets[1])[0].get_value(borrow=True)[:10]
            for path in save_run_pictures(model, results, np.asarray(sample), out.path, mode=mode, log=log):
                if log:
                    log(f"wrote {path}")
    return Run(model, pretrain_result, finetune_result, results, train_step, lr)


#: Marks a checkpoint whose generators hold the noise as JAX's compiled copies left it.
NOISE_WRITTEN_BACK = "written back"


def _check_progress(checkpoint, config: dict, n_layers: int, lr, path) -> None:
    """A checkpoint's progress must fit the run: no more layers than it has, and the learning rate
    the schedule gives at its fine-tuning epoch (0 is one: a linear schedule's last epoch)."""
    epoch = checkpoint.fit.epoch if checkpoint.fit is not None else 0
    stored, scheduled = lr.get_value(), np.asarray(finetune_learning_rate(config, epoch), dtype=lr.dtype)
    if len(checkpoint.pretrain.costs) > n_layers or stored != scheduled:
        raise CheckpointError(f"{path}: progress for {len(checkpoint.pretrain.costs)} layers with a learning rate "
                              f"of {float(stored)} does not fit this run of {n_layers} layers, whose schedule "
                              f"gives {float(scheduled)} after {epoch} fine-tuning epochs")


def _training_functions(model: SdA, datasets, config: dict, mode: str, steps_per_call: int, lr):
    """``(pretraining steps, fine-tuning step, validate, test)`` of the run: minibatch SGD steps
    (:class:`sda.steps.Step`), or full-batch objectives for L-BFGS (``optimizer="lbfgs"``).
    Pretraining sees the first ``pretrain_size`` training examples (0: all)."""
    train_x = datasets[0][0]
    if config["pretrain_size"]:
        train_x = pytensor.shared(train_x.get_value(borrow=True)[:config["pretrain_size"]], name="pretrain_x")
    if config["optimizer"] == "lbfgs":
        objective, validate, test = model.finetune_objective(datasets, mode, config["finetune_weight_decay"],
                                                             config["finetune_layers"])
        return model.pretraining_objectives(train_x, mode), objective, validate, test
    steps = model.pretraining_functions(train_x, config["pretrain_batch_size"], mode, steps_per_call=steps_per_call)
    train_step, validate, test = model.build_finetune_functions(
        datasets, config["finetune_batch_size"], lr, mode, momentum=config["finetune_momentum"],
        steps_per_call=steps_per_call, corruption=config["finetune_corruption"],
        dropout_input=config["finetune_dropout_input"], dropout_hidden=config["finetune_dropout_hidden"],
        weight_decay=config["finetune_weight_decay"], max_norm=config["finetune_max_norm"],
        layers=config["finetune_layers"])
    return steps, train_step, validate, test


def epoch_records(pretrain: PretrainResult, state=None) -> list[dict]:
    """One JSON-ready record per epoch of either phase so far, oldest first: what ``metrics.jsonl``
    holds and what the optional loggers (:mod:`sda.loggers`) receive.  Pretraining records hold
    the layer, epoch, cost and seconds; fine-tuning records those of :func:`fit_early_stopping`."""
    records = []
    for layer, costs in enumerate(pretrain.costs):
        seconds = pretrain.epoch_seconds[layer] if layer < len(pretrain.epoch_seconds) else []
        records += [{"phase": "pretraining", "layer": layer, "epoch": epoch, "cost": cost,
                     "seconds": seconds[epoch - 1] if epoch <= len(seconds) else None}
                    for epoch, cost in enumerate(costs, start=1)]
    if state is not None:
        records += [{"phase": "fine-tuning", **record} for record in state.history]
    return records


def _write_metrics(path, pretrain: PretrainResult, state) -> None:
    """``metrics.jsonl``: one JSON record per epoch of either phase, for any plotting tool."""
    text = "".join(json.dumps(line) + "\n" for line in epoch_records(pretrain, state)).encode()
    atomic_write(path, lambda f: f.write(text))


def _results(config, mode, data_source, pretrain: PretrainResult, finetune: FitResult, seconds: float) -> dict:
    """The run's summary, JSON-ready (``results.json``)."""
    return {
        "config": config,
        "mode": mode,
        "device": device_description(mode),
        "versions": {"sda": __version__, "pytensor": pytensor.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "data": data_source,
        "pretraining": {"costs": pretrain.costs, "seconds_per_layer": pretrain.seconds,
                        "seconds_per_epoch": pretrain.epoch_seconds, "seconds": sum(pretrain.seconds)},
        "finetuning": {"best_validation_error": finetune.best_validation_error,
                       "test_error": finetune.test_error, "best_iteration": finetune.best_iteration,
                       "epochs": finetune.epochs, "seconds": finetune.seconds, "history": finetune.history},
        "total_seconds": seconds,
    }
