"""The straightforward MLP, for learners: every step is one NumPy expression.

Layer i computes z_i = a_i @ W_i + b_i, then a_{i+1} = f(z_i) for hidden layers;
the last layer's z is the logits. Parameters use the canonical layout
``W{i}`` of shape (d_i, d_{i+1}) and ``b{i}`` of shape (d_{i+1},).

Every array here is fresh: nothing is reused between calls, nothing is written in
place except the optimizer's update of the parameters. :class:`scratch.model.MLP`
computes exactly the same numbers in preallocated buffers; read this file first.
"""

from __future__ import annotations

import numpy as np

from scratch.activations import ACTIVATIONS
from scratch.losses import add_l2, check_loss, loss_grad
from scratch.optimizers import SGD
from scratch.params import param_shapes, validate_params


def ordered_intermediates(zs: list[np.ndarray], hidden: list[np.ndarray],
                          dzs: list[np.ndarray], grads: dict[str, np.ndarray]
                          ) -> dict[str, np.ndarray]:
    """The ``intermediates`` dictionary, its names in computation order.

    Parameters
    ----------
    zs : list of L arrays, zs[i] of shape (N, d_{i+1}): pre-activations, zs[-1] the logits
    hidden : list of L-1 arrays, hidden[i] = f(zs[i]) of shape (N, d_{i+1})
    dzs : list of L arrays, dzs[i] = dL/dz_i of shape (N, d_{i+1})
    grads : dict of parameter gradients, canonical layout

    Returns
    -------
    dict
        ``z0, a0, z1, a1, ..., z{L-1}`` forward, then ``dz{L-1}, dW{L-1}, db{L-1}, ...,
        db0`` from the output layer down.
    """
    out: dict[str, np.ndarray] = {}
    for i, z in enumerate(zs):
        out[f"z{i}"] = z
        if i < len(hidden):
            out[f"a{i}"] = hidden[i]
    for i in reversed(range(len(zs))):
        out[f"dz{i}"] = dzs[i]
        out[f"dW{i}"] = grads[f"W{i}"]
        out[f"db{i}"] = grads[f"b{i}"]
    return out


class ReferenceMLP:
    """A from-scratch MLP classifier that implements the ``Classifier`` protocol.

    Parameters
    ----------
    dims : tuple of int
        ``(d_0, ..., d_L)``: features, hidden widths, classes.
    activation : str
        Hidden activation, a key of ``scratch.activations.ACTIVATIONS``.
    dtype : str
        ``"float32"`` or ``"float64"``; parameters, activations and gradients keep it.
    seed : int
        Initial parameters are uniform in +-1/sqrt(d_i), as torch.nn.Linear's default.
    optimizer : object with ``step(params, grads)``, optional
        Defaults to ``SGD(lr=0.01)``.
    param_error : subclass of ValueError, optional
        What ``set_params`` raises for a dictionary that does not fit; ``ValueError``.
    loss_reduction : {"mean", "sum"}
        The cross-entropy averaged (default) or summed over the batch; the gradients
        are those of that loss.
    l2 : float
        Weight decay in the loss: ``0.5 * l2 * sum ||p||^2`` is added to the loss and
        ``l2 * p`` to the gradients (default 0: none; the optimizer may decay instead).
    l2_on : {"all", "weights"}
        The parameters the L2 term covers: every one, or the weights ``W{i}`` only.
    loss, loss_outputs, mse_half
        The loss (:func:`scratch.losses.loss_grad`): ``cross_entropy`` (softmax, the
        default), ``bce`` (sigmoid + binary cross-entropy per output) or ``mse``; how
        bce and mse reduce over the outputs (``mean`` as torch, or ``sum``), and the 1/2
        of the quadratic cost (mse).
    """

    def __init__(self, dims, activation="relu", dtype="float64", seed=0, optimizer=None, *,
                 param_error: type[ValueError] = ValueError, loss_reduction="mean", l2=0.0,
                 l2_on="all", loss="cross_entropy", loss_outputs="mean", mse_half=False):
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"`loss_reduction` must be one of mean, sum, "
                             f"got {loss_reduction!r}")
        if l2_on not in ("all", "weights"):
            raise ValueError(f"`l2_on` must be one of all, weights, got {l2_on!r}")
        check_loss(loss, loss_outputs)
        self.loss, self.loss_outputs, self.mse_half = loss, loss_outputs, bool(mse_half)
        self.loss_reduction = loss_reduction
        self.l2 = float(l2)
        self.l2_on = l2_on
        self.dims = tuple(int(d) for d in dims)
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self.f, self.f_grad = ACTIVATIONS[activation]
        self.optimizer = optimizer if optimizer is not None else SGD(lr=0.01)
        self.param_error = param_error
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for name, shape in param_shapes(self.dims).items():
            fan_in = self.dims[int(name[1:])]
            bound = 1.0 / np.sqrt(fan_in)
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    def _loss_grad(self, logits: np.ndarray, y) -> tuple[float, np.ndarray]:
        """The model's loss of ``logits`` and its gradient with respect to them."""
        return loss_grad(logits, np.asarray(y), self.loss, self.loss_reduction,
                         self.loss_outputs, self.mse_half)

    def _add_l2(self, loss: float, grads: dict[str, np.ndarray]) -> float:
        """``loss`` plus the L2 term of ``l2``; adds ``l2 * p`` to ``grads`` in place."""
        return add_l2(loss, grads, self.params, self.l2, self.l2_on)

    # ----------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, canonical layout."""
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Replace the parameters with copies of ``params`` (validated, cast to dtype)."""
        self.params = validate_params(params, self.dims, self.dtype, self.param_error)

    # ------------------------------------------------------------------- forward
    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Run the network, keeping what backprop needs.

        Returns
        -------
        acts : list of L arrays, acts[i] of shape (N, d_i): the input of layer i
        zs : list of L arrays, zs[i] of shape (N, d_{i+1}); zs[-1] are the logits
        """
        acts, zs = [x], []
        for i in range(self.n_layers):
            z = acts[-1] @ self.params[f"W{i}"] + self.params[f"b{i}"]
            zs.append(z)
            if i < self.n_layers - 1:
                acts.append(self.f(z))
        return acts, zs

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits of shape (N, d_L) for inputs of shape (N, d_0)."""
        _, zs = self._forward(np.asarray(x, dtype=self.dtype))
        return zs[-1]

    # ------------------------------------------------------------------ backward
    def _backward(self, acts, zs, dlogits) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """Backpropagate dL/dlogits through every layer.

        dW_i = a_i^T @ dz_i        (d_i, d_{i+1})
        db_i = sum over rows of dz_i   (d_{i+1},)
        dz_{i-1} = (dz_i @ W_i^T) * f'(z_{i-1})

        Returns
        -------
        grads : dict of parameter gradients, canonical layout
        dzs : list of L arrays, dzs[i] = dL/dz_i of shape (N, d_{i+1})
        """
        grads: dict[str, np.ndarray] = {}
        dzs: list[np.ndarray] = [None] * self.n_layers  # type: ignore[list-item]
        dz = dlogits
        for i in reversed(range(self.n_layers)):
            dzs[i] = dz
            grads[f"W{i}"] = acts[i].T @ dz
            grads[f"b{i}"] = dz.sum(axis=0)
            if i > 0:
                dz = (dz @ self.params[f"W{i}"].T) * self.f_grad(zs[i - 1], acts[i])
        return {k: grads[k] for k in self.params}, dzs

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss on (x, y) (mean softmax cross-entropy by default; ``loss``), plus the
        L2 term if any, and its gradient for every parameter.

        Parameters
        ----------
        x : ndarray of shape (N, d_0)
        y : ndarray of int, shape (N,)
        """
        acts, zs = self._forward(np.asarray(x, dtype=self.dtype))
        loss, dlogits = self._loss_grad(zs[-1], y)
        grads, _ = self._backward(acts, zs, dlogits)
        return self._add_l2(loss, grads), grads

    def intermediates(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Named intermediates of one forward and backward pass, in computation order.

        ``z{i}`` pre-activations (N, d_{i+1}); ``a{i}`` hidden activations f(z_i);
        then, from the output layer down, ``dz{i}``, ``dW{i}``, ``db{i}``.
        """
        acts, zs = self._forward(np.asarray(x, dtype=self.dtype))
        _, dlogits = self._loss_grad(zs[-1], y)
        grads, dzs = self._backward(acts, zs, dlogits)
        self._add_l2(0.0, grads)
        return ordered_intermediates(zs, acts[1:], dzs, grads)

    # ------------------------------------------------------------------ training
    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer update on the batch; returns the loss before the update.

        Clipping and a learning-rate schedule, where the optimizer has them
        (:class:`scratch.schedules.Scheduled`), act inside ``optimizer.step``: clip the
        gradients, update, then move the rate.
        """
        loss, grads = self.loss_and_grads(x, y)
        self.optimizer.step(self.params, grads)
        return loss
