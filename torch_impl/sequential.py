"""A classifier on a layer list, as an ``nn.Sequential`` of torch's own modules.

It reads the same resolved network as :mod:`scratch.sequential`, plain ``(name,
kwargs)`` tuples (``linear``, ``batchnorm``, ``layernorm``, the activations,
``dropout``, ``conv2d``, ``maxpool2d``, ``avgpool2d``, ``flatten``), and has the same
members, names and modes: ``forward`` is evaluation
(``module.eval()``: running statistics, no dropout); ``loss_and_grads``, ``train_step``
and ``intermediates`` are training passes (``module.train()``), each updating the running
statistics.

Batch norm with torch's conventions (momentum 0.1 meaning r = (1 - m) r + m * batch,
the unbiased batch variance in ``running_var``) is ``nn.BatchNorm1d`` itself, and
``nn.BatchNorm2d`` after a convolution (``"spatial": True``). The other
conventions (cs231n's momentum, the biased running variance) use
:class:`ConventionBatchNorm`: it normalises with ``F.batch_norm`` on the batch statistics
without tracking them, then updates the buffers by hand under ``no_grad``.

Convolutions and pools are ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d`` and
``nn.Flatten``; a batch is (N, C, H, W), or its rows flat (N, C*H*W), reshaped in C order.

Dropout is :class:`HandedDropout`: the mask handed in for the next training pass when
there is one, else a mask drawn as ``F.dropout`` draws it (keep with probability 1 - p,
kept units scaled by 1/(1-p)) but from the network's own seeded generator, since
``F.dropout`` draws from torch's global one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_impl.losses import torch_loss
from torch_impl.layout import (batchnorm_buffers_to_canonical, canonical_to_batchnorm_buffers,
                               canonical_to_modules, layer_param_shapes,
                               modules_to_canonical)
from torch_impl.model import (LEAKY_RELU_SLOPE, OptimizerSettings, build_torch_optimizer,
                              build_torch_scheduler, clip_gradients,
                              use_deterministic_algorithms)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class HandedDropout(nn.Module):
    """Inverted dropout that uses a handed 0/1 mask for one training pass, if given."""

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__()
        self.p = float(p)
        self.generator = generator
        self.next_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        mask, self.next_mask = self.next_mask, None
        if self.p == 0.0:
            return x
        if mask is None:
            mask = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        elif mask.shape != x.shape:
            raise ValueError(f"a dropout mask must have the shape of the layer's input "
                             f"{tuple(x.shape)}, got {tuple(mask.shape)}")
        return x * (mask.to(x.dtype) * (1.0 / (1.0 - self.p)))


class ConventionBatchNorm(nn.BatchNorm1d):
    """nn.BatchNorm1d with cs231n's momentum and/or the biased running variance.

    ``new_weight`` is the weight of the batch statistic in r = (1 - w) r + w * batch.
    """

    def __init__(self, width: int, eps: float, new_weight: float, unbiased: bool):
        super().__init__(width, eps=eps, momentum=new_weight)
        self.new_weight, self.unbiased = new_weight, unbiased

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        out = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        with torch.no_grad():  # per feature over dim 0; per channel over (0, 2, 3)
            dims = (0, 2, 3) if x.dim() == 4 else (0,)
            w = self.new_weight
            self.running_mean.mul_(1 - w).add_(w * x.mean(dim=dims))
            self.running_var.mul_(1 - w).add_(w * x.var(dim=dims, unbiased=self.unbiased))
            self.num_batches_tracked.add_(1)
        return out


class ConventionBatchNorm2d(ConventionBatchNorm):
    """The same conventions on (N, C, H, W), statistics per channel (nn.BatchNorm2d's)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D input (N, C, H, W), got {x.dim()}-D")


def _batchnorm(width, eps, momentum, momentum_convention, running_var, spatial=False
               ) -> nn.Module:
    if momentum_convention not in ("torch", "cs231n"):
        raise ValueError(f"momentum_convention must be one of torch, cs231n, "
                         f"got {momentum_convention!r}")
    if running_var not in ("unbiased", "biased"):
        raise ValueError(f"running_var must be one of unbiased, biased, got {running_var!r}")
    if momentum_convention == "torch" and running_var == "unbiased":
        return (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(width, eps=eps,
                                                              momentum=momentum)
    new_weight = momentum if momentum_convention == "torch" else 1.0 - momentum
    kind = ConventionBatchNorm2d if spatial else ConventionBatchNorm
    return kind(width, eps, new_weight, running_var == "unbiased")


def _checked(values, expected: dict, dtype, error, kind: str) -> dict[str, np.ndarray]:
    """Copies of ``values`` in ``dtype``; ``error`` naming the array when they do not fit."""
    if not isinstance(values, Mapping):
        raise error(f"{kind}s must be a dict of arrays, got {type(values).__name__}")
    missing = [k for k in expected if k not in values]
    extra = sorted(k for k in values if k not in expected)
    if missing or extra:
        which = (f"{kind} '{missing[0]}' is missing" if missing
                 else f"unexpected {kind} '{extra[0]}'")
        raise error(f"{which} (expected {list(expected)})")
    out = {}
    for name, shape in expected.items():
        value = np.asarray(values[name])
        if value.dtype.kind not in "fiu":
            raise error(f"{kind} '{name}' must be numeric, got dtype {value.dtype}")
        if value.shape != tuple(shape):
            raise error(f"{kind} '{name}' must have shape {tuple(shape)}, got {value.shape}")
        out[name] = np.array(value, dtype=dtype, copy=True, order="C")
        if not np.all(np.isfinite(out[name])):
            raise error(f"{kind} '{name}' has a non-finite value")
    return out


class TorchSequential:
    """The ``Classifier`` protocol on an ``nn.Sequential`` built from a layer list.

    Parameters are those of :class:`scratch.sequential.Sequential`, plus ``device``;
    ``optimizer`` is an optimizer specification read by ``build_torch_optimizer`` (its
    ``weight_decay_in="loss"`` puts the L2 term in the loss, as ``TorchClassifier``).
    Linear layers start as ``TorchClassifier``'s for the same seed.
    """

    def __init__(self, layers, dtype="float64", seed=0, optimizer=None, device="cpu", *,
                 param_error: type[ValueError] = ValueError, loss_reduction="mean",
                 momentum=0.1, momentum_convention="torch", running_var="unbiased", eps=1e-5,
                 loss="cross_entropy", loss_outputs="mean", mse_half=False):
        use_deterministic_algorithms()
        self.spec = [(name, dict(kw)) for name, kw in layers]
        self.dtype = np.dtype(dtype)
        self.device = torch.device(device)
        self.loss_reduction = loss_reduction
        self.loss, self.loss_outputs, self.mse_half = loss, loss_outputs, bool(mse_half)
        self.param_error = param_error
        self._generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        bn = (momentum, momentum_convention, running_var)
        self.norm_conventions = dict(momentum=momentum, momentum_convention=momentum_convention,
                                     running_var=running_var, eps=eps)
        modules, self.indexed = [], []
        for name, kw in self.spec:
            module = self._module(name, kw, eps, bn)
            modules.append(module)
            if "index" in kw:
                self.indexed.append((kw["index"], module))
        self.module = nn.Sequential(*modules).to(_DTYPES[dtype])
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # as TorchClassifier: uniform in +-1/sqrt(fan_in), W then b
            for module in modules:  # a conv2d's fan_in is in * kh * kw (nn.Conv2d's default)
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    bound = 1.0 / math.sqrt(module.weight[0].numel())
                    module.weight.uniform_(-bound, bound, generator=gen)
                    module.bias.uniform_(-bound, bound, generator=gen)
        self.module.to(self.device)
        self.input_shape, self.dims = network_shape(self.spec)
        self.dropouts = [m for m in modules if isinstance(m, HandedDropout)]
        self.param_shapes = layer_param_shapes(self.spec)  # the canonical layout's copy
        self.buffer_shapes = {k: v.shape for k, v in self.get_buffers().items()}
        self.optimizer_spec = optimizer if optimizer is not None else OptimizerSettings()
        self.optimizer = build_torch_optimizer(self.optimizer_spec, self.module.parameters())
        self.scheduler = build_torch_scheduler(self.optimizer_spec, self.optimizer)
        in_loss = getattr(self.optimizer_spec, "weight_decay_in", "optimizer") == "loss"
        self._l2 = self.optimizer_spec.weight_decay if in_loss else 0.0
        self._l2_on = getattr(self.optimizer_spec, "weight_decay_on", "all")

    def _module(self, name: str, kw: dict, eps: float, bn: tuple) -> nn.Module:
        if name == "linear":
            return nn.Linear(kw["in"], kw["out"])
        if name == "conv2d":
            return nn.Conv2d(kw["in"], kw["out"], kw["kernel"], stride=kw["stride"],
                             padding=kw["padding"])
        if name == "maxpool2d":
            return nn.MaxPool2d(kw["kernel"], stride=kw["stride"])
        if name == "avgpool2d":
            return nn.AvgPool2d(kw["kernel"], stride=kw["stride"])
        if name == "flatten":
            return nn.Flatten()
        if name == "batchnorm":
            return _batchnorm(kw["width"], eps, *bn, spatial=kw.get("spatial", False))
        if name == "layernorm":
            return nn.LayerNorm(kw["width"], eps=eps)
        if name == "dropout":
            return HandedDropout(kw["p"], self._generator)
        if name == "leaky_relu":
            return nn.LeakyReLU(kw.get("slope", LEAKY_RELU_SLOPE))
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name]()
        raise ValueError(f"unknown layer {name!r}")

    # ------------------------------------------------------------- conversions
    def _x(self, x) -> torch.Tensor:
        """x as a tensor of one sample's shape: (N, C, H, W) for images (rows (N, C*H*W)
        reshaped in C order); a ValueError naming the layout otherwise."""
        x = np.asarray(x, dtype=self.dtype)
        if len(self.input_shape) == 3 and x.shape[1:] != self.input_shape:
            c, h, w = self.input_shape
            if x.ndim != 2 or x.shape[1] != c * h * w:
                raise ValueError(f"x must have the layout (N, C, H, W) = (N, {c}, {h}, {w}) "
                                 f"(or rows of {c * h * w} features), got shape {x.shape}")
            x = x.reshape((x.shape[0],) + self.input_shape)
        return torch.as_tensor(x, device=self.device)

    def _loss(self, logits: torch.Tensor, y) -> torch.Tensor:
        y = torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device)
        loss = torch_loss(logits, y, self.loss, self.loss_reduction, self.loss_outputs,
                          self.mse_half)
        if self._l2:  # 0.5 * l2 * sum ||p||^2 over every parameter, or the weights W only
            terms = []
            for _, m in self.indexed:
                if self._l2_on == "all":
                    terms += [m.weight, m.bias]
                elif isinstance(m, (nn.Linear, nn.Conv2d)):
                    terms.append(m.weight)
            penalty = sum(p.pow(2).sum() for p in terms)
            loss = loss + 0.5 * self._l2 * penalty
        return loss

    def get_params(self) -> dict[str, np.ndarray]:
        return modules_to_canonical(self.indexed)

    def set_params(self, params) -> None:
        params = _checked(params, self.param_shapes, self.dtype, self.param_error, "parameter")
        canonical_to_modules(params, self.indexed)

    def get_buffers(self) -> dict[str, np.ndarray]:
        return batchnorm_buffers_to_canonical(self.indexed)

    def set_buffers(self, buffers) -> None:
        buffers = _checked(buffers, self.buffer_shapes, self.dtype, self.param_error, "buffer")
        canonical_to_batchnorm_buffers(buffers, self.indexed)

    def set_dropout_masks(self, masks) -> None:
        """Masks for the next training pass only, one 0/1 array (N, D) per dropout layer."""
        masks = list(masks)
        if len(masks) != len(self.dropouts):
            raise ValueError(f"set_dropout_masks needs one mask per dropout layer "
                             f"({len(self.dropouts)}), got {len(masks)}")
        tensors = []
        for i, mask in enumerate(masks):
            mask = np.asarray(mask)
            if mask.ndim != 2 or not np.all((mask == 0) | (mask == 1)):
                raise ValueError(f"dropout mask {i} must be a 2-D array of 0s and 1s, "
                                 f"got shape {mask.shape}")
            tensors.append(torch.as_tensor(mask.astype(self.dtype), device=self.device))
        for layer, mask in zip(self.dropouts, tensors):
            layer.next_mask = mask

    # ------------------------------------------------------------------ passes
    def forward(self, x) -> np.ndarray:
        """Evaluation: running statistics, no dropout."""
        self.module.eval()
        with torch.no_grad():
            return self.module(self._x(x)).cpu().numpy()

    def loss_and_grads(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        self.module.train()
        self.module.zero_grad(set_to_none=True)
        loss = self._loss(self.module(self._x(x)), y)
        loss.backward()
        grads = modules_to_canonical(self.indexed, grad=True)
        self.module.zero_grad(set_to_none=True)
        return float(loss.item()), grads

    def intermediates(self, x, y) -> dict[str, np.ndarray]:
        """The names and order of :meth:`scratch.sequential.Sequential.intermediates`."""
        self.module.train()
        self.module.zero_grad(set_to_none=True)
        h = self._x(x).requires_grad_(True)
        inputs, outs = h, []
        for module in self.module:
            h = module(h)
            h.retain_grad()
            outs.append(h)
        self._loss(h, y).backward()
        grads = modules_to_canonical(self.indexed, grad=True)
        self.module.zero_grad(set_to_none=True)
        result = {f"out{i}": o.detach().cpu().numpy().copy() for i, o in enumerate(outs)}
        index_of = {id(m): k for k, m in self.indexed}
        for i in reversed(range(len(outs))):
            result[f"dout{i}"] = outs[i].grad.detach().cpu().numpy().copy()
            module = self.module[i]
            if id(module) in index_of:
                k = index_of[id(module)]
                names = ((f"W{k}", f"b{k}") if isinstance(module, (nn.Linear, nn.Conv2d))
                         else (f"gamma{k}", f"beta{k}"))
                for name in names:
                    result[f"d{name}"] = grads[name]
        result["dinput"] = inputs.grad.detach().cpu().numpy().reshape(np.shape(x)).copy()
        return result

    def train_step(self, x, y) -> float:
        self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.module(self._x(x)), y)
        loss.backward()
        clip_gradients(self.optimizer_spec, self.module.parameters())
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.item())


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
