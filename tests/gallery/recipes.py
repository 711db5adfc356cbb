"""RMSprop, Adagrad and a learning-rate schedule as a course writes them: correct, and
each with the slip people make (eps inside the root, the accumulator's start or the
rate decay forgotten, the schedule stepped before the update)."""

import numpy as np

from tests.gallery.base import Net as _Base


class RMSprop(_Base):
    """cs231n's rmsprop: cache = alpha cache + (1 - alpha) g^2; p -= lr g / (sqrt(cache) + eps)."""

    OPTIMIZERS = ("rmsprop",)

    def update(self, key, p, g):
        o = self.opt
        g = g + o.weight_decay * p
        cache = o.alpha * self.state.get(key, 0.0) + (1 - o.alpha) * g * g
        self.state[key] = cache
        return p - o.lr * g / self.denominator(cache)

    def denominator(self, cache):
        return np.sqrt(cache) + self.opt.eps


class RMSpropEpsInsideRoot(RMSprop):
    """eps added under the square root (as some books write it), not after it."""

    def denominator(self, cache):
        return np.sqrt(cache + self.opt.eps)


class Adagrad(_Base):
    """Adagrad: cache += g^2 from the initial value; p -= lr_t g / (sqrt(cache) + eps)."""

    OPTIMIZERS = ("adagrad",)

    def start(self):
        return self.opt.initial_accumulator_value

    def rate(self):
        return self.opt.lr / (1 + (self.t - 1) * self.opt.lr_decay)

    def update(self, key, p, g):
        o = self.opt
        g = g + o.weight_decay * p
        cache = self.state.get(key, self.start()) + g * g
        self.state[key] = cache
        return p - self.rate() * g / (np.sqrt(cache) + o.eps)


class AdagradZeroStart(Adagrad):
    """The accumulator starts at 0 whatever ``initial_accumulator_value`` says."""

    def start(self):
        return 0.0


class AdagradNoRateDecay(Adagrad):
    """``lr_decay`` ignored: every step at the base rate."""

    def rate(self):
        return self.opt.lr


class StepSchedule(_Base):
    """SGD with the rate multiplied by gamma every step_size steps, after the update
    (torch's order: step t uses lr(t - 1))."""

    OPTIMIZERS = ("sgd",)

    def lr_at(self, t):
        o = self.opt
        return o.lr * o.gamma ** (t // o.step_size)

    def update(self, key, p, g):
        g = g + self.opt.weight_decay * p
        return p - self.lr_at(self.t - 1) * g


class StepScheduleEarly(StepSchedule):
    """The schedule stepped before the update: step t uses lr(t), one step early."""

    def update(self, key, p, g):
        g = g + self.opt.weight_decay * p
        return p - self.lr_at(self.t) * g


class ExponentialPerEpoch(StepSchedule):
    """cs231n's Solver: the rate multiplied by gamma once per epoch of ``EPOCH`` batches,
    where torch's ExponentialLR steps after every optimizer step."""

    EPOCH = 4

    def lr_at(self, t):
        return self.opt.lr * self.opt.gamma ** (t // self.EPOCH)
