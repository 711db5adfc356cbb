"""The same dropout masks on both sides: the harness draws them and hands them in.

Seeds never carry across implementations (NumPy's generators and torch's draw different
masks from the same seed), so a network with dropout is compared in training mode only
when the harness itself draws every mask. :class:`HandedMasks` wraps a model that has the
optional protocol member ``set_dropout_masks(masks)``: before every training pass
(``loss_and_grads``, ``train_step``, ``intermediates``) it draws one 0/1 array (N, D) per
dropout layer, in layer order, keep probability 1 - p, and hands them over; the model
scales the kept units by 1/(1-p) as ``nn.Dropout`` does.

Two wrappers built with the same seed draw the same sequence of masks, so two models
that see the same calls in the same order (the equivalence check, a trajectory in
lockstep, a float64 arbiter beside them) see the same masks. :meth:`HandedMasks.hold`
keeps one set of masks for every pass on a batch of the same size (the finite-difference
check, where every evaluation of the loss must use the same mask; a localisation, which
runs several passes on one side) and leaves the sequence where it was, and
:meth:`HandedMasks.reorder_next` reorders the rows of the next masks (a witness that
hands its rows in another order keeps each row's mask).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

#: the optional protocol member through which the harness hands the masks
MASK_MEMBER = "set_dropout_masks"


def dropout_layout(network) -> tuple[tuple[int, float], ...]:
    """``(width, p)`` of every dropout layer of a resolved network, in layer order."""
    return tuple((width, layer.args[0])
                 for layer, width in zip(network.layers, network.widths_in)
                 if layer.name == "dropout")


def takes_masks(model) -> bool:
    """Whether ``model`` has the optional member ``set_dropout_masks``."""
    return callable(getattr(model, MASK_MEMBER, None))


class _BeforeEachPass:
    """A wrapper that prepares every training pass of ``inner`` (``_prepare(x)``) and
    passes everything else through: the shared part of :class:`HandedMasks` and
    :class:`OwnMasks`."""

    inner: object

    def _prepare(self, x) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str):
        if name == "intermediates":
            inner = self.inner.intermediates
            return lambda x, y: self._pass(inner, x, y)
        return getattr(self.inner, name)

    def _pass(self, method, x, y):
        self._prepare(x)
        return method(x, y)

    def forward(self, x):
        return self.inner.forward(x)

    def loss_and_grads(self, x, y):
        return self._pass(self.inner.loss_and_grads, x, y)

    def train_step(self, x, y):
        return self._pass(self.inner.train_step, x, y)

    def get_params(self):
        return self.inner.get_params()

    def set_params(self, params) -> None:
        self.inner.set_params(params)


class HandedMasks(_BeforeEachPass):
    """A model whose dropout masks the harness draws (module docstring).

    Parameters
    ----------
    model : Classifier with ``set_dropout_masks``
    layout : sequence of (width, p)
        One per dropout layer, in layer order (:func:`dropout_layout`).
    seed : int
        Seeds the masks; wrappers with the same seed draw the same sequence.

    Everything but the training passes is the wrapped model's (``inner``).
    """

    def __init__(self, model, layout, seed: int) -> None:
        self.inner = model
        self.layout = tuple((int(w), float(p)) for w, p in layout)
        self._rng = np.random.default_rng([int(seed), 0xD80])
        self._held: dict[int, list[np.ndarray]] | None = None
        self._order: np.ndarray | None = None
        self.n_drawn = 0

    def draw(self, n: int) -> list[np.ndarray]:
        """The next masks for a batch of ``n`` rows (held ones while :meth:`hold` is on)."""
        if self._held is not None and n in self._held:
            return self._held[n]
        masks = [(self._rng.random((n, width)) >= p).astype(np.float64)
                 for width, p in self.layout]
        self.n_drawn += 1
        if self._held is not None:
            self._held[n] = masks
        return masks

    def _prepare(self, x) -> None:
        """Hand the next masks (reordered as :meth:`reorder_next` asked)."""
        masks = self.draw(len(x))
        if self._order is not None:
            order, self._order = self._order, None
            masks = [m[order] for m in masks]
        self.inner.set_dropout_masks(masks)

    @contextmanager
    def hold(self):
        """Within the block, every training pass on N rows uses the same masks: the next
        ones of the sequence, which the first pass after the block draws again (a look
        that leaves the sequence where it was, so that a model looked at and one not
        looked at stay in step)."""
        previous, self._held = self._held, {}
        state, drawn = self._rng.bit_generator.state, self.n_drawn
        try:
            yield self
        finally:
            self._held = previous
            self._rng.bit_generator.state = state
            self.n_drawn = drawn

    def reorder_next(self, order) -> None:
        """The next pass's masks with their rows taken in ``order`` (its batch's order)."""
        self._order = np.asarray(order)



#: why the training passes of a class that draws its own masks cannot be compared
OWN_MASKS_REASON = ("{name} has dropout but no set_dropout_masks(masks) (an optional "
                    "member), so its masks cannot be the reference's")


class OwnMasks(_BeforeEachPass):
    """A model with dropout that draws its own masks (no ``set_dropout_masks``).

    Its training passes cannot be compared with another implementation's, mask for mask;
    what can be done is done here: before every training pass NumPy's global generator is
    reseeded from this wrapper's own sequence (cs231n's and the NNFS book's code draw
    their masks from it), so that the class's passes are reproducible, and within
    :meth:`hold` every pass reseeds it alike (the gradient check: one mask throughout).
    A class that draws from a generator of its own keeps drawing new masks, which the
    gradient check then finds (its loss is not a smooth function of the parameters).
    """

    def __init__(self, model, seed: int) -> None:
        self.inner = model
        self._rng = np.random.default_rng([int(seed), 0xD81])
        self._held: int | None = None
        self._holding = False

    def _prepare(self, x) -> None:
        """Reseed NumPy's global generator (alike within :meth:`hold`)."""
        if self._holding and self._held is not None:
            seed = self._held
        else:
            seed = int(self._rng.integers(2**31 - 1))
            if self._holding:
                self._held = seed
        np.random.seed(seed)

    @contextmanager
    def hold(self):
        """Within the block, every training pass reseeds NumPy's generator alike."""
        state = self._rng.bit_generator.state
        self._holding, self._held = True, None
        try:
            yield self
        finally:
            self._holding, self._held = False, None
            self._rng.bit_generator.state = state


def find_own_masks(model) -> OwnMasks | None:
    """The :class:`OwnMasks` inside ``model`` (at any depth), or None."""
    return _find(model, OwnMasks)


def find_masks(model) -> HandedMasks | None:
    """The :class:`HandedMasks` inside ``model`` (wrapped at any depth: a guard, a witness
    or a fold around it), or None."""
    return _find(model, HandedMasks)


def _find(model, kind):
    inner = model
    for _ in range(6):
        if isinstance(inner, kind):
            return inner
        own = getattr(inner, "__dict__", {})
        inner = own.get("inner") or own.get("model") or own.get("_model")
        if inner is None:
            return None
    return None


@contextmanager
def held_masks(model):
    """:meth:`HandedMasks.hold` (or :meth:`OwnMasks.hold`) for a model with dropout, else
    nothing."""
    handed = find_masks(model) or find_own_masks(model)
    if handed is None:
        yield model
        return
    with handed.hold():
        yield model


def unwrap(model):
    """The model inside a :class:`HandedMasks` or :class:`OwnMasks` (the model itself
    otherwise)."""
    return model.inner if isinstance(model, (HandedMasks, OwnMasks)) else model
