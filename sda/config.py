"""A run's configuration: the Deep Learning Tutorials' hyperparameters (:data:`TUTORIAL`), the
presets built on them, the fine-tuning learning-rate schedules, and :func:`validate_config`,
which checks a configuration once for every way a run is started (command line, Python,
estimators, sweeps, resumed checkpoints)."""

from __future__ import annotations

import copy

import numpy as np

from sda.dA import CORRUPTION_TYPES
from sda.SdA import FINETUNE_LAYERS, check_criteria
from sda.validation import (MAX_COUNT, check_corruption, check_layer_sizes, check_non_negative, check_noise_level,
                            check_open_unit_interval, check_positive, check_positive_int, check_seed)

__all__ = ["TUTORIAL", "PRESETS", "PRESET_NOTES", "OPTIMIZERS", "LR_SCHEDULES", "validate_config",
           "finetune_learning_rate", "preset_summary", "preset_settings"]

#: The largest penalty weight a float32 graph can hold (and then some room for the penalties' sums).
FLOAT32_LIMIT = 1e30


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
