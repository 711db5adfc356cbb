"""Three more published styles of network, each as its authors write it, and its adapter.

* ``FullyConnectedNet``: the cs231n assignment's class: 1-based ``self.params["W1"]``,
  ``loss(X, y)`` returning the scores without labels and ``(loss, grads)`` with them,
  the L2 term ``0.5 * reg * sum(W * W)`` in the loss, ``sgd(w, dw, config)`` with
  ``config["learning_rate"]``. Flags: ``--optimizer sgd --weight-decay REG
  --weight-decay-in loss --weight-decay-on weights``.
* ``Dense`` and ``Activation`` layer objects, as blog tutorials write them: column vectors,
  weights (out, in), bias (out, 1), one sample at a time, and ``backward(grad,
  learning_rate)`` that steps the layer's weights itself; no loss of its own for a
  classifier. Flags: ``--optimizer sgd``.
* The deep-learning course's functions: features x samples (X is (n_x, m)), one-hot Y
  columns, ``parameters["W1"]`` of shape (n_1, n_0), ``b1`` (n_1, 1), a softmax output,
  ``compute_cost`` averaged over m, ``update_parameters(parameters, grads,
  learning_rate)``. Flags: ``--optimizer sgd``.

The network code is NumPy only; every adapter is the glue :mod:`harness.adapt` leaves.
"""

from __future__ import annotations

import numpy as np

from harness.adapt import Adapter, backward_layers, build_layers, forward_layers, one_hot


# ============================================================ cs231n's FullyConnectedNet
def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w -= learning_rate * dw."""
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config


class FullyConnectedNet:
    """affine - relu - ... - affine - softmax, parameters in ``self.params``."""

    def __init__(self, hidden_dims, input_dim, num_classes, reg=0.0, dtype=np.float64):
        self.reg, self.dtype = reg, dtype
        self.num_layers = 1 + len(hidden_dims)
        self.params = {}
        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = 1e-2 * np.random.randn(dims[i], dims[i + 1])
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1])

    def loss(self, X, y=None):
        caches, out = [], X.astype(self.dtype)
        for i in range(1, self.num_layers + 1):
            W, b = self.params[f"W{i}"], self.params[f"b{i}"]
            z = out @ W + b
            caches.append((out, z))
            out = np.maximum(z, 0) if i < self.num_layers else z
        scores = out
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = X.shape[0]
        loss = -log_probs[np.arange(N), y].sum() / N
        dout = np.exp(log_probs)
        dout[np.arange(N), y] -= 1
        dout /= N
        grads = {}
        for i in range(self.num_layers, 0, -1):
            x_in, z = caches[i - 1]
            if i < self.num_layers:
                dout = dout * (z > 0)
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[f"W{i}"] = x_in.T @ dout + self.reg * W
            grads[f"b{i}"] = dout.sum(axis=0)
            dout = dout @ W.T
        return loss, grads


class CS231nFullyConnected(Adapter):
    param_paths = dict(W="net.params['W{k1}']", b="net.params['b{k1}']")
    grad_paths = dict(W="['W{k1}']", b="['b{k1}']")  # in the dict loss() returns
    settings = {"lr": "learning_rate", "weight_decay": "reg"}
    decay_in, decay_on = "loss", "weights"

    def build(self, spec, learning_rate, reg):
        d = spec.dims
        self.net = FullyConnectedNet(d[1:-1], d[0], d[-1], reg=reg, dtype=spec.dtype)
        self.config = {"learning_rate": learning_rate}

    def logits(self, x):
        return self.net.loss(x)

    def backward(self, x, y):
        return self.net.loss(x, y)

    def step(self, x, y):
        loss, grads = self.net.loss(x, y)
        for k, w in self.net.params.items():
            self.net.params[k], self.config = sgd(w, grads[k], self.config)
        return loss


# ============================================================ layer objects that update
class Dense:
    """y = W x + b on a column x (in, 1); W (out, in), b (out, 1)."""

    def __init__(self, input_size, output_size):
        self.weights = np.random.randn(output_size, input_size)
        self.bias = np.random.randn(output_size, 1)

    def forward(self, input):
        self.input = input
        return np.dot(self.weights, self.input) + self.bias

    def backward(self, output_gradient, learning_rate):
        weights_gradient = np.dot(output_gradient, self.input.T)
        input_gradient = np.dot(self.weights.T, output_gradient)
        self.weights -= learning_rate * weights_gradient
        self.bias -= learning_rate * output_gradient
        return input_gradient


class Activation:
    """y = f(x) element-wise; backward multiplies by f'(x)."""

    def __init__(self, activation, activation_prime):
        self.activation, self.activation_prime = activation, activation_prime

    def forward(self, input):
        self.input = input
        return self.activation(self.input)

    def backward(self, output_gradient, learning_rate):
        return np.multiply(output_gradient, self.activation_prime(self.input))


class Tanh(Activation):
    def __init__(self):
        super().__init__(np.tanh, lambda x: 1 - np.tanh(x) ** 2)


class ReLU(Activation):
    def __init__(self):
        super().__init__(lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(x.dtype))


class SelfUpdatingLayers(Adapter):
    param_paths = dict(W="net[{pos}].weights.T", b="net[{pos}].bias")
    settings, columns, per_sample = {"lr": "learning_rate"}, True, True

    def build(self, spec, learning_rate):
        self.net = build_layers(self.layer_list, {"linear": lambda kw: Dense(kw["in"], kw["out"]),
                                                  "tanh": lambda kw: Tanh(), "relu": lambda kw: ReLU()})

    def logits(self, x):
        return forward_layers(self.net, x)

    def backward(self, x, y):  # one sample: the code's pass, its update read as a gradient
        def run(learning_rate):
            loss, grad = self.loss_and_dlogits(self.logits(x), y)
            backward_layers(self.net, grad, learning_rate)
            return loss
        return self.captured(run)


# ============================================================ features x samples
def initialize_parameters_deep(layer_dims):
    parameters = {}
    for l in range(1, len(layer_dims)):  # noqa: E741 - the course's name
        parameters["W" + str(l)] = np.random.randn(layer_dims[l], layer_dims[l - 1]) * 0.01
        parameters["b" + str(l)] = np.zeros((layer_dims[l], 1))
    return parameters


def softmax(Z):
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def L_model_forward(X, parameters):
    """[LINEAR -> RELU] * (L - 1) -> LINEAR -> SOFTMAX; caches ((A_prev, W, b), Z)."""
    caches, A, L = [], X, len(parameters) // 2
    for l in range(1, L + 1):  # noqa: E741
        W, b = parameters["W" + str(l)], parameters["b" + str(l)]
        Z = np.dot(W, A) + b
        caches.append(((A, W, b), Z))
        A = np.maximum(0, Z) if l < L else softmax(Z)
    return A, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(AL)) / m)


def L_model_backward(AL, Y, caches):
    grads, L, m = {}, len(caches), AL.shape[1]
    dZ, dA = AL - Y, None
    for l in reversed(range(1, L + 1)):  # noqa: E741
        (A_prev, W, b), Z = caches[l - 1]
        if l < L:
            dZ = dA * (Z > 0)
        grads["dW" + str(l)] = np.dot(dZ, A_prev.T) / m
        grads["db" + str(l)] = np.sum(dZ, axis=1, keepdims=True) / m
        dA = np.dot(W.T, dZ)
    return grads


def update_parameters(parameters, grads, learning_rate):
    L = len(parameters) // 2
    for l in range(L):  # noqa: E741
        parameters["W" + str(l + 1)] -= learning_rate * grads["dW" + str(l + 1)]
        parameters["b" + str(l + 1)] -= learning_rate * grads["db" + str(l + 1)]
    return parameters


class DeepLearningCourse(Adapter):
    param_paths = dict(W="parameters['W{k1}'].T", b="parameters['b{k1}']")
    grad_paths = dict(W="['dW{k1}'].T", b="['db{k1}']")
    settings, columns = {"lr": "learning_rate"}, True

    def build(self, spec, learning_rate):
        self.parameters = initialize_parameters_deep(list(spec.dims))
        self.learning_rate = learning_rate

    def logits(self, x):
        return L_model_forward(x, self.parameters)[1][-1][1]  # the last cache's Z

    def backward(self, x, y):
        Y = one_hot(y, self.dims[-1], columns=True)
        AL, caches = L_model_forward(x, self.parameters)
        return compute_cost(AL, Y), L_model_backward(AL, Y, caches)

    def step(self, x, y):
        loss, grads = self.backward(x, y)
        self.parameters = update_parameters(self.parameters, grads, self.learning_rate)
        return loss
