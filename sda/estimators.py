"""scikit-learn estimators over the tutorial classes: ``SdAClassifier`` and ``DenoisingAutoencoder``.

They take plain numpy arrays of any shape ``(n_samples, n_features)``, follow scikit-learn's
conventions (hyperparameters in ``__init__``, learned state in attributes ending in ``_``,
``get_params`` / ``set_params``, ``random_state``) and so work inside ``Pipeline`` and
``GridSearchCV``.  They need the optional extra ``pip install -e .[sklearn]``.

Inputs are mapped to [0, 1] (the range the cross-entropy reconstruction needs) by one affine
map fitted on the training data, ``(X - min) / (max - min)`` over all its values, clipped at
prediction time; data already in [0, 1] with both ends present (MNIST) is left unchanged.
Set ``scale_inputs=False`` to feed data that is in [0, 1] as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import pytensor
import pytensor.tensor as pt
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from sda.dA import CORRUPTION_TYPES, dA, new_pytensor_rng
from sda.datasets import shared_dataset
from sda.modes import MODES, compile_function, resolve_mode
from sda.run import LR_SCHEDULES, train_SdA
from sda.training import pretrain_layers

__all__ = ["SdAClassifier", "DenoisingAutoencoder"]

FLOATX = "float32"


class _UnitScaler:
    """The affine map of all training values onto [0, 1] (identity for constant data)."""

    def __init__(self, X, enabled: bool):
        low, high = (float(X.min()), float(X.max())) if enabled else (0.0, 1.0)
        self.low, self.span = low, (high - low) if high > low else 1.0
        self.enabled = enabled

    def __call__(self, X):
        scaled = (X - self.low) / self.span if self.enabled else X
        return np.clip(scaled, 0.0, 1.0).astype(FLOATX)


def _batch_size(requested: int, n_samples: int) -> int:
    return max(1, min(int(requested), n_samples))


def _log(verbose):
    return print if verbose else None


class _NonEmptySequenceOf(Interval):
    """A non-empty 1-d sequence whose every item lies in the interval (layer sizes, one
    corruption level per layer).

    scikit-learn's constraints check a value as a whole; subclassing ``Interval`` lets this
    per-item check take part in ``_validate_params`` and its messages.
    """

    def is_satisfied_by(self, val):
        items = val.tolist() if isinstance(val, np.ndarray) and val.ndim == 1 else val
        if isinstance(items, str) or not isinstance(items, Sequence) or not items:
            return False
        in_interval = super().is_satisfied_by
        return all(in_interval(item) for item in items)

    def __str__(self):
        return f"a non-empty sequence, each item {super().__str__()}"


class _ModeNames(StrOptions):
    """Compile mode names, compared case-insensitively as :func:`sda.modes.resolve_mode` does."""

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val.upper() in {option.upper() for option in self.options}

    def __str__(self):
        return f"a str among {', '.join(sorted(self.options))} (in any case)"


def _check_one_level_per_layer(levels, sizes) -> None:
    """A sequence of corruption levels must match the layers; the constraints check each
    parameter alone, so this pair is checked in ``fit``."""
    if np.ndim(levels) != 0 and len(levels) != len(sizes):
        raise ValueError(
            f"corruption_levels needs one value per hidden layer ({len(sizes)}), got {len(levels)}")


_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_LEARNING_RATE = Interval(Real, 0, None, closed="neither")  # > 0 and finite
_CORRUPTION = Interval(Real, 0, 1, closed="left")
#: constraints that both estimators share
_COMMON_CONSTRAINTS = {
    "scale_inputs": ["boolean"],
    "random_state": ["random_state"],
    "mode": [None, _ModeNames({"auto", *MODES})],
    "verbose": ["verbose"],
}


def _set_common_params(estimator, scale_inputs, random_state, mode, verbose) -> None:
    """The parameters both estimators share, stored as given (scikit-learn's rule for __init__)."""
    estimator.scale_inputs = scale_inputs
    estimator.random_state = random_state
    estimator.mode = mode
    estimator.verbose = verbose


class SdAClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Stacked denoising autoencoder classifier: greedy dA pretraining, then fine-tuning.

    Parameters
    ----------
    hidden_layers_sizes : units per sigmoid hidden layer.
    corruption_levels : noise level of each layer's dA in [0, 1) (for masking noise, the
        probability of zeroing an input); one number means the same for every layer.
    corruption_type : the dAs' noise: "masking", "salt_and_pepper" or "gaussian" (whose level
        is a standard deviation, here below 1).
    pretraining_epochs, pretrain_lr, pretrain_batch_size : greedy layer-wise dA training.
    training_epochs, finetune_lr, finetune_batch_size, finetune_momentum : supervised SGD.
    finetune_lr_decay, finetune_lr_schedule : the rate times ``decay`` after each epoch
        ("exponential"), and also falling linearly to 0 at ``training_epochs`` ("linear").
    finetune_corruption : the dAs' noise on the inputs while fine-tuning, at this level.
    finetune_dropout_input, finetune_dropout_hidden : dropout probabilities while fine-tuning.
    finetune_weight_decay : L2 penalty λ/2·Σ‖W‖² while fine-tuning.
    finetune_max_norm : bound on each unit's incoming weight norm while fine-tuning (0: none).
    validation_fraction : if > 0, that share of the training data is held out and the model
        keeps the parameters of its best validation error (early stopping with
        ``patience_epochs``); if 0, all data trains and the lowest training error is kept.
    patience_epochs : early-stopping patience, in epochs.
    scale_inputs : map the inputs onto [0, 1] (see the module docstring).
    random_state : int, RandomState or None.
    mode : PyTensor compile mode (None = the fastest available).
    verbose : 0 silent, 1 one line per epoch.

    Attributes
    ----------
    classes_, n_features_in_, model_ (the fitted :class:`sda.SdA.SdA`), pretrain_result_,
    fit_result_.
    """

    _parameter_constraints = {
        "hidden_layers_sizes": [_NonEmptySequenceOf(Integral, 1, None, closed="left")],
        "corruption_levels": [_CORRUPTION, _NonEmptySequenceOf(Real, 0, 1, closed="left")],
        "pretraining_epochs": [Interval(Integral, 0, None, closed="left")],
        "pretrain_lr": [_LEARNING_RATE],
        "pretrain_batch_size": [_POSITIVE_INT],
        "training_epochs": [_POSITIVE_INT],
        "finetune_lr": [_LEARNING_RATE],
        "finetune_batch_size": [_POSITIVE_INT],
        "finetune_momentum": [Interval(Real, 0, 1, closed="left")],
        "corruption_type": [StrOptions(set(CORRUPTION_TYPES))],
        "finetune_lr_decay": [Interval(Real, 0, 1, closed="right")],
        "finetune_lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "finetune_corruption": [_CORRUPTION],
        "finetune_dropout_input": [_CORRUPTION],
        "finetune_dropout_hidden": [_CORRUPTION],
        "finetune_weight_decay": [Interval(Real, 0, None, closed="left")],
        "finetune_max_norm": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience_epochs": [Interval(Real, 0, None, closed="neither")],
        **_COMMON_CONSTRAINTS,
    }

    def __init__(self, hidden_layers_sizes=(500, 500), corruption_levels=(0.1, 0.2),
                 pretraining_epochs=5, pretrain_lr=0.05, pretrain_batch_size=20,
                 training_epochs=30, finetune_lr=0.1, finetune_batch_size=20, finetune_momentum=0.0,
                 validation_fraction=0.0, patience_epochs=10, corruption_type="masking",
                 finetune_lr_decay=1.0, finetune_lr_schedule="exponential", finetune_corruption=0.0,
                 finetune_dropout_input=0.0, finetune_dropout_hidden=0.0, finetune_weight_decay=0.0,
                 finetune_max_norm=0.0, scale_inputs=True,
                 random_state=None, mode=None, verbose=0):
        self.hidden_layers_sizes = hidden_layers_sizes
        self.corruption_levels = corruption_levels
        self.pretraining_epochs = pretraining_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_batch_size = pretrain_batch_size
        self.training_epochs = training_epochs
        self.finetune_lr = finetune_lr
        self.finetune_batch_size = finetune_batch_size
        self.finetune_momentum = finetune_momentum
        self.validation_fraction = validation_fraction
        self.patience_epochs = patience_epochs
        self.corruption_type = corruption_type
        self.finetune_lr_decay = finetune_lr_decay
        self.finetune_lr_schedule = finetune_lr_schedule
        self.finetune_corruption = finetune_corruption
        self.finetune_dropout_input = finetune_dropout_input
        self.finetune_dropout_hidden = finetune_dropout_hidden
        self.finetune_weight_decay = finetune_weight_decay
        self.finetune_max_norm = finetune_max_norm
        _set_common_params(self, scale_inputs, random_state, mode, verbose)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain and fine-tune on ``X`` (n_samples, n_features) and labels ``y``."""
        _check_one_level_per_layer(self.corruption_levels, self.hidden_layers_sizes)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        rng = check_random_state(self.random_state)
        sizes = list(self.hidden_layers_sizes)
        levels = self.corruption_levels
        levels = [float(levels)] * len(sizes) if np.ndim(levels) == 0 else list(levels)
        with pytensor.config.change_flags(floatX=FLOATX):
            self._scaler = _UnitScaler(X, self.scale_inputs)
            Xs, y_index = self._scaler(X), y_index.astype(np.int32)
            order = rng.permutation(len(Xs))
            n_valid = int(round(self.validation_fraction * len(Xs)))
            if n_valid >= len(Xs):
                raise ValueError("validation_fraction leaves no training data")
            valid_idx, train_idx = order[:n_valid], order[n_valid:]
            train = shared_dataset((Xs[train_idx], y_index[train_idx]))
            valid = shared_dataset((Xs[valid_idx], y_index[valid_idx])) if n_valid else train
            run = train_SdA(
                [train, valid, None], mode=self.mode, progress=False, log=_log(self.verbose),
                hidden_layers_sizes=sizes, corruption_levels=levels, n_outs=max(len(self.classes_), 2),
                pretraining_epochs=self.pretraining_epochs, pretrain_lr=self.pretrain_lr,
                pretrain_batch_size=_batch_size(self.pretrain_batch_size, len(train_idx)),
                training_epochs=self.training_epochs, finetune_lr=self.finetune_lr,
                finetune_batch_size=_batch_size(self.finetune_batch_size, len(train_idx)),
                finetune_momentum=self.finetune_momentum, patience_epochs=self.patience_epochs,
                corruption_type=self.corruption_type, finetune_lr_decay=self.finetune_lr_decay,
                finetune_lr_schedule=self.finetune_lr_schedule, finetune_corruption=self.finetune_corruption,
                finetune_dropout_input=self.finetune_dropout_input,
                finetune_dropout_hidden=self.finetune_dropout_hidden,
                finetune_weight_decay=self.finetune_weight_decay, finetune_max_norm=self.finetune_max_norm,
                seed=int(rng.randint(2 ** 31)))
            self.model_, self.pretrain_result_, self.fit_result_ = run.model, run.pretraining, run.finetuning
            mode = run.results["mode"]
            self._predict_proba = compile_function([self.model_.x], self.model_.logLayer.p_y_given_x, mode)
            self._transform = compile_function([self.model_.x], self.model_.sigmoid_layers[-1].output, mode)
        return self

    def _scaled(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._scaler(X)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        X = self._scaled(X)
        proba = np.asarray(self._predict_proba(X), dtype=np.float64)
        return proba[:, : len(self.classes_)] / proba[:, : len(self.classes_)].sum(axis=1, keepdims=True)

    def predict(self, X):
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def transform(self, X):
        """The top hidden layer's activations, shape (n_samples, hidden_layers_sizes[-1])."""
        X = self._scaled(X)
        return np.asarray(self._transform(X), dtype=np.float64)


class DenoisingAutoencoder(TransformerMixin, BaseEstimator):
    """One denoising autoencoder (tied weights, masking noise, cross-entropy) as a transformer.

    Parameters
    ----------
    n_hidden : code size.
    corruption_level : masking probability in [0, 1).
    learning_rate, batch_size, n_epochs : SGD.
    scale_inputs, random_state, mode, verbose : as in :class:`SdAClassifier`.

    ``transform`` gives the code :math:`s(xW + b)`, ``inverse_transform`` the reconstruction
    :math:`s(hW^T + b')` (in the scaled [0, 1] space), and ``score`` minus the mean
    cross-entropy reconstruction cost of clean inputs (higher is better, as scikit-learn expects).

    Attributes: ``model_`` (the :class:`sda.dA.dA`), ``components_`` (W transposed, one row per
    hidden unit), ``costs_`` (mean cost per epoch), ``n_features_in_``.
    """

    _parameter_constraints = {
        "n_hidden": [_POSITIVE_INT],
        "corruption_level": [_CORRUPTION],
        "learning_rate": [_LEARNING_RATE],
        "batch_size": [_POSITIVE_INT],
        "n_epochs": [_POSITIVE_INT],
        **_COMMON_CONSTRAINTS,
    }

    def __init__(self, n_hidden=500, corruption_level=0.3, learning_rate=0.1, batch_size=20,
                 n_epochs=15, scale_inputs=True, random_state=None, mode=None, verbose=0):
        _set_common_params(self, scale_inputs, random_state, mode, verbose)
        self.n_hidden = n_hidden
        self.corruption_level = corruption_level
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_epochs = n_epochs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on the rows of ``X``."""
        X = validate_data(self, X, dtype=np.float64)
        rng = check_random_state(self.random_state)
        mode = resolve_mode(self.mode)
        with pytensor.config.change_flags(floatX=FLOATX):
            self._scaler = _UnitScaler(X, self.scale_inputs)
            data, _ = shared_dataset((self._scaler(X), np.zeros(len(X), np.int32)))
            self.model_ = dA(rng, new_pytensor_rng(rng), n_visible=X.shape[1], n_hidden=self.n_hidden)
            bs = _batch_size(self.batch_size, len(X))
            step = self.model_.training_function(data, bs, mode)
            result = pretrain_layers([step], self.n_epochs, [self.corruption_level], self.learning_rate,
                                     progress=False, log=_log(self.verbose))
            self.costs_ = result.costs[0]
            x = self.model_.x
            self._encode = compile_function([x], self.model_.get_hidden_values(x), mode)
            h = pt.matrix("h")
            self._decode = compile_function([h], self.model_.get_reconstructed_input(h), mode)
            self._cost = compile_function([x], self.model_.reconstruction_cost(x), mode)
        self.components_ = np.asarray(self.model_.W.get_value()).T
        return self

    def _scaled(self, X):
        check_is_fitted(self)
        return self._scaler(validate_data(self, X, reset=False, dtype=np.float64))

    def transform(self, X):
        """Hidden code of each row, shape (n_samples, n_hidden)."""
        X = self._scaled(X)
        return np.asarray(self._encode(X), dtype=np.float64)

    def inverse_transform(self, X):
        """Reconstruction (in the scaled [0, 1] input space) of codes ``X`` (n_samples, n_hidden)."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=FLOATX)
        if X.ndim != 2 or X.shape[1] != self.n_hidden:
            raise ValueError(f"X must have shape (n_samples, {self.n_hidden}), got {X.shape}")
        return np.asarray(self._decode(X), dtype=np.float64)

    def score(self, X, y=None):
        """Minus the mean cross-entropy reconstruction cost of ``X`` (higher is better)."""
        X = self._scaled(X)
        return -float(self._cost(X))
