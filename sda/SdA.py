"""The stacked denoising autoencoder (the tutorial's ``SdA.py``; Vincent et al., JMLR 2010).

An SdA is an MLP with sigmoid hidden layers :math:`h^{(k)} = s(h^{(k-1)} W^{(k)} + b^{(k)})`
(:math:`h^{(0)} = x`) and a softmax layer on top, trained in two phases:

1. **Pretraining**, greedy and unsupervised: layer :math:`k` is trained as a denoising
   autoencoder (:class:`sda.dA.dA`) on the output of layers :math:`1..k-1`.  The dA and the
   MLP layer hold the *same* shared variables ``W`` and ``b``, so training the dA trains
   the MLP layer; the dA's decoder bias ``b_prime`` belongs to the dA alone.
2. **Fine-tuning**, supervised: the whole MLP is trained by SGD on the negative
   log-likelihood of the labels, with early stopping on the validation error.

Run ``python -m sda.SdA --help`` for the command line.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from sda.dA import dA, new_pytensor_rng
from sda.data import minibatch, n_batches
from sda.logistic_sgd import LogisticRegression
from sda.mlp import HiddenLayer
from sda.modes import compile_function, resolve_mode
from sda.training import fit_early_stopping, pretrain_layers, supervised_functions
from sda.validation import check_corruption, check_layer_sizes, check_positive, check_positive_int

__all__ = ["SdA", "train_SdA"]


class SdA:
    """Stacked denoising autoencoder: sigmoid layers, each shared with a dA, and a softmax on top.

    Parameters
    ----------
    numpy_rng : numpy.random.RandomState, initialises the weights and seeds each dA's
        corruption noise (one PyTensor generator per layer).
    n_ins : input dimension (784 for MNIST).
    hidden_layers_sizes : units in each hidden layer, e.g. ``[1000, 1000, 1000]``.
    n_outs : number of classes.
    corruption_levels : masking probability of each layer's dA, each in [0, 1).

    Attributes
    ----------
    x, y : the symbolic minibatch (matrix) and its labels (int32 vector).
    sigmoid_layers : list of :class:`~sda.mlp.HiddenLayer`.
    dA_layers : list of :class:`~sda.dA.dA`; ``dA_layers[k].W is sigmoid_layers[k].W``.
    logLayer : the :class:`~sda.logistic_sgd.LogisticRegression` output layer.
    params : the MLP's parameters (what fine-tuning trains).
    finetune_cost, errors : symbolic negative log-likelihood and error rate of ``(x, y)``.
    """

    def __init__(self, numpy_rng, n_ins: int = 784,
                 hidden_layers_sizes=(500, 500), n_outs: int = 10, corruption_levels=(0.1, 0.1)):
        n_ins, n_outs = check_positive_int("n_ins", n_ins), check_positive_int("n_outs", n_outs)
        sizes = check_layer_sizes("hidden_layers_sizes", hidden_layers_sizes)
        levels = [check_corruption(f"corruption_levels[{i}]", c) for i, c in enumerate(corruption_levels)]
        if len(levels) != len(sizes):
            raise ValueError(
                f"corruption_levels has {len(levels)} entries but there are {len(sizes)} hidden layers"
            )
        self.n_ins, self.n_outs = n_ins, n_outs
        self.hidden_layers_sizes, self.corruption_levels = sizes, levels
        self.n_layers = len(sizes)
        self.x, self.y = pt.matrix("x"), pt.ivector("y")
        self.sigmoid_layers, self.dA_layers, self.params = [], [], []

        for k, n_out in enumerate(sizes):
            n_in = n_ins if k == 0 else sizes[k - 1]
            layer_input = self.x if k == 0 else self.sigmoid_layers[-1].output
            sigmoid_layer = HiddenLayer(numpy_rng, layer_input, n_in, n_out, activation=pt.sigmoid)
            self.sigmoid_layers.append(sigmoid_layer)
            self.params.extend(sigmoid_layer.params)
            self.dA_layers.append(dA(numpy_rng, new_pytensor_rng(numpy_rng), input=layer_input,
                                     n_visible=n_in, n_hidden=n_out,
                                     W=sigmoid_layer.W, bhid=sigmoid_layer.b))

        self.logLayer = LogisticRegression(self.sigmoid_layers[-1].output, sizes[-1], n_outs)
        self.params.extend(self.logLayer.params)
        self.finetune_cost = self.logLayer.negative_log_likelihood(self.y)
        self.errors = self.logLayer.errors(self.y)

    def pretraining_functions(self, train_set_x, batch_size: int, mode: str | None = None):
        """One compiled function per layer: ``f(index, corruption, lr) -> cost``
        takes one SGD step of that layer's dA on minibatch ``index`` of the shared
        ``train_set_x`` and returns the mean reconstruction cost.
        """
        mode = resolve_mode(mode)
        index = pt.iscalar("index")
        corruption_level, learning_rate = pt.scalar("corruption"), pt.scalar("lr")
        batch = minibatch(train_set_x, index, batch_size)
        fns = []
        for layer in self.dA_layers:
            cost, updates = layer.get_cost_updates(corruption_level, learning_rate)
            fns.append(compile_function(
                [index, corruption_level, learning_rate],
                cost, mode, updates=updates, givens={self.x: batch},
            ))
        return fns

    def build_finetune_functions(self, datasets, batch_size: int, learning_rate, mode: str | None = None):
        """``(train_fn, valid_score, test_score)`` for fine-tuning on shared ``datasets``
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

        ``train_fn(index)`` takes one SGD step on minibatch ``index`` and returns the cost;
        ``valid_score()`` / ``test_score()`` return the error rate on the whole set.
        """
        return supervised_functions(self.x, self.y, self.finetune_cost, self.errors, self.params,
                                    datasets, batch_size, learning_rate, resolve_mode(mode))

    def predict_function(self, mode: str | None = None):
        """Compiled ``f(images) -> predicted labels``."""
        return compile_function([self.x], self.logLayer.y_pred, resolve_mode(mode))


def train_SdA(datasets, hidden_layers_sizes=(1000, 1000, 1000), corruption_levels=(0.1, 0.2, 0.3),
              pretraining_epochs: int = 15, pretrain_lr: float = 0.001, pretrain_batch_size: int = 1,
              training_epochs: int = 1000, finetune_lr: float = 0.1, finetune_batch_size: int = 1,
              n_outs: int = 10, seed: int = 89677, mode: str | None = None, progress: bool = True,
              log=print):
    """Pretrain then fine-tune an SdA on shared ``datasets`` (the tutorial's ``test_SdA``).

    Defaults are the tutorial's.  Returns ``(sda, pretrain_result, finetune_result)``; the
    model holds the parameters of its best validation error.
    """
    for name, value in (("pretrain_lr", pretrain_lr), ("finetune_lr", finetune_lr)):
        check_positive(name, value)
    check_positive_int("pretraining_epochs", pretraining_epochs, minimum=0)
    check_positive_int("training_epochs", training_epochs)
    mode = resolve_mode(mode)
    train_x = datasets[0][0]
    n_pretrain_batches = n_batches(train_x, pretrain_batch_size)
    n_finetune_batches = n_batches(train_x, finetune_batch_size)
    sda = SdA(np.random.RandomState(seed), n_ins=train_x.get_value(borrow=True).shape[1],
              hidden_layers_sizes=hidden_layers_sizes, n_outs=n_outs,
              corruption_levels=corruption_levels)

    pretrain_result = pretrain_layers(
        sda.pretraining_functions(train_x, pretrain_batch_size, mode), n_pretrain_batches,
        pretraining_epochs, sda.corruption_levels, pretrain_lr, progress=progress, log=log,
    )

    train_fn, validate_fn, test_fn = sda.build_finetune_functions(datasets, finetune_batch_size,
                                                                   finetune_lr, mode)
    finetune_result = fit_early_stopping(
        train_fn, n_finetune_batches, validate_fn, test_fn, n_epochs=training_epochs,
        patience=10 * n_finetune_batches, params=sda.params, learning_rate=finetune_lr,
        progress=progress, log=log, name="fine-tuning",
    )
    return sda, pretrain_result, finetune_result


if __name__ == "__main__":
    import sys

    from sda.cli import main

    sys.exit(main())
