"""scikit-learn estimators over the tutorial classes: ``SdAClassifier`` and ``DenoisingAutoencoder``.

They take plain numpy arrays of any shape ``(n_samples, n_features)``, follow scikit-learn's
conventions (hyperparameters in ``__init__``, learned state in attributes ending in ``_``,
``get_params`` / ``set_params``, ``random_state``) and so work inside ``Pipeline`` and
``GridSearchCV``.

Inputs must lie in [0, 1] (the range the cross-entropy reconstruction needs).  Training data that
already does (pixels / 255, a ``MinMaxScaler``'s output) is left as it is; any other is mapped
feature by feature, ``(X - min_j) / (max_j - min_j)`` with each feature's minimum and maximum on
the training data, clipped to [0, 1] at prediction time.  Per feature, so that one wide feature
does not squash the others: after a ``StandardScaler`` (values of -3 .. 30 on scikit-learn's
digits) one global map left most features in a sliver of [0, 1].  ``scale_inputs=False`` feeds
the data as it is (then it must lie in [0, 1]).

PyTensor and JAX compile every function before it runs; for small data that compiling takes
longer than training, and the automatic mode (``mode=None``) chooses by the size of the fit
(:data:`sda.modes.JAX_MIN_FLOPS`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from sklearn.base import (BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                          _fit_context)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from sda.dA import dA, new_pytensor_rng
from sda.SdA import check_criteria
from sda.datasets import shared_dataset
from sda.estimator_parts import (COMMON_CONSTRAINTS, LARGEST_AUTO_BATCH, SavedEstimator, batch_size_for,
                                 convergence_problem, documented_parameter, epoch_log, restored_labels,
                                 saved_curves, saved_labels, saved_numbers, set_common_params,
                                 sklearn_constraints)
from sda.hyperparameters import (COUNT, PROBABILITY, RATE, estimator_hyperparameters, finetune_arguments,
                                 model_arguments)
from sda.jax_noise import write_back_compiled_noise
from sda.modes import compile_function, resolve_mode, training_phases
from sda.run import TUTORIAL, finetune_learning_rate, train_SdA, validate_config
from sda.scaling import FLOATX, UnitScaler
from sda.steps import Step
from sda.training import FitResult, PretrainResult, pretrain_layers, train_epoch

__all__ = ["SdAClassifier", "DenoisingAutoencoder"]

def _score(validation_error):
    """scikit-learn's validation score, higher is better: the accuracy, 1 - the error."""
    return None if validation_error is None else 1.0 - float(validation_error)


class SdAClassifier(SavedEstimator, ClassifierMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
    __doc__ = """Stacked denoising autoencoder classifier: greedy dA pretraining, then fine-tuning.

    Parameters
    ----------
    """ + "\n    ".join(documented_parameter(h).replace("\n", "\n    ") for h in estimator_hyperparameters()) + """
    validation_fraction : default=0.0
        If > 0, that share of the training data is held out and the model keeps the parameters
        of its best validation error (early stopping with ``patience_epochs``); if 0, all data
        trains and the lowest training error is kept.  ``partial_fit`` holds nothing out.
    scale_inputs : default=True
        Map the inputs onto [0, 1] (see the module docstring).
    random_state : int, RandomState or None, default=None
    mode : default=None
        PyTensor compile mode (None: the fastest available for the size of the fit).
    verbose : default=0
        0 silent, 1 one line per epoch.

    Notes
    -----
    The hyperparameters are those of a run (:mod:`sda.hyperparameters`, the command line's
    flags), with defaults for data of a hundred to a few thousand examples;
    ``corruption_levels=None`` rises as the tutorial's 0.1, 0.2, 0.3 do, 0.1 more per layer (at
    most 0.5), for however many layers ``hidden_layer_sizes`` has.

    ``pretrain_batch_size=None`` and ``finetune_batch_size=None`` (the defaults) take a fiftieth
    of the training examples, between 1 and 20 (:func:`sda.estimator_parts.batch_size_for`), so
    that an epoch of a small set still makes about 50 updates.  Early stopping is the tutorial's
    rule: no fit stops before epoch ``patience_epochs`` (50), and each significant improvement of
    the validation error (without a held-out share, the training error) at epoch ``e`` lets it
    go on to at least epoch ``2e``; at most ``training_epochs`` (200).  ``fit`` raises a
    :class:`~sklearn.exceptions.ConvergenceWarning` when its model's training accuracy is not a
    tenth of the way from the commonest class's to 1 (a model that predicts one class never is),
    or when it ran all ``training_epochs`` while its error still fell by more than a point over
    the last ``patience_epochs`` (at most half the epochs run).  ``partial_fit`` does not warn.

    ``partial_fit(X, y, classes)`` trains on one batch at a time: the first call pretrains on its
    batch and runs one fine-tuning epoch (``classes`` lists every class to come, as scikit-learn
    requires), every later call one more fine-tuning epoch on its batch, with the learning-rate
    schedule going on.  ``transform(X, layer=k)`` gives the activations of hidden layer ``k``
    (default: the top one).

    ``clf.save(path)`` writes a fitted classifier to a ``.safetensors`` file and
    ``SdAClassifier.load(path)`` reads it back, predicting as it did (a file that cannot run
    code, unlike a pickle; see :class:`sda.estimator_parts.SavedEstimator`).  Pickles work too.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    n_features_in_ : int
        Features seen in ``fit``.
    model_ : :class:`sda.SdA.SdA`
        The fitted network, with the parameters of its best validation (or training) error.
    pretrain_result_ : :class:`sda.training.PretrainResult`
        Reconstruction cost and seconds of every pretraining epoch of every layer.
    fit_result_ : :class:`sda.training.FitResult`
        What fine-tuning in ``fit`` (or the first ``partial_fit``) did, epoch by epoch.
    n_iter_ : int
        Fine-tuning epochs run so far, ``partial_fit``'s included (L-BFGS: its iterations).
    loss_curve_ : list of float
        The mean minibatch training cost of each of those epochs, oldest first (the cost
        fine-tuning minimises: cross-entropy, plus the weight decay when there is one).
    validation_scores_ : list of float or None
        The accuracy (1 - validation error) on the held-out share of the training data after
        each epoch of ``fit``; None when nothing is held out (``validation_fraction=0``, or a
        model started by ``partial_fit``).
    best_validation_score_ : float or None
        The best of those accuracies: that of the parameters the model keeps.  None when nothing
        is held out.
    """

    _parameter_constraints = {
        **{h.name: sklearn_constraints(h.values) for h in estimator_hyperparameters()},
        "validation_fraction": sklearn_constraints(PROBABILITY),
        **COMMON_CONSTRAINTS,
    }

    # explicit, as scikit-learn requires; tests/test_hyperparameters.py holds it to the table
    def __init__(self, hidden_layer_sizes=(100, 100), corruption_type="masking", corruption_levels=None,
                 pretraining_epochs=5, pretrain_lr=0.05, pretrain_batch_size=None, training_epochs=200,
                 finetune_lr=0.1, finetune_batch_size=None, finetune_momentum=0.0, finetune_lr_decay=1.0,
                 finetune_lr_schedule="exponential", finetune_corruption=0.0, finetune_dropout_input=0.0,
                 finetune_dropout_hidden=0.0, finetune_weight_decay=0.0, finetune_max_norm=0.0, finetune_update="sgd",
                 finetune_warmup_epochs=0, patience_epochs=50, criteria="denoising", sparsity_target=0.1,
                 sparsity_weight=3.0, sparse_weight_decay=3e-3, optimizer="sgd", pretrain_size=0, finetune_layers="all",
                 keep_model="best", finetune_weight_decay_on="all", lbfgs_memory=10, validation_fraction=0.0,
                 scale_inputs=True, random_state=None, mode=None, verbose=0):
        for name, value in locals().items():
            if name != "self":
                setattr(self, name, value)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain and fine-tune on ``X`` (n_samples, n_features) and labels ``y``."""
        self._check_numbers()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self._train(X, y, self.training_epochs, self.validation_fraction)
        self._warn_unless_converged()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Train on one batch: the first call (which needs ``classes``, every class to come)
        pretrains on it and runs one fine-tuning epoch; each later call runs one more
        fine-tuning epoch on its batch."""
        first = not hasattr(self, "model_")
        if self.optimizer != "sgd":
            raise ValueError("partial_fit trains by minibatch SGD; optimizer='lbfgs' needs the whole set (use fit)")
        if first:
            self._check_numbers()
        X, y = validate_data(self, X, y, dtype=np.float64, reset=first)
        check_classification_targets(y)
        _check_partial_fit_first_call(self, classes)
        if first:
            return self._train(X, y, 1, 0.0)
        with pytensor.config.change_flags(floatX=FLOATX):
            self._fine_tune_once(self._scaler(X), self._class_indices(y))
        return self

    def _check_numbers(self) -> None:
        """Every hyperparameter through the checks of a run (:func:`sda.run.validate_config`),
        before any data is read: scikit-learn's intervals let through numbers that are not
        finite in float32 (1e39) or not even in float64 (10**400)."""
        with pytensor.config.change_flags(floatX=FLOATX):
            validate_config(self._config(self.training_epochs, n_outs=2))

    def _class_indices(self, y) -> np.ndarray:
        """Labels as indices into ``classes_`` (int32); a label outside them is refused."""
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels not in classes_ {self.classes_.tolist()}: {unknown.tolist()[:5]}")
        return np.searchsorted(self.classes_, y).astype(np.int32)

    def _config(self, training_epochs: int, n_outs: int | None = None) -> dict:
        """The run's hyperparameters, as :func:`sda.run.train_SdA` takes them (``n_outs``: by
        default one per class of ``classes_``)."""
        config = {h.name: getattr(self, h.name) for h in estimator_hyperparameters()}
        sequences = {key: list(value) for key, value in config.items() if isinstance(value, (tuple, np.ndarray))}
        # a batch size of None is worked out in fit, from the data; until then, checked as the largest it may be
        batch_sizes = {key: LARGEST_AUTO_BATCH for key in ("pretrain_batch_size", "finetune_batch_size")
                       if config[key] is None}
        return {**TUTORIAL, **config, **sequences, **batch_sizes, "training_epochs": training_epochs,
                "n_outs": max(len(self.classes_), 2) if n_outs is None else n_outs}

    def _train(self, X, y, training_epochs: int, validation_fraction: float):
        """Pretrain and fine-tune a new model on ``(X, y)`` through :func:`sda.run.train_SdA`."""
        rng = check_random_state(self.random_state)
        y_index = self._class_indices(y)
        with pytensor.config.change_flags(floatX=FLOATX):
            self._scaler = UnitScaler(X, self.scale_inputs)
            Xs = self._scaler(X)
            order = rng.permutation(len(Xs))
            n_valid = round(validation_fraction * len(Xs))
            if n_valid >= len(Xs):
                raise ValueError("validation_fraction leaves no training data")
            valid_idx, train_idx = order[:n_valid], order[n_valid:]
            train = shared_dataset((Xs[train_idx], y_index[train_idx]))
            valid = shared_dataset((Xs[valid_idx], y_index[valid_idx])) if n_valid else train
            config = {**self._config(training_epochs), "seed": int(rng.randint(2 ** 31)),
                      "pretrain_batch_size": batch_size_for(self.pretrain_batch_size,
                                                            self.pretrain_size or len(train_idx)),
                      "finetune_batch_size": batch_size_for(self.finetune_batch_size, len(train_idx))}
            run = train_SdA([train, valid, None], mode=self.mode, progress=False, log=epoch_log(self.verbose),
                            **config)
        self.model_, self.pretrain_result_, self.fit_result_ = run.model, run.pretraining, run.finetuning
        self.n_iter_ = run.finetuning.epochs
        self.loss_curve_ = [record["cost"] for record in run.finetuning.history]
        # scikit-learn's scores are higher-is-better; without a held-out split (none asked for, or
        # a share that rounds to no example) the loop validated on the training data, which is no
        # validation score (MLPClassifier leaves them None too)
        held_out = n_valid > 0
        self.validation_scores_ = ([_score(record["validation_error"]) for record in run.finetuning.history]
                                   if held_out else None)
        self.best_validation_score_ = _score(run.finetuning.best_validation_error) if held_out else None
        self._mode = run.results["mode"]
        self._continuation = (run.train_step, run.learning_rate, train)
        self._compile_logits()
        return self

    def _warn_unless_converged(self) -> None:
        """scikit-learn's :class:`~sklearn.exceptions.ConvergenceWarning` when the fit did not
        learn or ran out of epochs while learning (:func:`sda.estimator_parts.convergence_problem`)."""
        train = self._continuation[2]
        predicted = np.argmax(self._logits(train[0].get_value(borrow=True)), axis=1)
        errors = [record["validation_error"] for record in self.fit_result_.history
                  if record["validation_error"] is not None]
        problem = convergence_problem(np.asarray(train[1].get_value(borrow=True)), predicted, errors,
                                      self.n_iter_, self.training_epochs, self.patience_epochs)
        if problem:
            warnings.warn(problem, ConvergenceWarning, stacklevel=4)

    def _compile_logits(self) -> None:
        with pytensor.config.change_flags(floatX=FLOATX):
            self._logits = compile_function([self.model_.x], self.model_.logLayer.logits, self._mode)

    def _fine_tune_once(self, Xs, y_index) -> None:
        """One more fine-tuning epoch on ``(Xs, y_index)``, continuing the learning-rate schedule;
        the compiled step of the last batch is reused when this batch has its shape."""
        continuation: tuple[Any, Any, Any] = getattr(self, "_continuation", (None, None, None))
        step, rate, data = continuation
        if isinstance(step, Step) and data[0].get_value(borrow=True).shape == Xs.shape:
            data[0].set_value(Xs, borrow=True)
            data[1].set_value(y_index, borrow=True)
        else:  # another batch size (or an unpickled estimator): compile for this one
            rate = pytensor.shared(np.asarray(self.finetune_lr, dtype=FLOATX), name="finetune_lr")
            data = shared_dataset((Xs, y_index))
            step, _, _ = self.model_.build_finetune_functions(
                [data, data, None], batch_size_for(self.finetune_batch_size, len(Xs)), rate, self._mode,
                **finetune_arguments(self._config(self.training_epochs)))
            self._continuation = (step, rate, data)
        rate.set_value(np.asarray(finetune_learning_rate(self._config(self.training_epochs), self.n_iter_),
                                  dtype=rate.dtype))
        self.n_iter_ += 1
        self.loss_curve_.append(train_epoch(step, (), f"partial_fit, fine-tuning epoch {self.n_iter_}",
                                            rate, progress=False))
        # the model's generators hold where the noise stands (JAX draws from the step's copies), so
        # that a step compiled later, or in an unpickled estimator, goes on from there
        write_back_compiled_noise([step.function])

    def __getstate__(self):
        """Pickles hold the model, not compiled functions nor the last batch (they are remade)."""
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives __dict__ itself
        for name in ("_continuation", "_logits"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "model_"):
            self._compile_logits()

    # --- what a saved classifier holds besides its model and scaler (SavedEstimator) ---
    _model_class = "SdA"
    _fitted_keys = frozenset({"classes", "classes_dtype", "n_iter_", "loss_curve_", "validation_scores_",
                              "best_validation_score_", "pretrain_result_", "fit_result_"})

    def _fitted_state(self) -> dict:
        return {**saved_labels(self.classes_), "n_iter_": self.n_iter_,
                "loss_curve_": [float(c) for c in self.loss_curve_],
                "validation_scores_": self.validation_scores_, "best_validation_score_": self.best_validation_score_,
                "pretrain_result_": dataclasses.asdict(self.pretrain_result_),
                "fit_result_": dataclasses.asdict(self.fit_result_)}

    def _restore(self, model, scaler, fitted: dict) -> None:
        self.classes_ = restored_labels(fitted)
        if model.n_ins != self.n_features_in_ or model.n_outs != max(len(self.classes_), 2):
            raise ValueError(f"a model of {model.n_ins} inputs and {model.n_outs} outputs does not classify "
                             f"{self.n_features_in_} features into {len(self.classes_)} classes")
        with pytensor.config.change_flags(floatX=FLOATX):
            arguments = model_arguments(validate_config(self._config(self.training_epochs)))
        arguments["criteria"] = check_criteria(arguments["criteria"], len(arguments["hidden_layers_sizes"]))
        saved = model.saved_config()
        differing = sorted(k for k, v in arguments.items() if json.dumps(v) != json.dumps(saved[k]))
        if differing:
            raise ValueError(f"the model's {', '.join(differing)} are not those the parameters give")
        curves = saved_curves(fitted, model.n_layers)
        self.model_, self._scaler = model, scaler
        self.n_iter_ = fitted["n_iter_"]
        self.loss_curve_, self.validation_scores_, self.best_validation_score_ = curves
        self.pretrain_result_ = PretrainResult(**fitted["pretrain_result_"])
        self.fit_result_ = FitResult(**fitted["fit_result_"])
        self._compile_logits()

    def decision_function(self, X):
        """The output layer's logits of each class, (n_samples, n_classes); for two classes the
        logit of ``classes_[1]`` less that of ``classes_[0]``, (n_samples,), as scikit-learn has it."""
        X = self._scaled(X)
        scores = np.asarray(self._logits(X), dtype=np.float64)[:, : len(self.classes_)]
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_log_proba(self, X):
        """Log class probabilities, (n_samples, n_classes), computed from the logits (finite even
        where a probability rounds to 0)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros_like(scores), scores])
        peak = scores.max(axis=1, keepdims=True)
        return scores - peak - np.log(np.exp(scores - peak).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each row."""
        log_proba = self.predict_log_proba(X)  # first: it refuses an unfitted estimator
        return self.classes_[np.argmax(log_proba, axis=1)]

    def transform(self, X, layer: int = -1):
        """The activations of hidden ``layer`` (default -1, the top one): (n_samples, its units)."""
        X = self._scaled(X)
        return np.asarray(self.model_.encode(X, layer, self._mode), dtype=np.float64)

    @property
    def _n_features_out(self) -> int:
        """What ``transform`` gives by default: one feature per unit of the top hidden layer
        (``get_feature_names_out`` names them ``sdaclassifier0``, ...)."""
        return int(self.model_.hidden_layers_sizes[-1])


class DenoisingAutoencoder(SavedEstimator, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
    """One denoising autoencoder (tied weights, masking noise, cross-entropy) as a transformer.

    Parameters
    ----------
    n_hidden
        code size.
    corruption_level
        masking probability in [0, 1).
    learning_rate, batch_size, n_epochs
        SGD.
    scale_inputs, random_state, mode, verbose
        as in :class:`SdAClassifier`.

    Notes
    -----
    ``transform`` gives the code :math:`s(xW + b)`, ``inverse_transform`` the reconstruction
    :math:`s(hW^T + b')` (in the scaled [0, 1] space), and ``score`` minus the mean
    cross-entropy reconstruction cost of clean inputs (higher is better, as scikit-learn expects).

    ``save(path)`` and ``DenoisingAutoencoder.load(path)``: as :class:`SdAClassifier`'s.

    Attributes
    ----------
    model_ : :class:`sda.dA.dA`
        The fitted autoencoder.
    components_ : ndarray of shape (n_hidden, n_features)
        W transposed: one row per hidden unit (``get_feature_names_out`` names them
        ``denoisingautoencoder0``, ...).
    n_features_in_ : int
        Features seen in ``fit``.
    n_iter_ : int
        Epochs run (``n_epochs``).
    loss_curve_ : list of float
        The mean minibatch reconstruction cost of each epoch (of corrupted inputs), oldest first.
    costs_ : list of float
        The same list, by its earlier name.

    There is no held-out split, and so no validation score: ``score`` rates any data.
    """

    #: the values each hyperparameter may take, as :mod:`sda.hyperparameters` declares them
    _values = {"n_hidden": COUNT, "corruption_level": PROBABILITY, "learning_rate": RATE, "batch_size": COUNT,
               "n_epochs": COUNT}
    _parameter_constraints = {**{name: sklearn_constraints(values) for name, values in _values.items()},
                              **COMMON_CONSTRAINTS}

    def __init__(self, n_hidden=500, corruption_level=0.3, learning_rate=0.1, batch_size=20,
                 n_epochs=15, scale_inputs=True, random_state=None, mode=None, verbose=0):
        set_common_params(self, scale_inputs, random_state, mode, verbose)
        self.n_hidden = n_hidden
        self.corruption_level = corruption_level
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_epochs = n_epochs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on the rows of ``X``."""
        # checked as every run checks them (in the graphs' float32), before any data is read or any size computed
        with pytensor.config.change_flags(floatX=FLOATX):
            checked = {name: values.check(name, getattr(self, name), {}) for name, values in self._values.items()}
        n_hidden, n_epochs, batch_size = checked["n_hidden"], checked["n_epochs"], checked["batch_size"]
        learning_rate, corruption_level = checked["learning_rate"], checked["corruption_level"]
        X = validate_data(self, X, dtype=np.float64)
        rng = check_random_state(self.random_state)
        # a lone dA is one layer of pretraining: its size decides whether JAX pays for its compiling
        mode = resolve_mode(self.mode, phases=training_phases(len(X), [X.shape[1], n_hidden, 1], n_epochs, 0,
                                                              batch_size, batch_size))
        with pytensor.config.change_flags(floatX=FLOATX):
            self._scaler = UnitScaler(X, self.scale_inputs)
            data, _ = shared_dataset((self._scaler(X), np.zeros(len(X), np.int32)))
            self.model_ = dA(rng, new_pytensor_rng(rng), n_visible=X.shape[1], n_hidden=n_hidden)
            bs = batch_size_for(batch_size, len(X))
            step = self.model_.training_function(data, bs, mode)
            result = pretrain_layers([step], n_epochs, [corruption_level], learning_rate,
                                     progress=False, log=epoch_log(self.verbose))
            self.costs_ = self.loss_curve_ = list(result.costs[0])
            self.n_iter_ = len(self.loss_curve_)
        self._mode = mode
        self._compile()
        return self

    def _compile(self) -> None:
        """The code, reconstruction and cost of the fitted dA, and its filters."""
        with pytensor.config.change_flags(floatX=FLOATX):
            x = self.model_.x
            self._encode = compile_function([x], self.model_.get_hidden_values(x), self._mode)
            h = pt.matrix("h")
            self._decode = compile_function([h], self.model_.get_reconstructed_input(h), self._mode)
            self._cost = compile_function([x], self.model_.reconstruction_cost(x), self._mode)
        self.components_ = np.asarray(self.model_.W.get_value()).T

    @property
    def _n_features_out(self) -> int:
        """What ``transform`` gives: one feature per hidden unit (for ``get_feature_names_out``)."""
        return self.components_.shape[0]

    # --- what a saved autoencoder holds besides its model and scaler (SavedEstimator) ---
    _model_class = "dA"
    _fitted_keys = frozenset({"costs_"})

    def _fitted_state(self) -> dict:
        return {"costs_": [float(c) for c in self.costs_]}

    def _restore(self, model, scaler, fitted: dict) -> None:
        if model.n_visible != self.n_features_in_ or model.n_hidden != self.n_hidden:
            raise ValueError(f"a dA of {model.n_visible} inputs and {model.n_hidden} units is not this "
                             f"autoencoder's ({self.n_features_in_} features, n_hidden={self.n_hidden})")
        if model.saved_config() != {"n_visible": model.n_visible, "n_hidden": model.n_hidden,
                                    "corruption_type": "masking"}:
            raise ValueError("the model is not the masking dA that fit trains")
        costs = saved_numbers(fitted["costs_"], "costs_")
        if not 1 <= len(costs) <= self.n_epochs:
            raise ValueError(f"costs_ must hold one cost per epoch, 1 to n_epochs ({self.n_epochs})")
        self.model_, self._scaler = model, scaler
        self.costs_ = self.loss_curve_ = list(costs)
        self.n_iter_ = len(costs)
        self._compile()

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
