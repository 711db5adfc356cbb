"""The same MLP with torch.nn, autograd and torch.optim.

Deterministic: building a :class:`TorchClassifier` turns on
``torch.use_deterministic_algorithms(True)`` (process-wide), so that an operation
without a deterministic implementation raises instead of varying from run to run;
on CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for that, set here (``:4096:8``)
unless the environment sets it. On the CPU every operation used here is
deterministic for a given thread count anyway.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_impl.losses import torch_loss

from torch_impl.layout import canonical_to_linear, linear_to_canonical, validate_params

#: the negative slope of leaky_relu (the scratch backend and the harness use the same)
LEAKY_RELU_SLOPE = 0.01

#: the hidden activations by name, as torch functions
ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=LEAKY_RELU_SLOPE),
    "gelu": F.gelu,  # exact erf form (approximate="none")
}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# before the first cuBLAS handle exists; deterministic cuBLAS needs a fixed workspace
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def use_deterministic_algorithms() -> None:
    """Deterministic torch: the same inputs give the same bits, run after run."""
    if not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True)


class TorchMLP(nn.Module):
    """nn.Linear layers with an activation between them; the last layer gives logits."""

    def __init__(self, dims: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Logits of shape (N, d_L); with ``keep``, appends each (z, a) as it goes."""
        h = x
        for i, layer in enumerate(self.layers):
            z = layer(h)
            if i == len(self.layers) - 1:
                if keep is not None:
                    keep.append((z, None))
                return z
            h = self.act(z)
            if keep is not None:
                keep.append((z, h))
        return h


@dataclass(frozen=True)
class OptimizerSettings:
    """What :func:`build_torch_optimizer` reads off an optimizer specification.

    Any object with these attributes will do (the harness passes its ``OptimizerSpec``);
    the defaults are plain SGD with learning rate 0.01.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


def _conventions(spec) -> tuple[str, str]:
    """``spec``'s (weight_decay_in, weight_decay_on), torch.optim's when it names none."""
    return (getattr(spec, "weight_decay_in", "optimizer"),
            getattr(spec, "weight_decay_on", "all"))


def _is_bias(p: torch.Tensor) -> bool:
    return p.ndim == 1  # nn.Linear: weight (out, in), bias (out,)


def _decay_groups(params, weight_decay: float, on: str) -> list[dict]:
    """torch.optim param groups: every parameter decayed (``on="all"``), or the weights
    with ``weight_decay`` and the biases (1-D) with 0 (``on="weights"``)."""
    params = list(params)
    if on == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if not _is_bias(p)], "weight_decay": weight_decay},
            {"params": [p for p in params if _is_bias(p)], "weight_decay": 0.0}]


def _sgd(spec, groups):
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, dampening=0.0,
                           nesterov=spec.nesterov)


def _adam(cls):
    return lambda spec, groups: cls(groups, lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps)


def _rmsprop(spec, groups):
    return torch.optim.RMSprop(groups, lr=spec.lr, alpha=getattr(spec, "alpha", 0.99),
                               eps=spec.eps, momentum=spec.momentum,
                               centered=getattr(spec, "centered", False))


def _adagrad(spec, groups):
    return torch.optim.Adagrad(
        groups, lr=spec.lr, lr_decay=getattr(spec, "lr_decay", 0.0), eps=spec.eps,
        initial_accumulator_value=getattr(spec, "initial_accumulator_value", 0.0))


#: torch.optim's optimizer for each name, built from a spec and param groups
TORCH_OPTIMIZERS = {
    "sgd": _sgd,
    "adam": _adam(torch.optim.Adam),
    "adamw": _adam(torch.optim.AdamW),
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
}


def build_torch_optimizer(spec, params) -> torch.optim.Optimizer:
    """torch.optim's own optimizer for ``spec`` over ``params`` (weights 2-D, biases 1-D).

    With ``weight_decay_in="loss"`` the optimizer decays nothing (the model adds the L2
    term to its loss); with ``weight_decay_on="weights"`` the biases go in a param group
    of their own, with weight decay 0.
    """
    where, on = _conventions(spec)
    weight_decay = spec.weight_decay if where == "optimizer" else 0.0
    groups = _decay_groups(params, weight_decay, on)
    build = TORCH_OPTIMIZERS.get(spec.name)
    if build is None:
        raise ValueError(f"unknown optimizer {spec.name!r}; choose one of "
                         f"{', '.join(TORCH_OPTIMIZERS)}")
    return build(spec, groups)


def _inverse_time(optimizer, spec):
    decay = spec.decay
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + decay * t))


_sched = torch.optim.lr_scheduler
#: torch's scheduler for each ``lr_schedule`` name, built from an optimizer and a spec
TORCH_SCHEDULES = {
    "none": lambda optimizer, spec: None,
    "step": lambda optimizer, spec: _sched.StepLR(optimizer, step_size=spec.step_size,
                                                  gamma=spec.gamma),
    "exponential": lambda optimizer, spec: _sched.ExponentialLR(optimizer, gamma=spec.gamma),
    "cosine": lambda optimizer, spec: _sched.CosineAnnealingLR(optimizer, T_max=spec.t_max,
                                                               eta_min=spec.eta_min),
    "inverse_time": _inverse_time,
}


def build_torch_scheduler(spec, optimizer):
    """torch.optim.lr_scheduler for ``spec.lr_schedule`` (None for "none" or no such field).

    step: StepLR(step_size, gamma); exponential: ExponentialLR(gamma); cosine:
    CosineAnnealingLR(t_max, eta_min); inverse_time: LambdaLR with 1 / (1 + decay * t).
    Stepped after every optimizer step, so step t (1-based) uses lr(t - 1).
    """
    name = getattr(spec, "lr_schedule", "none")
    build = TORCH_SCHEDULES.get(name)
    if build is None:
        raise ValueError(f"unknown lr_schedule {name!r}; choose one of "
                         f"{', '.join(TORCH_SCHEDULES)}")
    return build(optimizer, spec)


def clip_gradients(spec, params) -> None:
    """torch.nn.utils.clip_grad_value_ then clip_grad_norm_, where ``spec`` sets them.

    ``params`` is an iterable of parameters, read only when ``spec`` clips.
    """
    value = getattr(spec, "clip_grad_value", None)
    norm = getattr(spec, "clip_grad_norm", None)
    if value is None and norm is None:
        return
    params = list(params)
    if value is not None:
        torch.nn.utils.clip_grad_value_(params, value)
    if norm is not None:
        torch.nn.utils.clip_grad_norm_(params, norm)


class TorchClassifier:
    """``Classifier`` protocol around :class:`TorchMLP` and a torch.optim optimizer.

    Parameters
    ----------
    spec : model specification
        Any object with ``dims`` (tuple of int), ``activation`` (a key of
        :data:`ACTIVATIONS`), ``dtype`` (``"float32"`` or ``"float64"``) and ``seed``
        (the harness passes its ``ModelSpec``).
    optimizer : optimizer specification, optional
        Read as :func:`build_torch_optimizer` says; defaults to
        :class:`OptimizerSettings` (plain SGD, lr 0.01).
    device : str
        ``"cpu"`` or ``"cuda"``; NumPy arrays go in and come out either way.
    param_error : subclass of ValueError, optional
        What ``set_params`` raises for a dictionary that does not fit; ``ValueError``.
    """

    def __init__(self, spec, optimizer=None, device: str = "cpu", *,
                 param_error: type[ValueError] = ValueError):
        use_deterministic_algorithms()
        self.spec = spec
        self.dims = spec.dims
        self.dtype = np.dtype(spec.dtype)
        self.device = torch.device(device)
        self._tdtype = _DTYPES[spec.dtype]
        self.module = TorchMLP(spec.dims, spec.activation).to(self._tdtype)
        gen = torch.Generator().manual_seed(spec.seed)
        with torch.no_grad():  # nn.Linear's default: uniform in +-1/sqrt(fan_in)
            for layer in self.module.layers:
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
        self.module.to(self.device)
        self.optimizer_spec = optimizer if optimizer is not None else OptimizerSettings()
        self.param_error = param_error
        self.optimizer = build_torch_optimizer(self.optimizer_spec, self.module.parameters())
        self.scheduler = build_torch_scheduler(self.optimizer_spec, self.optimizer)
        self.loss_reduction = getattr(spec, "loss_reduction", "mean")
        self.loss = getattr(spec, "loss", "cross_entropy")
        self.loss_outputs = getattr(spec, "loss_outputs", "mean")
        self.mse_half = bool(getattr(spec, "mse_half", False))
        where, self._l2_on = _conventions(self.optimizer_spec)
        self._l2 = self.optimizer_spec.weight_decay if where == "loss" else 0.0

    def _loss(self, logits: torch.Tensor, y) -> torch.Tensor:
        """The spec's loss (cross-entropy by default) reduced as it says, plus the L2 term
        of weight decay in the loss (``0.5 * weight_decay * sum ||p||^2``, biases only
        with ``on="all"``)."""
        loss = torch_loss(logits, self._y(y), self.loss, self.loss_reduction,
                          self.loss_outputs, self.mse_half)
        if self._l2:
            penalty = sum(p.pow(2).sum() for p in self.module.parameters()
                          if self._l2_on == "all" or not _is_bias(p))
            loss = loss + 0.5 * self._l2 * penalty
        return loss

    def _x(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=self.dtype), device=self.device)

    def _y(self, y) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device)

    def get_params(self) -> dict[str, np.ndarray]:
        return linear_to_canonical(self.module.layers)

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        params = validate_params(params, self.dims, self.dtype, self.param_error)
        canonical_to_linear(params, self.module.layers)

    def forward(self, x) -> np.ndarray:
        with torch.no_grad():
            return self.module(self._x(x)).cpu().numpy()

    def loss_and_grads(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        self.module.zero_grad(set_to_none=True)
        loss = self._loss(self.module(self._x(x)), y)
        loss.backward()
        grads = linear_to_canonical(self.module.layers, grad=True)
        self.module.zero_grad(set_to_none=True)
        return float(loss.item()), grads

    def intermediates(self, x, y) -> dict[str, np.ndarray]:
        """Named intermediates, the same names and order as the scratch backend's."""
        keep: list = []
        self.module.zero_grad(set_to_none=True)
        logits = self.module(self._x(x), keep=keep)
        zs = [z for z, _ in keep]
        for z in zs:
            z.retain_grad()
        self._loss(logits, y).backward()
        grads = linear_to_canonical(self.module.layers, grad=True)
        self.module.zero_grad(set_to_none=True)
        out: dict[str, np.ndarray] = {}
        for i, (z, a) in enumerate(keep):
            out[f"z{i}"] = z.detach().cpu().numpy()
            if a is not None:
                out[f"a{i}"] = a.detach().cpu().numpy()
        for i in reversed(range(len(zs))):
            out[f"dz{i}"] = zs[i].grad.detach().cpu().numpy()
            out[f"dW{i}"] = grads[f"W{i}"]
            out[f"db{i}"] = grads[f"b{i}"]
        return out

    def train_step(self, x, y) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.module(self._x(x)), y)
        loss.backward()
        clip_gradients(self.optimizer_spec, self.module.parameters())
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.item())
