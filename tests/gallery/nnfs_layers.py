"""Layer objects the way the "Neural Networks from Scratch" book writes them.

Each object has ``forward(inputs)`` storing ``self.output`` and ``backward(dvalues)``
storing ``self.dinputs`` (and ``self.dweights``, ``self.dbiases``). Rows are samples;
weights are (n_inputs, n_neurons) already, biases (1, n_neurons).

The book has no normalisation layers; ``Layer_BatchNorm`` and ``Layer_LayerNorm`` are
written in its style with torch's conventions (momentum weighs the NEW batch, the
running variance is the unbiased one).
"""

from __future__ import annotations

import numpy as np


class Layer_Dense:
    """outputs = inputs @ weights + biases."""

    def __init__(self, n_inputs, n_neurons, dtype=np.float64):
        self.weights = (0.01 * np.random.randn(n_inputs, n_neurons)).astype(dtype)
        self.biases = np.zeros((1, n_neurons), dtype=dtype)

    def forward(self, inputs, training=True):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class Activation_ReLU:
    """max(0, x); the gradient passes where the input was positive."""

    def forward(self, inputs, training=True):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class Layer_Dropout:
    """Inverted dropout; ``rate`` is the share DROPPED, kept as the keep rate 1 - rate."""

    def __init__(self, rate):
        self.rate = 1 - rate
        self.next_mask = None  # a 0/1 mask handed in for the next training pass

    def forward(self, inputs, training=True):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        keep, self.next_mask = self.next_mask, None
        if keep is None:
            keep = np.random.binomial(1, self.rate, size=inputs.shape)
        self.binary_mask = (keep / self.rate).astype(inputs.dtype)
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class Layer_BatchNorm:
    """Batch norm per feature, torch's conventions (momentum 0.1 weighs the new batch)."""

    def __init__(self, n_neurons, momentum=0.1, eps=1e-5, dtype=np.float64):
        self.gamma = np.ones((1, n_neurons), dtype=dtype)
        self.beta = np.zeros((1, n_neurons), dtype=dtype)
        self.running_mean = np.zeros((1, n_neurons), dtype=dtype)
        self.running_var = np.ones((1, n_neurons), dtype=dtype)
        self.momentum, self.eps = momentum, eps

    def batch_stats(self, inputs):
        """The batch's mean and (biased) variance per feature, (1, D) each."""
        return (inputs.mean(axis=0, keepdims=True), inputs.var(axis=0, keepdims=True))

    def update_running(self, mean, var, n):
        # running = (1 - m) running + m batch; the variance unbiased, N / (N - 1) var
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mean
        self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)

    def normalise(self, inputs, mean, var):
        self.std = np.sqrt(var + self.eps)
        return (inputs - mean) / self.std

    def forward(self, inputs, training=True):
        if training:
            mean, var = self.batch_stats(inputs)
            self.update_running(mean, var, len(inputs))
        else:
            mean, var = self.running_mean, self.running_var
        self.training = training
        self.xhat = self.normalise(inputs, mean, var)
        self.output = self.gamma * self.xhat + self.beta

    def backward(self, dvalues):
        self.dgamma = np.sum(dvalues * self.xhat, axis=0, keepdims=True)
        self.dbeta = np.sum(dvalues, axis=0, keepdims=True)
        dxhat = dvalues * self.gamma
        if not self.training:
            self.dinputs = dxhat / self.std
            return
        self.dinputs = self.dinputs_from(dxhat, len(dvalues))

    def dinputs_from(self, dxhat, n):
        # dx = (1 / (N std)) (N dxhat - sum dxhat - xhat sum(dxhat * xhat))
        return (n * dxhat - dxhat.sum(axis=0, keepdims=True)
                - self.xhat * (dxhat * self.xhat).sum(axis=0, keepdims=True)) / (n * self.std)


class Layer_LayerNorm:
    """Layer norm over the features of each row (no running statistics)."""

    #: the axis the statistics run over: each row's features
    axis = 1

    def __init__(self, n_neurons, eps=1e-5, dtype=np.float64):
        self.gamma = np.ones((1, n_neurons), dtype=dtype)
        self.beta = np.zeros((1, n_neurons), dtype=dtype)
        self.eps = eps

    def forward(self, inputs, training=True):
        mean = inputs.mean(axis=self.axis, keepdims=True)
        var = inputs.var(axis=self.axis, keepdims=True)
        self.std = np.sqrt(var + self.eps)
        self.xhat = (inputs - mean) / self.std
        self.output = self.gamma * self.xhat + self.beta

    def backward(self, dvalues):
        self.dgamma = np.sum(dvalues * self.xhat, axis=0, keepdims=True)
        self.dbeta = np.sum(dvalues, axis=0, keepdims=True)
        dxhat = dvalues * self.gamma
        n, a = dvalues.shape[self.axis], self.axis
        self.dinputs = (n * dxhat - dxhat.sum(axis=a, keepdims=True)
                        - self.xhat * (dxhat * self.xhat).sum(axis=a, keepdims=True)
                        ) / (n * self.std)


class Activation_Softmax:
    def forward(self, inputs, training=True):
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)


class Loss_CategoricalCrossentropy:
    def calculate(self, output, y):
        return np.mean(self.forward(output, y))

    def forward(self, y_pred, y_true):
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        correct_confidences = y_pred_clipped[range(samples), y_true]
        return -np.log(correct_confidences)


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """Softmax and cross-entropy together, for the short backward: (p - onehot) / N."""

    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class Optimizer_SGD:
    """SGD with momentum: v = momentum v - lr g; p += v (torch's rule for a fixed lr)."""

    def __init__(self, learning_rate=1.0, momentum=0.0):
        self.learning_rate = learning_rate
        self.momentum = momentum

    def update_params(self, layer, names=("weights", "biases")):
        for name in names:
            grad = getattr(layer, "d" + name)
            if self.momentum:
                key = name + "_momentums"
                if not hasattr(layer, key):
                    setattr(layer, key, np.zeros_like(grad))
                update = self.momentum * getattr(layer, key) - self.learning_rate * grad
                setattr(layer, key, update)
            else:
                update = -self.learning_rate * grad
            setattr(layer, name, getattr(layer, name) + update)
