"""What the two estimators of :mod:`sda.estimators` share besides the scaling of their inputs
(:class:`sda.scaling.UnitScaler`, shared with the command line): scikit-learn parameter
constraints made from the hyperparameter table (:mod:`sda.hyperparameters`), for sequences and
for mode names, and their files (:class:`SavedEstimator`)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sda.hyperparameters import Values
from sda.modes import MODES
from sda.persistence import (ModelFileError, build_model, check_model_layout, model_entry, model_tensors,
                             read_tensor_file, write_tensor_file)
from sda.scaling import UnitScaler
from sda.version import __version__


#: A batch size of None: at most this many examples a minibatch ...
LARGEST_AUTO_BATCH = 20
#: ... and, below 20 * 50 examples, about this many minibatches an epoch, so that a hundred
#: examples get 50 updates an epoch rather than 5: at batch 20, SGD on scikit-learn's iris still
#: predicted one class after ten epochs, and early stopping ended the fit there.
AUTO_BATCHES_PER_EPOCH = 50


def batch_size_for(requested: int | None, n_samples: int) -> int:
    """The minibatch size a fit on ``n_samples`` examples uses: ``requested`` (at most all of
    them), or for None ``n_samples // 50`` between 1 and 20."""
    if requested is None:
        requested = min(LARGEST_AUTO_BATCH, n_samples // AUTO_BATCHES_PER_EPOCH)
    return max(1, min(int(requested), n_samples))


def epoch_log(verbose):
    return print if verbose else None


#: A fit whose training accuracy is not this share of the way from the commonest class's to 1 did
#: not learn: a network whose SGD barely moved it from its random start scores about the
#: commonest class's accuracy, a little above or below it.
LEARNED = 0.1
#: A fit that ran out of epochs while its error still fell by more than this (a point) over its
#: last patience window was still learning; a fall of a few examples' errors is not that.
STILL_LEARNING = 0.01


def convergence_problem(labels: np.ndarray, predicted: np.ndarray, errors: list, epochs: int,
                        training_epochs: int, patience: int) -> str | None:
    """Why a fit did not converge, or None: its model (``predicted``, on its training ``labels``)
    does not get :data:`LEARNED` of the way from the commonest class's accuracy to 1 (a model
    that predicts a single class never does), or it ran all ``training_epochs`` while its
    validation ``errors`` still fell by more than :data:`STILL_LEARNING` over the last
    ``patience`` epochs (at most half the fit)."""
    accuracy, commonest = float(np.mean(predicted == labels)), float(np.bincount(labels).max() / len(labels))
    advice = ("more training_epochs, a larger finetune_lr or a smaller finetune_batch_size may help; "
              "n_iter_ and loss_curve_ show how the fit went")
    if accuracy < commonest + LEARNED * (1 - commonest):
        single = " (it predicts a single class)" if len(np.unique(predicted)) == 1 else ""
        return (f"SdAClassifier did not learn: after {epochs} fine-tuning epochs its training accuracy "
                f"{accuracy:.3f} is hardly better than predicting the commonest class ({commonest:.3f}){single}; "
                f"{advice}")
    window = max(1, min(int(patience), len(errors) // 2))
    if epochs == training_epochs and len(errors) > window and min(errors[:-window]) - min(errors) > STILL_LEARNING:
        return (f"SdAClassifier ran all {training_epochs} training_epochs while its error still fell, from "
                f"{min(errors[:-window]):.3f} to {min(errors):.3f} in the last {window}; {advice}")
    return None


def saved_curves(fitted: dict, n_layers: int) -> tuple[list, list | None, float | None]:
    """A saved classifier's ``loss_curve_``, ``validation_scores_`` and ``best_validation_score_``,
    once they agree with its ``n_iter_`` and training results (``n_layers`` layers)."""
    epochs, scores, best = fitted["n_iter_"], fitted["validation_scores_"], fitted["best_validation_score_"]
    if type(epochs) is not int or epochs < 0 or not isinstance(fitted["loss_curve_"], list) \
            or len(fitted["loss_curve_"]) != epochs:
        raise ValueError("n_iter_ must be a count, the length of loss_curve_")
    if (scores is None) != (best is None):
        raise ValueError("validation_scores_ and best_validation_score_ are both None or both given")
    if scores is not None and (not isinstance(scores, list) or len(scores) != epochs):
        raise ValueError("validation_scores_ must hold one score per fine-tuning epoch")
    check_training_results(fitted["pretrain_result_"], fitted["fit_result_"], n_layers, epochs)
    return (saved_numbers(fitted["loss_curve_"], "loss_curve_"),
            None if scores is None else saved_numbers(scores, "validation_scores_"),
            None if best is None else saved_numbers([best], "best_validation_score_")[0])


class NonEmptySequenceOf(Interval):
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


class SequenceOfOptions(StrOptions):
    """A non-empty sequence of the options (one pretraining criterion per layer)."""

    def is_satisfied_by(self, val):
        return (isinstance(val, Sequence) and not isinstance(val, str) and len(val) > 0
                and all(isinstance(item, str) and item in self.options for item in val))

    def __str__(self):
        return f"a non-empty sequence of {super().__str__()}"


class ModeNames(StrOptions):
    """Compile mode names, compared case-insensitively as :func:`sda.modes.resolve_mode` does."""

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val.upper() in {option.upper() for option in self.options}

    def __str__(self):
        return f"a str among {', '.join(sorted(self.options))} (in any case)"


def sklearn_constraints(values: Values) -> list:
    """scikit-learn's constraints for a hyperparameter's :class:`sda.hyperparameters.Values`: its
    interval or options, for one value and (one per layer) for a sequence of them.  They check
    each parameter alone and in float64; :func:`sda.config.validate_config` checks the rest in
    ``fit`` (one level per layer, bounds that depend on other parameters, float32)."""
    if values.options:
        one, sequence = StrOptions(set(values.options)), SequenceOfOptions(set(values.options))
    else:
        number = Integral if values.integer else Real
        one = Interval(number, values.low, values.high, closed=values.closed)
        sequence = NonEmptySequenceOf(number, values.low, values.high, closed=values.closed)
    constraints = [sequence] if values.per_layer else [one]
    if values.per_layer and values.one_for_all:
        constraints.insert(0, one)
    return [None, *constraints] if values.none else constraints


#: constraints that both estimators share
COMMON_CONSTRAINTS = {
    "scale_inputs": ["boolean"],
    "random_state": ["random_state"],
    "mode": [None, ModeNames({"auto", *MODES})],
    "verbose": ["verbose"],
}


def set_common_params(estimator, scale_inputs, random_state, mode, verbose) -> None:
    """The parameters both estimators share, stored as given (scikit-learn's rule for __init__)."""
    estimator.scale_inputs = scale_inputs
    estimator.random_state = random_state
    estimator.mode = mode
    estimator.verbose = verbose


ESTIMATOR_FORMAT = "sda-estimator"
#: Version 2's parameters hold those of the update rules and of UFLDL's protocol; version 1 files
#: are refused, naming their version.
ESTIMATOR_VERSION = 2
_CLASS_KINDS = "biufU"  # the dtypes of labels a file may give ``classes_`` (and object, for mixed ones)


def _json_ready(value):
    """A hyperparameter as JSON holds it: numpy numbers and arrays as Python's; a random generator
    (whose state JSON cannot hold) as None."""
    if isinstance(value, np.random.RandomState | np.random.Generator):
        return None
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value


class SavedEstimator:
    """``estimator.save(path)`` and ``Class.load(path)``: a fitted estimator in a safetensors file,
    as safe as a model file (:mod:`sda.persistence`): unlike a pickle, loading one runs no code.

    The file holds the model's tensors, named as in a model file after ``model.``; the input
    scaler's ``scaler.low`` and ``scaler.span`` (float64, one per feature) when it maps the data
    (the header's ``scaled``);
    and in its header (format ``sda-estimator``) the estimator's class, its hyperparameters
    (``get_params()``; a ``random_state`` that is a generator is saved as None), the model's class,
    configuration and dtype, and the fitted attributes (:meth:`_fitted_state`).  Loading checks
    every tensor against the header before reading any, and the hyperparameters as ``fit`` does;
    the compiled functions are remade, in the mode the estimator was fitted in.

    A subclass names its model's class (``_model_class``) and says what else it keeps
    (``_fitted_state()``) and how to take it back (``_restore(model, scaler, fitted)``).
    """

    _model_class: str
    #: the keys of :meth:`_fitted_state`
    _fitted_keys: frozenset[str]
    # what the estimator that mixes this in has once fitted, and scikit-learn's get_params
    model_: Any
    _scaler: Any
    _mode: str
    n_features_in_: int
    get_params: Callable[..., dict]

    def _fitted_state(self) -> dict:
        raise NotImplementedError

    def _restore(self, model, scaler, fitted: dict) -> None:
        raise NotImplementedError

    def _scaled(self, X):
        """``X`` checked against the fitted estimator and mapped by its input scaler."""
        check_is_fitted(self)
        return self._scaler(validate_data(self, X, reset=False, dtype=np.float64))

    def save(self, path) -> Path:
        """Write this fitted estimator to ``path`` (a ``.safetensors`` file), atomically."""
        check_is_fitted(self)
        description, tensors = model_entry(self.model_, prefix="model.")
        tensors.update(self._scaler.tensors())
        fitted = {"n_features_in_": int(self.n_features_in_), "mode": self._mode, "scaled": self._scaler.enabled,
                  **self._fitted_state()}
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        header = {"format": ESTIMATOR_FORMAT, "format_version": ESTIMATOR_VERSION, "sda_version": __version__,
                  "estimator": type(self).__name__,
                  "params": {key: _json_ready(value) for key, value in self.get_params(deep=False).items()},
                  "model": description, "fitted": fitted}
        return write_tensor_file(path, header, tensors)

    @classmethod
    def load(cls, path):
        """The estimator saved in ``path``, predicting exactly as the saved one; anything in the
        file that does not fit raises :class:`sda.persistence.ModelFileError`."""
        header, tensors = read_tensor_file(path, ESTIMATOR_FORMAT, version=ESTIMATOR_VERSION,
                                           check_layout=lambda h, layout: cls._check_layout(path, h, layout))
        model = build_model(path, header["model"], model_tensors(path, header["model"], tensors, "model."))
        try:
            expected_params = set(cls().get_params(deep=False))
            params = header["params"]  # a missing one would silently take its default
            if set(params) != expected_params:
                raise ValueError(f"params has unknown keys {sorted(set(params) - expected_params)!r:.80} "
                                 f"and lacks {sorted(expected_params - set(params))!r:.80}")
            estimator = cls(**params)
            estimator._validate_params()  # scikit-learn's checks of every hyperparameter, as fit makes them
            fitted = header["fitted"]
            keys = {"n_features_in_", "mode", "scaled", *cls._fitted_keys}
            if set(fitted) - {"feature_names_in_"} != keys:
                raise ValueError(f"fitted has unknown keys {sorted(set(fitted) - keys - {'feature_names_in_'})!r:.80} "
                                 f"and lacks {sorted(keys - set(fitted))!r:.80}")
            if not (type(fitted["n_features_in_"]) is int and fitted["mode"] in MODES
                    and type(fitted["scaled"]) is bool):
                raise ValueError("n_features_in_ must be a count, mode a compile mode and scaled true or false")
            estimator.n_features_in_, estimator._mode = fitted["n_features_in_"], fitted["mode"]
            if "feature_names_in_" in fitted:
                names = fitted["feature_names_in_"]
                if not (isinstance(names, list) and len(names) == estimator.n_features_in_
                        and all(isinstance(name, str) for name in names)):
                    raise ValueError("feature_names_in_ must be one name per feature")
                estimator.feature_names_in_ = np.asarray(names, dtype=object)
            estimator._restore(model, UnitScaler.from_tensors(tensors), fitted)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ModelFileError(f"{path}: the saved {cls.__name__} is inconsistent ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]})") from None
        return estimator

    @classmethod
    def _check_layout(cls, path, header: dict, layout: dict) -> None:
        """Before any tensor is read: the file holds a fitted ``cls``, whose tensors are its
        model's (:func:`sda.persistence.check_model_layout`) and, when the scaler maps the data,
        the scaler's, one float64 per feature."""
        if header.get("estimator") != cls.__name__:
            raise ModelFileError(f"{path} holds a {header.get('estimator')!s:.40}, not a {cls.__name__}")
        description, fitted = header.get("model"), header.get("fitted")
        if not (isinstance(description, dict) and description.get("class") == cls._model_class
                and isinstance(header.get("params"), dict) and isinstance(fitted, dict)):
            raise ModelFileError(f"{path}: header lacks the {cls._model_class} model, the parameters or "
                                 f"the fitted attributes")
        check_model_layout(path, description, layout, prefix="model.")
        scaler = {name: layout[name] for name in layout if not name.startswith("model.")}
        expected = {f"scaler.{key}": (np.dtype(np.float64), (fitted.get("n_features_in_"),)) for key in ("low", "span")}
        if scaler != (expected if fitted.get("scaled") is True else {}):
            raise ModelFileError(f"{path}: tensors {sorted(scaler)[:3]!r:.120} are not the scaler's (with "
                                 f"scaled: true, scaler.low and scaler.span: float64, one per feature; else none)")


def saved_labels(classes: np.ndarray) -> dict:
    """``classes_`` as JSON holds it, with its dtype."""
    return {"classes": classes.tolist(), "classes_dtype": classes.dtype.str}


def saved_numbers(values, name: str) -> list[float]:
    """A saved list of finite numbers (an estimator file's ``loss_curve_``, ...), as ``fit`` made it."""
    if not (isinstance(values, list) and all(type(v) in (int, float) and np.isfinite(v) for v in values)):
        raise ValueError(f"{name} must be a list of finite numbers")
    return [float(v) for v in values]


def documented_parameter(h) -> str:
    """A hyperparameter's entry in an estimator's numpydoc parameter list."""
    meaning = textwrap.fill(f"{h.help[0].upper()}{h.help[1:]}.", 92, initial_indent="    ", subsequent_indent="    ")
    return f"{h.name} : default={h.estimator_value!r}\n{meaning}"


def restored_labels(fitted: dict) -> np.ndarray:
    """``classes_`` from :func:`saved_labels`' JSON: numbers, strings of bounded length, or objects
    (mixed labels); distinct, as ``np.unique`` made them (ValueError otherwise)."""
    dtype = np.dtype(fitted["classes_dtype"])
    if not ((dtype.kind in _CLASS_KINDS and dtype.itemsize <= 1024) or dtype.kind == "O"):
        raise ValueError(f"classes_ of dtype {dtype} are not labels")
    labels = fitted["classes"]
    if not (isinstance(labels, list) and labels and all(isinstance(c, int | float | str) for c in labels)):
        raise ValueError("classes_ must be a list of numbers or strings")
    try:
        classes = np.asarray(labels, dtype=dtype)
    except OverflowError:  # an integer beyond the dtype
        raise ValueError(f"classes_ do not fit their dtype {dtype}") from None
    if classes.ndim != 1 or classes.tolist() != labels:  # a string cut short, a float rounded
        raise ValueError(f"classes_ are not what their dtype {dtype} holds")
    if len(np.unique(classes)) != len(classes):
        raise ValueError("classes_ must be distinct labels")
    return classes


def _count(value) -> bool:
    return type(value) is int and value >= 0


def _numbers_list(value) -> bool:
    return isinstance(value, list) and all(type(v) in (int, float) and math.isfinite(v) for v in value)


def check_training_results(pretrain: dict, fit: dict | None, n_layers: int, n_epochs: int) -> None:
    """A saved classifier's ``pretrain_result_`` (``fit_result_``: None for an autoencoder) as
    ``fit`` made them: per layer (``n_layers``) lists of numbers and of times, and one history
    record per fine-tuning epoch (``n_epochs``); ValueError otherwise."""
    if not (isinstance(pretrain, dict) and set(pretrain) == {"costs", "seconds", "epoch_seconds", "converged",
                                                               "epoch_times"}):
        raise ValueError("pretrain_result_ must hold costs, seconds, epoch_seconds, converged and epoch_times")
    costs, times = pretrain["costs"], pretrain["epoch_times"]
    if not (isinstance(costs, list) and len(costs) == n_layers and all(_numbers_list(c) for c in costs)
            and _numbers_list(pretrain["seconds"]) and len(pretrain["seconds"]) == n_layers
            and isinstance(pretrain["epoch_seconds"], list) and isinstance(times, list)
            and len(pretrain["epoch_seconds"]) == len(times) == n_layers
            and all(_numbers_list(s) and len(s) == len(c) for s, c in zip(pretrain["epoch_seconds"], costs))
            and all(isinstance(t, list) and len(t) == len(c) and all(isinstance(v, str) for v in t)
                    for t, c in zip(times, costs))
            and isinstance(pretrain["converged"], list)
            and all(type(k) is int and 0 <= k < n_layers for k in pretrain["converged"])):
        raise ValueError(f"pretrain_result_ must hold lists of numbers and times, one per layer ({n_layers})")
    if fit is None:
        return
    keys = {"best_validation_error", "best_iteration", "test_error", "epochs", "seconds", "history"}
    if not (isinstance(fit, dict) and set(fit) == keys and fit["epochs"] == n_epochs and _count(fit["epochs"])
            and type(fit["best_iteration"]) is int and fit["best_iteration"] >= -1
            and _numbers_list([fit["best_validation_error"], fit["seconds"]])
            and (fit["test_error"] is None or _numbers_list([fit["test_error"]]))
            and isinstance(fit["history"], list) and len(fit["history"]) == n_epochs
            and all(isinstance(r, dict) for r in fit["history"])):
        raise ValueError(f"fit_result_ must hold the fine-tuning's numbers and one record per epoch ({n_epochs})")
