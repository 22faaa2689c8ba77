"""Multi-class logistic regression, trained by minibatch SGD (the tutorial's ``logistic_sgd.py``).

The model maps an input row :math:`x` to class probabilities

.. math::  P(Y = i \\mid x, W, b) = \\mathrm{softmax}_i(x W + b)
           = \\frac{e^{x W_i + b_i}}{\\sum_j e^{x W_j + b_j}}

and predicts :math:`y_{pred} = \\arg\\max_i P(Y = i \\mid x)`.  It is trained by minimising
the mean negative log-likelihood of the labels over a minibatch,
:math:`\\mathcal{L} = -\\frac{1}{n} \\sum_k \\log P(Y = y_k \\mid x_k)`.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as the tutorial's script: sda.tutorial_scripts parses the flags
    import runpy

    runpy.run_module("sda.tutorial_scripts", init_globals={"SCRIPT": "logistic_sgd"}, run_name="__main__",
                     alter_sys=True)
    raise SystemExit  # it exits itself; never define the model twice in this process

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.variable import TensorVariable

from sda.data import DEFAULT_DATA_DIR
from sda.datasets import load_data
from sda.modes import compile_function, resolve_mode
from sda.persistence import SaveLoadMixin
from sda.steps import supervised_functions
from sda.training import fit_early_stopping
from sda.validation import check_fits_in_memory, check_positive, check_positive_int

__all__ = ["LogisticRegression", "load_data", "sgd_optimization_mnist", "predict"]


def check_labels(y):
    """Raise TypeError unless ``y`` is a symbolic vector of integer class labels."""
    if not isinstance(y, TensorVariable):
        raise TypeError(f"y must be a symbolic tensor of labels, got {type(y).__name__}")
    if y.ndim != 1:
        raise TypeError(f"y must be a vector of labels (ndim 1), got ndim {y.ndim} ({y.type})")
    if not y.dtype.startswith("int"):
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")


class LogisticRegression(SaveLoadMixin):
    """Softmax regression layer: ``p_y_given_x = softmax(input @ W + b)``.

    Parameters
    ----------
    input
        symbolic matrix (n_examples, n_in).
    n_in, n_out
        input dimension and number of classes.
    W, b
        optional shared variables to use instead of new zero-initialised ones.

    Attributes
    ----------
    W
        shared weights (n_in, n_out).
    b
        shared biases (n_out,); ``params`` lists ``[W, b]``.
    p_y_given_x
        symbolic class probabilities (n_examples, n_out).
    y_pred
        symbolic predicted class (n_examples,).
    """

    def __init__(self, input, n_in: int, n_out: int, W=None, b=None):
        n_in, n_out = check_positive_int("n_in", n_in), check_positive_int("n_out", n_out)
        floatX = pytensor.config.floatX
        if W is None:
            check_fits_in_memory(f"a {n_in} x {n_out} weight matrix", np.dtype(floatX).itemsize * n_in * n_out)
            W = pytensor.shared(np.zeros((n_in, n_out), dtype=floatX), name="W", borrow=True)
        if b is None:
            b = pytensor.shared(np.zeros((n_out,), dtype=floatX), name="b", borrow=True)
        self.W, self.b = W, b
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.input = input
        self.logits = pt.dot(input, self.W) + self.b
        self.p_y_given_x = pt.special.softmax(self.logits, axis=-1)
        self.y_pred = pt.argmax(self.logits, axis=1)
        self.params = [self.W, self.b]

    def negative_log_likelihood(self, y):
        """Mean over the minibatch of :math:`-\\log P(Y = y_k \\mid x_k)`.

        Computed from the logits as :math:`\\log\\sum_j e^{z_j} - z_{y}` (shifted by the row
        maximum), which stays finite where the probability itself would underflow to 0.
        """
        check_labels(y)
        # log P(y|x) = logit_y - logsumexp(logits); written with elementwise ops and a
        # reduction (not pt.special.log_softmax, which the C backend runs in Python)
        peak = pt.max(self.logits, axis=1, keepdims=True)
        log_norm = pt.log(pt.sum(pt.exp(self.logits - peak), axis=1)) + peak[:, 0]
        # the logit of each example's label, picked by a one-hot mask (JAX cannot compile an
        # index arange of a length that PyTensor has folded to a small constant type)
        one_hot = pt.eq(y[:, None], pt.arange(self.n_out, dtype="int32")[None, :])
        return pt.mean(log_norm - pt.sum(self.logits * pt.cast(one_hot, self.logits.dtype), axis=1))

    def errors(self, y):
        """Fraction of the minibatch whose predicted class differs from ``y`` (zero-one loss)."""
        check_labels(y)
        return pt.mean(pt.neq(self.y_pred, y), dtype=pytensor.config.floatX)

    # --- what a model file holds (sda.persistence) ---

    def saved_config(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out}

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        n_in, n_out = check_positive_int("n_in", config["n_in"]), check_positive_int("n_out", config["n_out"])
        return {"W": (n_in, n_out), "b": (n_out,)}

    @classmethod
    def from_config(cls, config: dict, rng=None):
        return cls(pt.matrix("x"), **config)


def sgd_optimization_mnist(
    learning_rate: float = 0.13,
    n_epochs: int = 1000,
    dataset=DEFAULT_DATA_DIR,
    batch_size: int = 600,
    n_out: int = 10,
    mode: str | None = None,
    datasets=None,
    progress: bool = True,
    log=print,
):
    """Train logistic regression on MNIST by minibatch SGD with early stopping.

    The tutorial's defaults: lr 0.13, batch 600, patience 5000 iterations.  ``datasets``
    (as returned by :func:`load_data`) replaces loading ``dataset`` from disk.

    Returns ``(classifier, result)``: the model at its best validation error and the
    :class:`sda.training.FitResult`.
    """
    check_positive("learning_rate", learning_rate)
    datasets = load_data(dataset) if datasets is None else datasets
    x, y = pt.matrix("x"), pt.ivector("y")
    classifier = LogisticRegression(input=x, n_in=datasets[0][0].get_value(borrow=True).shape[1], n_out=n_out)
    cost = classifier.negative_log_likelihood(y)
    train_model, validate_model, test_model = supervised_functions(
        x, y, cost, classifier.errors(y), classifier.params, datasets, batch_size, learning_rate, resolve_mode(mode)
    )

    result = fit_early_stopping(
        train_model, validate_model, test_model, n_epochs=n_epochs, patience=5000, params=classifier.params, learning_rate=learning_rate,
        progress=progress, log=log, name="logistic regression",
    )
    return classifier, result


def predict(classifier: LogisticRegression, images, mode: str | None = None) -> np.ndarray:
    """Predicted labels of a trained classifier for the rows of ``images``."""
    images = np.asarray(images, dtype=pytensor.config.floatX)
    if images.ndim != 2 or images.shape[1] != classifier.n_in:
        raise ValueError(f"images must have shape (n, {classifier.n_in}), got {images.shape}")
    predict_model = compile_function(
        [classifier.input], classifier.y_pred, resolve_mode(mode)
    )
    return predict_model(images)

