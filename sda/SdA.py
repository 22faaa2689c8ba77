"""The stacked denoising autoencoder (the tutorial's ``SdA.py``; Vincent et al., JMLR 2010).

An SdA is an MLP with sigmoid hidden layers :math:`h^{(k)} = s(h^{(k-1)} W^{(k)} + b^{(k)})`
(:math:`h^{(0)} = x`) and a softmax layer on top, trained in two phases:

1. **Pretraining**, greedy and unsupervised: layer :math:`k` is trained as a denoising
   autoencoder (:class:`sda.dA.dA`) on the output of layers :math:`1..k-1` (or, layer by
   layer, as UFLDL's sparse autoencoder, :class:`sda.sparse_autoencoder.SparseAutoencoder`:
   the criterion ``"sparse"``).  The autoencoder and the MLP layer hold the *same* shared
   variables ``W`` and ``b``, so training the one trains the other; the decoder (``b_prime``,
   and the sparse autoencoder's own ``W_prime``) belongs to the autoencoder alone.  Training is
   minibatch SGD (:meth:`SdA.pretraining_functions`) or full-batch L-BFGS, as UFLDL does
   (:meth:`SdA.pretraining_objectives`).
2. **Fine-tuning**, supervised: the whole MLP is trained by SGD on the negative
   log-likelihood of the labels, with early stopping on the validation error (or by
   L-BFGS, :meth:`SdA.finetune_objective`; or, to measure what fine-tuning brings, only the
   softmax layer on the frozen features: ``layers="top"``).  Optional
   regularisers (all off by default, as in the tutorial): masking noise on the input, dropout
   (Srivastava et al. 2014) on the input and on each hidden layer with inverted scaling
   (:math:`h \\odot m / (1 - p)`, so that nothing changes at evaluation, where no unit is
   dropped), L2 weight decay :math:`\\tfrac{\\lambda}{2}\\sum \\|W\\|^2` on the weights, and a
   max-norm constraint on each unit's incoming weights (:func:`sda.steps.max_norm`).

This file holds the model.  Running it (``python sda/SdA.py`` or ``python -m sda.SdA``) runs
the tutorial's experiment through the command line, :mod:`sda.cli` (``--help`` lists its
flags); :func:`sda.run.train_SdA` is that experiment in Python.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as the tutorial's script: the command line takes over
    import runpy

    runpy.run_module("sda.launch", run_name="__main__", alter_sys=True)
    raise SystemExit  # launch exits itself; never define the model twice in this process

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

from sda.dA import dA, new_pytensor_rng
from sda.datasets import as_shared, shared_dataset
from sda.full_batch import FullBatchObjective
from sda.logistic_sgd import LogisticRegression
from sda.mlp import HiddenLayer
from sda.modes import compile_function, resolve_mode
from sda.persistence import SaveLoadMixin
from sda.sparse_autoencoder import UFLDL, SparseAutoencoder, ufldl_weights
from sda.steps import compile_cached_input_step, compile_step, input_cache, score_functions, supervised_functions
from sda.steps import max_norm as clip_norms
from sda.validation import (check_corruption, check_labels_in_range, check_layer_index, check_layer_sizes,
                            check_noise_level, check_non_negative, check_open_unit_interval, check_positive_int,
                            check_unit_interval)

__all__ = ["SdA", "CRITERIA", "FINETUNE_LAYERS", "DECAY_ON", "check_criteria"]

#: What each layer's autoencoder minimises: the dA's reconstruction cross-entropy of corrupted
#: inputs, or UFLDL's squared error with weight decay and a sparsity penalty.
CRITERIA = ("denoising", "sparse")
#: What fine-tuning trains: the whole network, or only the softmax layer on the frozen features.
FINETUNE_LAYERS = ("all", "top")
#: Which weight matrices fine-tuning's weight decay penalises: every layer's, or the softmax's only (UFLDL's).
DECAY_ON = ("all", "softmax")


class SdA(SaveLoadMixin):
    """Stacked denoising autoencoder: sigmoid layers, each shared with a dA, and a softmax on top.

    Parameters
    ----------
    numpy_rng
        numpy.random.RandomState, initialises the weights and seeds each dA's
        corruption noise (one PyTensor generator per layer).
    n_ins
        input dimension (784 for MNIST).
    hidden_layers_sizes
        units in each hidden layer, e.g. ``[1000, 1000, 1000]``.
    n_outs
        number of classes.
    corruption_levels
        noise level of each layer's dA (for masking noise the probability of
        zeroing an input, in [0, 1)).
    corruption_type
        the dAs' noise, one of :data:`sda.dA.CORRUPTION_TYPES`.
    criteria
        each layer's pretraining criterion, one of :data:`CRITERIA` (one name: every
        layer).  A ``"sparse"`` layer starts from UFLDL's weights and pretrains as a
        :class:`~sda.sparse_autoencoder.SparseAutoencoder` (with its corruption level as noise,
        UFLDL's being 0); a plain autoencoder is a ``"denoising"`` one at corruption 0.
    sparsity_target, sparsity_weight, sparse_weight_decay
        ρ, β and λ of the sparse layers
        (UFLDL's 0.1, 3 and 3e-3).

    Attributes
    ----------
    x
        the symbolic minibatch (matrix).
    y
        its labels (int32 vector).
    sigmoid_layers
        list of :class:`~sda.mlp.HiddenLayer`.
    dA_layers
        each layer's autoencoder, a :class:`~sda.dA.dA` (or its subclass
        :class:`~sda.sparse_autoencoder.SparseAutoencoder`); ``dA_layers[k].W is sigmoid_layers[k].W``.
    logLayer
        the :class:`~sda.logistic_sgd.LogisticRegression` output layer.
    params
        the MLP's parameters (what fine-tuning trains).
    finetune_cost
        symbolic negative log-likelihood of ``(x, y)``.
    errors
        symbolic error rate of ``(x, y)``.
    dropout_rng
        the generator of the dropout masks (fine-tuning).
    """

    def __init__(self, numpy_rng, n_ins: int = 784,
                 hidden_layers_sizes=(500, 500), n_outs: int = 10, corruption_levels=(0.1, 0.1),
                 corruption_type: str = "masking", criteria="denoising",
                 sparsity_target: float = UFLDL["sparsity_target"], sparsity_weight: float = UFLDL["sparsity_weight"],
                 sparse_weight_decay: float = UFLDL["weight_decay"]):
        n_ins, n_outs = check_positive_int("n_ins", n_ins), check_positive_int("n_outs", n_outs)
        sizes = check_layer_sizes("hidden_layers_sizes", hidden_layers_sizes)
        levels = [check_noise_level(f"corruption_levels[{i}]", c, corruption_type)
                  for i, c in enumerate(corruption_levels)]
        if len(levels) != len(sizes):
            raise ValueError(
                f"corruption_levels has {len(levels)} entries but there are {len(sizes)} hidden layers"
            )
        self.criteria = check_criteria(criteria, len(sizes))
        # checked whatever the criteria: a model saves them, and a sparse layer may be asked for later
        sparse: dict[str, Any] = {"sparsity_target": check_open_unit_interval("sparsity_target", sparsity_target),
                                  "sparsity_weight": check_non_negative("sparsity_weight", sparsity_weight),
                                  "weight_decay": check_non_negative("sparse_weight_decay", sparse_weight_decay)}
        self.n_ins, self.n_outs = n_ins, n_outs
        self.hidden_layers_sizes, self.corruption_levels = sizes, levels
        self.corruption_type = corruption_type
        self.n_layers = len(sizes)
        self.x, self.y = pt.matrix("x"), pt.ivector("y")
        self.sigmoid_layers: list[HiddenLayer] = []
        self.dA_layers: list[dA] = []
        self.params: list = []

        for k, n_out in enumerate(sizes):
            n_in = n_ins if k == 0 else sizes[k - 1]
            layer_input = self.x if k == 0 else self.sigmoid_layers[-1].output
            is_sparse = self.criteria[k] == "sparse"
            W = ufldl_weights(numpy_rng, n_in, n_out) if is_sparse else None
            sigmoid_layer = HiddenLayer(numpy_rng, layer_input, n_in, n_out, W=W, activation=pt.sigmoid)
            self.sigmoid_layers.append(sigmoid_layer)
            self.params.extend(sigmoid_layer.params)
            shared = dict(input=layer_input, n_visible=n_in, n_hidden=n_out, W=sigmoid_layer.W, bhid=sigmoid_layer.b,
                          corruption_type=corruption_type)
            if is_sparse:
                self.dA_layers.append(SparseAutoencoder(numpy_rng, new_pytensor_rng(numpy_rng), **shared, **sparse))
            else:
                self.dA_layers.append(dA(numpy_rng, new_pytensor_rng(numpy_rng), **shared))
        self.sparse_settings = sparse

        self.logLayer = LogisticRegression(self.sigmoid_layers[-1].output, sizes[-1], n_outs)
        self.params.extend(self.logLayer.params)
        self.finetune_cost = self.logLayer.negative_log_likelihood(self.y)
        self.errors = self.logLayer.errors(self.y)
        self.dropout_rng = new_pytensor_rng(numpy_rng)  # drawn last: the weights are those of before
        self._encoders: dict = {}  # compiled encode() functions, by (layer, mode)

    def noise_generators(self) -> list:
        """Every noise generator of the model (what a checkpoint saves to resume exactly)."""
        return [layer.pytensor_rng for layer in self.dA_layers] + [self.dropout_rng]

    def pretraining_functions(self, train_set_x, batch_size: int, mode: str | None = None,
                              steps_per_call: int = 1, cache_inputs: bool = True):
        """One :class:`sda.steps.Step` per layer: ``f(index, corruption, lr) -> cost`` takes one
        SGD step of that layer's dA on minibatch ``index`` of ``train_set_x`` (a shared variable
        or an array) and returns the mean reconstruction cost.

        With ``cache_inputs`` (the default) layer ``k > 0`` does not recompute the frozen layers
        below it at every step: its step's ``prepare()`` encodes the whole training set through
        them once, when :func:`sda.training.pretrain_layers` reaches that layer.
        ``cache_inputs=False`` gives the tutorial's functions, which recompute them.
        ``steps_per_call > 1`` fuses that many minibatches into one call (see :mod:`sda.steps`).
        """
        mode = resolve_mode(mode)
        train_set_x = as_shared(train_set_x, "train_x")
        check_unit_interval("train_set_x", train_set_x)
        index = pt.iscalar("index")
        corruption_level, learning_rate = pt.scalar("corruption"), pt.scalar("lr")
        steps = []
        for k, layer in enumerate(self.dA_layers):
            cost, updates = layer.get_cost_updates(corruption_level, learning_rate)
            inputs = [corruption_level, learning_rate]
            if k == 0 or not cache_inputs:
                steps.append(compile_step(index, inputs, cost, updates, {self.x: train_set_x}, batch_size,
                                          mode, steps_per_call))
            else:
                steps.append(compile_cached_input_step(index, inputs, cost, updates, layer.x, layer.n_visible,
                                                       self.x, train_set_x, batch_size, mode, steps_per_call))
        return steps

    def pretraining_objectives(self, train_set_x, mode: str | None = None) -> list:
        """One :class:`sda.full_batch.FullBatchObjective` per layer, for L-BFGS as UFLDL trains:
        the layer's autoencoder cost over the whole of ``train_set_x`` and its gradient.

        Layer ``k > 0`` reads the codes of the frozen layers below, computed once when its turn
        comes (its ``prepare()``).  A corruption level > 0 corrupts the inputs with one draw of
        the noise, kept for every evaluation (the line search needs a fixed function).
        """
        mode = resolve_mode(mode)
        train_set_x = as_shared(train_set_x, "train_x")
        check_unit_interval("train_set_x", train_set_x)
        objectives = []
        for k, (layer, level) in enumerate(zip(self.dA_layers, self.corruption_levels)):
            inputs = layer.get_corrupted_input(layer.x, level) if level > 0 else layer.x
            cost = layer.cost(inputs)
            if k == 0:
                objectives.append(FullBatchObjective(cost, layer.params, {self.x: train_set_x}, mode))
            else:
                cache, prepare = input_cache(layer.x, layer.n_visible, self.x, train_set_x, mode)
                objectives.append(FullBatchObjective(cost, layer.params, {layer.x: cache}, mode, prepare))
        return objectives

    def trained_params(self, layers: str = "all") -> list:
        """What fine-tuning trains: every parameter (``"all"``) or the softmax layer's (``"top"``)."""
        if layers not in FINETUNE_LAYERS:
            raise ValueError(f"layers must be one of {', '.join(FINETUNE_LAYERS)}, got {layers!r}")
        return list(self.params) if layers == "all" else list(self.logLayer.params)

    def _decayed(self, cost, weight_decay: float, params: list, decay_on: str = "all"):
        """``cost`` plus :math:`\\tfrac{λ}{2}\\sum\\|W\\|^2` over the weight matrices among ``params``
        (``decay_on="softmax"``: the softmax layer's only, as UFLDL's fine-tuning)."""
        if decay_on not in DECAY_ON:
            raise ValueError(f"weight_decay_on must be one of {', '.join(DECAY_ON)}, got {decay_on!r}")
        if weight_decay == 0:
            return cost
        weights = [p for p in params if p.ndim == 2 and (decay_on == "all" or p is self.logLayer.W)]
        return cost + pt.cast(weight_decay / 2, cost.dtype) * sum(pt.sum(pt.sqr(W)) for W in weights)

    def finetune_objective(self, datasets, mode: str | None = None, weight_decay: float = 0.0,
                           layers: str = "all", weight_decay_on: str = "all"):
        """``(objective, valid_score, test_score)`` for fine-tuning by L-BFGS on ``datasets`` (as
        :meth:`build_finetune_functions`; a missing validation or test pair scores None):
        ``objective`` is the negative log-likelihood of the whole training set, plus weight decay
        on the weights ``weight_decay_on`` names, over the parameters ``layers`` names."""
        mode = resolve_mode(mode)
        datasets = self._shared_datasets(datasets)
        params = self.trained_params(layers)
        cost = self._decayed(self.finetune_cost, weight_decay, params, weight_decay_on)
        (train_x, train_y), valid, test = datasets
        objective = FullBatchObjective(cost, params, {self.x: train_x, self.y: train_y}, mode)
        return (objective, *score_functions(self.x, self.y, self.errors, (valid, test), mode))

    def softmax_objective(self, train_set, mode: str | None = None, weight_decay: float = 0.0):
        """The softmax layer alone on the frozen features, for L-BFGS as UFLDL's ``softmaxTrain``:
        a :class:`sda.full_batch.FullBatchObjective` over ``logLayer.params`` of
        :math:`-\\tfrac1m \\sum_i \\log P(y_i \\mid h_i) + \\tfrac{λ}{2}\\|W\\|^2`, ``h_i`` the top hidden
        layer's code of image ``i`` of ``train_set`` (a pair), computed once by its ``prepare()``
        when the layers below are final."""
        mode = resolve_mode(mode)
        (train_x, train_y), = self._shared_datasets([train_set])
        codes = pt.matrix("codes")
        cache, prepare = input_cache(self.sigmoid_layers[-1].output, self.logLayer.n_in, self.x, train_x, mode)
        top = LogisticRegression(codes, self.logLayer.n_in, self.n_outs, W=self.logLayer.W, b=self.logLayer.b)
        cost = self._decayed(top.negative_log_likelihood(self.y), weight_decay, self.logLayer.params)
        return FullBatchObjective(cost, self.logLayer.params, {codes: cache, self.y: train_y}, mode, prepare)

    def _shared_datasets(self, datasets) -> list:
        """``datasets`` as shared pairs, their labels checked against ``n_outs``."""
        datasets = [None if pair is None else shared_dataset(pair) if not _is_shared(pair) else pair
                    for pair in datasets]
        for part, pair in zip(("train", "valid", "test"), datasets):
            if pair is not None:
                check_labels_in_range(f"{part} labels", pair[1], self.n_outs)
        return datasets

    def build_finetune_functions(self, datasets, batch_size: int, learning_rate, mode: str | None = None,
                                 momentum: float = 0.0, steps_per_call: int = 1, corruption: float = 0.0,
                                 dropout_input: float = 0.0, dropout_hidden: float = 0.0,
                                 weight_decay: float = 0.0, max_norm: float = 0.0, layers: str = "all",
                                 weight_decay_on: str = "all", update: str = "sgd"):
        """``(train_step, valid_score, test_score)`` for fine-tuning on ``datasets``
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]`` (shared variables or arrays;
        the test pair may be None).

        ``train_step(index)`` takes one SGD step on minibatch ``index`` and returns the cost;
        ``valid_score()`` / ``test_score()`` return the error rate on the whole set.
        ``learning_rate`` may be a shared variable (to change it between epochs);
        ``momentum`` > 0 adds classical momentum; ``steps_per_call > 1`` fuses minibatches.
        ``corruption > 0`` trains on inputs with the first dA's noise at that level, as the
        first dA saw them in pretraining; ``dropout_input`` and ``dropout_hidden`` drop units with
        that probability; ``weight_decay`` (λ) adds :math:`\\tfrac{λ}{2}\\sum\\|W\\|^2` over every
        weight matrix (``weight_decay_on="softmax"``: the softmax's only);
        ``max_norm`` > 0 bounds each unit's incoming weight norm.  Scores use the clean network.
        ``layers="top"`` trains only the softmax layer (the features below stay as pretrained).
        ``update`` is the rule of each step, one of :data:`sda.steps.UPDATE_RULES` (``"adamw"``
        takes ``weight_decay`` as its decoupled decay instead of a penalty in the cost).
        """
        datasets = self._shared_datasets(datasets)
        params = self.trained_params(layers)
        check_noise_level("corruption", corruption, self.corruption_type)
        for name, value in (("dropout_input", dropout_input), ("dropout_hidden", dropout_hidden)):
            check_corruption(name, value)  # a probability in [0, 1)
        cost, extra_updates = self._training_cost(corruption, dropout_input, dropout_hidden)
        decoupled = weight_decay if update == "adamw" else 0.0
        cost = self._decayed(cost, weight_decay - decoupled, params, weight_decay_on)
        constraint = None
        if max_norm > 0:
            constraint = lambda param, value: clip_norms(value, max_norm) if param.ndim == 2 else value
        return supervised_functions(self.x, self.y, cost, self.errors, params, datasets, batch_size,
                                    learning_rate, resolve_mode(mode), momentum, steps_per_call, extra_updates,
                                    constraint, update, decoupled)

    def _training_cost(self, corruption: float, dropout_input: float, dropout_hidden: float):
        """``(cost, noise updates)``: the fine-tuning cost of the network with its training noise."""
        if corruption == 0 and dropout_input == 0 and dropout_hidden == 0:
            return self.finetune_cost, []
        h = self.x
        updates: list = []
        if corruption > 0:
            first = self.dA_layers[0]
            h = first.get_corrupted_input(h, corruption)
            updates.append(first.rng_update)
        if dropout_input == 0 and dropout_hidden == 0:  # noise on the input alone: the same graph
            return graph_replace(self.finetune_cost, [(self.x, h)], strict=False), updates
        rng = self.dropout_rng
        rng, h = _dropout(rng, h, dropout_input)
        for layer in self.sigmoid_layers:
            rng, h = _dropout(rng, pt.sigmoid(pt.dot(h, layer.W) + layer.b), dropout_hidden)
        top = LogisticRegression(h, self.logLayer.n_in, self.n_outs, W=self.logLayer.W, b=self.logLayer.b)
        return top.negative_log_likelihood(self.y), updates + [(self.dropout_rng, rng)]

    def predict_function(self, mode: str | None = None):
        """Compiled ``f(images) -> predicted labels``; images of any float type (float64 too) are
        cast to the model's."""
        return compile_function([self.x], self.logLayer.y_pred, resolve_mode(mode), allow_input_downcast=True)

    def encode(self, X, layer: int = -1, mode: str | None = None):
        """The activations of hidden ``layer`` (0 the first, -1 the top) for the rows of ``X``
        (an array of any float type, or a shared variable): features for another model.

        The function of each layer is compiled once per mode and kept.
        """
        k = check_layer_index(layer, self.n_layers)
        mode = resolve_mode(mode)
        key = (k, mode)
        if key not in self._encoders:
            self._encoders[key] = compile_function([self.x], self.sigmoid_layers[k].output, mode,
                                                   allow_input_downcast=True)
        values = X.get_value(borrow=True) if isinstance(X, pytensor.compile.SharedVariable) else X
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.n_ins:
            raise ValueError(f"X must have shape (n_examples, {self.n_ins}), got {values.shape}")
        return np.asarray(self._encoders[key](values))

    # --- what a model file holds (sda.persistence) ---

    def saved_config(self) -> dict:
        return {"n_ins": self.n_ins, "hidden_layers_sizes": list(self.hidden_layers_sizes),
                "n_outs": self.n_outs, "corruption_levels": list(self.corruption_levels),
                "corruption_type": self.corruption_type, "criteria": list(self.criteria),
                "sparsity_target": self.sparse_settings["sparsity_target"],
                "sparsity_weight": self.sparse_settings["sparsity_weight"],
                "sparse_weight_decay": self.sparse_settings["weight_decay"]}

    def saved_variables(self) -> list:
        """The MLP's parameters, then each autoencoder's decoder (so that pretraining can resume)."""
        return list(self.params) + [p for layer in self.dA_layers for p in layer.decoder_params]

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        """The tensors of a model file, named as the attributes that hold them."""
        sizes = [check_positive_int("n_ins", config["n_ins"]),
                 *check_layer_sizes("hidden_layers_sizes", config["hidden_layers_sizes"]),
                 check_positive_int("n_outs", config["n_outs"])]
        criteria = check_criteria(config["criteria"], len(sizes) - 2)
        layers = [f"sigmoid_layers.{k}" for k in range(len(sizes) - 2)] + ["logLayer"]
        shapes = {}
        for layer, n_in, n_out in zip(layers, sizes, sizes[1:]):
            shapes.update({f"{layer}.W": (n_in, n_out), f"{layer}.b": (n_out,)})
        for k, (n_in, n_out, criterion) in enumerate(zip(sizes, sizes[1:], criteria)):
            if criterion == "sparse":
                shapes[f"dA_layers.{k}.W_prime"] = (n_out, n_in)
            shapes[f"dA_layers.{k}.b_prime"] = (n_in,)
        return shapes


def check_criteria(criteria, n_layers: int, name: str = "criteria") -> list[str]:
    """One pretraining criterion (:data:`CRITERIA`) per layer, from one name or a list of them;
    an error calls them ``name``."""
    names = [criteria] * n_layers if isinstance(criteria, str) else criteria
    if not isinstance(names, (list, tuple)) or len(names) != n_layers or not all(n in CRITERIA for n in names):
        raise ValueError(f"{name} must be one of {', '.join(CRITERIA)} or a list of them, one per hidden layer "
                         f"({n_layers}), got {criteria!r}")
    return list(names)


def _dropout(rng, h, p: float):
    """``(next rng, h with each unit dropped with probability p, the rest scaled by 1 / (1 - p))``."""
    if p == 0:
        return rng, h
    rng, keep = rng.bernoulli(p=1 - p, size=h.shape)
    return rng, h * pt.cast(keep, h.dtype) / pt.cast(1 - p, h.dtype)


def _is_shared(pair) -> bool:
    return all(isinstance(v, pytensor.compile.SharedVariable) for v in pair)
