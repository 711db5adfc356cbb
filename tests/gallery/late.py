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
    """Logits clipped at +-50 (zero gradient beyond): exact until a logit grows past 50.

    ``onset`` (a step count, 1 by default) arms the clip only from that training step on.
    """

    #: the clip level
    clip = CLIP
    #: the first training step at which the clip is armed
    onset = 1

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
        armed = self._training and self.t + 1 >= self.onset
        if armed and self.first_clip is None and self.largest[-1] > self.clip:
            self.first_clip = self.t + 1
        if armed or not self._training:
            zs[-1] = np.clip(zs[-1], -self.clip, self.clip)
        return zs, acts

    def through_output(self, dz):
        if self.t + 1 < self.onset:
            return dz
        return dz * (np.abs(self._raw) <= self.clip)  # d clip(z) / dz

