"""A one-hidden-layer perceptron (the tutorial's ``mlp.py``).

.. math::  h = s(x W^{(1)} + b^{(1)}), \\qquad
           P(Y \\mid x) = \\mathrm{softmax}(h W^{(2)} + b^{(2)})

with :math:`s = \\tanh` (or the logistic sigmoid), trained on the negative log-likelihood
plus L1 and squared-L2 penalties on the weights.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as the tutorial's script: sda.tutorial_scripts parses the flags
    import runpy

    runpy.run_module("sda.tutorial_scripts", init_globals={"SCRIPT": "mlp"}, run_name="__main__",
                     alter_sys=True)
    raise SystemExit  # it exits itself; never define the model twice in this process

import numpy as np
import pytensor
import pytensor.tensor as pt

from sda.data import DEFAULT_DATA_DIR
from sda.datasets import load_data
from sda.logistic_sgd import LogisticRegression
from sda.modes import resolve_mode
from sda.persistence import SaveLoadMixin
from sda.steps import supervised_functions
from sda.training import fit_early_stopping
from sda.validation import check_fits_in_memory, check_positive, check_positive_int

__all__ = ["HiddenLayer", "MLP", "train_mlp"]


class HiddenLayer:
    """Fully connected layer ``output = activation(input @ W + b)``.

    Parameters
    ----------
    rng
        numpy.random.RandomState or Generator, used to initialise W.
    input
        symbolic matrix (n_examples, n_in).
    n_in, n_out
        layer sizes.
    W, b
        optional shared variables to use (this is how the SdA shares them with its dAs).
    activation
        elementwise nonlinearity, ``pt.tanh`` (default), ``pt.sigmoid`` or None.

    Notes
    -----
    W is drawn uniformly from :math:`\\pm\\sqrt{6 / (n_{in} + n_{out})}` (Glorot & Bengio
    2010), four times wider for the sigmoid, whose slope at 0 is 1/4 of tanh's; b is 0.
    """

    def __init__(self, rng, input, n_in: int, n_out: int, W=None, b=None, activation=pt.tanh):
        n_in, n_out = check_positive_int("n_in", n_in), check_positive_int("n_out", n_out)
        floatX = pytensor.config.floatX
        if W is None:
            # refused before numpy tries: the float64 draw is the largest array made here
            check_fits_in_memory(f"a {n_in} x {n_out} weight matrix", 8 * n_in * n_out)
            bound = np.sqrt(6.0 / (n_in + n_out)) * (4 if activation is pt.sigmoid else 1)
            W = pytensor.shared(rng.uniform(-bound, bound, size=(n_in, n_out)).astype(floatX),
                                name="W", borrow=True)
        if b is None:
            b = pytensor.shared(np.zeros((n_out,), dtype=floatX), name="b", borrow=True)
        if tuple(W.get_value(borrow=True).shape) != (n_in, n_out):
            raise ValueError(f"W must have shape ({n_in}, {n_out}), got {W.get_value(borrow=True).shape}")
        self.input, self.W, self.b = input, W, b
        self.n_in, self.n_out = n_in, n_out
        lin_output = pt.dot(input, self.W) + self.b
        self.output = lin_output if activation is None else activation(lin_output)
        self.params = [self.W, self.b]


class MLP(SaveLoadMixin):
    """Hidden layer + logistic regression output layer.

    Attributes: ``hiddenLayer``, ``logRegressionLayer``, ``params``, ``L1`` (sum of absolute
    weights), ``L2_sqr`` (sum of squared weights), ``negative_log_likelihood``, ``errors``,
    ``input``.
    """

    def __init__(self, rng, input, n_in: int, n_hidden: int, n_out: int, activation=pt.tanh):
        names = {function: name for name, function in self._ACTIVATIONS.items()}
        if activation not in names:
            raise ValueError(f"activation must be pt.tanh or pt.sigmoid, got {activation!r}")
        self.activation_name = names[activation]
        self.hiddenLayer = HiddenLayer(rng, input, n_in, n_hidden, activation=activation)
        self.logRegressionLayer = LogisticRegression(self.hiddenLayer.output, n_hidden, n_out)
        self.L1 = abs(self.hiddenLayer.W).sum() + abs(self.logRegressionLayer.W).sum()
        self.L2_sqr = (self.hiddenLayer.W ** 2).sum() + (self.logRegressionLayer.W ** 2).sum()
        self.negative_log_likelihood = self.logRegressionLayer.negative_log_likelihood
        self.errors = self.logRegressionLayer.errors
        self.y_pred = self.logRegressionLayer.y_pred
        self.params = self.hiddenLayer.params + self.logRegressionLayer.params
        self.input = input

    # --- what a model file holds (sda.persistence) ---

    _ACTIVATIONS = {"tanh": pt.tanh, "sigmoid": pt.sigmoid}

    def saved_config(self) -> dict:
        return {"n_in": self.hiddenLayer.n_in, "n_hidden": self.hiddenLayer.n_out,
                "n_out": self.logRegressionLayer.n_out, "activation": self.activation_name}

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        n_in, n_hidden, n_out = (check_positive_int(key, config[key]) for key in ("n_in", "n_hidden", "n_out"))
        return {"hiddenLayer.W": (n_in, n_hidden), "hiddenLayer.b": (n_hidden,),
                "logRegressionLayer.W": (n_hidden, n_out), "logRegressionLayer.b": (n_out,)}

    @classmethod
    def from_config(cls, config: dict, rng):
        config = dict(config)
        name = config.pop("activation", "tanh")
        if name not in cls._ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}")
        return cls(rng, pt.matrix("x"), activation=cls._ACTIVATIONS[name], **config)


def train_mlp(learning_rate: float = 0.01, L1_reg: float = 0.0, L2_reg: float = 0.0001,
              n_epochs: int = 1000, dataset=DEFAULT_DATA_DIR, batch_size: int = 20,
              n_hidden: int = 500, n_out: int = 10, seed: int = 1234, mode: str | None = None,
              datasets=None, progress: bool = True, log=print):
    """Train the MLP on MNIST with SGD and early stopping (the tutorial's ``test_mlp``).

    Defaults are the tutorial's: lr 0.01, L1 0, L2 1e-4, batch 20, 500 tanh units, patience
    10,000 iterations.  Returns ``(classifier, FitResult)``.
    """
    check_positive("learning_rate", learning_rate)
    datasets = load_data(dataset) if datasets is None else datasets
    x, y = pt.matrix("x"), pt.ivector("y")
    classifier = MLP(np.random.RandomState(seed), x, datasets[0][0].get_value(borrow=True).shape[1],
                     n_hidden, n_out)
    cost = classifier.negative_log_likelihood(y) + L1_reg * classifier.L1 + L2_reg * classifier.L2_sqr
    train_model, validate_model, test_model = supervised_functions(
        x, y, cost, classifier.errors(y), classifier.params, datasets, batch_size, learning_rate, resolve_mode(mode)
    )
    result = fit_early_stopping(
        train_model, validate_model, test_model, n_epochs=n_epochs,
        patience=10000, params=classifier.params, learning_rate=learning_rate,
        progress=progress, log=log, name="mlp",
    )
    return classifier, result

