"""Likely causes for layer networks (batch norm, layer norm, dropout), each tested.

Run only when the network is a list of layers that is not a plain MLP
(``spec.is_layered``). Both sides are traced from the same weights, buffers and
dropout masks (:func:`trace`: a forward, a training pass, a forward, two steps, a
forward), then:

1. another convention (``--bn-running-var``, ``--bn-momentum-convention`` with the
   mapped momentum, ``--norm-eps``): both sides are rebuilt with the changed
   :class:`~harness.model.specs.ModelSpec`, take the same steps, and the flags are
   the line only when the candidate then agrees everywhere;
2. else the first mistake that holds (:data:`MISTAKES`): the running statistics move
   in evaluation (the candidate's forward changed them); a classic mistake that a
   float64 emulation reproduces (:mod:`harness.diagnose.layer_math`: eps outside the
   square root, batch norm over the rows, a backward without its last term, layer
   norm over the batch, dropout not inverted, p taken as the keep probability) while
   the emulation without it reproduces the reference; dropout left on in evaluation,
   or a mask redrawn for backward (the training pass or its loss agrees with the same
   masks, and both sides agree once the dropout layers are taken out);
3. where other conventions align the running statistics (:func:`aligned`), a mistake
   is looked for under them too, and the line names them as well.

Each line says what it checked. A network that agrees everywhere gets no line.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from harness.diagnose.evidence import Evidence, fmt, rel_err
from harness.diagnose.layer_math import Conventions, emulate, forward_output
from harness.diagnose.layer_trace import STEPS, Study, differing, largest_gap, named, trace

#: the eps values the convention search tries (--norm-eps)
EPSILONS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-12)
#: what the convention search checked, for its line
CHECKED = (f"both sides rebuilt with them from the same weights, batch and masks agree in "
           f"the evaluation logits, the loss, the gradients, the running statistics and the "
           f"parameters after {STEPS} steps")


def _flags(flags) -> str:
    return " ".join(f"`{f}`" for f in flags)


# ------------------------------------------------------------------ 1. evaluation moves
def eval_moves_buffers(st: Study) -> str | None:
    """The candidate's forward (evaluation) changes its running statistics."""
    if not st.cand.moved or st.ref.moved:
        return None
    return (f"running statistics updated in evaluation: your forward changed "
            f"{', '.join(st.cand.moved)}, the reference's forward leaves them as they are; "
            f"evaluation normalises with running_mean and running_var and does not move "
            f"them (mode 'test', training=False): only a training pass updates them "
            f"(checked: the buffers before and after one forward at the same weights)")


# ------------------------------------------------------------------ 2. conventions
def _alternatives(spec) -> list[tuple]:
    """(running_var, momentum, eps) changes, fewest first; None keeps the spec's."""
    bn = spec.has_batchnorm
    norm = bn or any(layer.name == "layernorm" for layer in spec.network.layers)
    rv = [None, "flip"] if bn else [None]
    mom = [None, "mapped", "same"] if bn else [None]
    eps = [None] + ([e for e in EPSILONS if not math.isclose(e, spec.norm_eps)] if norm else [])
    combos = [(a, b, c) for b in mom for a in rv for c in eps if (a, b, c) != (None,) * 3]
    return sorted(combos, key=lambda combo: sum(v is not None for v in combo))


def _changed(spec, combo) -> tuple[object, list[str]]:
    """The changed spec and its flags."""
    rv, mom, eps = combo
    kw, flags = {}, []
    if mom is not None:
        other = "cs231n" if spec.bn_momentum_convention == "torch" else "torch"
        kw["bn_momentum_convention"] = other
        flags.append(f"--bn-momentum-convention {other}")
        if mom == "mapped":
            kw["bn_momentum"] = 1.0 - spec.bn_momentum
            flags.append(f"--bn-momentum {fmt(kw['bn_momentum'])}")
    if rv is not None:
        kw["bn_running_var"] = "biased" if spec.bn_running_var == "unbiased" else "unbiased"
        flags.append(f"--bn-running-var {kw['bn_running_var']}")
    if eps is not None:
        kw["norm_eps"] = eps
        flags.append(f"--norm-eps {eps:g}")
    return replace(spec, **kw), flags


def _variance_ratio(st: Study) -> str:
    """The ratio of the batch parts of running_var (the reference's over the candidate's)."""
    r, c = st.ref, st.cand
    w = Conventions.of(st.spec).new_weight
    n = st.ev.n
    parts = []
    for k in r.buffers0:
        if not k.startswith("running_var") or r.buffers1 is None or c.buffers1 is None:
            continue
        start = np.asarray(r.buffers0[k], np.float64)
        ratio = ((np.asarray(r.buffers1[k], np.float64) - (1 - w) * start)
                 / (np.asarray(c.buffers1[k], np.float64) - (1 - w) * start))
        if np.allclose(ratio, n / (n - 1), rtol=max(10 * st.ev.rtol, 1e-9)):
            parts.append(k)
    if not parts:
        return ""
    return (f" (the batch part of the reference's {', '.join(parts)} is N/(N-1) = "
            f"{n}/{n - 1} = {fmt(n / (n - 1))} times yours in every feature)")


def _convention_words(st: Study, combo, changed) -> list[str]:
    rv, mom, eps = combo
    spec, words = st.spec, []
    if mom is not None:
        if spec.bn_momentum_convention == "torch":
            what = ("your running statistics move as running = m·running + (1 - m)·batch "
                    "(cs231n's meaning: m weighs the old value), where torch's m weighs the new "
                    "batch, running = (1 - m)·running + m·batch")
        else:
            what = ("your running statistics move as running = (1 - m)·running + m·batch "
                    "(torch's meaning: m weighs the new batch), where cs231n's m weighs the old "
                    "value")
        if mom == "mapped":
            torch_m, cs_m = ((spec.bn_momentum, changed.bn_momentum)
                             if spec.bn_momentum_convention == "torch"
                             else (changed.bn_momentum, spec.bn_momentum))
            what += f"; torch's momentum {fmt(torch_m)} is cs231n's {fmt(cs_m)}"
        words.append(f"batch norm's momentum inverted: {what}")
    if rv is not None:
        if spec.bn_running_var == "unbiased":
            words.append("a biased running variance: your running_var takes the batch variance "
                         "divided by N, the reference's by N - 1 (torch's, unbiased)"
                         + ("" if mom is not None else _variance_ratio(st)))
        else:
            words.append("an unbiased running variance: your running_var takes the batch "
                         "variance divided by N - 1, the reference's by N (biased)")
    if eps is not None:
        words.append(f"eps = {eps:g} in your normalisation, where the reference adds "
                     f"{spec.norm_eps:g}")
    return words


def _eps_matters(st: Study, eps: float) -> bool:
    """Whether the reference at ``eps`` differs from one at a hundredth of it: where eps is
    too small to show, agreeing at it says nothing about the candidate's eps."""
    if math.isclose(eps, st.spec.norm_eps):
        return True
    if eps not in st.eps_matters:
        ref, tiny = (trace(st.build("reference", replace(st.spec, norm_eps=e)), st.ev.params0,
                           st.ev.x, st.ev.y) for e in (eps, eps / 100))
        st.eps_matters[eps] = (ref.error is None and tiny.error is None
                               and largest_gap(ref, tiny) > st.ev.rtol)
    return st.eps_matters[eps]


def convention_flags(st: Study) -> str | None:
    """Another batch-norm or normalisation convention, named by flags that were rerun."""
    if st.agree(st.ref, st.cand) or st.ref.error or st.cand.error or st.cand.moved:
        return None  # (no convention moves the running statistics in evaluation)
    for combo in _alternatives(st.spec):  # fewest changes first: the first that agrees
        changed, flags = _changed(st.spec, combo)
        try:
            agreed = _eps_matters(st, changed.norm_eps) and st.agree(*st.traces(changed))
        except Exception:  # noqa: BLE001 - a spec the backends refuse is no candidate
            agreed = False
        if agreed:
            words = _convention_words(st, combo, changed)
            return (f"{'; '.join(words)}: with {_flags(flags)} the reference follows your "
                    f"network's convention (checked: {CHECKED}); give them if your "
                    f"convention is intended")
    return None


# ------------------------------------------------------------------ 3. emulated mistakes
def _variant_words(st: Study, variant: str) -> str:
    p = next((layer.args[0] for layer in st.spec.network.layers if layer.name == "dropout"),
             None)
    return {
        "bn_eps_outside": "eps outside the square root: your batch norm divides by "
                          "sqrt(var) + eps where it is sqrt(var + eps)",
        "bn_axis1": "batch norm over the wrong axis: your training pass takes the mean and "
                    "variance of each row over its features (axis=1, layer norm's) where "
                    "batch norm takes each feature over the batch, x.mean(axis=0), "
                    "x.var(axis=0)",
        "bn_missing_term": "batch norm's backward with a missing term: your dx lacks "
                           "- xhat·Σ(dxhat·xhat), the path through the variance: dx = "
                           "(N·dxhat - Σdxhat - xhat·Σ(dxhat·xhat)) / (N·sqrt(var + eps))",
        "ln_axis0": "layer norm over the batch: your layer norm takes each feature's mean and "
                    "variance over the batch (axis=0, batch norm's) where it takes each row "
                    "over its features, x.mean(axis=1), x.var(axis=1)",
        "dropout_not_inverted": f"dropout not inverted: your training pass keeps the units "
                                f"unscaled and your evaluation multiplies by 1 - p = "
                                f"{fmt(1 - p) if p is not None else '?'}; inverted dropout "
                                f"(the reference's, torch's) scales the kept units by "
                                f"1/(1 - p) in training and leaves evaluation alone",
        "dropout_keep_as_p": f"p used as the keep probability: your training pass scales the "
                             f"kept units by 1/p = 1/{fmt(p) if p is not None else '?'} where "
                             f"they get 1/(1 - p): p is the probability of dropping a unit",
    }[variant]


#: each mistake, what it needs in the network, the quantities it is judged on
_VARIANT_CASES = (
    ("bn_missing_term", "batchnorm", ("loss", "grads")),
    ("bn_eps_outside", "batchnorm", ("eval0", "loss", "eval1")),
    ("bn_axis1", "batchnorm", ("loss", "grads")),
    ("ln_axis0", "layernorm", ("eval0", "loss", "grads")),
    ("dropout_not_inverted", "dropout", ("eval0", "loss", "grads")),
    ("dropout_keep_as_p", "dropout", ("loss", "grads")),
)


def _first_masks(spec, n: int) -> list:
    """The masks of the first training pass, as the harness hands them to both sides."""
    if not spec.has_dropout:
        return []
    from harness.model.masks import HandedMasks, dropout_layout

    return HandedMasks(None, dropout_layout(spec.network), spec.seed).draw(n)


def emulated_mistake(st: Study) -> str | None:
    """A classic mistake whose float64 emulation reproduces the candidate."""
    ev, r, c = st.ev, st.ref, st.cand
    if r.error is not None or c.error is not None:
        return None
    layers = st.spec.network.plain()
    kinds = {name for name, _ in layers}
    masks = _first_masks(st.spec, ev.n)
    conv = Conventions.of(st.spec)

    def run(variant=None):
        return emulate(layers, ev.params0, r.buffers0, ev.x, ev.y, masks, conv, variant)

    tight = (ev.rtol / 10, ev.atol / 10)  # the check's own tolerances
    base = run()
    if differing(base, r, ("eval0", "loss", "grads", "buffers1", "eval1"), *tight):
        return None  # the emulation does not reproduce the reference: no evidence
    for variant, needs, fields in _VARIANT_CASES:
        if needs not in kinds:
            continue
        emulated = run(variant)
        # within the check's tolerances, and far closer than the emulation without the
        # mistake (in float32 both may be within them: the gap tells them apart)
        gap, gap_base = largest_gap(emulated, c, fields), largest_gap(base, c, fields)
        if differing(emulated, c, fields, *tight) or gap_base < 10 * max(gap, 1e-15):
            continue
        what = ", ".join(named(f) for f in fields)
        extra = drop_share(st) if variant == "dropout_keep_as_p" else ""
        return (f"{_variant_words(st, variant)}{extra} (checked: your {what} equal a float64 "
                f"emulation with this mistake at the same weights, batch and masks, and the "
                f"emulation without it reproduces the reference)")
    return None


def drop_share(st: Study) -> str:
    """The share of units the candidate's own masks drop (one row at a time, no masks
    handed in), for a network without batch norm whose first dropout feeds a linear."""
    from harness.model.masks import unwrap

    layers = st.spec.network.plain()
    at = next(i for i, (name, _) in enumerate(layers) if name == "dropout")
    if st.spec.has_batchnorm or at + 1 >= len(layers) or layers[at + 1][0] != "linear":
        return ""
    p, k = layers[at][1]["p"], layers[at + 1][1]["index"]
    ev = st.ev
    conv = Conventions.of(st.spec)
    dropped = kept = 0
    try:
        model = unwrap(st.build("candidate", st.spec))
        model.set_params(ev.params0)
        for i in range(min(ev.n, 32)):
            row = slice(i, i + 1)
            # the dropout's input (no dropout and no batch norm before it: deterministic)
            h = forward_output(layers[:at], ev.params0, {}, ev.x[row], conv)[0]
            _, grads = model.loss_and_grads(ev.x[row].copy(), ev.y[row].copy())
            zero = np.abs(np.asarray(grads[f"W{k}"], np.float64)).sum(axis=1) == 0
            live = h != 0
            dropped += int(np.sum(zero & live))
            kept += int(np.sum(~zero & live))
    except Exception:  # noqa: BLE001 - the share is extra evidence; without it, nothing
        return ""
    share = dropped / max(1, dropped + kept)
    if dropped + kept < 20 or abs(share - (1 - p)) >= abs(share - p):
        return ""
    return (f"; with its own masks (none handed in) your network drops {100 * share:.0f}% of "
            f"the units, near 1 - p = {100 * (1 - p):.0f}%, where p = {fmt(p)} drops "
            f"{100 * p:.0f}%")


# ------------------------------------------------------------------ 4. dropout
def _train_agrees(st: Study, fields=("loss", "grads")) -> bool:
    return not differing(st.cand, st.ref, fields, st.ev.rtol, st.ev.atol)


def dropout_in_eval(st: Study) -> str | None:
    """Evaluation differs, the training pass agrees, and without dropout all agree."""
    if not st.spec.has_dropout or not _train_agrees(st):
        return None
    if not differing(st.cand, st.ref, ("eval0",), st.ev.rtol, st.ev.atol):
        return None
    if not st.without_dropout:
        return None
    err = rel_err(st.cand.eval0, st.ref.eval0)
    again = ""
    try:
        model = st.build("candidate", st.spec)
        model.set_params(st.ev.params0)
        if not np.array_equal(model.forward(st.ev.x.copy()), model.forward(st.ev.x.copy())):
            again = ", and two calls of your forward on the same batch return different logits"
    except Exception:  # noqa: BLE001 - extra evidence only
        pass
    return (f"dropout left on in evaluation: forward is evaluation, where dropout is the "
            f"identity (mode 'test', training=False) (checked: your forward differs from the "
            f"reference's, largest relative difference {err:.2g}, while the training pass "
            f"agrees with the same masks{again}; with the dropout layers taken out both "
            f"agree everywhere)")


def mask_redrawn(st: Study) -> str | None:
    """The training loss agrees with the same masks, the gradients do not; without
    dropout everything agrees: backward used another mask."""
    if not st.spec.has_dropout or not _train_agrees(st, ("eval0", "loss")):
        return None
    bad = differing(st.cand, st.ref, ("grads",), st.ev.rtol, st.ev.atol)
    if not bad or not st.without_dropout:
        return None
    return (f"a mask redrawn between forward and backward: backward must multiply by the "
            f"very mask forward used (keep it in the cache), not draw another (checked: with "
            f"the same handed masks your evaluation logits and training loss agree with the "
            f"reference's but the gradients do not, first {bad[0]}; with the dropout layers "
            f"taken out both agree everywhere)")


#: the mistakes, in the order they are tried (after the conventions); the first that
#: holds is the line
MISTAKES = (eval_moves_buffers, emulated_mistake, dropout_in_eval, mask_redrawn)


def _first(st: Study, causes) -> str | None:
    for cause in causes:
        try:
            with np.errstate(all="ignore"):
                line = cause(st)
        except Exception:  # noqa: BLE001 - a cause that cannot be tested says nothing
            line = None
        if line:
            return line
    return None


def aligned(st: Study):
    """``(study, words, flags)`` at the convention change under which the running
    statistics after a training pass agree where at the check's they do not; or None."""
    ev = st.ev
    if not st.spec.has_batchnorm or st.cand.error is not None \
            or not differing(st.cand, st.ref, ("buffers1",), ev.rtol, ev.atol):
        return None
    for combo in _alternatives(st.spec):
        if combo[2] is not None:  # eps does not move the running statistics
            continue
        changed, flags = _changed(st.spec, combo)
        other = Study(ev, changed)
        if other.ref.error is None and other.cand.error is None and not differing(
                other.cand, other.ref, ("buffers1",), ev.rtol, ev.atol):
            return other, _convention_words(st, combo, changed), flags
    return None


def layer_causes(ev: Evidence) -> str | None:
    """The line for a layer network (None for any other, or when nothing holds).

    Other conventions that explain every difference (:func:`convention_flags`) are the
    line; else the first of :data:`MISTAKES` that holds, at the check's conventions or,
    failing that, at those that align the running statistics (:func:`aligned`), which
    the line then names too.
    """
    spec = ev.spec
    if not getattr(spec, "is_layered", False):
        return None
    st = Study(ev)
    if st.ref.error is not None:
        return None
    line = _first(st, (convention_flags,))
    if line is not None:
        return line
    try:
        found = aligned(st)
    except Exception:  # noqa: BLE001 - as a cause that cannot be tested
        found = None
    line = _first(st, MISTAKES)
    if line is None and found is not None:
        line = _first(found[0], MISTAKES)
    if line is None or found is None:
        return line
    _, words, flags = found
    return (f"{line}; and {'; '.join(words)}: with {_flags(flags)} the running statistics "
            f"agree (checked: both sides rebuilt with them agree in the running statistics "
            f"after a training pass)")
