"""Optimizers with torch.optim's update rules, written out by hand.

Each optimizer updates a dict of parameters **in place** from a dict of gradients
with the same keys and shapes, keeping whatever state it needs per parameter (as
torch.optim keeps ``optimizer.state[p]``). Arrays keep their dtype: a float32
parameter stays float32, and so do its buffers.

Each rule is written once, in ``_update``, for one block of a parameter: a large
parameter is updated ``BLOCK`` elements at a time (see :func:`blocks`), so an update
needs two small work arrays and no temporary the size of the parameter (Adam written
on whole arrays makes four of them). Block by block or whole, the bits are the same.

The rules are those of the pseudo-code in torch.optim's documentation, with the
defaults torch uses here (``dampening=0``, ``amsgrad=False``, ``maximize=False``).
They agree with torch.optim up to rounding: torch fuses some multiply-adds (one
rounding where NumPy makes two), so results differ in the last bit now and then,
never in the rule.
"""

from __future__ import annotations

import math

import numpy as np

#: elements per block of an update: large enough to amortise NumPy's per-call cost,
#: small enough (128 kB in float32) for the block and its work arrays to stay in cache
BLOCK = 1 << 15


def blocks(*arrays: np.ndarray | None):
    """Matching flat slices of same-shaped C-contiguous arrays, ``BLOCK`` elements each.

    An update written for one block touches each element once per operation while the
    block sits in cache, and needs work arrays of ``BLOCK`` elements only, never one
    the size of a parameter. The slices are views: writing to them writes the arrays.
    A ``None`` among the arrays yields ``None`` in its place.

    Yields
    ------
    tuple of ndarray (or None), each of shape (k,) with k <= BLOCK
    """
    present = [a for a in arrays if a is not None]
    for a in present:
        if not a.flags.c_contiguous:
            raise ValueError(f"an array updated block by block must be C-contiguous, "
                             f"got one of shape {a.shape} with strides {a.strides}")
    flat = [None if a is None else a.reshape(-1) for a in arrays]  # views
    for start in range(0, present[0].size, BLOCK):
        yield tuple(None if f is None else f[start:start + BLOCK] for f in flat)


class Work:
    """Reusable work arrays of up to ``BLOCK`` elements each, made on first use.

    ``work.like(block, k)`` returns ``k`` of them with the shape and dtype of
    ``block``: views of the same memory every time, made once per shape.
    """

    def __init__(self):
        self._memory: dict[np.dtype, list[np.ndarray]] = {}
        self._views: dict[tuple, list[np.ndarray]] = {}

    def like(self, block: np.ndarray, k: int) -> list[np.ndarray]:
        key = (block.dtype, block.shape, k)
        views = self._views.get(key)
        if views is None:
            memory = self._memory.setdefault(block.dtype, [])
            while len(memory) < k:
                memory.append(np.empty(BLOCK, block.dtype))
            views = self._views[key] = [m[:block.size].reshape(block.shape)
                                        for m in memory[:k]]
        return views


#: which parameters weight decay reaches: every one, or the weights ``W{i}`` only
DECAY_ON = ("all", "weights")


def _check_decay_on(value: str) -> str:
    if value not in DECAY_ON:
        raise ValueError(f"`weight_decay_on` must be one of {', '.join(DECAY_ON)}, "
                         f"got {value!r}")
    return value


def decays(name: str, weight_decay_on: str) -> bool:
    """Whether the parameter ``name`` (``W{i}`` or ``b{i}``) is decayed under ``weight_decay_on``."""
    return weight_decay_on == "all" or name.startswith("W")


class SGD:
    """torch.optim.SGD with dampening 0.

    For each parameter p with gradient g, at step t::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        if momentum != 0:
            b <- g                                    (t = 1)
            b <- momentum * b + g                     (t > 1)
            g <- g + momentum * b                     (nesterov)
            g <- b                                    (otherwise)
        p <- p - lr * g

    Weight decay is added to the gradient of every parameter, biases included
    (``weight_decay_on="all"``), or of the weights ``W{i}`` only (``"weights"``).

    Parameters
    ----------
    lr : float
    momentum : float
    nesterov : bool
    weight_decay : float
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, weight_decay_on: str = "all"):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.weight_decay_on = _check_decay_on(weight_decay_on)
        self.buffers: dict[str, np.ndarray] = {}
        self._work = Work()

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            wd = self.weight_decay if decays(name, self.weight_decay_on) else 0.0
            buf = None
            first = False
            if self.momentum != 0:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = np.empty_like(p)
                    first = True
            if p.size <= BLOCK:  # one block: the arrays as they are
                self._update(p, g, buf, first, wd)
            else:
                for pb, gb, bb in blocks(p, g, buf):
                    self._update(pb, gb, bb, first, wd)

    def _update(self, p: np.ndarray, g: np.ndarray, buf: np.ndarray | None,
                first: bool, wd: float) -> None:
        """The rule on one block; ``buf`` is the momentum buffer's block (None without),
        ``wd`` this parameter's weight decay."""
        if wd != 0 or self.nesterov:
            w, u = self._work.like(p, 2)
        else:  # one work array is enough (less memory for the plain rule)
            (u,) = self._work.like(p, 1)
        if wd != 0:
            np.multiply(p, wd, out=w)
            g = np.add(g, w, out=w)  # g <- g + weight_decay * p
        if self.momentum != 0:
            if first:
                buf[...] = g  # b <- g
            else:
                buf *= self.momentum
                buf += g  # b <- momentum * b + g
            if self.nesterov:
                np.multiply(buf, self.momentum, out=u)
                g = np.add(g, u, out=w)  # g <- g + momentum * b
            else:
                g = buf
        np.multiply(g, self.lr, out=u)
        p -= u  # p <- p - lr * g


def lerp_(start: np.ndarray, end: np.ndarray, weight: float,
          work: np.ndarray | None = None) -> None:
    """start <- start + weight * (end - start), in place, rounded as torch.lerp rounds.

    torch uses ``end - (end - start) * (1 - weight)`` when weight >= 0.5, so that
    weight 1 gives ``end`` exactly (Adam with beta1 = 0). ``work``, of the shape of
    ``start``, holds the difference (a new array without it).
    """
    diff = np.subtract(end, start, out=work)
    if weight < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1 - weight
        np.subtract(end, diff, out=start)


class Adam:
    """torch.optim.Adam: weight decay is an L2 term added to the gradient.

    For each parameter p with gradient g, at its step t (1, 2, ...)::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        m <- beta1 * m + (1 - beta1) * g              (m_0 = 0)
        v <- beta2 * v + (1 - beta2) * g^2            (v_0 = 0)
        m_hat <- m / (1 - beta1^t)
        v_hat <- v / (1 - beta2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    computed as torch computes it: ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps`` and
    ``p <- p - (lr / (1 - beta1^t)) * m / denom``, so eps is added after the square
    root and the bias correction. Weight decay reaches every parameter, biases included
    (``weight_decay_on="all"``), or the weights ``W{i}`` only (``"weights"``).

    Parameters
    ----------
    lr : float
    betas : (float, float)
    eps : float
    weight_decay : float
    weight_decay_on : {"all", "weights"}
    """

    #: AdamW sets this: decay the parameter itself instead of adding an L2 gradient
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, weight_decay_on: str = "all"):
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.weight_decay_on = _check_decay_on(weight_decay_on)
        self.steps: dict[str, int] = {}
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self._work = Work()

    @property
    def t(self) -> int:
        """Steps taken so far (torch counts them per parameter; here they move together)."""
        return max(self.steps.values(), default=0)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            t = self.steps[name] = self.steps.get(name, 0) + 1
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            wd = self.weight_decay if decays(name, self.weight_decay_on) else 0.0
            if p.size <= BLOCK:  # one block: the arrays as they are
                self._update(p, g, m, v, t, wd)
            else:
                for pb, gb, mb, vb in blocks(p, g, m, v):
                    self._update(pb, gb, mb, vb, t, wd)

    def _update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                t: int, wd: float) -> None:
        """The rule on one block of a parameter, its gradient and its two moments;
        ``wd`` is this parameter's weight decay."""
        w, u = self._work.like(p, 2)
        if wd != 0:
            if self.decoupled:
                p *= 1 - self.lr * wd  # AdamW: shrink p itself
            else:
                np.multiply(p, wd, out=w)
                g = np.add(g, w, out=w)  # Adam: g <- g + weight_decay * p
        lerp_(m, g, 1 - self.beta1, work=u)  # m <- beta1 m + (1 - beta1) g
        v *= self.beta2
        np.multiply(g, 1 - self.beta2, out=u)
        u *= g
        v += u  # v <- beta2 v + (1 - beta2) g^2
        bias_correction1 = 1 - self.beta1 ** t
        bias_correction2_sqrt = math.sqrt(1 - self.beta2 ** t)
        denom = np.sqrt(v, out=u)
        denom /= bias_correction2_sqrt
        denom += self.eps  # sqrt(v) / sqrt(1 - beta2^t) + eps
        step = np.multiply(m, self.lr / bias_correction1, out=w)
        step /= denom
        p -= step  # p <- p - lr / (1 - beta1^t) * m / denom


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay.

    The same rule as :class:`Adam` without the L2 term; instead, before the moment
    updates, ``p <- p * (1 - lr * weight_decay)``. Every parameter, biases included,
    or the weights only (``weight_decay_on="weights"``).
    """

    decoupled = True


class RMSprop:
    """torch.optim.RMSprop: eps is added outside the square root.

    For each parameter p with gradient g, at step t::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        v <- alpha * v + (1 - alpha) * g^2            (v_0 = 0)
        m <- alpha * m + (1 - alpha) * g              (centered; m_0 = 0)
        d <- sqrt(v - m^2) + eps  (centered), sqrt(v) + eps  (otherwise)
        b <- momentum * b + g / d;  p <- p - lr * b   (momentum > 0; b_0 = 0)
        p <- p - lr * g / d                           (otherwise)

    Parameters
    ----------
    lr, alpha, eps, momentum, weight_decay : float
    centered : bool
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0,
                 weight_decay_on: str = "all"):
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered
        self.weight_decay = weight_decay
        self.weight_decay_on = _check_decay_on(weight_decay_on)
        self.state: dict[str, tuple] = {}
        self._work = Work()

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            if name not in self.state:
                self.state[name] = (np.zeros_like(p),
                                    np.zeros_like(p) if self.centered else None,
                                    np.zeros_like(p) if self.momentum > 0 else None)
            v, m, b = self.state[name]
            wd = self.weight_decay if decays(name, self.weight_decay_on) else 0.0
            for block in blocks(p, grads[name], v, m, b):
                self._update(*block, wd)

    def _update(self, p, g, v, m, b, wd: float) -> None:
        """The rule on one block: parameter, gradient, square average ``v``, average
        ``m`` (None unless centered), momentum buffer ``b`` (None without)."""
        w, u = self._work.like(p, 2)
        if wd != 0:
            np.multiply(p, wd, out=w)
            g = np.add(g, w, out=w)  # g <- g + weight_decay * p
        v *= self.alpha
        np.multiply(g, 1 - self.alpha, out=u)
        u *= g
        v += u  # v <- alpha v + (1 - alpha) g^2
        if m is not None:
            lerp_(m, g, 1 - self.alpha, work=u)  # m <- alpha m + (1 - alpha) g
            np.multiply(m, m, out=u)
            np.subtract(v, u, out=u)
            denom = np.sqrt(u, out=u)  # sqrt(v - m^2)
        else:
            denom = np.sqrt(v, out=u)
        denom += self.eps
        if b is not None:
            b *= self.momentum
            np.divide(g, denom, out=u)
            b += u  # b <- momentum b + g / d
            np.multiply(b, self.lr, out=u)
            p -= u  # p <- p - lr b
        else:
            step = np.multiply(g, self.lr, out=w)
            step /= denom
            p -= step  # p <- p - lr g / d


class Adagrad:
    """torch.optim.Adagrad.

    For each parameter p with gradient g, at step t (1, 2, ...)::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        lr_t <- lr / (1 + (t - 1) * lr_decay)
        s <- s + g^2                                  (s_0 = initial_accumulator_value)
        p <- p - lr_t * g / (sqrt(s) + eps)

    Parameters
    ----------
    lr, lr_decay, initial_accumulator_value, eps, weight_decay : float
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 weight_decay: float = 0.0, weight_decay_on: str = "all"):
        self.lr = lr
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = eps
        self.weight_decay = weight_decay
        self.weight_decay_on = _check_decay_on(weight_decay_on)
        self.steps: dict[str, int] = {}
        self.sums: dict[str, np.ndarray] = {}
        self._work = Work()

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            t = self.steps[name] = self.steps.get(name, 0) + 1
            if name not in self.sums:
                self.sums[name] = np.full_like(p, self.initial_accumulator_value)
            wd = self.weight_decay if decays(name, self.weight_decay_on) else 0.0
            clr = self.lr / (1 + (t - 1) * self.lr_decay)
            for pb, gb, sb in blocks(p, grads[name], self.sums[name]):
                self._update(pb, gb, sb, clr, wd)

    def _update(self, p, g, s, clr: float, wd: float) -> None:
        """The rule on one block: parameter, gradient and sum of squares ``s``."""
        w, u = self._work.like(p, 2)
        if wd != 0:
            np.multiply(p, wd, out=w)
            g = np.add(g, w, out=w)  # g <- g + weight_decay * p
        np.multiply(g, g, out=u)
        s += u  # s <- s + g^2
        denom = np.sqrt(s, out=u)
        denom += self.eps
        step = np.multiply(g, clr, out=w)
        step /= denom
        p -= step  # p <- p - lr_t g / (sqrt(s) + eps)


#: the optimizers by name, and the arguments of :func:`make_optimizer` each one takes
OPTIMIZERS = {
    "sgd": (SGD, ("lr", "momentum", "nesterov")),
    "adam": (Adam, ("lr", "betas", "eps")),
    "adamw": (AdamW, ("lr", "betas", "eps")),
    "rmsprop": (RMSprop, ("lr", "alpha", "eps", "momentum", "centered")),
    "adagrad": (Adagrad, ("lr", "lr_decay", "initial_accumulator_value", "eps")),
}


def make_optimizer(name: str = "sgd", lr: float = 0.01, *, weight_decay: float = 0.0,
                   weight_decay_in: str = "optimizer", weight_decay_on: str = "all",
                   lr_schedule: str = "none", clip_grad_norm: float | None = None,
                   clip_grad_value: float | None = None, table: dict | None = None,
                   **options):
    """Build the optimizer ``name`` (a key of :data:`OPTIMIZERS`) with torch.optim's names.

    ``options`` are the other arguments of torch.optim (momentum, nesterov, betas, eps,
    alpha, centered, lr_decay, initial_accumulator_value); those that do not apply to
    ``name`` are ignored. With ``weight_decay_in="loss"`` the decay is the model's L2
    term in the loss, so the optimizer is built without any (``weight_decay`` 0);
    ``weight_decay_on`` is "all" (every parameter) or "weights" (``W{i}`` only).
    With a ``lr_schedule`` other than "none" (its parameters among ``options``: step_size,
    gamma, decay, t_max, eta_min) or clipping, the optimizer comes wrapped in
    :class:`scratch.schedules.Scheduled`, which clips, steps, then moves the rate.
    ``table`` (default :data:`OPTIMIZERS`) maps names to (class, argument names):
    :mod:`scratch.optimizers_reference` passes its readable rules.
    """
    table = OPTIMIZERS if table is None else table
    if name not in table:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(table)}")
    if weight_decay_in not in ("optimizer", "loss"):
        raise ValueError(f"`weight_decay_in` must be one of optimizer, loss, "
                         f"got {weight_decay_in!r}")
    if weight_decay_in == "loss":
        if name == "adamw":
            raise ValueError("`weight_decay_in` loss does not apply to adamw: its decay is "
                             "decoupled from the gradient")
        weight_decay = 0.0
    cls, takes = table[name]
    kw = {k: options[k] for k in takes[1:] if k in options}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    opt = cls(lr=lr, weight_decay=weight_decay, weight_decay_on=weight_decay_on, **kw)
    if lr_schedule == "none" and clip_grad_norm is None and clip_grad_value is None:
        return opt
    from scratch.schedules import Scheduled, make_schedule

    schedule = make_schedule(lr_schedule, lr, **options)
    return Scheduled(opt, schedule, clip_grad_norm=clip_grad_norm,
                     clip_grad_value=clip_grad_value)
