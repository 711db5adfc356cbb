"""Layers as module-level functions, the way the cs231n assignments write them.

Every ``*_forward`` returns ``(out, cache)``, every ``*_backward`` takes ``(dout, cache)``.
Rows are samples: x is (N, D). The conventions are cs231n's, not torch's:

* ``bn_param["momentum"]`` weighs the OLD running value (0.9 by default):
  running = momentum * running + (1 - momentum) * batch;
* the running variance is the BIASED batch variance (divided by N);
* ``dropout_param["p"]`` is the probability of KEEPING a unit (2017+ assignments).

NumPy only; the masks come from ``np.random``, as in the assignments, unless one is
handed in as ``dropout_param["mask"]`` (0/1, for the next call only).
"""

from __future__ import annotations

import numpy as np


def affine_forward(x, w, b):
    """out = x @ w + b; x (N, D), w (D, M), b (M,) -> out (N, M)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    """dout (N, M) -> dx (N, D), dw (D, M), db (M,)."""
    x, w, b = cache
    dx = dout @ w.T
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x):
    """out = max(0, x), element-wise."""
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0."""
    x = cache
    dx = dout * (x > 0)
    return dx


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm per feature; x (N, D), gamma, beta (D,) -> out (N, D).

    Train: xhat = (x - mu) / sqrt(var + eps) with the batch's mu, var (biased);
    running = momentum * running + (1 - momentum) * batch. Test: the running ones.
    """
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    out, cache = None, None
    if mode == "train":
        sample_mean = x.mean(axis=0)
        sample_var = x.var(axis=0)
        std = np.sqrt(sample_var + eps)
        x_hat = (x - sample_mean) / std
        out = gamma * x_hat + beta
        cache = (x_hat, std, gamma)
        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var
    elif mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * x_hat + beta
    else:
        raise ValueError(f'Invalid forward batchnorm mode "{mode}"')

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward_alt(dout, cache):
    """The compact form: dx = (1/N) / std * (N dxhat - sum dxhat - xhat sum(dxhat xhat))."""
    x_hat, std, gamma = cache
    N = dout.shape[0]
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx_hat = dout * gamma
    dx = (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) / (N * std)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer norm over each row's D features; the same in train and test (no running stats)."""
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    out = gamma * x_hat + beta
    cache = (x_hat, std, gamma)
    return out, cache


def layernorm_backward(dout, cache):
    """Batch norm's compact backward with the axes swapped (per row, over D)."""
    x_hat, std, gamma = cache
    D = dout.shape[1]
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx_hat = dout * gamma
    dx = (D * dx_hat - dx_hat.sum(axis=1, keepdims=True)
          - x_hat * (dx_hat * x_hat).sum(axis=1, keepdims=True)) / (D * std)
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    """Inverted dropout; ``p`` is the KEEP probability. Train: x * mask / p; test: x."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])

    mask, out = None, None
    if mode == "train":
        keep = dropout_param.pop("mask", None)
        if keep is None:
            keep = np.random.rand(*x.shape) < p
        mask = (keep / p).astype(x.dtype)
        out = x * mask
    elif mode == "test":
        out = x

    cache = (dropout_param, mask)
    out = out.astype(x.dtype, copy=False)
    return out, cache


def dropout_backward(dout, cache):
    """dx = dout * mask (the mask already holds the 1/p)."""
    dropout_param, mask = cache
    mode = dropout_param["mode"]
    if mode == "train":
        return dout * mask
    return dout


def softmax_loss(x, y):
    """Mean softmax cross-entropy of the scores x (N, C); returns (loss, dx)."""
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx
