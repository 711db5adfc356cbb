"""A catalogue of injected bugs: each a small subclass of the correct :class:`SimpleMLP`.

Every class here is a plug-in backend, constructed as ``Class(spec, optimizer)`` and
named ``harness.calibrate.catalogue:Class``; each overrides one method of
:class:`harness.calibrate.simple.SimpleMLP` (or of its optimizer) with a mistake a
person writing backpropagation or an optimizer by hand makes. :data:`harness.calibrate.entries.CATALOGUE`
lists them with the configuration each needs to exist at all (a sigmoid derivative
bug needs sigmoid units, a transposed weight gradient a square layer, a Nesterov
bug SGD with Nesterov momentum) and with what they can show:

``one_step``
    the bug changes logits, loss, a gradient or the first optimizer step: the
    one-step equivalence check can see it;
``trajectory``
    the first step is exactly right (momentum dampening: torch starts the buffer
    undamped; a wrong beta2: the bias correction makes step 1 independent of it);
    only later steps differ: the training trajectory must see it, and the equivalence
    check's later steps (``--steps``, default 3) see most of them;
``late``
    exact for many steps, then wrong (a rate cut from step 13, the last layer frozen
    after step 12): the one-step check cannot see it, the training trajectory must,
    however late it acts;
``unseen``
    (float32 only) a bug below what float32 can tell from rounding (a relative error
    of 1e-6, a float32 softmax): no requirement either way;
``none``
    not a bug on this configuration (a control: the relu mask at exactly 0); no check
    should fire. (A softmax without max-subtraction, once a control at ordinary logit
    sizes, is caught by the equivalence check's stress row.)
"""

from __future__ import annotations

import numpy as np

from harness.calibrate.simple import (SimpleAdagrad, SimpleAdam, SimpleMLP, SimpleRMSprop,
                                      SimpleSGD, clip_by_global_norm)

MODULE = "harness.calibrate.catalogue"


# ------------------------------------------------------------------ activations
class SigmoidNoOneMinus(SimpleMLP):
    """sigmoid'(z) written as s instead of s (1 - s)."""

    def act_grad(self, z, a):
        return a.copy()


class TanhOneMinusT(SimpleMLP):
    """tanh'(z) written as 1 - t instead of 1 - t^2."""

    def act_grad(self, z, a):
        return 1 - a


class ReluNoMask(SimpleMLP):
    """The backward pass forgets relu's mask: dL/da passes through unchanged."""

    def hidden_grad(self, i, da, z, a):
        return da


class ReluMaskAtZero(SimpleMLP):
    """relu'(0) taken as 1 (z >= 0): not a bug, a subgradient choice (control)."""

    def act_grad(self, z, a):
        return (z >= 0).astype(z.dtype)


class LeakySlopeDropped(SimpleMLP):
    """leaky_relu's derivative forgets the 0.01 slope: 0 for z < 0."""

    def act_grad(self, z, a):
        return (z > 0).astype(z.dtype)


class GeluTanhApprox(SimpleMLP):
    """GELU by the tanh approximation (forward and its own derivative, consistent)."""

    C = np.sqrt(2 / np.pi)

    def act(self, z):
        return 0.5 * z * (1 + np.tanh(self.C * (z + 0.044715 * z ** 3)))

    def act_grad(self, z, a):
        u = self.C * (z + 0.044715 * z ** 3)
        t = np.tanh(u)
        return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * self.C * (1 + 3 * 0.044715 * z * z)


# ------------------------------------------------------------------ loss and gradients
class BiasGradMean(SimpleMLP):
    """Bias gradient as the mean over the batch instead of the sum."""

    def bias_grad(self, i, dz):
        return dz.mean(axis=0)


class TransposedWeightGrad(SimpleMLP):
    """The weight gradient of a square layer transposed (dz^T a instead of a^T dz)."""

    def weight_grad(self, i, a, dz):
        g = a.T @ dz
        return g.T if g.shape[0] == g.shape[1] else g


class OneEntryOff(SimpleMLP):
    """One gradient entry off by a relative ``rel`` (default 1e-6).

    The entry: in the middle layer's weight gradient, the one of median magnitude
    among its non-zero entries (a typical entry, neither the largest nor noise).
    """

    rel = 1e-6

    def finish_grads(self, grads):
        key = f"W{self.n_layers // 2}"
        g = grads[key]
        flat = np.abs(g).ravel()
        nonzero = np.flatnonzero(flat)
        if nonzero.size:
            order = nonzero[np.argsort(flat[nonzero], kind="stable")]
            idx = np.unravel_index(order[order.size // 2], g.shape)
            g = g.copy()
            g[idx] = g[idx] * (1 + g.dtype.type(self.rel))
            grads[key] = g
        return grads


class SignFlipLayer(SimpleMLP):
    """The first layer's gradients (W0, b0) with the wrong sign."""

    def finish_grads(self, grads):
        grads["W0"] = -grads["W0"]
        grads["b0"] = -grads["b0"]
        return grads


class LossNotAveraged(SimpleMLP):
    """Loss and gradients summed over the batch, not averaged."""

    def loss_of(self, logp, y):
        return float(-logp[np.arange(len(y)), y].sum())

    def output_grad(self, logp, y):
        return super().output_grad(logp, y) * len(y)


class DividesByNMinus1(SimpleMLP):
    """The output gradient divided by N - 1 instead of N (loss averaged correctly)."""

    def output_grad(self, logp, y):
        n = len(y)
        return super().output_grad(logp, y) * (n / max(n - 1, 1))


class SoftmaxNoMaxSub(SimpleMLP):
    """log-softmax as z - log(sum exp z), without subtracting the row maximum first:
    exact at ordinary logits, inf/NaN once a logit passes the dtype's exp range."""

    def log_softmax(self, z):
        with np.errstate(over="ignore", invalid="ignore"):
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class LowPrecisionSoftmax(SimpleMLP):
    """The softmax computed in float32 whatever the model's dtype (a float64 bug)."""

    def log_softmax(self, z):
        return super().log_softmax(z.astype(np.float32)).astype(z.dtype)


# ------------------------------------------------------------------ optimizers
class _Optimized(SimpleMLP):
    """A model whose optimizer is ``SGD`` or ``ADAM`` below (set by the subclass; the
    name -> class table is :attr:`SimpleMLP.OPTIMIZERS`)."""

    SGD: type = SimpleSGD
    ADAM: type = SimpleAdam


class _NoBiasCorrection(SimpleAdam):
    def bias_corrections(self, t):
        return 1.0, 1.0


class AdamNoBiasCorrection(_Optimized):
    """Adam without bias correction (m and v used as they are)."""

    ADAM = _NoBiasCorrection


class _EpsInside(SimpleAdam):
    def denominator(self, v_hat):
        return np.sqrt(v_hat + self.spec.eps)


class AdamEpsInsideSqrt(_Optimized):
    """Adam's eps inside the square root: sqrt(v_hat + eps)."""

    ADAM = _EpsInside


class _StepOffByOne(SimpleAdam):
    def bias_corrections(self, t):
        return super().bias_corrections(t + 1)


class AdamStepOffByOne(_Optimized):
    """Adam's bias correction with t + 1 (the step counter starts at 1, then is bumped)."""

    ADAM = _StepOffByOne


class _Lazy(SimpleAdam):
    def update(self, name, p, g):
        idle = g == 0  # the raw gradient, before weight decay
        m_old, v_old = self.m.get(name), self.v.get(name)
        new = super().update(name, p, g)
        if idle.any():
            new = np.where(idle, p, new)
            for state, old in ((self.m, m_old), (self.v, v_old)):
                state[name] = np.where(idle, 0 if old is None else old, state[name])
        return new


class LazyAdam(_Optimized):
    """Lazy Adam: entries whose gradient is zero are not updated at all (no decay, no
    moment update), as sparse Adam does."""

    ADAM = _Lazy


class _NoBiasDecay(SimpleAdam):
    def decay(self, name):
        return not name.startswith("b")


class _NoBiasDecaySGD(SimpleSGD):
    def decay(self, name):
        return not name.startswith("b")


class WeightDecayNoBias(_Optimized):
    """Weight decay left off the biases (torch.optim decays every parameter)."""

    ADAM = _NoBiasDecay
    SGD = _NoBiasDecaySGD


class _Dampened(SimpleSGD):
    @property
    def dampening(self):
        return self.spec.momentum


class MomentumDampening(_Optimized):
    """SGD with dampening = momentum (b = m b + (1 - m) g) instead of 0."""

    SGD = _Dampened


class _DecayOutsideMomentum(SimpleSGD):
    def step(self, params, grads):
        wd = self.spec.weight_decay
        old = dict(params)
        spec = self.spec
        self.spec = type(spec)(**{**spec.to_dict(), "weight_decay": 0.0})
        try:
            super().step(params, grads)
        finally:
            self.spec = spec
        for name in params:
            params[name] = (params[name] - spec.lr * wd * old[name]).astype(old[name].dtype)


class WeightDecayOutsideMomentum(_Optimized):
    """SGD's weight decay applied beside the momentum buffer, not added to the
    gradient before it (the same first step; later steps differ)."""

    SGD = _DecayOutsideMomentum


class _Coupled(SimpleAdam):
    def __init__(self, spec):
        super().__init__(spec)
        self.decoupled = False


class AdamWAsAdam(_Optimized):
    """AdamW computed as Adam: weight decay added to the gradient, not decoupled."""

    ADAM = _Coupled


class _Decoupled(SimpleAdam):
    def __init__(self, spec):
        super().__init__(spec)
        self.decoupled = True


class AdamAsAdamW(_Optimized):
    """Adam computed as AdamW: decoupled weight decay instead of the L2 term."""

    ADAM = _Decoupled


class _NoNesterov(SimpleSGD):
    def nesterov(self):
        return False


class NesterovIgnored(_Optimized):
    """SGD with nesterov=True updating as plain momentum."""

    SGD = _NoNesterov


class _WrongBeta2(SimpleAdam):
    def betas(self):
        return self.spec.betas[0], 0.99


class WrongBeta2(_Optimized):
    """Adam with beta2 = 0.99 whatever it is given (0.999 here)."""

    ADAM = _WrongBeta2


class _RMSpropEpsInside(SimpleRMSprop):
    def denominator(self, v, m):
        return np.sqrt((v if m is None else v - m * m) + self.spec.eps)


class RMSpropEpsInsideSqrt(SimpleMLP):
    """RMSprop's eps inside the square root: sqrt(v + eps) instead of sqrt(v) + eps."""

    RMSPROP = _RMSpropEpsInside


class _RMSpropStartsAtG2(SimpleRMSprop):
    def square_average(self, name, g):
        if name not in self.v:
            return g * g
        return super().square_average(name, g)


class RMSpropStartsAtG2(SimpleMLP):
    """RMSprop's running average of g^2 started at the first g^2 instead of at 0 (the
    first step is sqrt(1 - alpha) times too small)."""

    RMSPROP = _RMSpropStartsAtG2


class _RMSpropNoAlphaDecay(SimpleRMSprop):
    def square_average(self, name, g):
        return self.v.get(name, np.zeros_like(g)) + (1 - self.spec.alpha) * g * g


class RMSpropForgetsAlpha(SimpleMLP):
    """RMSprop's average forgets alpha on the old value: v = v + (1 - alpha) g^2, a sum
    that only grows (the same first step; later steps shrink too fast)."""

    RMSPROP = _RMSpropNoAlphaDecay


class _AdagradNoDecay(SimpleAdagrad):
    def rate(self, t):
        return self.lr


class AdagradNoLrDecay(SimpleMLP):
    """Adagrad without lr_decay: every step at the base rate, not lr / (1 + (t - 1) lr_decay)."""

    ADAGRAD = _AdagradNoDecay


class _AdagradReset(SimpleAdagrad):
    def accumulate(self, name, g):
        return np.full_like(g, self.spec.initial_accumulator_value) + g * g


class AdagradAccumulatorReset(SimpleMLP):
    """Adagrad's sum of squares reset at every step (initial value + this g^2 only): the
    same first step, then steps of about lr each, as if the sum had no history."""

    ADAGRAD = _AdagradReset


# ------------------------------------------------------------------ schedules, clipping
class ScheduleOneStepEarly(SimpleMLP):
    """The scheduler stepped before the optimizer: step t uses lr(t), not lr(t - 1)."""

    def rate(self, t):
        return super().rate(t + 1)


class ScheduleNotApplied(SimpleMLP):
    """The schedule built but never stepped: every step at the base rate."""

    def rate(self, t):
        return self.optimizer_spec.lr


class ClipPerParameter(SimpleMLP):
    """clip_grad_norm applied to each parameter on its own (each gradient scaled to norm
    at most max_norm) instead of one factor from the global norm of all of them."""

    def clip(self, grads):
        o = self.optimizer_spec
        if o.clip_grad_norm is None:
            return super().clip(grads)
        return {k: clip_by_global_norm({k: g}, o.clip_grad_norm)[k] for k, g in grads.items()}


class ClipAfterStep(SimpleMLP):
    """The gradients clipped after the optimizer step: the step uses the raw gradients
    and the clipped ones are thrown away (``clip_grad_norm_`` after ``step()``)."""

    def apply_step(self, params, grads):
        self.optimizer.step(params, grads)
        self.clip(grads)


# ------------------------------------------------------------------ late bugs
#: the step from which the late bugs act (the catalogue's runs take 24 steps)
LATE_STEP = 13


class LrCutLate(SimpleMLP):
    """The learning rate cut tenfold from step 13 on (a stray decay that starts late)."""

    def rate(self, t):
        return super().rate(t) * (0.1 if t >= LATE_STEP else 1.0)


class LastLayerFrozenLate(SimpleMLP):
    """The last layer stops learning after step 12 (its update skipped)."""

    def apply_step(self, params, grads):
        last = {f"W{self.n_layers - 1}", f"b{self.n_layers - 1}"}
        before = {k: params[k] for k in last}
        super().apply_step(params, grads)
        if self.steps >= LATE_STEP:
            params.update(before)


class _BiasCorrectionFrozen(SimpleAdam):
    def bias_corrections(self, t):
        return super().bias_corrections(1)  # (1 - b1) and (1 - b2) at every step


class AdamBiasCorrectionFrozen(_Optimized):
    """Adam's bias correction frozen at step 1: m / (1 - b1) and v / (1 - b2) every step
    (published code that divides by the constants): exact at step 1 only."""

    ADAM = _BiasCorrectionFrozen


# ------------------------------------------------------------------ the catalogue
class BceOutputsSummed(SimpleMLP):
    """bce summed over the outputs where the spec averages them (a factor C)."""

    def other_loss(self, z, y):
        per, grad = self.elementwise_loss(z, self.targets(z, y))
        return float(per.sum() / len(y)), grad / len(y)


class MseGradientWithoutTwo(SimpleMLP):
    """the squared error's gradient without its factor 2 (z - t instead of 2 (z - t))."""

    def elementwise_loss(self, z, t):
        per, grad = super().elementwise_loss(z, t)
        return per, grad / 2


class BceFromProbabilities(SimpleMLP):
    """bce of the sigmoid's probabilities, -t log s - (1 - t) log(1 - s): log(0) once a
    sigmoid saturates (here at logits of 1e4)."""

    def elementwise_loss(self, z, t):
        if self.spec.loss != "bce":
            return super().elementwise_loss(z, t)
        with np.errstate(all="ignore"):
            s = 1 / (1 + np.exp(-z))
            return -t * np.log(s) - (1 - t) * np.log(1 - s), s - t


def perturbed_backend(rel: float) -> str:
    """The plug-in name of an :class:`OneEntryOff` with relative error ``rel``.

    The class is made on first use and kept in this module, so that the registry
    finds it by name (``harness.calibrate.catalogue:OneEntryOff_...``).
    """
    name = "OneEntryOff_" + f"{float(rel):.9e}".replace(".", "p").replace("-", "m").replace(
        "+", "")
    if name not in globals():
        globals()[name] = type(name, (OneEntryOff,), {"rel": float(rel)})
    return f"{MODULE}:{name}"
