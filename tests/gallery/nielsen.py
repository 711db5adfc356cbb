"""A network written the way a well-known online book writes it, and a thin adapter.

The book's code (``network2``-style): column vectors, ``weights[l]`` of shape (out, in),
``biases[l]`` of shape (out, 1), sigmoid on every layer, the cross-entropy cost of the
sigmoid outputs summed over the output neurons, backpropagation one sample at a time,
and mini-batch SGD whose update ``w -> (1 - eta lmbda / n) w - (eta / m) sum nabla_w``
is L2 regularisation of the weights (lmbda / n) in the cost. Its convention in the
harness's flags: ``--activation sigmoid --loss bce --loss-outputs sum --optimizer sgd
--weight-decay LMBDA/N --weight-decay-in loss --weight-decay-on weights``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class CrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


class QuadraticCost:
    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):  # the bug this cost is used for below: the output's sigmoid' kept
        return (a - y) * sigmoid_prime(z)


class Network:
    """The book's network, as it writes it (column vectors, per-sample backprop)."""

    def __init__(self, sizes, cost=CrossEntropyCost):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.zeros((y, 1)) for y in sizes[1:]]
        self.weights = [np.zeros((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]
        self.cost = cost

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.cost.delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for layer in range(2, self.num_layers):
            z = zs[-layer]
            delta = np.dot(self.weights[-layer + 1].transpose(), delta) * sigmoid_prime(z)
            nabla_b[-layer] = delta
            nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
        return nabla_b, nabla_w


class BookNetwork:
    """The adapter: the protocol around :class:`Network` (canonical W = weights.T)."""

    cost = CrossEntropyCost

    def __init__(self, spec, optimizer):
        self.net, self.dims = Network(list(spec.dims), self.cost), spec.dims
        self.eta, self.lmbda_n = optimizer.lr, optimizer.weight_decay  # lmbda / n
        u = np.random.default_rng(spec.seed).uniform
        self.set_params({f"{k}{i}": u(-1, 1, (a, b) if k == "W" else b) / np.sqrt(a)
                         for i, (a, b) in enumerate(zip(spec.dims, spec.dims[1:]))
                         for k in "Wb"})

    def get_params(self):
        out = {}
        for i, (w, b) in enumerate(zip(self.net.weights, self.net.biases)):
            out[f"W{i}"], out[f"b{i}"] = w.T.copy(), b[:, 0].copy()
        return out

    def set_params(self, params):
        n = len(self.dims) - 1
        self.net.weights = [np.array(params[f"W{i}"], float).T.copy() for i in range(n)]
        self.net.biases = [np.array(params[f"b{i}"], float).reshape(-1, 1) for i in range(n)]

    def forward(self, x):  # the logits: every layer's sigmoid but the last
        a = x.T
        for i, (b, w) in enumerate(zip(self.net.biases, self.net.weights)):
            z = np.dot(w, a) + b
            a = sigmoid(z) if i < len(self.net.weights) - 1 else z
        return a.T

    def loss_and_grads(self, x, y):
        m, targets = len(y), np.eye(self.dims[-1])[y]
        nb = [np.zeros(b.shape) for b in self.net.biases]
        nw = [np.zeros(w.shape) for w in self.net.weights]
        cost = 0.0
        for xi, ti in zip(x, targets):
            dnb, dnw = self.net.backprop(xi.reshape(-1, 1), ti.reshape(-1, 1))
            nb = [a + d for a, d in zip(nb, dnb)]
            nw = [a + d for a, d in zip(nw, dnw)]
            cost += self.net.cost.fn(self.net.feedforward(xi.reshape(-1, 1)), ti.reshape(-1, 1))
        cost = cost / m + 0.5 * self.lmbda_n * sum(np.linalg.norm(w) ** 2 for w in self.net.weights)
        grads = {}
        for i, (w, dw, db) in enumerate(zip(self.net.weights, nw, nb)):
            grads[f"W{i}"] = (dw / m + self.lmbda_n * w).T
            grads[f"b{i}"] = db[:, 0] / m
        return float(cost), grads

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.set_params({k: v - self.eta * grads[k] for k, v in self.get_params().items()})
        return loss


class BookQuadratic(BookNetwork):
    """The book's first network: the quadratic cost on sigmoid outputs, its delta with the
    output's sigmoid'. Not a loss of the logits the harness knows: it must FAIL and get no
    loss named."""

    cost = QuadraticCost
