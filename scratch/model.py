"""A multi-layer perceptron for classification, forward and backward by hand, fast.

The maths is the one of :mod:`scratch.reference` (read that first)::

    z_i = a_i @ W_i + b_i,   a_{i+1} = f(z_i)            forward, a_0 = x
    dz_{L-1} = (softmax(z_{L-1}) - onehot(y)) / N         loss gradient, fused
    dW_i = a_i^T @ dz_i,   db_i = sum_rows dz_i
    dz_{i-1} = (dz_i @ W_i^T) * f'(z_{i-1})               backward

computed here so that NumPy spends its time in BLAS, not in allocation:

* every array a step needs lives in a :class:`Workspace` allocated once per batch
  size and reused by every later step of that size; results go in with ``out=``;
* each hidden buffer holds z_i, then a_{i+1} = f(z_i) written over it, then, on the
  way back, dL/da and dz: the same memory serves forward and backward;
* the forward pass keeps f'(z_i) (for relu a boolean mask) for the backward pass;
* the logits are kept transposed, (C, N), so that the per-sample softmax reductions
  run over contiguous rows of length N;
* float32 stays float32 end to end; ``train_step`` hands the optimizer the live
  parameters and reused gradient buffers (no copies).
"""

from __future__ import annotations

import numpy as np

from scratch.activations import activate_inplace
from scratch.losses import softmax_cross_entropy_t
from scratch.reference import ReferenceMLP, ordered_intermediates


class Workspace:
    """The buffers of one forward and backward pass at batch size N.

    Attributes
    ----------
    hidden : list of ndarray, hidden[i] of shape (N, d_{i+1})
        z_i, then a_{i+1} = f(z_i) in place; in the backward pass dL/da, then dz_i.
    derivs : list of ndarray
        f'(z_i), saved by the forward pass for the backward pass.
    masks : list of ndarray or None
        relu only: where f'(z_i) = (z_i > 0) goes, bool (N, d_{i+1}).
    zeros : list of ndarray or None
        relu only: the zero it compares with (see ``scratch.activations.relu_inplace``):
        a full (N, d_{i+1}) array for layers of up to ``SMALL`` numbers, where NumPy
        is about twice as fast with it as with a scalar; a 0-d zero for bigger ones,
        where both run at memory speed and a full array would only cost memory.
    ones : ndarray of shape (N,)
        For the bias gradients, db_i = 1^T @ dz_i.
    logits : ndarray of shape (N, C)
        a_{L-1} @ W_{L-1}, before the bias.
    logits_t : ndarray of shape (C, N)
        The logits, transposed; the loss overwrites them with dz_{L-1}^T.
    loss_buffers : dict of (N,) work arrays of the loss
    """

    SMALL = 2**13

    def __init__(self, dims: tuple[int, ...], n: int, dtype: np.dtype, activation: str):
        hidden = dims[1:-1]
        self.n = n
        self.hidden = [np.empty((n, d), dtype) for d in hidden]
        self.derivs: list = [None] * len(hidden)
        relu = activation == "relu"
        self.masks = [np.empty((n, d), bool) if relu else None for d in hidden]
        self.zeros = [(np.zeros((n, d), dtype) if n * d <= self.SMALL else np.zeros((), dtype))
                      if relu else None for d in hidden]
        self.ones = np.ones(n, dtype)
        self.logits = np.empty((n, dims[-1]), dtype)
        self.logits_t = np.empty((dims[-1], n), dtype)
        self.loss_buffers = dict(row_max=np.empty(n, dtype), row_sum=np.empty(n, dtype),
                                 columns=np.arange(n), flat_index=np.empty(n, np.intp))


class MLP(ReferenceMLP):
    """A from-scratch MLP classifier that implements the ``Classifier`` protocol.

    Same constructor (``dims, activation, dtype, seed, optimizer, param_error``),
    parameters and results as :class:`scratch.reference.ReferenceMLP`, computed in
    preallocated buffers.
    """

    #: how many batch sizes keep their buffers (an epoch has a full and a last batch)
    MAX_WORKSPACES = 2

    def __init__(self, dims, activation="relu", dtype="float64", seed=0, optimizer=None, *,
                 param_error: type[ValueError] = ValueError, loss_reduction="mean", l2=0.0,
                 l2_on="all", loss="cross_entropy", loss_outputs="mean", mse_half=False):
        super().__init__(dims, activation, dtype, seed, optimizer, param_error=param_error,
                         loss_reduction=loss_reduction, l2=l2, l2_on=l2_on, loss=loss,
                         loss_outputs=loss_outputs, mse_half=mse_half)
        self._workspaces: dict[int, Workspace] = {}
        self._grads: dict[str, np.ndarray] | None = None  # train_step's gradient buffers

    def _workspace(self, n: int) -> Workspace:
        """The buffers for batch size ``n``, made on first use and kept for the next steps."""
        ws = self._workspaces.pop(n, None)
        if ws is None:
            ws = Workspace(self.dims, n, self.dtype, self.activation)
        self._workspaces[n] = ws  # most recently used last
        while len(self._workspaces) > self.MAX_WORKSPACES:
            del self._workspaces[next(iter(self._workspaces))]
        return ws

    def _input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)  # no copy when x already has the model's dtype
        if x.ndim != 2 or x.shape[1] != self.dims[0] or x.shape[0] == 0:
            raise ValueError(f"x must have shape (N, {self.dims[0]}) with N >= 1, "
                             f"got {x.shape}")
        return x

    @staticmethod
    def _labels(y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {y.shape}")
        return y

    # ------------------------------------------------------------------- forward
    def _hidden_forward(self, x: np.ndarray, ws: Workspace, keep: dict | None = None,
                        with_derivs: bool = True) -> np.ndarray:
        """Hidden layers, in place in ``ws.hidden``; returns the last layer's input.

        With ``keep``, copies of z_i and a_i are stored in it (for ``intermediates``).
        """
        a = x
        for i, h in enumerate(ws.hidden):
            np.matmul(a, self.params[f"W{i}"], out=h)  # z_i = a_i @ W_i + b_i
            np.add(h, self.params[f"b{i}"], out=h)
            if keep is not None:
                keep[f"z{i}"] = h.copy()
            # h <- a_{i+1} = f(z_i), keeping f'(z_i) for the backward pass
            ws.derivs[i] = activate_inplace(self.activation, h, ws.zeros[i], ws.masks[i],
                                            need_deriv=with_derivs)
            if keep is not None:
                keep[f"a{i}"] = h.copy()
            a = h
        return a

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits of shape (N, d_L) for inputs of shape (N, d_0); a fresh array."""
        x = self._input(x)
        a = self._hidden_forward(x, self._workspace(len(x)), with_derivs=False)
        last = self.n_layers - 1
        logits = a @ self.params[f"W{last}"]
        logits += self.params[f"b{last}"]
        return logits

    # ------------------------------------------------------- forward and backward
    def _loss_and_grads_into(self, x: np.ndarray, y: np.ndarray, grads: dict[str, np.ndarray],
                             keep: dict | None = None) -> float:
        """One forward and backward pass writing every gradient into ``grads``; the loss.

        ``grads`` holds one array per parameter, of its shape and dtype. With ``keep``,
        copies of every intermediate are stored in it (for ``intermediates``).
        """
        ws = self._workspace(len(x))
        last = self.n_layers - 1
        a = self._hidden_forward(x, ws, keep)

        # logits z_{L-1} = a @ W + b: BLAS makes the (N, C) product faster than its
        # transpose; the bias is added while copying it into the transposed (C, N) buffer
        z_t = ws.logits_t
        np.matmul(a, self.params[f"W{last}"], out=ws.logits)
        np.add(ws.logits.T, self.params[f"b{last}"][:, None], out=z_t)
        if keep is not None:
            keep[f"z{last}"] = z_t.T.copy()
        if self.loss == "cross_entropy":
            loss = softmax_cross_entropy_t(z_t, y, **ws.loss_buffers,
                                           reduction=self.loss_reduction)  # z_t <- dz^T
        else:  # bce, mse: the readable loss, its gradient written back transposed
            loss, dlogits = self._loss_grad(z_t.T, y)
            z_t[...] = dlogits.T

        dz = z_t.T  # (N, C), a view
        for i in reversed(range(self.n_layers)):
            if keep is not None:
                keep[f"dz{i}"] = dz.copy()
            a_in = x if i == 0 else ws.hidden[i - 1]
            np.matmul(a_in.T, dz, out=grads[f"W{i}"])  # dW_i = a_i^T @ dz_i
            # db_i = column sums of dz_i = 1^T @ dz_i: BLAS's matrix-vector product is
            # several times faster than NumPy's sum along axis 0
            np.matmul(ws.ones, dz, out=grads[f"b{i}"])
            if i > 0:  # (the first layer's input gradient is never needed)
                # dL/da_i = dz_i @ W_i^T goes where a_i was: a_i is no longer needed
                np.matmul(dz, self.params[f"W{i}"].T, out=a_in)
                dz = np.multiply(a_in, ws.derivs[i - 1], out=a_in)  # dz_{i-1} = dL/da_i * f'
        return self._add_l2(loss, grads)  # the L2 term of weight decay in the loss, if any

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss on (x, y) (mean softmax cross-entropy by default; ``loss``), plus the
        L2 term if any, and its gradient for every parameter.

        The gradients are fresh arrays the caller may keep.

        Parameters
        ----------
        x : ndarray of shape (N, d_0)
        y : ndarray of int, shape (N,)
        """
        x = self._input(x)
        grads = {k: np.empty_like(p) for k, p in self.params.items()}
        loss = self._loss_and_grads_into(x, self._labels(y, len(x)), grads)
        return loss, grads

    def intermediates(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Named intermediates of one forward and backward pass, in computation order.

        ``z{i}`` pre-activations (N, d_{i+1}); ``a{i}`` hidden activations f(z_i);
        then, from the output layer down, ``dz{i}``, ``dW{i}``, ``db{i}``. Copies taken
        from the very buffers ``train_step`` uses.
        """
        grads = {k: np.empty_like(p) for k, p in self.params.items()}
        keep: dict[str, np.ndarray] = {}
        x = self._input(x)
        self._loss_and_grads_into(x, self._labels(y, len(x)), grads, keep)
        layers = range(self.n_layers)
        return ordered_intermediates([keep[f"z{i}"] for i in layers],
                                     [keep[f"a{i}"] for i in layers[:-1]],
                                     [keep[f"dz{i}"] for i in layers], grads)

    # ------------------------------------------------------------------ training
    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer update on the batch; returns the loss before the update.

        The gradients are written into buffers reused by every step, and the optimizer
        updates the parameters in place. An optimizer with a schedule or clipping
        (:class:`scratch.schedules.Scheduled`, from ``make_optimizer``) clips these
        gradients first and moves its rate after the update, as torch's
        ``clip_grad_norm_``, ``optimizer.step()``, ``scheduler.step()``.
        """
        if self._grads is None:
            self._grads = {k: np.empty_like(p) for k, p in self.params.items()}
        x = self._input(x)
        loss = self._loss_and_grads_into(x, self._labels(y, len(x)), self._grads)
        self.optimizer.step(self.params, self._grads)
        return loss
