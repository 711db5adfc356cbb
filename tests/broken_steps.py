"""Optimizer steps written out by hand, correct (:class:`OwnAdam`, :class:`OwnSGD`) or with
one bug each, behind the correct forward and backward pass of
:class:`tests.broken_backends.HookedMLP`; they plug in as ``"tests.broken_steps:Name"``.

The first group is exact at step 1 and wrong from step 2 on (a one-step check cannot see
them); the second is wrong by less than about 1% of the step (float32's plain tolerances
let it through; the float64 arbiter does not).
"""

from __future__ import annotations

import numpy as np

from tests.broken_backends import HookedMLP


class OwnAdam(HookedMLP):
    """Adam (torch.optim.Adam, L2 weight decay on every parameter) in a few lines."""

    def __init__(self, spec, optimizer=None):
        super().__init__(spec, optimizer)
        self.t = 0
        self.m: dict = {}
        self.v: dict = {}
        self.previous: dict | None = None
        self.n_first: int | None = None

    # the hooks the bugs override
    def lr_at(self, t: int) -> float:
        return self.optimizer_spec.lr

    def bias_t(self, t: int) -> int:
        return t

    def decay_from(self, params: dict) -> dict:
        return params

    def updates(self, name: str, t: int) -> bool:
        return True

    def gradients(self, x, y) -> tuple[float, dict]:
        return self.loss_and_grads(x, y)

    def step_of(self, m_hat, v_hat, lr: float, eps: float):
        return lr * m_hat / (np.sqrt(v_hat) + eps)

    def decoupled(self, p, lr: float, wd: float):
        return p

    def l2_decay(self) -> float:
        return self.optimizer_spec.weight_decay

    def train_step(self, x, y):
        loss, grads = self.gradients(x, y)
        o = self.optimizer_spec
        b1, b2 = o.betas
        self.t += 1
        t, lr = self.t, self.lr_at(self.t)
        params = self.get_params()
        decay = self.decay_from(params)
        new = {}
        for k, p in params.items():
            if not self.updates(k, t):
                new[k] = p
                continue
            g = grads[k] + self.l2_decay() * decay[k]
            self.m[k] = b1 * self.m.get(k, 0 * g) + (1 - b1) * g
            self.v[k] = b2 * self.v.get(k, 0 * g) + (1 - b2) * g * g
            tb = self.bias_t(t)
            m_hat = self.m[k] / (1 - b1 ** tb)
            v_hat = self.v[k] / (1 - b2 ** tb)
            p = self.decoupled(p, lr, o.weight_decay)
            new[k] = (p - self.step_of(m_hat, v_hat, lr, o.eps)).astype(p.dtype)
        self.previous = params
        self.set_params(new)
        return loss


class AdamBiasFromTMinus1(OwnAdam):
    """Bias correction with t - 1, guarded at the first step (t = 1 there)."""

    def bias_t(self, t):
        return max(t - 1, 1)


class AdamBiasFrozen(OwnAdam):
    """Bias correction frozen at step 1: divides by (1 - b1) and (1 - b2) every step."""

    def bias_t(self, t):
        return 1


class LrDecayFromStep2(OwnAdam):
    """A learning rate that decays by 10% a step from step 2."""

    def lr_at(self, t):
        return self.optimizer_spec.lr * 0.9 ** (t - 1)


class DecayFromPreviousParams(OwnAdam):
    """Weight decay taken from the parameters before the previous update."""

    def decay_from(self, params):
        return params if self.previous is None else self.previous


class SkipsLastLayerEveryOtherStep(OwnAdam):
    """The last layer is left alone on every even step."""

    def updates(self, name, t):
        return not (t % 2 == 0 and name.endswith(str(len(self.dims) - 2)))


class CachesBatchSize(OwnAdam):
    """The mean over the batch divides by the first call's batch size ever after."""

    def gradients(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        if self.n_first is None:
            self.n_first = len(y)
        return loss, {k: g * (len(y) / self.n_first) for k, g in grads.items()}


# ---------------------------------------------------------- errors below 1% of a step
class AdamWithoutEps(OwnAdam):
    """Adam without eps in the denominator (a zero gradient gives NaN)."""

    def step_of(self, m_hat, v_hat, lr, eps):
        with np.errstate(all="ignore"):
            return lr * m_hat / np.sqrt(v_hat)


class AdamUpdateOff1e4(OwnAdam):
    """Adam whose update is 1e-4 too large, relative."""

    def step_of(self, m_hat, v_hat, lr, eps):
        return (1 + 1e-4) * super().step_of(m_hat, v_hat, lr, eps)


class OwnAdamW(OwnAdam):
    """AdamW (decoupled decay, torch.optim.AdamW) in a few lines."""

    def l2_decay(self):
        return 0.0

    def decoupled(self, p, lr, wd):
        return p * (1 - lr * wd)


class AdamWWithoutDecay(OwnAdamW):
    """AdamW with its decay missing."""

    def decoupled(self, p, lr, wd):
        return p


class AdamWLrTwice(OwnAdamW):
    """AdamW whose decay multiplies by lr twice."""

    def decoupled(self, p, lr, wd):
        return p * (1 - lr * lr * wd)


class SGDDecayAfterUpdate(HookedMLP):
    """SGD whose weight decay shrinks the parameter after the update (p - lr g, then times
    1 - lr wd) instead of entering the gradient."""

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        o = self.optimizer_spec
        new = {}
        for k, p in self.get_params().items():
            q = p - o.lr * grads[k]
            new[k] = (q - o.lr * o.weight_decay * q).astype(p.dtype)
        self.set_params(new)
        return loss


# ---------------------------------------------------------- latent bugs the stress rows show
class NaiveSoftmax(HookedMLP):
    """A softmax without the max shift: exp of large logits overflows."""

    def probabilities(self, logits):
        with np.errstate(all="ignore"):
            e = np.exp(logits)
            p = e / e.sum(axis=1, keepdims=True)
            return p, np.log(p)


class ZeroesTinyGradients(HookedMLP):
    """A guard that sets gradient entries below 1e-8 to zero."""

    def finish(self, grads, n):
        return {k: np.where(np.abs(g) < 1e-8, 0, g).astype(g.dtype) for k, g in grads.items()}


class ClipsGradientNorm(HookedMLP):
    """Clips the gradient's global norm at 5 before every step (the reference does not)."""

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
        if norm > 5:
            grads = {k: (g * (5 / norm)).astype(g.dtype) for k, g in grads.items()}
        self.optimizer.step(self.params, grads)
        return loss
