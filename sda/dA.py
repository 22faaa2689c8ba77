"""The denoising autoencoder (the tutorial's ``dA.py``; Vincent et al., ICML 2008 and JMLR 2010).

An input :math:`x \\in [0, 1]^d` is corrupted into :math:`\\tilde x` by one of the noises of
Vincent et al. (JMLR 2010, section 4.3), of level :math:`\\nu`:

* ``masking`` (the tutorial's): each component is set to 0 with probability :math:`\\nu`,
  :math:`\\tilde x = x \\odot m,\\ m_j \\sim \\mathrm{Bernoulli}(1 - \\nu)`;
* ``salt_and_pepper``: each component is, with probability :math:`\\nu`, set to 0 or 1 (each
  with probability 1/2), else kept;
* ``gaussian``: additive isotropic noise, :math:`\\tilde x = x + \\epsilon,\\ \\epsilon_j \\sim
  \\mathcal N(0, \\nu^2)` (:math:`\\nu` is the standard deviation).

It is encoded and decoded with tied weights :math:`W' = W^T`:

.. math::  y = s(\\tilde x W + b), \\qquad z = s(y W^T + b')

and trained to reconstruct the *clean* input, minimising the cross-entropy

.. math::  L(x, z) = -\\sum_j \\left[ x_j \\log z_j + (1 - x_j) \\log (1 - z_j) \\right]

averaged over the minibatch.  With :math:`a = y W^T + b'` and :math:`z = s(a)` this equals
:math:`\\sum_j \\mathrm{softplus}(a_j) - x_j a_j`, which is how it is computed: finite even
where :math:`z` rounds to 0 or 1.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as the tutorial's script: sda.tutorial_scripts parses the flags
    import runpy

    runpy.run_module("sda.tutorial_scripts", init_globals={"SCRIPT": "dA"}, run_name="__main__",
                     alter_sys=True)
    raise SystemExit  # it exits itself; never define the model twice in this process

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytensor.tensor.random as ptr

from sda.data import DEFAULT_DATA_DIR
from sda.datasets import as_shared, load_data
from sda.modes import resolve_mode
from sda.persistence import SaveLoadMixin
from sda.plots import filters_image, save_png
from sda.steps import Step, compile_step, sgd_updates
from sda.training import pretrain_layers
from sda.validation import check_fits_in_memory, check_positive_int

__all__ = ["dA", "train_dA", "CORRUPTION_TYPES"]

#: The noises a dA can corrupt its input with (see the module docstring).
CORRUPTION_TYPES = ("masking", "salt_and_pepper", "gaussian")


def new_pytensor_rng(numpy_rng):
    """A shared PyTensor random generator seeded from ``numpy_rng`` (the tutorial's
    ``RandomStreams(numpy_rng.randint(2 ** 30))``)."""
    return ptr.shared_rng(seed=int(numpy_rng.randint(2 ** 30)), name="corruption_rng")


class dA(SaveLoadMixin):
    """Denoising autoencoder with tied weights and masking corruption.

    Parameters
    ----------
    numpy_rng
        numpy.random.RandomState, initialises W (and seeds the noise if needed).
    pytensor_rng
        shared PyTensor random generator for the corruption mask
        (``pytensor.tensor.random.shared_rng``); made from ``numpy_rng`` when None.
    input
        symbolic matrix (n_examples, n_visible); a new ``pt.matrix`` when None.
    n_visible, n_hidden
        number of visible and hidden units.
    W, bhid, bvis
        optional shared variables.  Passing a sigmoid layer's ``W`` and ``b``
        makes the dA train exactly those weights (this is how the SdA pretrains).
    corruption_type
        one of :data:`CORRUPTION_TYPES`.

    Notes
    -----
    W starts uniform in :math:`\\pm 4\\sqrt{6 / (n_{hidden} + n_{visible})}`; the biases at 0.
    ``params`` is ``[W, b, b_prime]``.
    """

    def __init__(self, numpy_rng, pytensor_rng=None, input=None, n_visible: int = 784,
                 n_hidden: int = 500, W=None, bhid=None, bvis=None, corruption_type: str = "masking"):
        if corruption_type not in CORRUPTION_TYPES:
            raise ValueError(f"corruption_type must be one of {', '.join(CORRUPTION_TYPES)}, got {corruption_type!r}")
        self.corruption_type = corruption_type
        self.n_visible = check_positive_int("n_visible", n_visible)
        self.n_hidden = check_positive_int("n_hidden", n_hidden)
        floatX = pytensor.config.floatX
        if pytensor_rng is None:
            pytensor_rng = new_pytensor_rng(numpy_rng)
        if W is None:
            # refused before numpy tries: the float64 draw is the largest array made here
            check_fits_in_memory(f"a {n_visible} x {n_hidden} weight matrix", 8 * self.n_visible * self.n_hidden)
            bound = 4 * np.sqrt(6.0 / (n_hidden + n_visible))
            W = pytensor.shared(numpy_rng.uniform(-bound, bound, size=(n_visible, n_hidden)).astype(floatX),
                                name="W", borrow=True)
        if bvis is None:
            bvis = pytensor.shared(np.zeros(n_visible, dtype=floatX), name="b_prime", borrow=True)
        if bhid is None:
            bhid = pytensor.shared(np.zeros(n_hidden, dtype=floatX), name="b", borrow=True)
        if tuple(W.get_value(borrow=True).shape) != (self.n_visible, self.n_hidden):
            raise ValueError(f"W must have shape ({n_visible}, {n_hidden}), got {W.get_value(borrow=True).shape}")
        self.W, self.b, self.b_prime = W, bhid, bvis
        self.W_prime = self.W.T
        self.pytensor_rng = pytensor_rng
        self.rng_update = None
        self.x = pt.matrix("x") if input is None else input
        self.params = [self.W, self.b, self.b_prime]

    def get_corrupted_input(self, input, corruption_level):
        """``input`` corrupted by this dA's noise at ``corruption_level`` (see the module docstring);
        for masking noise, each entry is kept with probability ``1 - corruption_level``, else set to 0.

        The noise is drawn from ``pytensor_rng``.  PyTensor's generators are explicit values: the
        draw also yields the generator's next state, kept here as ``self.rng_update =
        (pytensor_rng, next_state)``.  A compiled function that puts this pair in its ``updates``
        draws fresh noise at every call, as the tutorial's ``RandomStreams`` did
        (:meth:`get_cost_updates` does so); one that leaves it out draws the same noise each time.
        """
        level = pt.as_tensor_variable(corruption_level)
        rng = self.pytensor_rng
        with warnings.catch_warnings():  # drawing again from the shared generator, for another graph, is meant
            warnings.filterwarnings("ignore", message="RandomGeneratorVariable .* has already been used")
            if self.corruption_type == "masking":
                rng_after, mask = rng.bernoulli(p=1 - level, size=input.shape)
                corrupted = input * pt.cast(mask, input.dtype)
            elif self.corruption_type == "salt_and_pepper":
                rng_flipped, flip = rng.bernoulli(p=level, size=input.shape)
                rng_after, salt = rng_flipped.bernoulli(p=0.5, size=input.shape)
                corrupted = pt.switch(flip, pt.cast(salt, input.dtype), input)
            else:
                rng_after, noise = rng.normal(0.0, 1.0, size=input.shape)
                corrupted = input + pt.cast(level * noise, input.dtype)
        self.rng_update = (rng, rng_after)
        return corrupted

    def get_hidden_values(self, input):
        """The code :math:`y = s(x W + b)`."""
        return pt.sigmoid(pt.dot(input, self.W) + self.b)

    def get_reconstruction_logits(self, hidden):
        """Pre-sigmoid reconstruction :math:`a = y W^T + b'`."""
        return pt.dot(hidden, self.W_prime) + self.b_prime

    def get_reconstructed_input(self, hidden):
        """The reconstruction :math:`z = s(y W^T + b')`."""
        return pt.sigmoid(self.get_reconstruction_logits(hidden))

    def reconstruction_cost(self, corrupted_input):
        """Mean cross-entropy between the clean input ``self.x`` and the reconstruction of
        ``corrupted_input``."""
        logits = self.get_reconstruction_logits(self.get_hidden_values(corrupted_input))
        L = pt.sum(pt.softplus(logits) - self.x * logits, axis=1)
        return pt.mean(L)

    def cost(self, corrupted_input):
        """What training minimises for the inputs ``corrupted_input`` of the clean ``self.x``:
        here the reconstruction cost alone (a subclass may add penalties)."""
        return self.reconstruction_cost(corrupted_input)

    @property
    def decoder_params(self) -> list:
        """The parameters the autoencoder has beyond the network's layer (``W`` and ``b``):
        what an SdA keeps beside its MLP to resume pretraining."""
        return [self.b_prime]

    def get_cost_updates(self, corruption_level, learning_rate):
        """``(cost, updates)`` for one SGD step on a minibatch ``self.x`` corrupted at
        ``corruption_level`` (both arguments may be symbolic scalars).  The updates advance
        the noise generator too."""
        tilde_x = self.get_corrupted_input(self.x, corruption_level)
        cost = self.cost(tilde_x)
        return cost, [self.rng_update, *sgd_updates(cost, self.params, learning_rate)]

    def training_function(self, train_set_x, batch_size: int, mode: str | None = None,
                          steps_per_call: int = 1) -> Step:
        """``step(index, corruption, lr) -> cost``: one SGD step on minibatch ``index`` of
        ``train_set_x`` (a shared variable or an array whose rows are this dA's input); a
        :class:`sda.steps.Step`."""
        index, corruption, lr = pt.iscalar("index"), pt.scalar("corruption"), pt.scalar("lr")
        cost, updates = self.get_cost_updates(corruption, lr)
        return compile_step(index, [corruption, lr], cost, updates, {self.x: as_shared(train_set_x)},
                            batch_size, resolve_mode(mode), steps_per_call)

    # --- what a model file holds (sda.persistence) ---

    def saved_config(self) -> dict:
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden, "corruption_type": self.corruption_type}

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        n_visible, n_hidden = (check_positive_int(key, config[key]) for key in ("n_visible", "n_hidden"))
        return {"W": (n_visible, n_hidden), "b": (n_hidden,), "b_prime": (n_visible,)}


def train_dA(learning_rate: float = 0.1, training_epochs: int = 15, dataset=DEFAULT_DATA_DIR,
             batch_size: int = 20, n_hidden: int = 500, corruption_levels=(0.0, 0.3),
             output_folder="dA_plots", seed: int = 123, mode: str | None = None, datasets=None,
             progress: bool = True, log=print):
    """The tutorial's ``test_dA``: train a 784-500 dA on MNIST once per corruption level and
    save each one's filters as ``filters_corruption_<percent>.png`` in ``output_folder``.

    Returns ``{corruption_level: (dA, PretrainResult)}``.
    """
    mode = resolve_mode(mode)
    if datasets is None:
        datasets = load_data(dataset)
    train_x = datasets[0][0]
    n_visible = train_x.get_value(borrow=True).shape[1]
    output_folder = Path(output_folder)
    os.makedirs(output_folder, exist_ok=True)
    trained = {}
    for level in corruption_levels:
        rng = np.random.RandomState(seed)
        da = dA(numpy_rng=rng, pytensor_rng=new_pytensor_rng(rng),
                n_visible=n_visible, n_hidden=n_hidden)
        result = pretrain_layers([da.training_function(train_x, batch_size, mode)], training_epochs, [level],
                                 learning_rate, progress=progress, log=log)
        side = math.isqrt(n_visible)
        shape = (side, side) if side * side == n_visible else (1, n_visible)
        save_png(filters_image(np.asarray(da.W.get_value()).T, shape),
                 output_folder / f"filters_corruption_{round(level * 100)}.png")
        trained[level] = (da, result)
    return trained

