"""Layer networks written the way course code and books write them, and their bugs.

Each is built as ``Cls(spec, optimizer)`` and reads its layers from
``spec.network.plain()``; plain SGD (with momentum) from ``optimizer.lr`` and
``optimizer.momentum``. Two correct ones:

* :class:`CS231nNet`: cs231n's module-level functions (:mod:`tests.gallery.cs231n_layers`),
  so cs231n's conventions: ``spec.bn_momentum`` weighs the old running value, the
  running variance is biased. It passes with ``bn_momentum=0.9,
  bn_momentum_convention="cs231n", bn_running_var="biased"``.
* :class:`NNFSNet`: the book's layer objects (:mod:`tests.gallery.nnfs_layers`),
  torch's conventions; it passes with the defaults.

Every other class is one of them with one thing done wrong (its docstring says what);
each takes the harness's dropout masks through ``set_dropout_masks``.
"""

from __future__ import annotations

import numpy as np

from harness.adapt import Adapter, bind
from tests.gallery import cs231n_layers as cs
from tests.gallery import nnfs_layers as nnfs


def _check_optimizer(optimizer) -> None:
    refused = [what for what, on in (
        (optimizer.name, optimizer.name != "sgd"), ("nesterov", optimizer.nesterov),
        ("weight decay in the loss",
         optimizer.weight_decay and optimizer.weight_decay_in != "optimizer"),
        (f"the {optimizer.lr_schedule} schedule", optimizer.lr_schedule != "none"),
        ("gradient clipping", optimizer.clip_grad_norm is not None
         or optimizer.clip_grad_value is not None)) if on]
    if refused:
        raise ValueError(f"this network has plain sgd only (momentum, weight decay in the "
                         f"optimizer): not {', '.join(refused)}")


def _decay(optimizer, key: str) -> float:
    """torch's weight decay, added to the gradient: on every parameter or the weights only."""
    if optimizer.weight_decay_on == "weights" and not key.startswith("W"):
        return 0.0
    return optimizer.weight_decay


def _check_layers(layers, kinds) -> None:
    for name, _ in layers:
        if name not in kinds:
            raise ValueError(f"this network has no {name} layer (it has {', '.join(kinds)})")


def _uniform(rng, fan_in, shape, dtype):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


# ====================================================================== cs231n
class CS231nNet(Adapter):
    """A layer network on cs231n's functions; cs231n's batch-norm and dropout conventions."""

    KINDS = ("linear", "batchnorm", "layernorm", "relu", "dropout")
    param_paths = dict(W="params['W{k}']", b="params['b{k}']", gamma="params['gamma{k}']",
                  beta="params['beta{k}']")
    buffer_paths = dict(running_mean="bn_params[{k}]['running_mean']",
                   running_var="bn_params[{k}]['running_var']")
    mask_path = "dropout_params[{i}]['mask']"
    settings = {"lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay"}
    decay_on = ("all", "weights")

    bn_forward = staticmethod(cs.batchnorm_forward)
    bn_backward = staticmethod(cs.batchnorm_backward_alt)
    dropout_forward = staticmethod(cs.dropout_forward)
    dropout_backward = staticmethod(cs.dropout_backward)

    def build(self, spec, lr, momentum, weight_decay):
        _check_layers(self.layer_list, self.KINDS)
        self.layers, self.lr, self.momentum = self.layer_list, lr, momentum
        np.random.seed(spec.seed)  # as the assignments' notebooks do
        self.params, self.bn_params, self.ln_params, self.velocity = {}, {}, {}, {}
        self.dropout_params = []
        for name, kw in self.layers:
            if name == "batchnorm":
                self.bn_params[kw["index"]] = self.make_bn_param(spec, kw["width"])
            elif name == "layernorm":
                self.ln_params[kw["index"]] = {"eps": spec.norm_eps}
            elif name == "dropout":
                self.dropout_params.append(self.make_dropout_param(kw["p"]))

    def make_bn_param(self, spec, d):
        """cs231n's bn_param: ``momentum`` weighs the old running value."""
        return {"mode": "train", "eps": spec.norm_eps, "momentum": spec.bn_momentum,
                "running_mean": np.zeros(d, self.dtype), "running_var": np.ones(d, self.dtype)}

    def make_dropout_param(self, p):
        """cs231n's p keeps a unit; the harness's p drops it: keep = 1 - p."""
        return {"mode": "train", "p": 1 - p}

    # ------------------------------------------------------------ passes
    def layer_forward(self, name, kw, x, mode, dropouts):
        if name == "linear":
            k = kw["index"]
            return cs.affine_forward(x, self.params[f"W{k}"], self.params[f"b{k}"])
        if name == "relu":
            return cs.relu_forward(x)
        if name == "batchnorm":
            k = kw["index"]
            bn_param = self.bn_params[k]
            bn_param["mode"] = mode
            return self.bn_forward(x, self.params[f"gamma{k}"], self.params[f"beta{k}"],
                                   bn_param)
        if name == "layernorm":
            k = kw["index"]
            return self.ln_forward(x, self.params[f"gamma{k}"], self.params[f"beta{k}"],
                                   self.ln_params[k])
        dropout_param = next(dropouts)
        dropout_param["mode"] = mode
        return self.dropout_forward(x, dropout_param)

    def ln_forward(self, x, gamma, beta, ln_param):
        return cs.layernorm_forward(x, gamma, beta, ln_param)

    def layer_backward(self, name, kw, dout, cache, grads):
        k = kw.get("index")
        if name == "linear":
            dx, grads[f"W{k}"], grads[f"b{k}"] = cs.affine_backward(dout, cache)
        elif name == "relu":
            dx = cs.relu_backward(dout, cache)
        elif name == "batchnorm":
            dx, grads[f"gamma{k}"], grads[f"beta{k}"] = self.bn_backward(dout, cache)
        elif name == "layernorm":
            dx, grads[f"gamma{k}"], grads[f"beta{k}"] = cs.layernorm_backward(dout, cache)
        else:
            dx = self.dropout_backward(dout, cache)
        return dx

    def _forward(self, x, mode):
        out, caches = np.asarray(x, dtype=self.dtype), []
        dropouts = iter(self.dropout_params)
        for name, kw in self.layers:
            out, cache = self.layer_forward(name, kw, out, mode, dropouts)
            caches.append(cache)
        return out, caches

    def logits(self, x):
        return self._forward(x, "test")[0]

    def backward(self, x, y):
        scores, caches = self._forward(x, "train")
        loss, dout = cs.softmax_loss(scores, y)
        grads = {}
        for (name, kw), cache in zip(reversed(self.layers), reversed(caches)):
            dout = self.layer_backward(name, kw, dout, cache, grads)
        return float(loss), grads

    def step(self, x, y):
        loss, grads = self.loss_and_grads_in_code_form(x, y)
        wd = self.optimizer.weight_decay
        for k, w in self.params.items():  # cs231n's sgd_momentum, torch's weight decay
            v = self.momentum * self.velocity.get(k, 0.0) - self.lr * (
                grads[k] + wd * self._decays(k) * w)
            self.velocity[k] = v
            self.params[k] = w + v
        return loss


# ====================================================================== NNFS
class NNFSNet(Adapter):
    """A layer network of the book's layer objects; torch's batch-norm conventions."""

    KINDS = ("linear", "batchnorm", "layernorm", "relu", "dropout")
    nnh_capabilities = {"layers": ["batchnorm", "dropout"]}  # conformance's layernorm uses tanh
    _at = "objects[{pos}]."
    param_paths = dict(W=_at + "weights", b=_at + "biases", gamma=_at + "gamma", beta=_at + "beta")
    grad_paths = dict(W=_at + "dweights", b=_at + "dbiases", gamma=_at + "dgamma", beta=_at + "dbeta")
    buffer_paths = dict(running_mean=_at + "running_mean", running_var=_at + "running_var")
    mask_path = _at + "next_mask"
    settings = {"lr": "learning_rate", "momentum": "momentum", "weight_decay": "weight_decay"}
    decay_on = ("all", "weights")

    def build(self, spec, learning_rate, momentum, weight_decay):
        _check_layers(self.layer_list, self.KINDS)
        np.random.seed(spec.seed)
        self.objects = [self.make_layer(name, kw, spec) for name, kw in self.layer_list]
        self.loss_activation = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
        self.sgd = nnfs.Optimizer_SGD(learning_rate=learning_rate, momentum=momentum)

    def make_layer(self, name, kw, spec):
        if name == "linear":
            return nnfs.Layer_Dense(kw["in"], kw["out"], self.dtype)
        if name == "relu":
            return nnfs.Activation_ReLU()
        if name == "dropout":
            return self.dropout_class(kw["p"])
        if name == "batchnorm":
            return self.batchnorm_class(kw["width"], momentum=spec.bn_momentum,
                                        eps=spec.norm_eps, dtype=self.dtype)
        return self.layernorm_class(kw["width"], eps=spec.norm_eps, dtype=self.dtype)

    dropout_class = nnfs.Layer_Dropout
    batchnorm_class = nnfs.Layer_BatchNorm
    layernorm_class = nnfs.Layer_LayerNorm

    def logits(self, x, training=False):
        for layer in self.objects:
            layer.forward(x, training=training)
            x = layer.output
        return x

    def backward(self, x, y):
        loss = self.loss_activation.forward(self.logits(x, training=True), y)
        self.loss_activation.backward(self.loss_activation.output, y)
        dvalues = self.loss_activation.dinputs
        for layer in reversed(self.objects):
            layer.backward(dvalues)
            dvalues = layer.dinputs
        return loss

    def step(self, x, y):  # torch's weight decay into the book's gradients, the book's step
        loss, grads = self.loss_and_grads_in_code_form(x, y)
        wd, params = self.optimizer.weight_decay, self.get_params()
        bind(self.spec, **self.grad_paths).put(self, {k: g + wd * self._decays(k) * params[k]
                                                 for k, g in grads.items()})
        for layer in self.objects:
            if hasattr(layer, "weights") or hasattr(layer, "gamma"):
                names = ("weights", "biases") if hasattr(layer, "weights") else ("gamma", "beta")
                self.sgd.update_params(layer, names)
        return loss


# ====================================================================== cs231n's bugs
def _dropout_forward_not_inverted(x, dropout_param):
    """Train: x * mask, the kept units unscaled; test: x * p, scaled at test time instead."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    mask = None
    if mode == "train":
        keep = dropout_param.pop("mask", None)
        if keep is None:
            keep = np.random.rand(*x.shape) < p
        mask = np.asarray(keep).astype(x.dtype)
        out = x * mask
    else:
        out = x * x.dtype.type(p)
    return out, (dropout_param, mask)


def _dropout_backward_redrawn(dout, cache):
    """Backward draws a fresh mask instead of using the forward pass's."""
    dropout_param, _ = cache
    if dropout_param["mode"] != "train":
        return dout
    p = dropout_param["p"]
    mask = ((np.random.rand(*dout.shape) < p) / p).astype(dout.dtype)
    return dout * mask


def _batchnorm_backward_missing_term(dout, cache):
    """The compact form without its last term, - xhat * sum(dxhat * xhat)."""
    x_hat, std, gamma = cache
    N = dout.shape[0]
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx_hat = dout * gamma
    dx = (N * dx_hat - dx_hat.sum(axis=0)) / (N * std)
    return dx, dgamma, dbeta


class DropoutNotInverted(CS231nNet):
    """Dropout not inverted: training keeps units unscaled, test time scales by 1 - p."""

    dropout_forward = staticmethod(_dropout_forward_not_inverted)


class KeepAsDrop(CS231nNet):
    """The harness's p (the drop probability) handed to cs231n's dropout as its keep one."""

    def make_dropout_param(self, p):
        return {"mode": "train", "p": p}


class MaskRedrawn(CS231nNet):
    """Backward uses a freshly drawn mask, not the one the forward pass used."""

    dropout_backward = staticmethod(_dropout_backward_redrawn)


class DropoutInEval(CS231nNet):
    """Dropout left on in evaluation: forward drops units too."""

    def layer_forward(self, name, kw, x, mode, dropouts):
        if name == "dropout":
            mode = "train"
        return super().layer_forward(name, kw, x, mode, dropouts)


class BatchNormBackwardMissingTerm(CS231nNet):
    """The classic batch-norm backward bug: dx without its mean-of-(dxhat * xhat) term."""

    bn_backward = staticmethod(_batchnorm_backward_missing_term)


# ====================================================================== NNFS's bugs
class _BiasedVarBatchNorm(nnfs.Layer_BatchNorm):
    def update_running(self, mean, var, n):
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mean
        self.running_var = (1 - m) * self.running_var + m * var  # biased, no N / (N - 1)


class _InvertedMomentumBatchNorm(nnfs.Layer_BatchNorm):
    def update_running(self, mean, var, n):
        m = self.momentum  # weighs the old value here, where torch's weighs the new batch
        self.running_mean = m * self.running_mean + (1 - m) * mean
        self.running_var = m * self.running_var + (1 - m) * var * n / (n - 1)


class _EpsOutsideBatchNorm(nnfs.Layer_BatchNorm):
    def normalise(self, inputs, mean, var):
        self.std = np.sqrt(var) + self.eps
        return (inputs - mean) / self.std


class _RowBatchNorm(nnfs.Layer_BatchNorm):
    """Training normalises each row over its features (axis=1); the running statistics
    are still the batch's per feature."""

    def forward(self, inputs, training=True):
        if not training:
            return super().forward(inputs, training)
        self.update_running(*self.batch_stats(inputs), len(inputs))
        mean = inputs.mean(axis=1, keepdims=True)
        var = inputs.var(axis=1, keepdims=True)
        self.training = True
        self.xhat = self.normalise(inputs, mean, var)
        self.output = self.gamma * self.xhat + self.beta

    def dinputs_from(self, dxhat, n):
        d = dxhat.shape[1]
        return (d * dxhat - dxhat.sum(axis=1, keepdims=True)
                - self.xhat * (dxhat * self.xhat).sum(axis=1, keepdims=True)) / (d * self.std)


class _BatchLayerNorm(nnfs.Layer_LayerNorm):
    axis = 0  # over the batch, where layer norm takes each row's features


class _EvalUpdatesBatchNorm(nnfs.Layer_BatchNorm):
    def forward(self, inputs, training=True):
        if not training:  # evaluation moves the running statistics too
            self.update_running(*self.batch_stats(inputs), len(inputs))
        super().forward(inputs, training)


class BiasedRunningVar(NNFSNet):
    """The biased batch variance in running_var, under torch's conventions."""

    batchnorm_class = _BiasedVarBatchNorm


class InvertedMomentum(NNFSNet):
    """The momentum where 1 - momentum belongs: running = m * running + (1 - m) * batch."""

    batchnorm_class = _InvertedMomentumBatchNorm


class EpsOutsideRoot(NNFSNet):
    """xhat = (x - mu) / (sqrt(var) + eps): eps outside the square root."""

    batchnorm_class = _EpsOutsideBatchNorm


class BatchNormWrongAxis(NNFSNet):
    """Batch norm's statistics over each row's features (axis=1) in training."""

    batchnorm_class = _RowBatchNorm


class LayerNormOverBatch(NNFSNet):
    """Layer norm's statistics over the batch (axis=0)."""

    layernorm_class = _BatchLayerNorm


class RunningStatsInEval(NNFSNet):
    """forward (evaluation) updates the running statistics with the batch it sees."""

    batchnorm_class = _EvalUpdatesBatchNorm
