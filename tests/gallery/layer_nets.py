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

from harness.adapt import FunctionLayers, LayerObjects, build_layers
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


def _uniform(rng, fan_in, shape, dtype):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


# ====================================================================== cs231n
class CS231nNet(FunctionLayers):
    """A layer network on cs231n's functions; cs231n's batch-norm and dropout conventions;
    the base's step, torch's SGD (for a fixed rate the same as cs231n's ``sgd_momentum``).
    Its hooks: the four batch-norm and dropout functions, and ``make_dropout_param``."""

    code_loss = staticmethod(cs.softmax_loss)
    bn_forward, bn_backward = staticmethod(cs.batchnorm_forward), staticmethod(cs.batchnorm_backward_alt)
    dropout_forward, dropout_backward = staticmethod(cs.dropout_forward), staticmethod(cs.dropout_backward)

    def kinds(self, spec):  # the running statistics: the adapter's buffers, put in bn_param
        bn_param = {"mode": "train", "eps": spec.norm_eps, "momentum": spec.bn_momentum}
        return dict(linear=(cs.affine_forward, cs.affine_backward), relu=(cs.relu_forward, cs.relu_backward),
                    batchnorm=(self.bn_forward, self.bn_backward, bn_param),
                    layernorm=(cs.layernorm_forward, cs.layernorm_backward, {"eps": spec.norm_eps}),
                    dropout=(self.dropout_forward, self.dropout_backward, self.make_dropout_param))

    def make_dropout_param(self, kw):  # cs231n's p keeps a unit, the harness's drops it
        return {"mode": "train", "p": 1 - kw["p"]}


# ====================================================================== NNFS
class NNFSNet(LayerObjects):
    """A layer network of the book's layer objects; torch's batch-norm conventions; the spec's
    loss for the book's softmax cross-entropy (the same, without its clip of the probabilities
    at 1e-7). Its hooks: the two normalisation layer classes."""

    nnh_capabilities = {"layers": ["batchnorm", "dropout"]}  # conformance's layernorm uses tanh
    mask_attr = "next_mask"
    batchnorm_class, layernorm_class = nnfs.Layer_BatchNorm, nnfs.Layer_LayerNorm

    def build(self, spec, lr, momentum, weight_decay):  # the dtype: the binding's, when it puts
        self.update_layer = nnfs.Optimizer_SGD(lr, momentum).update_params  # the book's step
        self.layers = build_layers(self.layer_list, dict(
            linear=lambda kw: nnfs.Layer_Dense(kw["in"], kw["out"]), relu=lambda kw: nnfs.Activation_ReLU(),
            dropout=lambda kw: nnfs.Layer_Dropout(kw["p"]),
            batchnorm=lambda kw: self.batchnorm_class(kw["width"], spec.bn_momentum, spec.norm_eps),
            layernorm=lambda kw: self.layernorm_class(kw["width"], spec.norm_eps)))


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


def _dropout_forward_always_on(x, dropout_param):
    """The training pass's dropout whatever the mode says: test time drops units too."""
    dropout_param["mode"] = "train"
    return cs.dropout_forward(x, dropout_param)


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

    def make_dropout_param(self, kw):
        return {"mode": "train", "p": kw["p"]}


class MaskRedrawn(CS231nNet):
    """Backward uses a freshly drawn mask, not the one the forward pass used."""

    dropout_backward = staticmethod(_dropout_backward_redrawn)


class DropoutInEval(CS231nNet):
    """Dropout left on in evaluation: forward drops units too."""

    dropout_forward = staticmethod(_dropout_forward_always_on)


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
