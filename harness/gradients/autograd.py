"""A model's gradients against torch.autograd, two ways.

1. :func:`compare_with_autograd` recomputes the loss from the model's own parameters
   with plain torch operations (``z = a @ W + b``, the activation, ``F.cross_entropy``
   reduced over the batch as the model says, plus its L2 term ``0.5 * l2 * sum ||p||^2``
   when its weight decay sits in the loss; :func:`harness.model.conventions.loss_conventions`)
   and lets ``torch.autograd`` differentiate it; the model's logits, loss and
   gradients are compared with those at the default tolerances of
   :mod:`harness.compare.equivalence`. When the model exposes ``intermediates``, the first
   layer and quantity where it parts from autograd is named as well.

2. :func:`torch_gradcheck` wraps the model's forward and backward
   (``loss_and_grads``) in a :class:`torch.autograd.Function`, :class:`ClassifierLoss`,
   and runs ``torch.autograd.gradcheck`` on it: torch's own finite-difference checker
   then signs off on the hand-written backward pass.

Both work on any ``Classifier`` (the scratch MLP above all); the first needs to know
the hidden activation (``model.activation``, ``model.spec.activation`` or the
``activation`` argument).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.autograd.gradcheck import GradcheckError

from harness.compare.equivalence import (
    EquivalenceReport, compare_dicts, model_dtype, resolve_tolerances, validate_batch,
)
from harness.compare.closeness import compare
from harness.model.conventions import LossConventions, activation_of, loss_conventions
from harness.errors import ConfigError
from harness.diagnose.localize import first_divergence, intermediate_order, ordered_intermediates
from harness.model.layer_spec import layer_list
from harness.model.masks import find_masks, held_masks, unwrap
from harness.model.precision import float64_copy
from harness.model.protocol import ExposesIntermediates
from harness.model.registry import check_protocol, torch_activation, torch_loss_function


def autograd_pass(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                  activation: str, conventions: LossConventions | None = None
                  ) -> tuple[float, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Loss, logits, gradients and intermediates of the canonical MLP by torch.autograd.

    Parameters
    ----------
    params : dict of arrays, canonical layout (``W{i}`` (d_i, d_{i+1}), ``b{i}``)
    x : ndarray (N, d_0), y : ndarray of int (N,)
    activation : str, one of relu, tanh, sigmoid, leaky_relu, gelu
    conventions : LossConventions, optional
        The loss's reduction over the batch and L2 term; default: the mean, no L2 term.

    Returns
    -------
    loss, logits, grads (canonical names), intermediates (names as
    :class:`harness.model.protocol.ExposesIntermediates`), all NumPy in the parameters' dtype.
    """
    act = torch_activation(activation)  # the torch backend's own (ConfigError if unknown)
    tensors = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    dtype = tensors["W0"].dtype
    n_layers = sum(1 for k in params if k.startswith("W"))
    h = torch.as_tensor(np.asarray(x)).to(dtype)
    zs, acts = [], []
    for i in range(n_layers):
        z = h @ tensors[f"W{i}"] + tensors[f"b{i}"]
        z.retain_grad()
        zs.append(z)
        if i < n_layers - 1:
            h = act(z)
            acts.append(h)
    conv = conventions or LossConventions()
    loss = torch_loss_function()(zs[-1], torch.as_tensor(np.asarray(y, dtype=np.int64)),
                                 conv.loss, conv.loss_reduction, conv.loss_outputs,
                                 conv.mse_half)
    penalised = [t for k, t in tensors.items() if conv.penalised(k)]
    if penalised:
        loss = loss + 0.5 * conv.l2 * sum(torch.sum(t * t) for t in penalised)
    loss.backward()
    grads = {k: t.grad.detach().numpy().copy() for k, t in tensors.items()}

    def numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy().copy()

    inter = ordered_intermediates([numpy(z) for z in zs], [numpy(a) for a in acts],
                                  [numpy(z.grad) for z in zs], grads)
    return float(loss.item()), numpy(zs[-1]), grads, inter


def compare_with_autograd(model, x, y, *, activation: str | None = None,
                          rtol: float | None = None, atol: float | None = None,
                          name: str | None = None) -> EquivalenceReport:
    """Compare ``model``'s logits, loss and gradients with torch.autograd's on its parameters.

    Parameters
    ----------
    model : Classifier
    x : ndarray (N, d_0), y : ndarray of int (N,)
    activation : str, optional
        The hidden activation; read from the model when not given. The loss's
        conventions (reduction, L2 term) are read from the model
        (:func:`harness.model.conventions.loss_conventions`).
    rtol, atol : float, optional
        Both or neither; defaults by the model's dtype
        (:data:`harness.compare.equivalence.DEFAULT_TOLERANCES`).
    name : str, optional
        The model's name in the report.

    Returns
    -------
    EquivalenceReport
        Reference ``torch.autograd``; rows ``logits``, ``loss`` and ``grads[...]``;
        ``divergence`` names the first differing intermediate when the model exposes
        them and something failed. The model is not changed.
    """
    name = name or type(unwrap(model)).__name__
    check_protocol(model, name)
    layers = layer_list(model)
    if layers is not None:
        return _compare_layers(model, layers, x, y, rtol=rtol, atol=atol, name=name)
    activation = activation or activation_of(model)
    if activation is None:
        raise ConfigError(f"cannot tell the hidden activation of {name}; pass `activation`")
    dims = tuple(model.dims)
    x, y = validate_batch(x, y, dims, model)
    dtype = model_dtype(model)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)
    x = x.astype(dtype, copy=False)
    params = model.get_params()
    loss_t, logits_t, grads_t, inter_t = autograd_pass(params, x, y, activation,
                                                       loss_conventions(model))
    loss_m, grads_m = model.loss_and_grads(x, y)
    rows = [compare("logits", model.forward(x), logits_t, rtol=rtol, atol=atol),
            compare("loss", loss_m, loss_t, rtol=rtol, atol=atol)]
    rows.extend(compare_dicts("grads", grads_m, grads_t, rtol=rtol, atol=atol))
    divergence, notes = None, []
    if not all(r.passed for r in rows):
        if isinstance(model, ExposesIntermediates):
            divergence = first_divergence(inter_t, model.intermediates(x, y), rtol=rtol,
                                          atol=atol, order=intermediate_order(dims))
            if divergence is not None:
                divergence["message"] = (f"{name} parts from torch.autograd at "
                                         f"{divergence['message']}")
            else:
                notes.append("every intermediate agrees with torch.autograd; the difference "
                             "is in what loss_and_grads or forward return")
        else:
            notes.append(f"no layer-level localisation: {name} does not implement "
                         f"intermediates(x, y); the parameter-level verdict above stands")
    return EquivalenceReport(rows, rtol, atol, dtype.name, "torch.autograd", name,
                             divergence=divergence, notes=notes)


def _norm_conventions(model) -> dict:
    """The batch-norm conventions ``model`` names (``norm_conventions``, or a ModelSpec's
    fields in ``spec``), torch's defaults otherwise."""
    own = getattr(model, "norm_conventions", None)
    if isinstance(own, dict):
        return dict(own)
    spec = getattr(model, "model_spec", None)
    if spec is not None and hasattr(spec, "bn_momentum"):
        return dict(momentum=spec.bn_momentum, momentum_convention=spec.bn_momentum_convention,
                    running_var=spec.bn_running_var, eps=spec.norm_eps)
    return {}


def _compare_layers(model, layers, x, y, *, rtol, atol, name: str) -> EquivalenceReport:
    """:func:`compare_with_autograd` for a layer network: torch's own modules on the same
    layers, parameters, running statistics and dropout masks, differentiated by autograd."""
    from harness.model.masks import HandedMasks
    from harness.model.registry import torch_layer_twin
    from harness.model.transfer import copy_buffers

    x, y = validate_batch(x, y, tuple(model.dims), model)
    dtype = model_dtype(model)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)
    x = x.astype(dtype, copy=False)
    conv = loss_conventions(model)
    twin = torch_layer_twin(layers, dtype.name, loss_reduction=conv.loss_reduction, l2=conv.l2,
                            l2_on=conv.l2_on, norm_conventions=_norm_conventions(model),
                            loss=dict(loss=conv.loss, loss_outputs=conv.loss_outputs,
                                      mse_half=conv.mse_half))
    twin.set_params(model.get_params())
    buffers = model.get_buffers() if callable(getattr(model, "get_buffers", None)) else None
    copy_buffers(model, twin)
    handed = find_masks(model)
    if handed is not None:  # the model's next masks, for the twin too
        twin = HandedMasks(twin, handed.layout, 0)
        twin._rng.bit_generator.state = handed._rng.bit_generator.state
    with held_masks(model), held_masks(twin):
        rows = [compare("logits", model.forward(x), twin.forward(x), rtol=rtol, atol=atol)]
        loss_t, grads_t = twin.loss_and_grads(x, y)
        loss_m, grads_m = model.loss_and_grads(x, y)
        rows.append(compare("loss", loss_m, loss_t, rtol=rtol, atol=atol))
        rows.extend(compare_dicts("grads", grads_m, grads_t, rtol=rtol, atol=atol))
        divergence, notes = None, []
        if not all(r.passed for r in rows) and isinstance(model, ExposesIntermediates):
            divergence = first_divergence(twin.intermediates(x, y), model.intermediates(x, y),
                                          rtol=rtol, atol=atol, layers=layers)
            if divergence is not None:
                divergence["message"] = (f"{name} parts from torch.autograd at "
                                         f"{divergence['message']}")
    if buffers:  # the training passes moved the running statistics: put them back
        model.set_buffers(buffers)
    return EquivalenceReport(rows, rtol, atol, dtype.name, "torch.autograd", name,
                             divergence=divergence, notes=notes)


# ---------------------------------------------------- torch.autograd.gradcheck
class ClassifierLoss(torch.autograd.Function):
    """The loss of a ``Classifier`` as a torch function of its parameters.

    ``ClassifierLoss.apply(model, x, y, names, *params)`` copies the tensors
    ``params`` (named ``names``) into ``model``, returns its ``loss_and_grads`` loss as
    a 0-d tensor, and its backward returns the model's own gradients times the
    incoming gradient. No gradient flows to ``x`` or ``y``.
    """

    @staticmethod
    def forward(ctx, model, x, y, names, *params):
        values = {n: p.detach().cpu().numpy() for n, p in zip(names, params)}
        model.set_params(values)
        loss, grads = model.loss_and_grads(x, y)
        ctx.grads = tuple(torch.as_tensor(np.array(grads[n]), dtype=p.dtype, device=p.device)
                          for n, p in zip(names, params))
        return torch.tensor(float(loss), dtype=params[0].dtype, device=params[0].device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return (None, None, None, None, *(grad_output * g for g in ctx.grads))


def classifier_loss(model, x, y, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``model``'s loss at ``params`` (tensors, canonical names) through :class:`ClassifierLoss`."""
    names = tuple(params)
    return ClassifierLoss.apply(model, x, y, names, *(params[n] for n in names))


@dataclass
class TorchGradcheckResult:
    """Outcome of :func:`torch_gradcheck`."""

    passed: bool
    n_entries: int
    eps: float
    atol: float
    rtol: float
    fast_mode: bool
    precision: str
    message: str = ""

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        head = (f"torch.autograd.gradcheck ({self.precision}, {self.n_entries} parameter "
                f"entries, eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g}"
                f"{', fast mode' if self.fast_mode else ''}): {verdict}")
        return head if self.passed else f"{head}\n{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": "torch.autograd.gradcheck", **self.__dict__}


def torch_gradcheck(model, x, y, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                    fast_mode: bool = False) -> TorchGradcheckResult:
    """Run ``torch.autograd.gradcheck`` on :class:`ClassifierLoss` around ``model``.

    Parameters
    ----------
    model : Classifier
        Checked in float64: as it is, or through a float64 copy (see
        :func:`harness.model.precision.float64_copy`); ConfigError when neither is possible.
    x, y : the batch
    eps, atol, rtol : float
        torch.autograd.gradcheck's own parameters and defaults.
    fast_mode : bool
        torch's fast mode (random projections instead of every entry), for large models.

    The model's parameters are restored before returning. A relu or leaky_relu
    model can fail here at a kink (torch's checker does not skip them); use
    :func:`harness.gradients.finite_diff.gradcheck` for those.
    """
    check_protocol(model, type(model).__name__)
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ConfigError(f"`eps` must be > 0, got {eps}")
    x, y = validate_batch(x, y, tuple(model.dims), model)
    if model_dtype(model) == np.float64:
        target, precision = model, "float64"
    else:
        made = float64_copy(model)
        if made is None:
            raise ConfigError(
                f"torch.autograd.gradcheck needs float64 and {type(model).__name__} is "
                f"{model_dtype(model).name} without an as_float64() hook")
        target, precision = made
    original = target.get_params()
    inputs = tuple(torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
                   for v in original.values())
    names = tuple(original)
    x64 = x.astype(np.float64)

    def fn(*params):
        return ClassifierLoss.apply(target, x64, y, names, *params)

    message = ""
    try:
        passed = bool(torch.autograd.gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol,
                                               fast_mode=fast_mode, raise_exception=True))
    except GradcheckError as exc:
        passed = False
        lines = str(exc).strip().splitlines()
        m = re.search(r"with respect to input (\d+)", lines[0] if lines else "")
        if m and int(m.group(1)) < len(names):
            lines[0] += f" (input {m.group(1)} is parameter {names[int(m.group(1))]})"
        message = "\n".join(lines[:8])
    finally:
        target.set_params(original)
    return TorchGradcheckResult(passed, int(sum(t.numel() for t in inputs)), float(eps),
                                float(atol), float(rtol), bool(fast_mode), precision, message)
