"""Networks of layer objects, built from the spec's layer list.

Course and book code composes a network of objects, one per layer, each with a forward
and a backward method. What an adapter for such code does is always the same: make the
code's object for each entry of ``spec.network.plain()`` (``("linear", {"index": 0,
"in": 4, "out": 16})``, ``("batchnorm", {"index": 0, "width": 16})``, ``("dropout",
{"p": 0.3})``, ...), run the forward pass through them and the backward pass back.

* :func:`build_layers`: the code's objects from a dict kind -> factory, refusing a kind
  the code has not.
* :class:`LayerCalls`, :func:`forward_layers`, :func:`backward_layers`: the two loops,
  for the styles that return their result (``x = layer.forward(x)``, the default
  :data:`RETURNS`) and those that store it (``layer.forward(x, training=True)`` then
  ``layer.output``; ``layer.backward(d)`` then ``layer.dinputs``: :data:`STORES`, the NNFS
  book's).
* :class:`LayerObjects`: an :class:`~harness.adapt.Adapter` around them, whose paths
  are the layers' attribute names and whose step is the code's optimizer or torch's
  SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.adapt.base import Adapter
from harness.adapt.binding import positions
from harness.errors import ConfigError


def check_kinds(layer_list: Sequence[tuple[str, dict]], kinds: Mapping) -> None:
    """Refuse a layer the code has not, in one line naming it and the kinds it has.

    Raises
    ------
    ConfigError
        ``this network has no layernorm layer (it has linear, relu, dropout)``; a
        ``ValueError``.
    """
    for name, _ in layer_list:
        if name not in kinds:
            raise ConfigError(f"this network has no {name} layer (it has {', '.join(kinds)})")


def build_layers(layer_list: Sequence[tuple[str, dict]],
                 kinds: Mapping[str, Callable[[dict], object]]) -> list:
    """The code's layer objects, one per entry of the spec's layer list.

    Parameters
    ----------
    layer_list : sequence of (str, dict)
        ``spec.network.plain()`` (an adapter's ``self.layer_list``): each layer's kind and
        numbers (``in``, ``out``, ``index``, ``width``, ``p``, ...).
    kinds : mapping of str to callable
        Kind -> factory: ``factory(kw)`` makes the code's object from the layer's numbers
        (``{"linear": lambda kw: Dense(kw["in"], kw["out"]), "relu": lambda kw: ReLU()}``).

    Returns
    -------
    list
        The objects, in the network's order.

    Raises
    ------
    ConfigError
        A kind not in ``kinds`` (:func:`check_kinds`), before any object is made.
    """
    check_kinds(layer_list, kinds)
    return [kinds[name](kw) for name, kw in layer_list]


@dataclass(frozen=True)
class LayerCalls:
    """How the code's layer objects are called.

    Attributes
    ----------
    forward, backward : str
        The methods' names: ``forward(x, ...)``, ``backward(grad, *args)``.
    output, dinputs : str or None
        The attributes the methods store their results in (``"output"``,
        ``"dinputs"``); None where the method returns it.
    training : str or None
        The keyword ``forward`` takes the training flag under (``"training"``); None
        where it takes none.
    """

    forward: str = "forward"
    backward: str = "backward"
    output: str | None = None
    dinputs: str | None = None
    training: str | None = None


#: ``x = layer.forward(x)``, ``grad = layer.backward(grad, *args)``
RETURNS = LayerCalls()
#: ``layer.forward(x, training=...)`` then ``layer.output``; ``layer.backward(d)`` then
#: ``layer.dinputs`` (the NNFS book's objects)
STORES = LayerCalls(output="output", dinputs="dinputs", training="training")


def forward_layers(layers: Sequence, x, calls: LayerCalls = RETURNS, training: bool = True):
    """``x`` through every layer in order; the last layer's output.

    Parameters
    ----------
    layers : sequence
        The code's layer objects.
    x : array
        The input, in the code's form.
    calls : LayerCalls
        The method and attribute names.
    training : bool
        Handed to each ``forward`` under ``calls.training`` (not at all when it is None).
    """
    flag = {} if calls.training is None else {calls.training: training}
    for layer in layers:
        out = getattr(layer, calls.forward)(x, **flag)
        x = out if calls.output is None else getattr(layer, calls.output)
    return x


def backward_layers(layers: Sequence, grad, *args, calls: LayerCalls = RETURNS):
    """``grad`` (dL/d the last output) back through the layers in reverse order.

    Parameters
    ----------
    layers : sequence
        The code's layer objects, in the network's (forward) order.
    grad : array
        dL/d the network's output, in the code's form.
    *args
        Handed to every ``backward`` after the gradient (a learning rate, for code that
        steps inside ``backward``).
    calls : LayerCalls
        The method and attribute names.

    Returns
    -------
    array
        dL/d the network's input.
    """
    for layer in reversed(layers):
        out = getattr(layer, calls.backward)(grad, *args)
        grad = out if calls.dinputs is None else getattr(layer, calls.dinputs)
    return grad


def layer_paths(at: str, **attrs: str) -> dict[str, str]:
    """Path rules to attributes of the layer objects in the list ``self.<at>``:
    ``layer_paths("layers", W="weights")`` is ``{"W": "layers[{pos}].weights"}``."""
    return {kind: f"{at}[{{pos}}].{attr}" for kind, attr in attrs.items()}


class LayerObjects(Adapter):
    """An adapter for a network of the code's layer objects in ``self.layers``.

    A subclass builds ``self.layers`` in :meth:`build` (with :func:`build_layers`) and
    says how its objects are called and where they keep their arrays; the defaults are
    the NNFS book's. The base writes ``logits`` (a forward pass with training off),
    ``backward`` (a forward pass with training on, :meth:`code_loss`, the backward pass)
    and ``step``.

    Class attributes
    ----------------
    calls : LayerCalls
        How the objects are called (default :data:`STORES`).
    param_attrs, buffer_attrs : dict
        Canonical kind -> the attribute of the layer object that holds it (``W="weights"``,
        ``running_mean="running_mean"``); made into ``param_paths``/``buffer_paths``
        with :func:`layer_paths`. An empty ``buffer_attrs``: no buffers.
    grad_attrs : str or dict
        Where ``backward`` leaves each gradient: a template on the parameter's attribute
        (``"d{}"``: ``dweights``) or a dict like ``param_attrs``.
    mask_attr : str or None
        The attribute a dropout object takes the harness's next mask from; None when
        the code draws its own.
    update_layer : callable or None
        The code's own optimizer, ``update_layer(layer, names)`` with the attribute names
        of the layer's parameters (NNFS's ``Optimizer_SGD.update_params``), called after
        torch's weight decay is added to the stored gradients; None: torch's SGD with
        momentum through the binding (:meth:`Adapter.step`).
    seeds_numpy : bool
        Seed ``np.random`` with ``spec.seed`` before :meth:`build`, as the courses'
        notebooks do (their objects draw their weights and masks from it).
    """

    calls: LayerCalls = STORES
    param_attrs: dict = dict(W="weights", b="biases", gamma="gamma", beta="beta")
    buffer_attrs: dict = dict(running_mean="running_mean", running_var="running_var")
    grad_attrs: str | dict = "d{}"
    mask_attr: str | None = None
    update_layer: Callable | None = None
    seeds_numpy: bool = True
    settings = {"lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay"}
    decay_on = ("all", "weights")

    def __init__(self, spec, optimizer):
        grads = self.grad_attrs
        if isinstance(grads, str):
            grads = {kind: grads.format(attr) for kind, attr in self.param_attrs.items()}
        self.param_paths = layer_paths("layers", **self.param_attrs)
        self.grad_paths = layer_paths("layers", **grads)
        self.buffer_paths = layer_paths("layers", **self.buffer_attrs)
        if self.mask_attr is not None:
            self.mask_path = f"layers[{{pos}}].{self.mask_attr}"
        if self.seeds_numpy:
            np.random.seed(spec.seed)
        super().__init__(spec, optimizer)

    def build(self, spec, **settings) -> None:
        """Build ``self.layers``, the code's objects (:func:`build_layers`)."""
        raise NotImplementedError("a LayerObjects subclass builds self.layers in build()")

    def code_loss(self, scores, y):
        """``(loss, dL/dscores)`` of the training pass's scores; the default is the spec's
        loss (:meth:`Adapter.loss_and_dlogits`), for code with no loss of its own."""
        return self.loss_and_dlogits(scores, y)

    def logits(self, x):
        return forward_layers(self.layers, x, self.calls, training=False)

    def backward(self, x, y):
        loss, grad = self.code_loss(forward_layers(self.layers, x, self.calls), y)
        backward_layers(self.layers, grad, calls=self.calls)
        return loss

    def step(self, x, y) -> float:
        if self.update_layer is None:
            return super().step(x, y)
        return self.code_update(x, y, self._update_each)

    def _update_each(self) -> None:
        """The code's optimizer on every layer that has parameters."""
        owned = {pos: ("W", "b") if owner == "linear" else ("gamma", "beta")
                 for (owner, _), pos in positions(self.spec).items()}
        for pos, kinds in sorted(owned.items()):
            self.update_layer(self.layers[pos], tuple(self.param_attrs[k] for k in kinds))
