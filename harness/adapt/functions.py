"""Networks of module-level layer functions with caches, the cs231n assignments' style.

Such code has, per kind of layer, a pair ``out, cache = kind_forward(x, *params,
[param_dict])`` and ``dx[, dparam, ...] = kind_backward(dout, cache)``; the parameters
live in a dict, the per-layer settings and state in dicts of their own (``bn_param``
with its running statistics, ``dropout_param`` with the keep probability), and a
``"mode"`` entry in them says "train" or "test". What an adapter does with them is
always the same:

* :class:`LayerFunctions`: one kind's pair and its dict (the canonical parameters it
  takes and returns the gradients of, ``W{k}, b{k}`` or ``gamma{k}, beta{k}``, follow
  from the layer);
* :class:`FunctionNet`: the network of the spec's layer list on those pairs, with the
  parameters under canonical names and one dict per layer, and the two passes;
* :class:`FunctionLayers`: an :class:`~harness.adapt.Adapter` around a
  :class:`FunctionNet` in ``self.net``, torch's SGD with momentum as its step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.adapt.base import Adapter
from harness.adapt.layers import check_kinds
from harness.model.layer_spec import NORM_NAMES


@dataclass(frozen=True)
class LayerFunctions:
    """One kind of layer as a pair of functions.

    A kind may also be given as the plain tuple ``(forward, backward)`` or
    ``(forward, backward, state)``.

    Attributes
    ----------
    forward : callable
        ``forward(x, *params, [state]) -> (out, cache)``: the layer's parameters, then its
        dict when it has one.
    backward : callable
        ``backward(dout, cache) -> dx`` for a layer without parameters, ``(dx, *grads)``
        (in the order of the parameters) for one with them.
    state : mapping, callable or None
        The layer's dict: a mapping copied for each layer of the kind, or a function of
        the layer's numbers (``lambda kw: {"p": 1 - kw["p"]}``); None: the forward takes
        none. A dict with a ``"mode"`` entry has it set to "train" or "test" before each
        call.
    params : tuple of str or None
        The canonical kinds of the layer's parameters, in the order the functions take
        and return them; None: the layer's own, ``("W", "b")`` for a linear (or conv)
        layer, ``("gamma", "beta")`` for a normalisation layer, none for the others. The
        layer's ``index`` numbers them (``W0``, ``gamma1``).
    """

    forward: Callable
    backward: Callable
    state: Mapping | Callable | None = None
    params: tuple[str, ...] | None = None

    def make_state(self, kw: dict) -> dict | None:
        """A fresh dict for one layer with numbers ``kw`` (None when the kind has none)."""
        if self.state is None:
            return None
        return dict(self.state(kw)) if callable(self.state) else dict(self.state)

    def param_kinds(self, name: str, kw: dict) -> tuple[str, ...]:
        """The canonical kinds of the parameters of the layer ``(name, kw)``."""
        if self.params is not None:
            return tuple(self.params)
        if "index" not in kw:
            return ()
        return ("gamma", "beta") if name in NORM_NAMES else ("W", "b")


def as_functions(kind) -> LayerFunctions:
    """A :class:`LayerFunctions` from itself or a ``(forward, backward[, state])`` tuple."""
    return kind if isinstance(kind, LayerFunctions) else LayerFunctions(*kind)


class FunctionNet:
    """The spec's layer list on the code's function pairs.

    Parameters
    ----------
    layer_list : sequence of (str, dict)
        ``spec.network.plain()``.
    kinds : mapping of str to LayerFunctions or tuple
        Kind -> its pair (:func:`as_functions`); a kind the code has not is refused
        (:func:`check_kinds`).

    Attributes
    ----------
    params : dict
        Canonical name -> array (``W0``, ``b0``, ``gamma0``): what the forward functions
        are handed (the adapter's binding fills it).
    states : list
        One dict per position in the layer list (None for a layer without one): the
        ``bn_param``, ``ln_param``, ``dropout_param`` of the code.
    """

    def __init__(self, layer_list: Sequence[tuple[str, dict]],
                 kinds: Mapping[str, LayerFunctions]):
        check_kinds(layer_list, kinds)
        self.layers = [(as_functions(kinds[name]), kw) for name, kw in layer_list]
        self.owned = [fns.param_kinds(name, kw)
                      for (fns, kw), (name, _) in zip(self.layers, layer_list)]
        self.params: dict = {}
        self.states = [fns.make_state(kw) for fns, kw in self.layers]

    def forward(self, x, mode: str = "train"):
        """``(out, caches)``: ``x`` through every layer, each dict's ``"mode"`` set to
        ``mode`` ("train" or "test") first."""
        caches = []
        for (fns, kw), owned, state in zip(self.layers, self.owned, self.states):
            args = [self.params[f"{kind}{kw['index']}"] for kind in owned]
            if state is not None:
                if "mode" in state:
                    state["mode"] = mode
                args.append(state)
            x, cache = fns.forward(x, *args)
            caches.append(cache)
        return x, caches

    def backward(self, dout, caches):
        """``(dx, grads)``: ``dout`` back through the layers, the gradients under canonical
        names."""
        grads = {}
        for (fns, kw), owned, cache in zip(reversed(self.layers), reversed(self.owned),
                                           reversed(caches)):
            result = fns.backward(dout, cache)
            if not owned:
                dout = result
                continue
            dout, *found = result
            grads.update({f"{kind}{kw['index']}": g for kind, g in zip(owned, found)})
        return dout, grads


class FunctionLayers(Adapter):
    """An adapter for a network of function pairs: :meth:`kinds` says which pair each kind
    of layer is; the base builds ``self.net`` (a :class:`FunctionNet`) and writes
    ``logits`` (the test-mode pass), ``backward`` (the train-mode pass, :meth:`code_loss`,
    the backward pass) and the step (torch's SGD with momentum and weight decay).

    The paths are the :class:`FunctionNet`'s: ``net.params['W{k}']``, the running
    statistics in the batch norm layer's dict (``running_mean``, ``running_var``) and the
    harness's dropout mask as its dict's ``"mask"`` (a 0/1 array for the next pass, as
    the gallery's cs231n functions take it; set ``mask_path = None`` for code that draws
    its own). ``np.random`` is seeded with ``spec.seed`` before the build, as the
    assignments' notebooks do.
    """

    param_paths = dict(W="net.params['W{k}']", b="net.params['b{k}']",
                       gamma="net.params['gamma{k}']", beta="net.params['beta{k}']")
    buffer_paths = dict(running_mean="net.states[{pos}]['running_mean']",
                        running_var="net.states[{pos}]['running_var']")
    mask_path = "net.states[{pos}]['mask']"
    settings = {"lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay"}
    decay_on = ("all", "weights")
    seeds_numpy: bool = True

    def kinds(self, spec) -> Mapping[str, LayerFunctions | tuple]:
        """Kind -> :class:`LayerFunctions` or ``(forward, backward[, state])``, for the
        network of ``spec``."""
        raise NotImplementedError("a FunctionLayers subclass names its functions in kinds()")

    def build(self, spec, **settings) -> None:
        if self.seeds_numpy:
            np.random.seed(spec.seed)
        self.net = FunctionNet(self.layer_list, self.kinds(spec))

    def code_loss(self, scores, y):
        """``(loss, dL/dscores)``; the default is the spec's loss
        (:meth:`Adapter.loss_and_dlogits`), for code with no loss function."""
        return self.loss_and_dlogits(scores, y)

    def logits(self, x):
        return self.net.forward(x, "test")[0]

    def backward(self, x, y):
        scores, caches = self.net.forward(x, "train")
        loss, dscores = self.code_loss(scores, y)
        return float(loss), self.net.backward(dscores, caches)[1]
