"""Where two networks part, without ``intermediates``: probes with crafted weights.

The harness controls the weights, so it can make a network compute one known thing:

* output probe: every weight zero and the output bias a chosen vector v, so the
  logits are v for every row; the loss and its gradient for the output bias are
  then the loss's own (softmax(v) - onehot(y), averaged);
* activation probe: the last hidden layer's weights zero and its bias the constant
  t, so its pre-activation is t for every unit; a single path from unit 0 to logit 0
  (weight 1, all else 0) makes logit 0 = f(t), and the ratio of the gradients of
  that hidden bias and of the output bias is f'(t);
* the pattern of per-parameter gradients at the check's own weights: the deepest
  layer that agrees and the first that does not.

:func:`localise` runs them in that order and names the first part that differs.
"""

from __future__ import annotations

import numpy as np

from harness.diagnose.evidence import Evidence, close, fmt, pair

#: where the activation is probed (no kinks at 0)
POINTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)


def _zeros(ev: Evidence) -> dict:
    return {k: np.zeros_like(v) for k, v in ev.params0.items()}


def _vec(v) -> str:
    return "(" + ", ".join(fmt(a) for a in np.ravel(v)) + ")"


def _rows(ev: Evidence, n: int = 4):
    n = min(n, ev.n)
    return ev.x[:n], np.zeros(n, dtype=np.int64)


def output_probe(ev: Evidence) -> str | None:
    """The output layer's forward, the loss and its gradient at chosen logits."""
    last = ev.n_layers - 1
    classes = ev.spec.dims[-1]
    x, y = _rows(ev)
    for scale in (1.0, 30.0):
        v = np.linspace(1.0, -1.0, classes) * scale
        params = _zeros(ev)
        params[f"b{last}"] = v.astype(params[f"b{last}"].dtype)
        r, c = ev.run_both(params, x, y)
        at = f"logits {_vec(v)}, label 0, {len(y)} rows"
        if r.logits is None or r.loss is None:
            return None
        if c.logits is not None and np.shape(c.logits) != np.shape(r.logits):
            return (f"the forward pass's shape (zero weights, output bias {_vec(v)}: yours "
                    f"{np.shape(c.logits)}, reference {np.shape(r.logits)})")
        if c.logits is not None and not close(c.logits, r.logits, ev.rtol, ev.atol):
            got = np.asarray(c.logits)
            return (f"the output layer's forward (zero weights, output bias {_vec(v)}: yours "
                    f"{_vec(got[0]) if got.ndim == 2 else got}, reference {_vec(r.logits[0])})")
        if c.loss is not None and not close(c.loss, r.loss, ev.rtol, ev.atol):
            mine, theirs = pair(c.loss, r.loss)
            return f"the loss (at {at}: yours {mine}, reference {theirs})"
        key = f"b{last}"
        if c.grads and key in c.grads and not close(c.grads[key], r.grads[key], ev.rtol, ev.atol):
            return (f"the output bias's gradient, softmax(z) - onehot(y) averaged over the "
                    f"batch (at "
                    f"{at}: yours {_vec(c.grads[key])}, reference {_vec(r.grads[key])})")
    return None


def activation_values(ev: Evidence, points=POINTS):
    """``(f_ref, f_cand, d_ref, d_cand)`` at ``points``: each side's f(t) and f'(t).

    Read through the crafted weights described in the module docstring. None when the
    network has no hidden layer or either side raises.
    """
    if ev.n_layers < 2:
        return None
    last, hidden = ev.n_layers - 1, ev.n_layers - 2
    x, y = _rows(ev)
    y = np.ones_like(y)  # label 1: logit 0 = f(t) always has a non-zero gradient
    out = np.full((4, len(points)), np.nan)
    for j, t in enumerate(points):
        params = _zeros(ev)
        params[f"b{hidden}"] = np.full_like(params[f"b{hidden}"], t)
        params[f"W{last}"][0, 0] = 1
        snaps = ev.run_both(params, x, y)
        if any(snap.errors for snap in snaps):
            return None  # a side that raises says nothing about its activation
        for side, snap in enumerate(snaps):
            if snap.logits is not None and np.ndim(snap.logits) == 2:
                out[side, j] = float(np.asarray(snap.logits)[0, 0])
            if snap.grads and f"b{last}" in snap.grads:
                g_out = float(snap.grads[f"b{last}"][0])
                if g_out != 0:
                    out[2 + side, j] = float(snap.grads[f"b{hidden}"][0]) / g_out
    return out[0], out[1], out[2], out[3]


def activation_probe(ev: Evidence) -> str | None:
    """The hidden activation's forward f(t) and derivative f'(t) at :data:`POINTS`."""
    values = activation_values(ev)
    if values is None:
        return None
    f_r, f_c, d_r, d_c = values
    name = ev.spec.activation

    def differing(mine, theirs, label):
        found = []
        for t, a, b in zip(POINTS, mine, theirs):
            if np.isfinite(b) and not close(a, b, ev.rtol, ev.atol):
                sa, sb = pair(a, b)
                found.append((abs(a - b) if np.isfinite(a) else np.inf,
                              f"{label}({fmt(t)}): yours {sa}, reference {sb}"))
        found.sort(key=lambda item: -item[0])
        return [text for _, text in found[:3]]

    forward = differing(f_c, f_r, name)
    if forward:
        return f"the hidden activation's forward ({'; '.join(forward)})"
    backward = differing(d_c, d_r, f"{name}'")
    if backward:
        return f"the hidden activation's derivative ({'; '.join(backward)})"
    return None


def gradient_pattern(ev: Evidence) -> str | None:
    """The deepest layer whose gradients agree and the first, going back, that does not."""
    r, c = ev.ref.grads, ev.cand.grads
    if not r or not c or not ev.logits_agree():
        return None
    agreed = []
    for i in reversed(range(ev.n_layers)):
        keys = [f"W{i}", f"b{i}"]
        bad = [k for k in keys if k not in c or not close(c[k], r[k], ev.rtol, ev.atol)]
        if not bad:
            agreed.append(i)
            continue
        if not agreed:
            return (f"the output layer's gradients ({', '.join(bad)} differ, with the logits "
                    f"agreeing): the loss's gradient or the output layer's dW, db")
        above = agreed[-1]
        return (f"the backward step from layer {above} into layer {i}: layer {above}'s gradients "
                f"agree, layer {i}'s ({', '.join(bad)}) differ; look at dz{i} = "
                f"(dz{above} @ W{above}.T) * f'(z{i}) and dW{i} = a.T @ dz{i}, db{i}")
    return None


PROBES = (output_probe, activation_probe, gradient_pattern)


def localise(ev: Evidence) -> str | None:
    """``"localised: ..."`` for the first probe that finds a difference, or None."""
    for probe in PROBES:
        try:
            with np.errstate(all="ignore"):
                found = probe(ev)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            found = None
        if found:
            return f"localised: {found}"
    return None
