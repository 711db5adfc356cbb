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

from harness.adapt import Adapter, one_hot


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


class BookNetwork(Adapter):
    """The adapter: the protocol around :class:`Network` (canonical W = weights.T)."""

    nnh_capabilities = {"activations": ["sigmoid"], "loss": {"loss": "bce", "loss_outputs": "sum"},
                        "conventions": {"weight_decay_in": ["loss"], "weight_decay_on": ["weights"]}}
    cost = CrossEntropyCost
    param_paths = dict(W="net.weights[{k}].T", b="net.biases[{k}]")
    grad_paths = dict(W="[1][{k}].T", b="[0][{k}]")  # in backprop's (nabla_b, nabla_w)
    settings = {"lr": "eta", "weight_decay": "lmbda_n"}  # lmbda / n, an L2 in the cost
    decay_in, decay_on, adds_l2, columns, per_sample = "loss", "weights", True, True, True

    def build(self, spec, eta, lmbda_n):
        self.net = Network(list(spec.dims), self.cost)

    def logits(self, a):  # feedforward without the last layer's sigmoid
        for i, (b, w) in enumerate(zip(self.net.biases, self.net.weights)):
            a = np.dot(w, a) + b if i == len(self.net.weights) - 1 else sigmoid(np.dot(w, a) + b)
        return a

    def backward(self, x, y):  # one sample, a column
        t = one_hot(y, self.dims[-1], columns=True)
        return self.net.cost.fn(self.net.feedforward(x), t), self.net.backprop(x, t)


class BookQuadratic(BookNetwork):
    """The book's first network: the quadratic cost on sigmoid outputs, its delta with the
    output's sigmoid'. Not a loss of the logits the harness knows: it must FAIL and get no
    loss named."""

    cost = QuadraticCost
