"""A classifier built from a list of layers (:mod:`scratch.layers`), NumPy only.

The network is handed in already resolved, as plain ``(name, kwargs)`` tuples::

    ("linear", {"index": k, "in": d_in, "out": d_out})
    ("batchnorm", {"index": k, "width": d}),  ("layernorm", {"index": k, "width": d})
    ("relu" | "tanh" | "sigmoid" | "gelu", {}),  ("leaky_relu", {"slope": s})
    ("dropout", {"p": p})
    ("conv2d", {"index": k, "in": C_in, "out": C_out, "kernel": K, "stride": S, "padding": P})
    ("maxpool2d" | "avgpool2d", {"kernel": K, "stride": S}),  ("flatten", {})

(``harness.layer_spec.resolve(...).plain()`` writes them from ``"linear(64),relu,..."``).
On an image input every entry also has ``"in_shape"`` and ``"out_shape"``, one sample's;
the first layer's ``in_shape`` (C, H, W) is the network's, and a batch is (N, C, H, W)
(or its rows flat, (N, C*H*W), read in C order).

Modes, as torch and cs231n define them: :meth:`Sequential.forward` is evaluation
(running statistics, no dropout); :meth:`Sequential.loss_and_grads`,
:meth:`Sequential.train_step` and :meth:`Sequential.intermediates` are training passes
(batch statistics, dropout on), and every training pass updates the running statistics.

Parameters in layer order, canonical names: ``W{k}`` (in, out) of a linear or
(out, in, kh, kw) of a conv2d, ``b{k}``, ``gamma{k}``,
``beta{k}``; buffers ``running_mean{k}``, ``running_var{k}``. Linear layers start
exactly as :class:`scratch.reference.ReferenceMLP`'s (one generator seeded with
``seed``, W then b per layer, uniform in +-1/sqrt(fan_in)), so the shorthand
``linear(32),relu,linear(10)`` on 64 inputs starts bit for bit as ``MLP((64, 32, 10))``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scratch.layers import (Activation, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten,
                            LayerNorm, Linear, MaxPool2d)
from scratch.losses import add_l2, check_loss, loss_grad
from scratch.optimizers import SGD
from scratch.params import layer_param_shapes

ACTIVATION_LAYERS = ("relu", "tanh", "sigmoid", "leaky_relu", "gelu")
LAYER_KINDS = ("linear", "batchnorm", "layernorm", "dropout", "conv2d", "maxpool2d",
               "avgpool2d", "flatten") + ACTIVATION_LAYERS
#: the layers that give their input gradient only when it is asked for (the first layer's)
_PARAM_GRADS_ONLY = (Linear, Conv2d)


def validate_arrays(values, expected: dict, dtype, error: type[ValueError], kind: str
                    ) -> dict[str, np.ndarray]:
    """Fresh copies of ``values`` in ``dtype``, checked against ``expected`` names and shapes.

    Raises ``error`` naming the ``kind`` ("parameter", "buffer") and the array for a
    missing or extra name, a wrong shape, a non-numeric dtype or a non-finite value.
    """
    if not isinstance(values, Mapping):
        raise error(f"{kind}s must be a dict of arrays, got {type(values).__name__}")
    missing = [k for k in expected if k not in values]
    extra = sorted(k for k in values if k not in expected)
    if missing:
        raise error(f"{kind} '{missing[0]}' is missing (expected {list(expected)})")
    if extra:
        raise error(f"unexpected {kind} '{extra[0]}' (expected {list(expected)})")
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        value = np.asarray(values[name])
        if value.dtype.kind not in "fiu":
            raise error(f"{kind} '{name}' must be numeric, got dtype {value.dtype}")
        if value.shape != tuple(shape):
            raise error(f"{kind} '{name}' must have shape {tuple(shape)}, got {value.shape}")
        copy = np.array(value, dtype=dtype, copy=True, order="C")
        if not np.all(np.isfinite(copy)):
            raise error(f"{kind} '{name}' has a non-finite value")
        out[name] = copy
    return out


class Sequential:
    """A from-scratch classifier on a layer list; implements the ``Classifier`` protocol.

    Parameters
    ----------
    layers : list of (name, kwargs) tuples
        The resolved network (see the module's docstring); the last layer is a linear.
    dtype : {"float32", "float64"}
    seed : int
        Seeds the linear layers' initialisation and, separately, the dropout masks.
    optimizer : object with ``step(params, grads)``, optional
        Defaults to ``SGD(lr=0.01)``.
    param_error : subclass of ValueError
        What ``set_params`` and ``set_buffers`` raise for arrays that do not fit.
    loss_reduction, l2, l2_on
        As :class:`scratch.reference.ReferenceMLP`: cross-entropy mean or sum, and an L2
        term ``0.5 * l2 * sum ||p||^2`` over every parameter or the weights ``W{k}`` only.
    loss, loss_outputs, mse_half
        The loss, as :class:`scratch.reference.ReferenceMLP`'s (softmax cross-entropy by
        default).
    momentum, momentum_convention, running_var, eps
        Batch norm's conventions (see :class:`scratch.layers.BatchNorm`), torch's by
        default: 0.1, "torch", "unbiased", 1e-5. ``eps`` serves layer norm too.

    Attributes
    ----------
    dims : tuple of int
        The input width, then the flat output width of every weight layer.
    input_shape : tuple of int
        One sample's shape: (D,), or (C, H, W) for images.
    """

    def __init__(self, layers, dtype="float64", seed=0, optimizer=None, *,
                 param_error: type[ValueError] = ValueError, loss_reduction="mean",
                 l2=0.0, l2_on="all", momentum=0.1, momentum_convention="torch",
                 running_var="unbiased", eps=1e-5, loss="cross_entropy", loss_outputs="mean",
                 mse_half=False):
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"`loss_reduction` must be one of mean, sum, "
                             f"got {loss_reduction!r}")
        if l2_on not in ("all", "weights"):
            raise ValueError(f"`l2_on` must be one of all, weights, got {l2_on!r}")
        check_loss(loss, loss_outputs)
        self.loss, self.loss_outputs, self.mse_half = loss, loss_outputs, bool(mse_half)
        self.spec = [(name, dict(kwargs)) for name, kwargs in layers]
        if not self.spec or self.spec[-1][0] != "linear":
            raise ValueError("the last layer must be a linear (its outputs are the logits)")
        self.dtype = np.dtype(dtype)
        self.loss_reduction, self.l2, self.l2_on = loss_reduction, float(l2), l2_on
        self.optimizer = optimizer if optimizer is not None else SGD(lr=0.01)
        self.param_error = param_error
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._init_rng = np.random.default_rng(seed)
        self._dropout_rng = np.random.default_rng([seed, 1])  # its own stream of masks
        bn = dict(momentum=momentum, momentum_convention=momentum_convention,
                  running_var=running_var, eps=eps)
        self.norm_conventions = dict(bn)
        self.layers = [self._build(name, kwargs, bn) for name, kwargs in self.spec]
        self.input_shape, self.dims = network_shape(self.spec)
        self.param_shapes = layer_param_shapes(self.spec)  # the canonical layout's copy
        self.buffer_shapes = {k: v.shape for k, v in self.buffers.items()}
        self.dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]

    def _build(self, name: str, kw: dict, bn: dict):
        """The layer object for one ``(name, kwargs)``, its parameters initialised."""
        if name == "linear":
            k, d_in, d_out = kw["index"], kw["in"], kw["out"]
            bound = 1.0 / np.sqrt(d_in)  # nn.Linear's default: uniform in +-1/sqrt(fan_in)
            for pname, shape in ((f"W{k}", (d_in, d_out)), (f"b{k}", (d_out,))):
                self.params[pname] = self._init_rng.uniform(-bound, bound, shape
                                                            ).astype(self.dtype)
            return Linear(self.params, k)
        if name == "conv2d":
            return self._conv(kw)
        if name == "maxpool2d":
            return MaxPool2d(kw["kernel"], kw["stride"])
        if name == "avgpool2d":
            return AvgPool2d(kw["kernel"], kw["stride"])
        if name == "flatten":
            return Flatten()
        if name in ("batchnorm", "layernorm"):
            k, d = kw["index"], kw["width"]
            self.params[f"gamma{k}"] = np.ones(d, self.dtype)
            self.params[f"beta{k}"] = np.zeros(d, self.dtype)
            if name == "layernorm":
                return LayerNorm(self.params, k, eps=bn["eps"])
            self.buffers[f"running_mean{k}"] = np.zeros(d, self.dtype)
            self.buffers[f"running_var{k}"] = np.ones(d, self.dtype)
            return BatchNorm(self.params, self.buffers, k, **bn)
        if name == "dropout":
            return Dropout(kw["p"], self._dropout_rng)
        if name in ACTIVATION_LAYERS:
            return Activation(name, **({"slope": kw["slope"]} if "slope" in kw else {}))
        raise ValueError(f"unknown layer {name!r} (choices: {', '.join(LAYER_KINDS)})")

    def _conv(self, kw: dict) -> Conv2d:
        """A conv2d layer, ``W{k}`` (out, in, K, K) and ``b{k}`` uniform in +-1/sqrt(fan_in),
        fan_in = in * K * K (nn.Conv2d's default), W then b."""
        k, c_in, c_out, size = kw["index"], kw["in"], kw["out"], kw["kernel"]
        bound = 1.0 / np.sqrt(c_in * size * size)
        for pname, shape in ((f"W{k}", (c_out, c_in, size, size)), (f"b{k}", (c_out,))):
            self.params[pname] = self._init_rng.uniform(-bound, bound, shape).astype(self.dtype)
        return Conv2d(self.params, k, kw["stride"], kw["padding"])

    # ------------------------------------------------------- parameters and buffers
    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, canonical names, layer order."""
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy ``params`` in (validated, cast to the dtype); the layers see the new values."""
        new = validate_arrays(params, self.param_shapes, self.dtype, self.param_error,
                              "parameter")
        for name, value in new.items():
            self.params[name][...] = value

    def get_buffers(self) -> dict[str, np.ndarray]:
        """Copies of the batch norms' running statistics, canonical names."""
        return {k: v.copy() for k, v in self.buffers.items()}

    def set_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Copy ``buffers`` in; ``param_error`` naming the buffer when they do not fit."""
        new = validate_arrays(buffers, self.buffer_shapes, self.dtype, self.param_error,
                              "buffer")
        for name, value in new.items():
            self.buffers[name][...] = value

    def set_dropout_masks(self, masks) -> None:
        """Masks for the next training pass only: one 0/1 array (N, D) per dropout layer,
        in layer order; each is scaled by 1/(1-p) as the layer's own masks are."""
        masks = list(masks)
        if len(masks) != len(self.dropouts):
            raise ValueError(f"set_dropout_masks needs one mask per dropout layer "
                             f"({len(self.dropouts)}), got {len(masks)}")
        checked = []
        for i, mask in enumerate(masks):
            mask = np.asarray(mask)
            if mask.ndim != 2 or not np.all((mask == 0) | (mask == 1)):
                raise ValueError(f"dropout mask {i} must be a 2-D array of 0s and 1s, "
                                 f"got shape {mask.shape}")
            checked.append(mask.astype(np.float64))
        for layer, mask in zip(self.dropouts, checked):
            layer.next_mask = mask

    # ------------------------------------------------------------ passes
    def _input(self, x) -> np.ndarray:
        """x in the model's dtype and one sample's shape: (N, C, H, W) for images (rows
        (N, C*H*W) are reshaped in C order); a ValueError naming the layout otherwise."""
        x = np.asarray(x, dtype=self.dtype)
        if len(self.input_shape) == 1 or x.shape[1:] == self.input_shape:
            return x
        c, h, w = self.input_shape
        if x.ndim == 2 and x.shape[1] == c * h * w:
            return x.reshape((x.shape[0],) + self.input_shape)
        raise ValueError(f"x must have the layout (N, C, H, W) = (N, {c}, {h}, {w}) "
                         f"(or rows of {c * h * w} features), got shape {x.shape}")

    def _forward(self, x: np.ndarray, train: bool) -> list[np.ndarray]:
        """Every layer's output in order; the last are the logits."""
        outs, h = [], self._input(x)
        for layer in self.layers:
            h = layer.forward(h, train)
            outs.append(h)
        return outs

    def _backward(self, dlogits: np.ndarray, need_input_grad: bool = True):
        """Backpropagate through every layer, last to first.

        Returns
        -------
        douts : list, douts[i] = dL/d(output of layer i), (N, D_out of layer i)
        grads : dict of parameter gradients, canonical names, layer order
        dinput : ndarray (N, D_0) or (N, C, H, W), dL/dx; None without ``need_input_grad``
            when the first layer is a linear or a conv2d (its dx, as large a product as its
            forward, is skipped)
        """
        douts = [None] * len(self.layers)
        d = dlogits
        for i in reversed(range(len(self.layers))):
            douts[i] = d
            if i == 0 and not need_input_grad and isinstance(self.layers[0], _PARAM_GRADS_ONLY):
                self.layers[0].param_grads(d)
                d = None
                break
            d = self.layers[i].backward(d)
        grads = {}
        for layer in self.layers:
            grads.update(layer.grads)
        return douts, {k: grads[k] for k in self.params}, d

    def _training_pass(self, x, y, need_input_grad: bool = False):
        outs = self._forward(x, train=True)
        loss, dlogits = loss_grad(outs[-1], np.asarray(y), self.loss, self.loss_reduction,
                                  self.loss_outputs, self.mse_half)
        douts, grads, dinput = self._backward(dlogits, need_input_grad)
        loss = add_l2(loss, grads, self.params, self.l2, self.l2_on)
        return loss, grads, outs, douts, dinput

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluation: logits (N, C) with the running statistics and no dropout."""
        return self._forward(x, train=False)[-1]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """A training pass: the loss (plus the L2 term) and every parameter's gradient."""
        loss, grads, *_ = self._training_pass(x, y)
        return loss, grads

    def intermediates(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """A training pass, its named intermediates in computation order.

        ``out{i}``: the output of the layer at position i (``out{L-1}`` the logits);
        then from the last layer down ``dout{i}`` = dL/d out{i} followed by that layer's
        parameter gradients ``d{name}`` (``dW2``, ``db2``, ``dgamma1``, ...); last
        ``dinput`` = dL/dx. The gradient at layer i's input is ``dout{i-1}``
        (``dinput`` for layer 0).
        """
        _, grads, outs, douts, dinput = self._training_pass(x, y, need_input_grad=True)
        dinput = dinput.reshape(np.shape(x))  # in the shape x was handed in
        result = {f"out{i}": out for i, out in enumerate(outs)}
        for i in reversed(range(len(self.layers))):
            result[f"dout{i}"] = douts[i]
            for name in self.layers[i].grads:
                result[f"d{name}"] = grads[name]
        result["dinput"] = dinput
        return result

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer update after a training pass; returns the loss before it."""
        loss, grads = self.loss_and_grads(x, y)
        self.optimizer.step(self.params, grads)
        return loss


def network_shape(layers: list) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """One sample's input shape and ``dims`` of a resolved layer list: (D,) or the first
    layer's ``in_shape`` (C, H, W); then (prod of it, the flat output of each weight layer)."""
    first = layers[0][1]
    if "in_shape" in first:
        shape = tuple(first["in_shape"])
    else:
        shape = (next(kw["in"] for n, kw in layers if n == "linear"),)
    outs = tuple(int(np.prod(kw["out_shape"])) if "out_shape" in kw else kw["out"]
                 for n, kw in layers if n in ("linear", "conv2d"))
    return shape, (int(np.prod(shape)),) + outs
