"""A base class that wraps published code in the ``Classifier`` protocol.

A subclass says where the code keeps things and how to run it; the base writes the
protocol around it (``forward``, ``loss_and_grads``, ``get_params``, ``set_params``,
``train_step``, and ``get_buffers``/``set_buffers``/``set_dropout_masks``/
``intermediates`` when the code has them)::

    class Wrapped(Adapter):
        param_paths = dict(W="net.weights[{k}].T", b="net.biases[{k}]")  # the arrays
        settings = {"lr": "eta"}                # the optimizer settings, the code's names

        def build(self, spec, eta):             # the code's own network
            self.net = Network(list(spec.dims))

        def logits(self, x):                    # x in the code's form
            return self.net.scores(x)

        def backward(self, x, y):               # (loss, gradients) of one training pass
            return self.net.loss(x, y)

What each class attribute and hook means is in its comment below and in docs/adapt.md.
"""

from __future__ import annotations

import numpy as np

from harness.adapt import paths as _paths
from harness.adapt.binding import Binding, bind, initial_buffers, initial_params
from harness.adapt.capture import captured_gradients
from harness.adapt.inputs import as_columns, loss_and_dlogits, per_sample
from harness.adapt.settings import code_settings
from harness.adapt.sgd import decayed, decays, sgd_step
from harness.errors import ConfigError


class Adapter:
    """The protocol around someone else's network; subclass it and fill in the hooks.

    Class attributes
    ----------------
    param_paths : dict
        One path rule per kind of parameter (``W``, ``b``, ``gamma``, ``beta``), as
        :func:`harness.adapt.binding.bind` reads them; paths start from the adapter.
    buffer_paths : dict
        The same for ``running_mean`` and ``running_var``: code with batch norm layers.
        When given, the adapter has ``get_buffers``/``set_buffers`` (an empty dict for a
        network without batch norm); when not, it has neither.
    grad_paths : dict or None
        Where the code leaves its gradients after :meth:`backward` (``"layers[{pos}].dW"``,
        or ``"['W{k1}']"`` in the dict ``backward`` returned); None when ``backward``
        returns canonical gradients itself.
    mask_path : str or None
        Where the i-th dropout layer takes the harness's mask for the next pass, a
        template with ``{i}`` and ``{pos}``; None when the code draws its own.
    settings : dict
        The optimizer settings the code has, under its own names (see
        :func:`harness.adapt.settings.code_settings`); passed to :meth:`build`.
    optimizers : tuple of str
        The optimizers the code implements; others are refused when built.
    decay_in, decay_on : str or tuple of str
        Where the code's weight decay acts ("loss" or "optimizer") and on what ("all" or
        "weights"), or the places it can follow (a tuple).
    adds_l2 : bool
        True when the code's L2 term lives in a training loop the adapter does not call:
        the base adds ``weight_decay / 2 * |W|^2`` to the loss and ``weight_decay * W``
        to the gradients.
    columns : bool
        True when the code reads inputs as features x samples and returns logits as
        classes x samples.
    per_sample : bool
        True when the code backpropagates one sample at a time: :meth:`backward` is
        called on each sample (a (1, d) row, or a (d, 1) column with :attr:`columns`)
        and the results are summed into the batch's, divided by N with
        :attr:`reduction` "mean" (code that steps with eta / m), not with "sum".
    """

    param_paths: dict = {}
    buffer_paths: dict = {}
    grad_paths: dict | None = None
    mask_path: str | None = None
    settings: dict = {"lr": "lr"}
    optimizers: tuple = ("sgd",)
    decay_in: str = "optimizer"
    decay_on: str = "all"
    adds_l2: bool = False
    columns: bool = False
    per_sample: bool = False
    reduction: str = "mean"

    def __init__(self, spec, optimizer):
        self.spec, self.optimizer = spec, optimizer
        self.dims = tuple(spec.dims)
        self.dtype = np.dtype(spec.dtype)
        self.layer_list = spec.network.plain()
        self.momentum_buffers: dict = {}  # the default step's, canonical names
        kwargs = code_settings(optimizer, self.settings, self.optimizers,
                               decay_in=self.decay_in, decay_on=self.decay_on)
        self.build(spec, **kwargs)
        self.param_binding: Binding = bind(spec, **self.param_paths)
        # buffer members when the code has buffers (a network without batch norm: none)
        self.buffer_binding: Binding | None = (bind(spec, "buffer", **self.buffer_paths)
                                               if self.buffer_paths else None)
        self.set_params(initial_params(spec))
        if self.buffer_binding is not None:
            self.buffer_binding.put(self, initial_buffers(spec))
        self._optional_members()

    # ------------------------------------------------------------ the code's side
    def build(self, spec, **settings) -> None:
        """Build the code's network (keep it on ``self``); ``settings`` under its names."""
        raise NotImplementedError("an Adapter subclass builds the code's network in build()")

    def logits(self, x):
        """The code's evaluation pass: logits of ``x`` (both in the code's form)."""
        raise NotImplementedError("an Adapter subclass computes the logits in logits()")

    def backward(self, x, y):
        """One training pass of the code on ``x`` (its form) and ``y`` (class indices):
        the loss, and the gradients unless :attr:`grad_paths` says where the code stores them:
        ``loss``, ``(loss, grads)`` or ``(loss, container of the gradients)``."""
        raise NotImplementedError("an Adapter subclass runs the training pass in backward()")

    def step(self, x, y) -> float:
        """One optimizer update with the code's own step; the default is torch.optim.SGD
        through the binding (:func:`harness.adapt.sgd.sgd_step`: momentum when
        :attr:`settings` takes it, the buffers in :attr:`momentum_buffers`, torch's weight
        decay on all parameters or the weights)."""
        loss, grads = self._loss_and_grads(x, y)
        self.set_params(sgd_step(self.optimizer, self.get_params(), grads,
                                 self.momentum_buffers))
        return loss

    # ------------------------------------------------------------ helpers for the hooks
    def loss_and_dlogits(self, logits, y):
        """The spec's loss of ``logits`` (code's form) and dL/dlogits in that form, for
        code that has no loss of its own (the scratch backend's loss)."""
        z = np.asarray(logits).T if self.columns else logits
        loss, dz = loss_and_dlogits(self.spec, z, y)
        return loss, (dz.T if self.columns else dz)

    def loss_and_grads_in_code_form(self, x, y):
        """:meth:`loss_and_grads` on ``x`` already in the code's form (for a :meth:`step`
        that needs the canonical gradients)."""
        return self._loss_and_grads(x, y)

    def code_update(self, x, y, update) -> float:
        """A step with the code's own optimizer: the training pass, torch's weight decay
        added to the gradients where the code keeps them (:attr:`grad_paths`, paths from
        the adapter), then ``update()``, the code's update of its parameters from them;
        returns the loss."""
        loss, grads = self._loss_and_grads(x, y)
        if self.grad_paths is None:
            raise ConfigError("code_update writes the decayed gradients back: give grad_paths")
        bind(self.spec, **self.grad_paths).put(self, decayed(self.optimizer,
                                                             self.get_params(), grads))
        update()
        return loss

    def captured(self, run):
        """``(loss, gradients)`` of code whose backward steps its own weights:
        ``run(lr)`` is the training pass, stepping with the rate it is given
        (:mod:`harness.adapt.capture`); the parameters are left as they were."""
        return captured_gradients(self.param_binding, self, run)

    # ------------------------------------------------------------ the protocol
    def inputs(self, x) -> np.ndarray:
        """The harness's batch (N, d_0) in the code's form (and dtype)."""
        return as_columns(x, self.dtype) if self.columns else np.asarray(x, self.dtype)

    def forward(self, x):
        z = np.asarray(self.logits(self.inputs(x)))
        return np.asarray(z.T if self.columns else z, self.dtype)

    def loss_and_grads(self, x, y):
        return self._loss_and_grads(self.inputs(x), np.asarray(y))

    def train_step(self, x, y):
        return float(self.step(self.inputs(x), np.asarray(y)))

    def get_params(self):
        return self.param_binding.get(self)

    def set_params(self, params):
        self.param_binding.put(self, params)

    def _optional_members(self) -> None:
        """``get_buffers``/``set_buffers`` (with :attr:`buffer_paths`), ``set_dropout_masks``
        (with :attr:`mask_path`) and ``intermediates`` (``self.net.intermediates``) as
        instance members, only where the code has them: the protocol's optional
        extensions are recognised by the members an instance has, so one the code lacks
        must be absent, not a member that raises."""
        if self.buffer_binding is not None:
            self.get_buffers = lambda: self.buffer_binding.get(self)
            self.set_buffers = lambda buffers: self.buffer_binding.put(self, buffers)
        if self.mask_path is not None:
            self.set_dropout_masks = self._put_masks
        found = getattr(getattr(self, "net", None), "intermediates", None)
        if found is not None:
            self.intermediates = found

    # ------------------------------------------------------------ internals
    def _decays(self, name: str) -> bool:
        """Whether the spec's weight decay acts on the parameter ``name``."""
        return decays(self.optimizer, name)

    def _pass(self, x, y):
        """The loss and canonical gradients of one call of :meth:`backward`."""
        result = self.backward(x, y)
        loss, found = result if isinstance(result, tuple) else (result, self)
        if self.grad_paths is not None:
            found = bind(self.spec, **self.grad_paths).read(found)
        return float(loss), {k: np.asarray(found[k], self.dtype)
                             for k in self.param_binding.shapes}

    def _loss_and_grads(self, x, y):
        if self.per_sample:
            one = (lambda i: (x[:, i:i + 1], y[i:i + 1])) if self.columns else \
                (lambda i: (x[i:i + 1], y[i:i + 1]))
            loss, grads = per_sample(lambda i: self._pass(*one(i)), ((i,) for i in
                                                                      range(len(y))),
                                     self.reduction)
            grads = {k: np.asarray(v, self.dtype) for k, v in grads.items()}
        else:
            loss, grads = self._pass(x, y)
        if self.adds_l2 and self.optimizer.weight_decay:
            wd, params = self.optimizer.weight_decay, self.get_params()
            for k, p in params.items():
                if self._decays(k):
                    loss += 0.5 * wd * float(np.sum(p.astype(np.float64) ** 2))
                    grads[k] = grads[k] + wd * p
        return loss, grads

    def _put_masks(self, masks) -> None:
        dropout_positions = [pos for pos, (name, _) in enumerate(self.layer_list)
                             if name == "dropout"]
        for i, (pos, mask) in enumerate(zip(dropout_positions, masks)):
            path = _paths.parse(self.mask_path.format(i=i, pos=pos))
            _paths.write(self, path, np.asarray(mask))
