"""Deliberately wrong optimizer steps behind a correct forward and backward pass.

Each class is :class:`tests.broken_backends.HookedMLP` (correct gradients) whose
optimizer breaks one rule of torch.optim, and plugs in as
``"tests.broken_optimizers:ClassName"`` (constructed as ``ClassName(spec, optimizer)``).
The bugs only show in the parameters after a step, mostly on entries whose gradient
is zero or rounding noise, which is where a loose post-step rule would let them through.
"""

from __future__ import annotations

import numpy as np

from scratch.optimizers import Adam, AdamW
from tests.broken_backends import HookedMLP


class LazyAdamRule(Adam):
    """Adam that leaves an entry alone (no decay, no moment update) where its gradient is 0."""

    def step(self, params, grads):
        frozen = {}
        for name, p in params.items():
            zero = np.asarray(grads[name]) == 0
            if zero.any():
                state = (p[zero].copy(), None, None)
                if name in self.m:
                    state = (state[0], self.m[name][zero].copy(), self.v[name][zero].copy())
                frozen[name] = (zero, state)
        super().step(params, grads)
        for name, (zero, (p, m, v)) in frozen.items():
            params[name][zero] = p
            self.m[name][zero] = 0 if m is None else m
            self.v[name][zero] = 0 if v is None else v


class _BrokenOptimizer(HookedMLP):
    """HookedMLP with its optimizer swapped for :meth:`make` (same settings)."""

    def __init__(self, spec, optimizer=None):
        super().__init__(spec, optimizer)
        o = self.optimizer_spec
        self.optimizer = self.make(lr=o.lr, betas=o.betas, eps=o.eps,
                                   weight_decay=o.weight_decay)

    def make(self, **kw):  # pragma: no cover - overridden
        raise NotImplementedError


class LazyAdam(_BrokenOptimizer):
    """Adam skipping zero-gradient entries (weight decay of those entries lost)."""

    def make(self, **kw):
        return LazyAdamRule(**kw)


class AdamIgnoringWeightDecay(_BrokenOptimizer):
    """Adam that drops its weight decay."""

    def make(self, **kw):
        kw["weight_decay"] = 0.0
        return Adam(**kw)


class AdamDecayingLikeAdamW(_BrokenOptimizer):
    """Adam that shrinks the parameter (AdamW's decoupled decay) instead of adding an L2 term."""

    def make(self, **kw):
        return AdamW(**kw)


class AdamWRunAsAdam(_BrokenOptimizer):
    """AdamW that adds its decay to the gradient (Adam's L2 term) instead of shrinking."""

    def make(self, **kw):
        return Adam(**kw)
