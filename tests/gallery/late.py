"""Bugs that start late in a run: exact for the first few hundred steps, then wrong.

Each is :class:`tests.gallery.independent.IndependentNet` (correct) with one change that
first acts after a step count or a logit size the run reaches only late; a trajectory
verdict must FAIL each where the spread of correct runs at that point is smaller than the
change.
"""

from __future__ import annotations

import numpy as np

from tests.gallery.independent import IndependentNet

#: the step after which the first two bugs act
LATE_STEP = 300


class LateLrCut(IndependentNet):
    """The learning rate cut 10x from step 301 (a schedule nobody asked for)."""

    def update(self, key, p, v):
        lr = self.opt.lr / 10 if self.t > LATE_STEP else self.opt.lr
        return p - lr * v


class LateFrozenLast(IndependentNet):
    """The last layer no longer updated after step 300."""

    def update(self, key, p, v):
        last = len(self.dims) - 2
        if self.t > LATE_STEP and key in (f"W{last}", f"b{last}"):
            return p
        return p - self.opt.lr * v


#: the logit size at which :class:`LogitClip` clips
CLIP = 50.0


#: every LogitClip built, latest last (a test reads when the clip first acted)
BUILT: list = []


class LogitClip(IndependentNet):
    """Logits clipped at +-50 (zero gradient beyond): exact until a logit grows past 50."""

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        #: the first training step whose forward pass clipped (None: none yet)
        self.first_clip: int | None = None
        #: the largest |logit| of each training step's forward pass
        self.largest: list[float] = []
        self._training = False
        BUILT.append(self)

    def train_step(self, x, y):
        self._training = True
        try:
            return super().train_step(x, y)
        finally:
            self._training = False

    def _forward(self, x):
        zs, acts = super()._forward(x)
        self._raw = zs[-1]
        if self._training:
            self.largest.append(float(np.abs(zs[-1]).max()))
            if self.first_clip is None and self.largest[-1] > CLIP:
                self.first_clip = self.t + 1
        zs[-1] = np.clip(zs[-1], -CLIP, CLIP)
        return zs, acts

    def through_output(self, dz):
        return dz * (np.abs(self._raw) <= CLIP)  # d clip(z) / dz
