"""A run's configuration: the Deep Learning Tutorials' hyperparameters (:data:`TUTORIAL`), the
presets built on them, the fine-tuning learning-rate schedule, and :func:`validate_config`,
which checks a configuration once for every way a run is started (command line, Python,
estimators, sweeps, resumed checkpoints), as the table of :mod:`sda.hyperparameters` says."""

from __future__ import annotations

import copy
import math

from sda.hyperparameters import HYPERPARAMETERS, RENAMED, defaults

__all__ = ["TUTORIAL", "PRESETS", "PRESET_DATA", "PRESET_NOTES", "preset_with", "validate_config", "finetune_learning_rate",
           "preset_summary", "preset_settings", "display_names"]

#: The Deep Learning Tutorials' protocol: every hyperparameter of a run (:data:`sda.hyperparameters.HYPERPARAMETERS`).
TUTORIAL = defaults()

#: Presets as the tutorial's values with what each changes (docs/RESULTS.md measures them).
#: ``fast``: minibatches of 100 with momentum, 5 + 80 epochs, light
#: dropout (0.1 on the input, 0.25 on the hidden units) and a rate falling linearly to 0.
#: ``best``: ``fast``'s pretraining, then 800 fine-tuning epochs with dropout (0.2 on the input,
#: 0.5 on the hidden units), a max-norm bound of 3 and a rate falling linearly to 0 (a GPU run).
#: ``quick``: a first look, one epoch of each phase.
#: ``ufldl``: the stacked sparse autoencoder of UFLDL's exercise "Implement deep networks for digit
#: classification": 784-200-200-10, sparse autoencoders (ρ 0.1, β 3, λ 3e-3) and fine-tuning
#: (weight decay 1e-4) by full-batch L-BFGS, 400 iterations each ("epochs" are iterations).
#: ``ufldl_published``: ``ufldl`` as UFLDL's exercise ran it: the softmax trained alone first (100
#: iterations), weight decay on the softmax only, minFunc's 100 correction pairs, the last iterate
#: kept, and (:data:`PRESET_DATA`) all 60,000 training images with no validation set.
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
    "ufldl": {**TUTORIAL, "hidden_layer_sizes": [200, 200], "corruption_levels": [0.0, 0.0], "criteria": "sparse",
              "optimizer": "lbfgs", "pretraining_epochs": 400, "training_epochs": 400,
              "finetune_weight_decay": 1e-4},
}
PRESETS["ufldl_published"] = {**PRESETS["ufldl"], "keep_model": "last", "softmax_epochs": 100,
                              "finetune_weight_decay_on": "softmax", "lbfgs_memory": 100}

#: What a preset changes in the data (the command line's defaults, which its flags override).
PRESET_DATA = {"ufldl_published": {"valid_size": 0}}

#: What each preset is for (docs/RESULTS.md says how long each takes): said before a run starts, and in ``--help``.
PRESET_NOTES = {
    "tutorial": "the tutorial's protocol: batch 1 and early stopping over up to 1000 epochs (hours on a CPU)",
    "fast": "minibatches of 100, momentum, light dropout and a linear rate over 80 epochs (minutes on a CPU)",
    "best": "the lowest test error: 800 fine-tuning epochs with dropout and max-norm (a GPU run)",
    "quick": "a first look: one epoch of each phase",
    "ufldl": "UFLDL's stacked sparse autoencoder, 784-200-200-10, trained by L-BFGS",
    "ufldl_published": "ufldl as UFLDL ran it: softmax first, its decay on the softmax only, 100 L-BFGS pairs, "
                       "the last iterate, all 60,000 images and no validation set",
}


def preset_with(name: str, overrides: dict) -> dict:
    """Preset ``name`` with ``overrides`` (a new dict).  Hidden layers of another depth than the
    preset's, given without noise levels of their own, take the preset's first level for every
    layer (as a sweep's ``depth`` does): ``--hidden-layers 8`` alone runs ``fast`` with one dA."""
    config = {**copy.deepcopy(PRESETS[name]), **overrides}
    sizes, levels = config["hidden_layer_sizes"], config["corruption_levels"]
    if ("corruption_levels" not in overrides and isinstance(sizes, (list, tuple)) and isinstance(levels, list)
            and levels and len(levels) != len(sizes)):
        config["corruption_levels"] = levels[0]  # one level for all layers
    return config


def preset_settings(name: str, names: dict | None = None) -> str:
    """What preset ``name`` sets: every value for the tutorial's, the differences for the others;
    each key as ``names[key]`` when given (the command line's flags)."""
    display = display_names(names)

    def setting(key, value):
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        return f"{display(key)} {shown}" if names else f"{key}={shown}"

    if name == "tutorial":
        return "sets " + ", ".join(setting(key, value) for key, value in TUTORIAL.items())
    return "the tutorial's but " + ", ".join(setting(key, value) for key, value in PRESETS[name].items()
                                             if TUTORIAL[key] != value)


def preset_summary(name: str) -> str:
    """``name: what it is for``."""
    return f"{name}: {PRESET_NOTES[name]}"


def finetune_learning_rate(config: dict, epochs_done: int) -> float:
    """The fine-tuning learning rate after :math:`e` = ``epochs_done`` epochs, of :math:`T` =
    ``training_epochs`` with :math:`W` = ``finetune_warmup_epochs`` of warm-up:

    .. math::
        \\eta_e = \\eta\\, d^{\\,e}\\, w_e\\, s(u_e), \\qquad
        w_e = \\min\\Bigl(1, \\frac{e + 1}{W + 1}\\Bigr), \\qquad
        u_e = \\min\\Bigl(1, \\frac{\\max(0, e - W)}{T - W}\\Bigr)

    with :math:`\\eta` = ``finetune_lr``, :math:`d` = ``finetune_lr_decay`` and the schedule's shape
    :math:`s(u) = 1` (exponential), :math:`1 - u` (linear), :math:`\\tfrac12 (1 + \\cos \\pi u)`
    (cosine): the rate rises linearly over the first :math:`W` epochs from :math:`\\eta / (W + 1)`,
    then falls to 0 at epoch :math:`T`.  Warm-up and a linear fall make the triangular "one-cycle"
    schedule (Smith 2018).  (:math:`u_e = 0` throughout when the warm-up lasts all :math:`T`
    epochs, as in the one-epoch run of an estimator's first ``partial_fit``.)"""
    rate = config["finetune_lr"] * config["finetune_lr_decay"] ** epochs_done
    # a configuration of the schedule's keys alone, without a warm-up key, has no warm-up
    warmup, total = config.get("finetune_warmup_epochs", 0), config["training_epochs"]
    if warmup:
        rate *= min(1.0, (epochs_done + 1) / (warmup + 1))
    progress = min(1.0, max(0, epochs_done - warmup) / (total - warmup)) if total > warmup else 0.0
    if config["finetune_lr_schedule"] == "linear":
        rate *= 1 - progress
    elif config["finetune_lr_schedule"] == "cosine":
        rate *= 0.5 * (1 + math.cos(math.pi * progress))
    return rate


def display_names(names: dict | None):
    """``key -> how messages name it``: ``names[key]`` when given (the command line's flags), else the key."""
    return lambda key: (names or {}).get(key, key)


def _belong(names: list) -> str:
    return "belongs" if len(names) == 1 else "belong"


def _them(names: list) -> str:
    return "it" if len(names) == 1 else "them"


def _their(names: list) -> str:
    return "its" if len(names) == 1 else "their"


def validate_config(config: dict, names: dict | None = None) -> dict:
    """Check every hyperparameter of a run once, each as the table says, then what they must
    satisfy together; returns a normalised copy.

    Raises ValueError / TypeError naming the first bad one (as ``names[key]`` when given, e.g.
    the command line's flag).
    """
    name = display_names(names)
    unknown, missing = set(config) - set(TUTORIAL), set(TUTORIAL) - set(config)
    renamed = sorted(unknown & set(RENAMED))
    if renamed:
        raise ValueError(f"{renamed[0]} is now called {RENAMED[renamed[0]]}")
    if unknown or missing:
        raise ValueError(f"configuration has unknown keys {sorted(unknown)} and lacks {sorted(missing)}")
    checked: dict = {}
    for h in HYPERPARAMETERS:
        checked[h.name] = h.values.check(name(h.name), copy.deepcopy(config[h.name]), checked)
    if checked["optimizer"] == "lbfgs":
        minibatch_only = [name(h.name) for h in HYPERPARAMETERS if h.sgd_only and checked[h.name] != h.default]
        if minibatch_only:
            raise ValueError(f"{', '.join(minibatch_only)} {_belong(minibatch_only)} to minibatch SGD, not to "
                             f"{name('optimizer')} lbfgs (full-batch, deterministic); leave "
                             f"{_them(minibatch_only)} at {_their(minibatch_only)} default")
    else:
        full_batch_only = [name(h.name) for h in HYPERPARAMETERS if h.lbfgs_only and checked[h.name] != h.default]
        if full_batch_only:
            raise ValueError(f"{', '.join(full_batch_only)} {_belong(full_batch_only)} to {name('optimizer')} lbfgs, "
                             f"not to sgd; leave {_them(full_batch_only)} at {_their(full_batch_only)} default")
    if checked["finetune_update"] == "adamw" and checked["finetune_weight_decay_on"] != "all":
        raise ValueError(f"{name('finetune_update')} adamw decays every weight matrix (decoupled from the cost); "
                         f"{name('finetune_weight_decay_on')} {checked['finetune_weight_decay_on']} goes with the "
                         f"other rules")
    return checked
