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

from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

from sda.dA import dA, new_pytensor_rng
from sda.data import minibatch, n_batches
from sda.logistic_sgd import LogisticRegression
from sda.mlp import HiddenLayer
from sda.persistence import SaveLoadMixin
from sda.modes import compile_function, keep_on_device, resolve_mode
from sda.training import (compile_steps, fit_early_stopping, pretrain_layers, steps_per_call_for,
                          supervised_functions)
from sda.validation import (check_corruption, check_labels_in_range, check_layer_sizes, check_positive,
                            check_positive_int, check_unit_interval)

__all__ = ["SdA", "train_SdA"]


class SdA(SaveLoadMixin):
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

    def pretraining_functions(self, train_set_x, batch_size: int, mode: str | None = None,
                              cache_inputs: bool = True, steps_per_call: int = 1):
        """One function per layer: ``f(index, corruption, lr) -> cost`` takes one SGD step of
        that layer's dA on minibatch ``index`` of the shared ``train_set_x`` and returns the
        mean reconstruction cost.

        With ``cache_inputs`` (the default), layer ``k > 0`` does not recompute the frozen
        layers below it for every minibatch: its function has a ``prepare()`` method that
        computes their (clean) output on the whole training set once, and the steps read
        minibatches from that.  :func:`sda.training.pretrain_layers` calls ``prepare()``
        just before the layer trains.  ``cache_inputs=False`` gives the tutorial's functions,
        which recompute the lower layers at every step.

        ``steps_per_call > 1`` fuses that many minibatches into one call
        (:class:`sda.training.FusedSteps`: ``f(first_index, corruption, lr) -> costs``).
        """
        mode = resolve_mode(mode)
        check_unit_interval("train_set_x", train_set_x)
        keep_on_device([train_set_x], mode)
        index = pt.iscalar("index")
        corruption_level, learning_rate = pt.scalar("corruption"), pt.scalar("lr")
        steps = steps_per_call_for(n_batches(train_set_x, batch_size), steps_per_call)
        fns = []
        for k, layer in enumerate(self.dA_layers):
            cost, updates = layer.get_cost_updates(corruption_level, learning_rate)
            if k == 0 or not cache_inputs:
                fns.append(compile_steps(index, [corruption_level, learning_rate], cost, updates,
                                         {self.x: minibatch(train_set_x, index, batch_size)}, steps, mode))
            else:
                fns.append(CachedInputPretraining(
                    self.x, layer, train_set_x, batch_size, mode,
                    index, [corruption_level, learning_rate], cost, updates, steps,
                ))
        return fns

    def build_finetune_functions(self, datasets, batch_size: int, learning_rate, mode: str | None = None,
                                 momentum: float = 0.0, steps_per_call: int = 1, corruption: float = 0.0):
        """``(train_fn, valid_score, test_score)`` for fine-tuning on shared ``datasets``
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.

        ``train_fn(index)`` takes one SGD step on minibatch ``index`` and returns the cost;
        ``valid_score()`` / ``test_score()`` return the error rate on the whole set.
        ``learning_rate`` may be a shared variable (to change it between epochs);
        ``momentum`` > 0 adds classical momentum; ``steps_per_call > 1`` makes ``train_fn`` a
        :class:`sda.training.FusedSteps` running that many minibatches per call.
        ``corruption > 0`` trains on inputs with that masking noise (drawn by the first dA's
        generator), as the first dA saw them in pretraining; scores use clean inputs.
        """
        for part, (_, labels) in zip(("train", "valid", "test"), datasets):
            check_labels_in_range(f"{part} labels", labels, self.n_outs)
        check_corruption("corruption", corruption)
        cost, extra_updates = self.finetune_cost, []
        if corruption > 0:
            first = self.dA_layers[0]
            next_rng, noisy_x = first.get_corrupted_input(self.x, corruption)
            cost = graph_replace(self.finetune_cost, {self.x: noisy_x}, strict=False)
            extra_updates = [(first.pytensor_rng, next_rng)]
        return supervised_functions(self.x, self.y, cost, self.errors, self.params,
                                    datasets, batch_size, learning_rate, resolve_mode(mode), momentum,
                                    steps_per_call, extra_updates)

    def predict_function(self, mode: str | None = None):
        """Compiled ``f(images) -> predicted labels``."""
        return compile_function([self.x], self.logLayer.y_pred, resolve_mode(mode))


class CachedInputPretraining:
    """Pretraining step of a dA whose input is the output of frozen layers below it.

    ``prepare()`` encodes the whole training set through those layers once (clean, without
    corruption: the noise is applied to this layer's input only) into a shared dataset;
    calling the object then takes an SGD step on a minibatch of that dataset.  Call
    ``prepare()`` again if the layers below change.
    """

    def __init__(self, x, layer, train_set_x, batch_size, mode, index, other_inputs, cost, updates,
                 steps_per_call=1):
        self.mode, self.steps_per_call = mode, steps_per_call
        n_examples = train_set_x.get_value(borrow=True).shape[0]
        # zeros from calloc: no memory is touched until prepare() fills it
        self.inputs = pytensor.shared(np.zeros((n_examples, layer.n_visible), dtype=pytensor.config.floatX),
                                      name=f"layer_input_{layer.n_visible}", borrow=True)
        self._encode = compile_function([], layer.x, mode, givens={x: train_set_x})
        self._step = compile_steps(index, other_inputs, cost, updates,
                                   {layer.x: minibatch(self.inputs, index, batch_size)}, steps_per_call, mode)

    def prepare(self):
        self.inputs.set_value(np.asarray(self._encode(), dtype=self.inputs.dtype), borrow=True)
        keep_on_device([self.inputs], self.mode)

    def __call__(self, index, corruption_level, learning_rate):
        return self._step(index, corruption_level, learning_rate)

    def get_shared(self):
        return [v for v in self._step.get_shared() if v is not self.inputs]


def train_SdA(datasets, hidden_layers_sizes=(1000, 1000, 1000), corruption_levels=(0.1, 0.2, 0.3),
              pretraining_epochs: int = 15, pretrain_lr: float = 0.001, pretrain_batch_size: int = 1,
              training_epochs: int = 1000, finetune_lr: float = 0.1, finetune_batch_size: int = 1,
              finetune_momentum: float = 0.0, finetune_lr_decay: float = 1.0,
              finetune_corruption: float = 0.0, patience_epochs: float = 10, n_outs: int = 10,
              seed: int = 89677, steps_per_call: int = 1,
              mode: str | None = None, progress: bool = True, log=print,
              checkpoint_dir=None, resume: bool = False, on_epoch_end=None):
    """Pretrain then fine-tune an SdA on shared ``datasets`` (the tutorial's ``test_SdA``).

    Defaults are the tutorial's (plain SGD, constant learning rate, patience of 10 epochs).
    ``finetune_momentum`` adds classical momentum; the fine-tuning learning rate of epoch
    ``e`` (from 1) is ``finetune_lr * finetune_lr_decay ** (e - 1)``; ``finetune_corruption``
    masks that share of the input pixels in each fine-tuning step.  ``steps_per_call`` fuses
    that many minibatches into each compiled call (see :class:`sda.training.FusedSteps`).

    With ``checkpoint_dir``, ``checkpoint.npz`` there is rewritten (atomically) after every
    pretraining and fine-tuning epoch, and ``best_model.npz`` whenever the validation error
    improves; ``resume=True`` continues from that checkpoint, giving the same final
    parameters as an uninterrupted run (in the CVM and NUMBA modes; JAX keeps its own copy
    of the noise generators, so a resumed JAX run draws different masks).

    ``on_epoch_end(pretrain_result, fit_state)`` is called after every epoch of either phase
    (``fit_state`` is None while pretraining), e.g. to write a metrics file.

    Returns ``(sda, pretrain_result, finetune_result)``; the model holds the parameters of
    its best validation error.
    """
    from sda.checkpoint import load_checkpoint, restore_state, save_checkpoint
    from sda.persistence import model_parameters, save_model

    config = {k: v for k, v in locals().items() if k in _RUN_CONFIG_KEYS}
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
    pretraining_fns = sda.pretraining_functions(train_x, pretrain_batch_size, mode,
                                                steps_per_call=steps_per_call)
    lr = pytensor.shared(np.asarray(finetune_lr, dtype=pytensor.config.floatX), name="finetune_lr")
    train_fn, validate_fn, test_fn = sda.build_finetune_functions(
        datasets, finetune_batch_size, lr, mode, momentum=finetune_momentum,
        steps_per_call=steps_per_call, corruption=finetune_corruption)

    # what a checkpoint must hold: the model, then the optimiser's own shared variables
    model_vars = model_parameters(sda)
    data_vars = {v for pair in datasets for v in pair}
    state_vars = model_vars + [v for v in train_fn.get_shared()
                               if v not in model_vars and v not in data_vars]
    rngs = [layer.pytensor_rng for layer in sda.dA_layers]
    checkpoint_path = None if checkpoint_dir is None else Path(checkpoint_dir) / "checkpoint.npz"
    pretrain_progress, fit_state = None, None
    if resume:
        if checkpoint_path is None or not checkpoint_path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from at {checkpoint_path}")
        checkpoint = load_checkpoint(checkpoint_path)
        restore_state(checkpoint, state_vars, rngs)
        pretrain_progress, fit_state = checkpoint.pretrain, checkpoint.fit
        if log:
            log(f"resuming from {checkpoint_path}: pretraining epochs done per layer "
                f"{[len(c) for c in pretrain_progress.costs]}, fine-tuning epochs done "
                f"{0 if fit_state is None else fit_state.epoch}")

    def pretrain_checkpoint(progress_so_far):
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, config, state_vars, rngs, progress_so_far)
        if on_epoch_end is not None:
            on_epoch_end(progress_so_far, None)

    pretrain_result = pretrain_layers(
        pretraining_fns, n_pretrain_batches, pretraining_epochs, sda.corruption_levels,
        pretrain_lr, progress=progress, log=log, on_epoch_end=pretrain_checkpoint,
        resume=pretrain_progress,
    )

    def finetune_epoch_end(state):
        lr.set_value(np.asarray(finetune_lr * finetune_lr_decay ** state.epoch, dtype=lr.dtype))
        if on_epoch_end is not None:
            on_epoch_end(pretrain_result, state)
        if checkpoint_path is None:
            return
        if state.history[-1]["test_error"] is not None:  # improved in this epoch
            save_model(sda, checkpoint_path.parent / "best_model.npz",
                       training_state={"epoch": state.epoch, "validation_error": state.best_loss,
                                       "test_error": state.test_error, "config": config},
                       values=state.best_params + [d.b_prime.get_value() for d in sda.dA_layers])
        save_checkpoint(checkpoint_path, config, state_vars, rngs, pretrain_result, state)

    lr.set_value(np.asarray(finetune_lr * finetune_lr_decay ** (fit_state.epoch if fit_state else 0),
                            dtype=lr.dtype))
    finetune_result = fit_early_stopping(
        train_fn, n_finetune_batches, validate_fn, test_fn, n_epochs=training_epochs,
        patience=int(patience_epochs * n_finetune_batches), params=sda.params,
        learning_rate=finetune_lr, progress=progress, log=log, name="fine-tuning",
        on_epoch_end=finetune_epoch_end, resume=fit_state,
    )
    return sda, pretrain_result, finetune_result


_RUN_CONFIG_KEYS = ("hidden_layers_sizes", "corruption_levels", "pretraining_epochs", "pretrain_lr",
                    "pretrain_batch_size", "training_epochs", "finetune_lr", "finetune_batch_size",
                    "finetune_momentum", "finetune_lr_decay", "finetune_corruption", "patience_epochs",
                    "n_outs", "seed")


if __name__ == "__main__":
    import sys

    from sda.cli import main

    sys.exit(main())
