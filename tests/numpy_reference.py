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


def sparse_ae_cost_and_grads(x, W, b, W_prime, b_prime, rho, beta, lam):
    """UFLDL's ``sparseAutoencoderCost`` in numpy, rows as examples: the cost of the sparse
    autoencoder with untied weights ``W`` (visible, hidden) and ``W_prime`` (hidden, visible)
    on the batch ``x``, and its gradients ``(dW, db, dW_prime, db_prime)`` by the analytic
    backpropagation of the lecture notes (no clipping of the mean activations)."""
    m = x.shape[0]
    h = sigmoid(x @ W + b)
    z = sigmoid(h @ W_prime + b_prime)
    rho_hat = h.mean(axis=0)
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    cost = (0.5 * np.sum((z - x) ** 2) / m + lam / 2 * (np.sum(W ** 2) + np.sum(W_prime ** 2)) + beta * kl)
    delta3 = -(x - z) * z * (1 - z)
    sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    delta2 = (delta3 @ W_prime.T + sparsity_delta) * h * (1 - h)
    dW_prime = h.T @ delta3 / m + lam * W_prime
    dW = x.T @ delta2 / m + lam * W
    return cost, (dW, delta2.mean(axis=0), dW_prime, delta3.mean(axis=0))
