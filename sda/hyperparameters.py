"""Every hyperparameter of a run, declared once (:data:`HYPERPARAMETERS`).

Each entry gives a hyperparameter's name, the Deep Learning Tutorials' value, the values it may
take, what it means and its command-line flag.  Everything else is made from this table: the
command line's flags and their help (:mod:`sda.cli`), the checks of every configuration
(:func:`sda.config.validate_config`), the estimators' parameters, defaults, constraints and
documentation (:mod:`sda.estimators`), the keys of sweep files (:mod:`sda.sweep_config`), and
the arguments a run passes to :class:`sda.SdA.SdA` and to its fine-tuning functions.

A key's check may look at keys checked before it (the table's order): the noise levels are
checked against ``corruption_type`` and the number of hidden layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sda.dA import CORRUPTION_TYPES
from sda.SdA import CRITERIA, DECAY_ON, FINETUNE_LAYERS, check_criteria
from sda.full_batch import LBFGS_MEMORY
from sda.steps import UPDATE_RULES
from sda.training import KEEP_MODELS
from sda.validation import (MAX_COUNT, check_corruption, check_layer_sizes, check_non_negative, check_noise_level,
                            check_open_unit_interval, check_positive, check_positive_int, check_seed)

__all__ = ["Values", "Hyperparameter", "HYPERPARAMETERS", "RENAMED", "OPTIMIZERS", "KEEP_MODELS", "LR_SCHEDULES",
           "FLOAT32_LIMIT",
           "COUNT", "BATCH_SIZE", "RATE", "PROBABILITY", "defaults", "flags", "model_arguments", "finetune_arguments", "estimator_hyperparameters",
           "default_noise_levels"]

#: The largest penalty weight a float32 graph can hold (and then some room for the penalties' sums).
FLOAT32_LIMIT = 1e30

#: How both phases train: minibatch SGD (the tutorial), or full-batch L-BFGS (UFLDL), where an
#: "epoch" of the configuration is one L-BFGS iteration and learning rates and batch sizes do
#: not apply.
OPTIMIZERS = ("sgd", "lbfgs")

#: Fine-tuning learning-rate schedules (:func:`sda.config.finetune_learning_rate`).
LR_SCHEDULES = ("exponential", "linear", "cosine")

#: Keys that were spelled otherwise, and their spelling now: a file using the old one is refused
#: with a message naming the new one.
RENAMED = {"hidden_layers_sizes": "hidden_layer_sizes"}

#: ``corruption_levels`` left to None: the tutorial's 0.1, 0.2, 0.3 continued, 0.1 more per layer up to this.
MOST_DEFAULT_NOISE = 0.5


@dataclass(frozen=True)
class Values:
    """What values a hyperparameter takes.

    ``check(name, value, config)`` returns the value in its normal form or raises ValueError /
    TypeError naming ``name``; ``config`` holds the keys checked before this one.  The other
    fields describe the same set for scikit-learn's constraints and argparse: numbers of the
    interval from ``low`` to ``high`` (``closed``: "both", "left", "right" or "neither";
    integers if ``integer``) or one of ``options``; ``per_layer``: one value per hidden layer
    (on the command line, several values); ``one_for_all``: a single value stands for every
    layer; ``none``: None stands for a default worked out from the other keys.
    """

    check: Callable
    integer: bool = False
    low: float | None = None
    high: float | None = None
    closed: str = "both"
    options: tuple = ()
    per_layer: bool = False
    one_for_all: bool = False
    none: bool = False


def _count(low: int) -> Values:
    return Values(lambda name, value, config: check_positive_int(name, value, low), integer=True, low=low,
                  high=MAX_COUNT)


def _choice(options: tuple) -> Values:
    def check(name, value, config):
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value
    return Values(check, options=options)


def _weight(name, value, config):
    value = check_non_negative(name, value)
    if value > FLOAT32_LIMIT:  # the graphs compute in float32, where such a weight is infinite
        raise ValueError(f"{name} must be at most {FLOAT32_LIMIT:g}, got {value:g}")
    return value


def _decay(name, value, config):
    # never stored in the graphs: the rate is worked out in float64 and stored (0 once it underflows)
    value = check_positive(name, value, dtype=None)
    if value > 1:
        raise ValueError(f"{name} must be in (0, 1] (the rate is multiplied by it after every epoch), got {value}")
    return value


def _update_rule(name, rule, config):
    """The fine-tuning update rule, checked against the momentum and weight decay it goes with."""
    rule = _choice(UPDATE_RULES).check(name, rule, config)
    # the other keys named as this one is: flags on the command line, keys elsewhere
    momentum, decay = (("--finetune-momentum", "--finetune-weight-decay") if name.startswith("--")
                       else ("finetune_momentum", "finetune_weight_decay"))
    if rule == "nesterov" and config["finetune_momentum"] == 0:
        raise ValueError(f"{name} nesterov needs {momentum} > 0 (at 0 it is sgd)")
    if rule in ("adam", "adamw") and config["finetune_momentum"] > 0:
        raise ValueError(f"{name} {rule} takes no {momentum} (its first moment, beta1 0.9, plays that part): "
                         f"set it to 0")
    if rule == "adamw" and config["finetune_weight_decay"] == 0:
        raise ValueError(f"{name} adamw is adam with a decoupled {decay}, which is 0: set it > 0, or use adam")
    return rule


def default_noise_levels(n_layers: int) -> list[float]:
    """The tutorial's masking levels 0.1, 0.2, 0.3, continued 0.1 more per layer (at most 0.5)."""
    return [min(round(0.1 * (k + 1), 1), MOST_DEFAULT_NOISE) for k in range(n_layers)]


def _noise_levels(name, levels, config):
    n_layers = len(config["hidden_layer_sizes"])
    if levels is None:
        levels = default_noise_levels(n_layers)
    elif np.ndim(levels) == 0:
        levels = [levels] * n_layers
    if np.ndim(levels) != 1 or len(levels) != n_layers:
        raise ValueError(f"{name} needs one value per hidden layer ({n_layers}) or one for all, got {levels}")
    return [check_noise_level(name, level, config["corruption_type"]) for level in levels]


def _criteria(name, criteria, config):
    names = check_criteria(criteria, len(config["hidden_layer_sizes"]), name)
    # one canonical form, so that "sparse" and ["sparse", "sparse"] are the same configuration
    return names[0] if len(set(names)) == 1 else names


#: Kinds of values that other parameters share (the estimators' own): a count from 1, a learning
#: rate, a probability in [0, 1).
COUNT = _count(1)
RATE = Values(lambda name, value, config: check_positive(name, value), low=0, closed="neither")
PROBABILITY = Values(lambda name, value, config: check_corruption(name, value), low=0, high=1, closed="left")
#: A minibatch size; None (the estimators' default only: a run refuses it) stands for one chosen by
#: the number of training examples (:func:`sda.estimator_parts.batch_size_for`).
BATCH_SIZE = Values(COUNT.check, integer=True, low=1, high=MAX_COUNT, none=True)
_WEIGHT = Values(_weight, low=0, high=FLOAT32_LIMIT)
#: The type-dependent bound (below 1 unless the noise is Gaussian) is checked with the type.
_NOISE = Values(lambda name, value, config: check_noise_level(name, value, config["corruption_type"]), low=0,
                closed="left")


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: its ``name`` (the configuration's key), ``default`` (the tutorial's
    value), ``values``, ``help`` (one sentence, for ``--help`` and the estimators' documentation),
    ``group`` (of ``--help``), ``flag`` (default: ``--`` and the name with dashes).

    ``estimator_default``: the estimators' default where it differs from the tutorial's (``...``:
    the same), or None with ``in_estimator=False`` for keys the estimators set themselves (the
    seed from ``random_state``, the classes from the labels).  ``model_argument`` and
    ``finetune_argument``: the parameter of :class:`sda.SdA.SdA` or of
    :meth:`sda.SdA.SdA.build_finetune_functions` that receives it.  ``sgd_only``: it belongs to
    minibatch SGD and must be 0 under L-BFGS; ``lbfgs_only``: it belongs to L-BFGS and must keep
    its default under SGD.
    """

    name: str
    default: object
    values: Values
    help: str
    group: str
    flag: str = ""
    estimator_default: object = ...
    in_estimator: bool = True
    model_argument: str = ""
    finetune_argument: str = ""
    sgd_only: bool = False
    lbfgs_only: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def estimator_value(self):
        return self.default if self.estimator_default is ... else self.estimator_default


_H = Hyperparameter
MODEL, TRAINING, UFLDL, STOPPING = "model", "training", "ufldl", "early stopping"

#: The table: every key of a run's configuration, in the order its checks run.
HYPERPARAMETERS = (
    _H("hidden_layer_sizes", [1000, 1000, 1000],
       Values(lambda name, value, config: check_layer_sizes(name, value), integer=True, low=1, high=MAX_COUNT,
              per_layer=True),
       "units per hidden layer", MODEL, flag="--hidden-layers", estimator_default=(100, 100),
       model_argument="hidden_layers_sizes"),
    _H("corruption_type", "masking", _choice(CORRUPTION_TYPES),
       "the dAs' noise (Vincent et al. 2010)", MODEL, model_argument="corruption_type"),
    _H("corruption_levels", [0.1, 0.2, 0.3],
       Values(_noise_levels, low=0, closed="left", per_layer=True, one_for_all=True, none=True),
       "noise level of each layer's dA (one value: every layer): for masking and salt-and-pepper noise the "
       "share of inputs corrupted, in [0, 1); for Gaussian noise its standard deviation", MODEL,
       flag="--corruption", estimator_default=None, model_argument="corruption_levels"),
    _H("seed", 89677, Values(lambda name, value, config: check_seed(name, value), integer=True, low=0,
                             high=2 ** 32 - 1),
       "seed for weights and noise, 0 .. 2**32 - 1", MODEL, estimator_default=None, in_estimator=False),
    _H("n_outs", 10, _count(2), "number of classes: the labels run from 0 to this less one", MODEL,
       estimator_default=None, in_estimator=False, model_argument="n_outs"),
    _H("pretraining_epochs", 15, _count(0), "epochs of dA training per layer (0 skips pretraining)", TRAINING,
       estimator_default=5),
    _H("pretrain_lr", 0.001, RATE, "pretraining learning rate", TRAINING, estimator_default=0.05),
    _H("pretrain_batch_size", 1, BATCH_SIZE, "pretraining minibatch size", TRAINING, estimator_default=None),
    # 200 as MLPClassifier's max_iter: a few hundred examples need that many epochs to learn
    _H("training_epochs", 1000, COUNT, "maximum fine-tuning epochs", TRAINING, estimator_default=200),
    _H("finetune_lr", 0.1, RATE, "fine-tuning learning rate", TRAINING),
    _H("finetune_batch_size", 1, BATCH_SIZE, "fine-tuning minibatch size", TRAINING, estimator_default=None),
    _H("finetune_momentum", 0.0, PROBABILITY, "classical momentum in [0, 1) for fine-tuning", TRAINING,
       finetune_argument="momentum", sgd_only=True),
    _H("finetune_lr_decay", 1.0, Values(_decay, low=0, high=1, closed="right"),
       "multiply the fine-tuning learning rate by this, in (0, 1], after every epoch", TRAINING),
    _H("finetune_lr_schedule", "exponential", _choice(LR_SCHEDULES),
       "exponential: times finetune_lr_decay each epoch; linear / cosine: also falling linearly / as a half "
       "cosine to 0 at training_epochs (after any warm-up)", TRAINING),
    _H("finetune_corruption", 0.0, _NOISE, "the dAs' noise on the inputs while fine-tuning, at this level",
       TRAINING, finetune_argument="corruption", sgd_only=True),
    _H("finetune_dropout_input", 0.0, PROBABILITY, "dropout probability of each input while fine-tuning, in [0, 1)",
       TRAINING, finetune_argument="dropout_input", sgd_only=True),
    _H("finetune_dropout_hidden", 0.0, PROBABILITY,
       "dropout probability of each hidden unit while fine-tuning, in [0, 1)", TRAINING,
       finetune_argument="dropout_hidden", sgd_only=True),
    _H("finetune_weight_decay", 0.0, _WEIGHT, "L2 penalty lambda/2 * sum of squared weights while fine-tuning "
       "(0: off)", TRAINING, finetune_argument="weight_decay"),
    _H("finetune_max_norm", 0.0, _WEIGHT, "bound on the norm of each unit's incoming weights while fine-tuning "
       "(0: off)", TRAINING, finetune_argument="max_norm", sgd_only=True),
    _H("finetune_update", "sgd", Values(_update_rule, options=UPDATE_RULES),
       "fine-tuning's update rule: sgd (with finetune_momentum, classical), nesterov (Nesterov's momentum), "
       "adam, or adamw (adam with finetune_weight_decay decoupled from the gradient)", TRAINING,
       finetune_argument="update", sgd_only=True),
    _H("finetune_warmup_epochs", 0, _count(0), "raise the fine-tuning learning rate linearly over this many first "
       "epochs, from finetune_lr / (this + 1) (0: off)", TRAINING, sgd_only=True),
    _H("patience_epochs", 10, Values(lambda name, value, config: check_positive(name, value, MAX_COUNT), low=0,
                                     high=MAX_COUNT, closed="right"),
       # the estimators': no fit stops before epoch 50, so that one still at the commonest class's error
       # after its first epochs (a sigmoid network on a hundred examples) has time to start learning
       "early stopping looks at least this many epochs ahead", STOPPING, estimator_default=50),
    _H("criteria", "denoising", Values(_criteria, options=CRITERIA, per_layer=True, one_for_all=True),
       "what each layer's autoencoder minimises in pretraining (one name: every layer): the dA's "
       "reconstruction of corrupted inputs, or UFLDL's sparse autoencoder", UFLDL, model_argument="criteria"),
    _H("sparsity_target", 0.1, Values(lambda name, value, config: check_open_unit_interval(name, value), low=0,
                                      high=1, closed="neither"),
       "sparse layers' target mean activation rho, in (0, 1)", UFLDL, model_argument="sparsity_target"),
    _H("sparsity_weight", 3.0, _WEIGHT, "sparse layers' sparsity penalty weight beta", UFLDL,
       model_argument="sparsity_weight"),
    _H("sparse_weight_decay", 3e-3, _WEIGHT, "sparse layers' weight decay lambda", UFLDL,
       model_argument="sparse_weight_decay"),
    _H("optimizer", "sgd", _choice(OPTIMIZERS),
       "sgd: minibatches (the tutorial); lbfgs: full-batch L-BFGS (UFLDL), an epoch being one iteration, "
       "without learning rates or batch sizes", UFLDL),
    _H("pretrain_size", 0, _count(0), "pretrain on the first this many training examples only (0: all); "
       "fine-tuning uses all", UFLDL),
    _H("finetune_layers", "all", _choice(FINETUNE_LAYERS),
       "all: fine-tune the whole network; top: train only the softmax layer on the pretrained features",
       UFLDL, finetune_argument="layers"),
    # UFLDL's protocol as its exercise ran it (stackedAEExercise.m, minFunc): each difference alone
    _H("keep_model", "best", _choice(KEEP_MODELS),
       "best: keep the fine-tuned parameters of the best validation error (early stopping); last: run every "
       "epoch and keep the last parameters (UFLDL's; no validation set needs it)", UFLDL),
    _H("softmax_epochs", 0, _count(0),
       "L-BFGS iterations training the softmax layer alone on the frozen pretrained features, with "
       "finetune_weight_decay, before fine-tuning (UFLDL's 100; 0: off)", UFLDL, lbfgs_only=True,
       # its phase is one more "layer" of a run's pretraining record, which a saved estimator's check does not take
       estimator_default=None, in_estimator=False),
    _H("finetune_weight_decay_on", "all", _choice(DECAY_ON),
       "the weight matrices fine-tuning's weight decay penalises: all layers', or the softmax's only (UFLDL's)",
       UFLDL, finetune_argument="weight_decay_on"),
    _H("lbfgs_memory", LBFGS_MEMORY, _count(1), "correction pairs L-BFGS keeps, scipy's maxcor (minFunc's, UFLDL's: 100)",
       UFLDL, lbfgs_only=True),
)



def defaults() -> dict:
    """The tutorial's value of every key (a fresh copy: lists may be changed)."""
    return {h.name: list(h.default) if isinstance(h.default, list) else h.default for h in HYPERPARAMETERS}


def flags() -> dict[str, str]:
    """The command line's flag of every key."""
    return {h.name: h.cli_flag for h in HYPERPARAMETERS}


def estimator_hyperparameters() -> tuple[Hyperparameter, ...]:
    """The keys that are parameters of :class:`sda.estimators.SdAClassifier`."""
    return tuple(h for h in HYPERPARAMETERS if h.in_estimator)


def model_arguments(config: dict) -> dict:
    """The arguments of :class:`sda.SdA.SdA` that ``config`` sets."""
    return {h.model_argument: config[h.name] for h in HYPERPARAMETERS if h.model_argument}


def finetune_arguments(config: dict) -> dict:
    """The arguments of :meth:`sda.SdA.SdA.build_finetune_functions` that ``config`` sets."""
    return {h.finetune_argument: config[h.name] for h in HYPERPARAMETERS if h.finetune_argument}
