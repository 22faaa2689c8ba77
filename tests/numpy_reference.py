"""A plain numpy denoising autoencoder step: cost and gradients written out by hand, so that
the PyTensor graphs (and any speed work on them) can be checked against independent maths."""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def dA_cost_and_grads(x, mask, W, b, b_prime):
    """Mean cross-entropy reconstruction cost of ``x`` from ``x * mask`` with tied weights,
    and its gradients ``(dW, db, db_prime)``."""
    n = x.shape[0]
    x_tilde = x * mask
    h = sigmoid(x_tilde @ W + b)
    a = h @ W.T + b_prime
    cost = np.mean(np.sum(np.logaddexp(0.0, a) - x * a, axis=1))
    d_a = (sigmoid(a) - x) / n                # dL/da
    d_pre = (d_a @ W) * h * (1 - h)           # back through the encoder's sigmoid
    dW = x_tilde.T @ d_pre + d_a.T @ h        # encoder use of W + decoder use of W^T
    return cost, (dW, d_pre.sum(axis=0), d_a.sum(axis=0))


def mlp_nll_and_error(x, y, layers):
    """Mean negative log-likelihood and error rate of a sigmoid MLP with a softmax on top;
    ``layers`` is ``[(W, b), ...]``, the last pair the softmax's."""
    h = x
    for W, b in layers[:-1]:
        h = sigmoid(h @ W + b)
    logits = h @ layers[-1][0] + layers[-1][1]
    log_norm = np.log(np.sum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)) + logits.max(axis=1)
    nll = np.mean(log_norm - logits[np.arange(len(y)), y])
    return nll, np.mean(np.argmax(logits, axis=1) != y)
