"""Find the first layer and quantity where two implementations part.

Both built-in backends implement the optional ``intermediates(x, y)`` method
(:class:`harness.model.protocol.ExposesIntermediates`). Its quantities are compared in
the order a forward and backward pass computes them::

    z0, a0, z1, a1, ..., z{L-1}                    forward, input to output
    dz{L-1}, dW{L-1}, db{L-1}, dz{L-2}, ..., db0   backward, output to input

and the first one that differs is reported with its layer, phase and a one-line
message. Everything computed before it agrees, so the fault lies in the step that
produced it: a wrong ``dz1`` with every forward quantity and ``dz2, dW2, db2``
agreeing points at the backward step from layer 2 to layer 1 (a derivative of the
activation, a missing mask, a wrong transpose of ``W2``).

When every intermediate agrees but the parameter-level check failed, the report
says so and, where it can, names the side whose ``loss_and_grads`` or ``forward``
disagrees with its own intermediates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from harness.compare.closeness import Comparison, compare
from harness.model.layer_spec import layer_label, layer_list, position_of
from harness.model.protocol import ExposesIntermediates
from harness.runtime.values import json_float

_NAME = re.compile(r"^(z|a|dz|dW|db)(\d+)$")
#: the intermediates of a layer network (:class:`scratch.sequential.Sequential`)
_LAYER_NAME = re.compile(r"^(out|dout)(\d+)$")
_PARAM_GRAD = re.compile(r"^d(W|b|gamma|beta)(\d+)$")

#: what each prefix means, for messages
KINDS = {
    "z": "pre-activation z",
    "a": "activation a",
    "dz": "dL/dz",
    "dW": "dL/dW",
    "db": "dL/db",
}


def intermediate_order(dims: tuple[int, ...]) -> list[str]:
    """Names of the intermediates of a network with widths ``dims``, in computation order."""
    layers = range(len(dims) - 1)
    names = ordered_intermediates([f"z{i}" for i in layers], [f"a{i}" for i in layers[:-1]],
                                  [f"dz{i}" for i in layers],
                                  {f"{p}{i}": None for i in layers for p in "Wb"})
    return list(names)


def ordered_intermediates(zs: list, hidden: list, dzs: list, grads: Mapping[str, Any]
                          ) -> dict[str, Any]:
    """An ``intermediates`` dictionary, its names in computation order.

    Parameters
    ----------
    zs : list of L arrays, zs[i] of shape (N, d_{i+1}): pre-activations, zs[-1] the logits
    hidden : list of L-1 arrays, hidden[i] = f(zs[i]): the hidden activations
    dzs : list of L arrays, dzs[i] = dL/dz_i of shape (N, d_{i+1})
    grads : mapping of parameter gradients, canonical names (``W{i}``, ``b{i}``)

    Returns
    -------
    dict
        ``z0, a0, ..., z{L-1}``, then ``dz{L-1}, dW{L-1}, db{L-1}, ..., db0``.
    """
    out: dict[str, Any] = {}
    for i, z in enumerate(zs):
        out[f"z{i}"] = z
        if i < len(hidden):
            out[f"a{i}"] = hidden[i]
    for i in reversed(range(len(zs))):
        out[f"dz{i}"] = dzs[i]
        out[f"dW{i}"] = grads[f"W{i}"]
        out[f"db{i}"] = grads[f"b{i}"]
    return out


def parse_name(name: str) -> tuple[str | None, int | None, str | None]:
    """``"dz1"`` -> ``("dz", 1, "backward")``; unknown names give ``(None, None, None)``."""
    m = _NAME.match(name)
    if not m:
        return None, None, None
    prefix, layer = m.group(1), int(m.group(2))
    return prefix, layer, "backward" if prefix.startswith("d") else "forward"


def describe(name: str) -> str:
    """A readable name: ``"dz1"`` -> ``"dL/dz_1 (dz1)"``."""
    prefix, layer, _ = parse_name(name)
    if prefix is None:
        return name
    return f"{KINDS[prefix]}_{layer} ({name})"


def describe_layer_quantity(layers: list, name: str) -> str | None:
    """``out3`` -> ``layer 3 (batchnorm), forward: its output (out3)``; None when ``name``
    is not a layer network's intermediate."""
    m = _LAYER_NAME.match(name)
    if m and int(m.group(2)) < len(layers):
        pos = int(m.group(2))
        if m.group(1) == "out":
            return f"{layer_label(layers, pos)}, forward: its output ({name})"
        return f"{layer_label(layers, pos)}, backward: dL/d its output ({name})"
    m = _PARAM_GRAD.match(name)
    if m:
        pos = position_of(layers, name[1:])
        if pos is not None:
            return f"{layer_label(layers, pos)}, backward: dL/d{name[1:]} ({name})"
    if name == "dinput":
        return "the input, backward: dL/dx (dinput)"
    return None


def _detail(result: Comparison | None) -> str:
    if result is None:
        return "missing on the candidate side"
    if result.n_elements and result.max_abs_err == math.inf:
        return result.message.split(": ", 1)[-1]
    where = "" if result.worst_index is None else f" (worst at index {result.worst_index})"
    return (f"{result.n_mismatched} / {result.n_elements} elements differ, greatest absolute "
            f"difference {result.max_abs_err:.3e}, greatest relative {result.max_rel_err:.3e}"
            f"{where}")


def _span(names: list[str]) -> str:
    if not names:
        return "nothing"
    if len(names) <= 4:
        return ", ".join(names)
    return f"{len(names)} quantities ({names[0]} .. {names[-1]})"


def first_divergence(reference: Mapping[str, Any], candidate: Mapping[str, Any], *,
                     rtol: float, atol: float, order: list[str] | None = None,
                     layers: list | None = None) -> dict[str, Any] | None:
    """Compare two dicts of intermediates in ``order``; describe the first mismatch or None.

    Parameters
    ----------
    reference, candidate : mapping of name to array
        As returned by ``intermediates(x, y)``.
    rtol, atol : float
        As in :func:`harness.compare.closeness.compare` (atol scaled by the quantity's magnitude).
    order : list of str, optional
        Names in computation order; default: the reference's order. Names the
        reference has but ``order`` lacks are compared afterwards.

    Returns
    -------
    dict or None
        None when every quantity agrees, else a dict with ``quantity``, ``layer``,
        ``phase`` (``"forward"`` or ``"backward"``), ``kind`` (e.g. ``"dL/dz"``),
        ``max_abs_err``, ``max_rel_err``, ``worst_index``, ``n_mismatched``,
        ``n_elements``, ``agreed`` (the names compared before it) and ``message``.
    """
    names = [n for n in (order or []) if n in reference]
    names += [n for n in reference if n not in names]
    agreed: list[str] = []
    for name in names:
        result = (compare(f"intermediates['{name}']", candidate[name], reference[name],
                          rtol=rtol, atol=atol, check_dtype=False)
                  if name in candidate else None)
        if result is not None and result.passed:
            agreed.append(name)
            continue
        prefix, layer, phase = parse_name(name)
        where = (f"layer {layer}, {phase}: {describe(name)}" if prefix is not None
                 else f"quantity {name}")
        described = None if layers is None else describe_layer_quantity(layers, name)
        if described is not None:
            where = described
            phase = "forward" if name.startswith("out") else "backward"
            layer = _layer_position(layers, name)
        message = f"{where}: {_detail(result)}; before it, {_span(agreed)} agree"
        return {
            "localised": True,
            "quantity": name,
            "layer": layer,
            "phase": phase,
            "kind": None if prefix is None else KINDS[prefix],
            "max_abs_err": json_float(math.inf if result is None else result.max_abs_err),
            "max_rel_err": json_float(math.inf if result is None else result.max_rel_err),
            "worst_index": (None if result is None or result.worst_index is None
                            else list(result.worst_index)),
            "n_mismatched": None if result is None else result.n_mismatched,
            "n_elements": None if result is None else result.n_elements,
            "agreed": agreed,
            "message": message,
        }
    return None


def _layer_position(layers: list, name: str) -> int | None:
    m = _LAYER_NAME.match(name)
    if m:
        return int(m.group(2))
    return position_of(layers, name[1:]) if name.startswith("d") else None


def _self_inconsistencies(model, inter: Mapping[str, Any], x, y, side: str, *,
                          rtol: float, atol: float) -> list[str]:
    """Where ``model``'s forward / loss_and_grads disagree with its own intermediates
    (a layer network's forward is evaluation, its intermediates a training pass: only
    its gradients are compared)."""
    found: list[str] = []
    n_layers = len(tuple(model.dims)) - 1
    last = f"z{n_layers - 1}"
    if last in inter:
        r = compare("forward", model.forward(x), inter[last], rtol=rtol, atol=atol,
                    check_dtype=False)
        if not r.passed:
            found.append(f"{side}'s forward() differs from its own intermediates['{last}']")
    _, grads = model.loss_and_grads(x, y)
    for key in grads:
        inter_key = f"d{key}"
        if inter_key not in inter:
            continue
        r = compare(key, grads[key], inter[inter_key], rtol=rtol, atol=atol, check_dtype=False)
        if not r.passed:
            found.append(f"{side}'s loss_and_grads()['{key}'] differs from its own "
                         f"intermediates['{inter_key}']")
    return found


def buffer_divergence(reference, rows) -> dict[str, Any] | None:
    """The layer of the first buffer row (``buffers after step['running_var1']``) that
    failed while every parameter agrees, or None: ``layer 2 (batchnorm): running_var1
    differs after the step; its parameters and output agree``."""
    layers = layer_list(reference)
    failed = [r for r in rows if not r.passed]
    if layers is None or not failed or not failed[0].quantity.startswith("buffers"):
        return None
    name = failed[0].quantity.split("['", 1)[-1].rstrip("']")
    pos = position_of(layers, name)
    if pos is None:
        return None
    where = layer_label(layers, pos)
    message = (f"{where}: {name} differs after the step ({_detail(failed[0])}); the "
               f"parameters, the output and the gradients before it agree")
    return {"localised": True, "quantity": name, "layer": pos, "phase": "running statistics",
            "kind": "buffer", "agreed": [], "message": message,
            "max_abs_err": json_float(failed[0].max_abs_err),
            "max_rel_err": json_float(failed[0].max_rel_err),
            "worst_index": None if failed[0].worst_index is None else list(
                failed[0].worst_index),
            "n_mismatched": failed[0].n_mismatched, "n_elements": failed[0].n_elements}


def locate_divergence(reference, candidate, x, y, *, rtol: float, atol: float,
                      reference_name: str = "reference",
                      candidate_name: str = "candidate") -> dict[str, Any] | None:
    """Where two models with the same parameters first part, layer by layer.

    Call it after a parameter-level check failed (``check_equivalence`` does).

    Returns
    -------
    dict or None
        None when either side does not implement ``intermediates`` (the caller has the
        parameter-level verdict only; see :func:`localisation_note`). Otherwise a dict:

        * with ``localised: True`` and ``quantity``, ``layer``, ``phase``, ``kind``,
          ``message`` (see :func:`first_divergence`) for the first differing intermediate;
        * with ``localised: False``, ``quantity``/``layer``/``phase`` None, when every
          intermediate agrees; ``message`` then says so and names any side whose
          ``forward`` or ``loss_and_grads`` disagrees with its own intermediates
          (listed in ``inconsistencies``).
    """
    if not (isinstance(reference, ExposesIntermediates)
            and isinstance(candidate, ExposesIntermediates)):
        return None
    from harness.model.masks import held_masks

    # every pass below draws the same dropout masks, and the sequence stays where it was
    with held_masks(reference), held_masks(candidate):
        ref = reference.intermediates(x, y)
        cand = candidate.intermediates(x, y)
        layers = layer_list(reference)  # a layer network's own order is its computation's
        found = first_divergence(ref, cand, rtol=rtol, atol=atol, layers=layers,
                                 order=None if layers else intermediate_order(
                                     tuple(reference.dims)))
        if found is not None:
            found["message"] = (f"{candidate_name} parts from {reference_name} at "
                                f"{found['message']}")
            return found
        issues = (_self_inconsistencies(reference, ref, x, y, reference_name, rtol=rtol,
                                        atol=atol)
                  + _self_inconsistencies(candidate, cand, x, y, candidate_name, rtol=rtol,
                                          atol=atol))
    if issues:
        message = (f"all {len(ref)} intermediates agree; the difference lies outside them: "
                   + "; ".join(issues))
    else:
        message = (f"all {len(ref)} intermediates agree, and each side's forward and "
                   f"loss_and_grads match its own intermediates; the mismatch is in what "
                   f"intermediates do not cover (the loss value or the parameters)")
    return {
        "localised": False,
        "quantity": None,
        "layer": None,
        "phase": None,
        "kind": None,
        "agreed": list(ref),
        "inconsistencies": issues,
        "message": message,
    }


def localisation_note(reference, candidate, reference_name: str = "reference",
                      candidate_name: str = "candidate") -> str | None:
    """Why no layer-level localisation is possible, or None when it is."""
    missing = [name for model, name in ((reference, reference_name), (candidate, candidate_name))
               if not isinstance(model, ExposesIntermediates)]
    if not missing:
        return None
    return (f"no layer-level localisation: {' and '.join(missing)} "
            f"{'does' if len(missing) == 1 else 'do'} not implement intermediates(x, y); "
            f"the parameter-level verdict above stands")

