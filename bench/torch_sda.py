"""The SdA protocol in plain PyTorch: the peer a user would pick instead of sda.

Same model and maths as ``sda``: sigmoid layers whose weights each dA shares (tied decoder
``W^T``, masking noise, cross-entropy reconstruction), a softmax layer on top, plain SGD.
Written the way a PyTorch user would write it (autograd, in-place parameter updates), on the
CPU or a CUDA device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class TorchSdA:
    """Parameters of an SdA: ``W[k], b[k]`` (shared by MLP layer k and dA k), ``b_prime[k]``
    (dA k's decoder bias), and the softmax layer ``W_out, b_out``."""

    def __init__(self, n_ins=784, hidden_layers_sizes=(1000, 1000, 1000), n_outs=10, seed=0,
                 device="cpu", dtype=torch.float32):
        g = torch.Generator().manual_seed(seed)
        sizes = [n_ins, *hidden_layers_sizes]
        self.W, self.b, self.b_prime = [], [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            bound = 4 * math.sqrt(6.0 / (n_in + n_out))
            self.W.append(((torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound).to(device, dtype).requires_grad_())
            self.b.append(torch.zeros(n_out, device=device, dtype=dtype, requires_grad=True))
            self.b_prime.append(torch.zeros(n_in, device=device, dtype=dtype, requires_grad=True))
        self.W_out = torch.zeros(sizes[-1], n_outs, device=device, dtype=dtype, requires_grad=True)
        self.b_out = torch.zeros(n_outs, device=device, dtype=dtype, requires_grad=True)
        self.device, self.dtype = device, dtype

    @property
    def params(self):
        return [p for k in range(len(self.W)) for p in (self.W[k], self.b[k])] + [self.W_out, self.b_out]

    @torch.no_grad()
    def layer_input(self, k, x):
        """Clean output of layers 0 .. k-1 (the cached input of dA k)."""
        for j in range(k):
            x = torch.sigmoid(x @ self.W[j] + self.b[j])
        return x


def dA_cost(x, mask, W, b, b_prime):
    """Mean cross-entropy reconstruction of ``x`` from ``x * mask``, tied weights."""
    h = torch.sigmoid((x * mask) @ W + b)
    a = h @ W.t() + b_prime
    return (F.softplus(a) - x * a).sum(dim=1).mean()


def sgd_(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


def pretrain_step(model, k, x, corruption, lr, generator):
    """One SGD step of dA ``k`` on minibatch ``x`` (already the output of the layers below)."""
    mask = (torch.rand(x.shape, generator=generator, device=x.device) >= corruption).to(x.dtype)
    params = [model.W[k], model.b[k], model.b_prime[k]]
    cost = dA_cost(x, mask, *params)
    cost.backward()
    sgd_(params, lr)
    return cost


def finetune_step(model, x, y, lr):
    """One SGD step of the whole MLP on the negative log-likelihood of ``y``."""
    h = x
    for W, b in zip(model.W, model.b):
        h = torch.sigmoid(h @ W + b)
    cost = F.cross_entropy(h @ model.W_out + model.b_out, y)
    cost.backward()
    sgd_(model.params, lr)
    return cost
