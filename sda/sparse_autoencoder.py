"""The sparse autoencoder of the UFLDL tutorial (Ng, "Sparse autoencoder", CS294A lecture notes;
UFLDL's exercise "Implement deep networks for digit classification"), beside the dA.

Sigmoid units encode :math:`x \\in [0, 1]^d` and decode with weights of their own (untied, as
UFLDL's ``W1`` and ``W2``):

.. math::  y = s(x W + b), \\qquad z = s(y W' + b')

and the cost over a batch of :math:`m` examples is the squared reconstruction error, a weight
decay on both weight matrices and a sparsity penalty on the hidden units' mean activations
:math:`\\hat\\rho_j = \\tfrac1m \\sum_i y_{ij}`:

.. math::  J = \\frac1m \\sum_i \\tfrac12 \\|z_i - x_i\\|^2
           + \\frac\\lambda2 \\left(\\|W\\|^2 + \\|W'\\|^2\\right)
           + \\beta \\sum_j \\mathrm{KL}(\\rho \\,\\|\\, \\hat\\rho_j),
   \\qquad \\mathrm{KL}(\\rho \\,\\|\\, \\hat\\rho) = \\rho \\log\\frac{\\rho}{\\hat\\rho}
           + (1 - \\rho) \\log\\frac{1 - \\rho}{1 - \\hat\\rho}

with UFLDL's values :math:`\\rho = 0.1`, :math:`\\lambda = 3 \\cdot 10^{-3}`, :math:`\\beta = 3`.
UFLDL minimises :math:`J` over the whole training set with L-BFGS (``minFunc``, 400
iterations); here :class:`sda.full_batch.FullBatchObjective` gives scipy's L-BFGS the same
cost and gradient, and minibatch SGD works too (:math:`\\hat\\rho` is then the minibatch's mean).

The class is a :class:`sda.dA.dA` with another decoder and cost, so it also takes the dA's
noises (a sparse *denoising* autoencoder: corrupted in, clean out); UFLDL's has none
(corruption level 0).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt

from sda.dA import dA
from sda.validation import check_non_negative, check_open_unit_interval, check_positive_int

__all__ = ["SparseAutoencoder", "UFLDL"]

#: UFLDL's values of the sparsity target ρ, the sparsity weight β and the weight decay λ.
UFLDL = {"sparsity_target": 0.1, "sparsity_weight": 3.0, "weight_decay": 3e-3}


def ufldl_weights(rng, n_in: int, n_out: int):
    """UFLDL's initial weights: uniform in :math:`\\pm\\sqrt{6 / (n_{in} + n_{out} + 1)}`, as
    a shared matrix of shape (n_in, n_out)."""
    bound = np.sqrt(6.0 / (n_in + n_out + 1))
    return pytensor.shared(rng.uniform(-bound, bound, size=(n_in, n_out)).astype(pytensor.config.floatX),
                           name="W", borrow=True)


class SparseAutoencoder(dA):
    """Sparse autoencoder with untied weights (see the module docstring).

    Parameters
    ----------
    numpy_rng, pytensor_rng, input, n_visible, n_hidden, bhid, bvis, corruption_type
        as
        :class:`sda.dA.dA`.
    W
        optional shared encoder weights (n_visible, n_hidden); new ones start as UFLDL's.
    W_prime
        optional shared decoder weights (n_hidden, n_visible); new ones start as UFLDL's.
    sparsity_target
        ρ, the mean activation each hidden unit is pulled towards, in (0, 1).
    sparsity_weight
        β >= 0.
    weight_decay
        λ >= 0.

    Notes
    -----
    ``params`` is ``[W, b, W_prime, b_prime]``.
    """

    def __init__(self, numpy_rng, pytensor_rng=None, input=None, n_visible: int = 784, n_hidden: int = 200,
                 W=None, bhid=None, bvis=None, W_prime=None, corruption_type: str = "masking",
                 sparsity_target: float = UFLDL["sparsity_target"], sparsity_weight: float = UFLDL["sparsity_weight"],
                 weight_decay: float = UFLDL["weight_decay"]):
        self.sparsity_target = check_open_unit_interval("sparsity_target", sparsity_target)
        self.sparsity_weight = check_non_negative("sparsity_weight", sparsity_weight)
        self.weight_decay = check_non_negative("weight_decay", weight_decay)
        if W is None:
            W = ufldl_weights(numpy_rng, n_visible, n_hidden)
        super().__init__(numpy_rng, pytensor_rng, input, n_visible, n_hidden, W, bhid, bvis, corruption_type)
        if W_prime is None:
            W_prime = ufldl_weights(numpy_rng, n_hidden, n_visible)
            W_prime.name = "W_prime"
        if tuple(W_prime.get_value(borrow=True).shape) != (self.n_hidden, self.n_visible):
            raise ValueError(f"W_prime must have shape ({n_hidden}, {n_visible}), "
                             f"got {W_prime.get_value(borrow=True).shape}")
        self.W_prime = W_prime
        self.params = [self.W, self.b, self.W_prime, self.b_prime]

    @property
    def decoder_params(self) -> list:
        return [self.W_prime, self.b_prime]

    def reconstruction_cost(self, corrupted_input):
        """Mean over the batch of :math:`\\tfrac12\\|z - x\\|^2`, ``x`` the clean ``self.x``."""
        return self._squared_error(self.get_hidden_values(corrupted_input))

    def _squared_error(self, hidden):
        z = self.get_reconstructed_input(hidden)
        return pt.mean(0.5 * pt.sum(pt.sqr(z - self.x), axis=1))

    def sparsity_penalty(self, hidden):
        """:math:`\\sum_j \\mathrm{KL}(\\rho \\| \\hat\\rho_j)` for the batch of codes ``hidden``;
        :math:`\\hat\\rho` is kept inside [1e-6, 1 - 1e-6] so that a dead or saturated unit
        gives a large finite penalty, not an infinite one."""
        rho = pt.cast(self.sparsity_target, hidden.dtype)
        rho_hat = pt.clip(pt.mean(hidden, axis=0), 1e-6, 1 - 1e-6)
        return pt.sum(rho * pt.log(rho / rho_hat) + (1 - rho) * pt.log((1 - rho) / (1 - rho_hat)))

    def cost(self, corrupted_input):
        """UFLDL's :math:`J` (module docstring) for the inputs ``corrupted_input`` of ``self.x``."""
        hidden = self.get_hidden_values(corrupted_input)
        error = self._squared_error(hidden)
        decay = pt.cast(self.weight_decay / 2, error.dtype) * (pt.sum(pt.sqr(self.W)) + pt.sum(pt.sqr(self.W_prime)))
        return error + decay + pt.cast(self.sparsity_weight, error.dtype) * self.sparsity_penalty(hidden)

    # --- what a model file holds (sda.persistence) ---

    def saved_config(self) -> dict:
        return {**super().saved_config(), "sparsity_target": self.sparsity_target,
                "sparsity_weight": self.sparsity_weight, "weight_decay": self.weight_decay}

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        n_visible, n_hidden = (check_positive_int(key, config[key]) for key in ("n_visible", "n_hidden"))
        return {"W": (n_visible, n_hidden), "b": (n_hidden,), "W_prime": (n_hidden, n_visible), "b_prime": (n_visible,)}
