"""Likely causes for convolutional networks, each tested against the numbers.

Run only for a layer network with a conv, pool or flatten layer, all of whose layers the
float64 emulation (:mod:`harness.diagnose.conv_math`) knows. At the shared initial
weights and the check's batch:

1. the emulation of the network as written must reproduce the reference (its logits,
   loss and gradients within the check's tolerances): else nothing is said;
2. each classic mistake is put at each layer it can sit at (:func:`candidates`: the
   kernel flipped, the input read as (N, H, W, C), the weight read as (in, out, kh, kw),
   the padding all at the bottom and right, the stride in the backward, a max pool's
   gradient on every tie or on the last one, an average pool's wrong divisor, a flatten
   in (H, W, C) order), and it is the cause when that emulation reproduces the candidate
   within the check's tolerances and far closer than the emulation without it.

When both sides expose ``intermediates`` with ``dinput`` (dL/dx), it is judged too: a
max pool's tie rule often changes nothing else (tied entries of a pool's input usually
share their receptive field, so their parameter gradients are the same).

The line names the layer (``layer 0 (conv2d(8,3,padding=1)): the kernel is flipped
...``) and what it checked. A network that agrees everywhere gets no line.
"""

from __future__ import annotations

import numpy as np

from harness.diagnose import conv_math
from harness.diagnose.evidence import Evidence
from harness.diagnose.layer_trace import differing, largest_gap, named

#: the layer kinds that make a network a conv network
CONV_KINDS = ("conv2d", "maxpool2d", "avgpool2d", "flatten")


def candidates(layers) -> list[tuple[int, str]]:
    """``(position, variant)`` for every mistake a layer of ``layers`` can hold, input to
    output; the input's layout only at a conv that is the first layer."""
    out = []
    for pos, (name, kw) in enumerate(layers):
        for variant, kind in conv_math.VARIANTS.items():
            if kind != name:
                continue
            if variant == "nhwc_input" and pos != 0:
                continue
            if variant == "stride_backward" and kw["stride"] == 1:
                continue
            if variant == "pad_bottom_right" and kw["padding"] == 0:
                continue
            if variant == "divisor_k" and kw["kernel"] == 1:
                continue
            out.append((pos, variant))
    return out


def _words(layers, pos: int, variant: str, before) -> str:
    """What the mistake is; ``before`` is the layer's input (for the tie counts)."""
    name, kw = layers[pos]
    k, p, s = kw.get("kernel"), kw.get("padding"), kw.get("stride")
    if variant in ("ties_all", "ties_last"):
        tied, total = conv_math.tied_windows(before, kw)
        ties = f"; {tied} of the {total} windows of its input hold a tie"
    index = kw.get("index")
    return {
        "flipped": "the kernel is flipped (a true convolution; torch computes a "
                   "cross-correlation): your conv multiplies window entry (p, q) by "
                   "W[f, c, kh-1-p, kw-1-q] where nn.Conv2d takes W[f, c, p, q]",
        "nhwc_input": "the input read as (N, H, W, C): your network reshapes the batch to "
                      "(N, H, W, C) and transposes it to (N, C, H, W), where it comes as "
                      "(N, C, H, W) already (channels first, torch's layout)",
        "weights_in_out": f"the weights read as (in, out, kh, kw): your conv takes the "
                          f"memory of W{index} as (in, out, kh, kw) where W{index} is "
                          f"(out, in, kh, kw), torch's and cs231n's layout",
        "pad_bottom_right": f"asymmetric padding: your conv puts all {2 * (p or 0)} rows and "
                            f"columns of zeros at the bottom and right, none at the top and "
                            f"left (TF 'SAME' style), where padding={p} puts {p} on every "
                            f"side (torch); every window is moved by {p}",
        "stride_backward": f"the stride applied to the output in the backward: your dW and "
                           f"db read dout at the first H' x W' positions of the stride-1 "
                           f"output, where output (i, j) of stride {s} is the stride-1 "
                           f"output ({s}i, {s}j) (the forward agrees)",
        "ties_all": "max-pool gradient on every tied entry: your backward gives a window's "
                    "gradient to every entry equal to its maximum (the mask x == max), "
                    "where torch gives it to one, the first maximum in row-major order"
                    + (ties if variant == "ties_all" else ""),
        "ties_last": "max-pool gradient on the last tied entry: your backward gives a "
                     "window's gradient to the last of its tied maxima, where torch gives "
                     "it to the first in row-major order"
                     + (ties if variant == "ties_last" else ""),
        "divisor_k": f"average pool divided by the wrong count: your window mean divides "
                     f"its sum by {k} where the {k}x{k} window holds {(k or 0) ** 2} "
                     f"entries",
        "hwc": "a flatten in (H, W, C) order: your flatten lays each (C, H, W) activation "
               "out channels last (x.transpose(0, 2, 3, 1).reshape(N, -1)), where "
               "nn.Flatten takes (C, H, W) in C order; the next linear's rows are "
               "scrambled",
    }[variant]


def _label(layers, pos: int) -> str:
    from harness.model.layer_spec import layer_label

    return layer_label(layers, pos)


def _input_grads(ev: Evidence) -> tuple[np.ndarray, np.ndarray] | None:
    """(the reference's dinput, the candidate's) when both expose intermediates with it."""
    found = []
    for which in ("reference", "candidate"):
        model = ev.fresh(which)
        if not callable(getattr(model, "intermediates", None)):
            return None
        model.set_params(ev.params0)
        inter = model.intermediates(ev.x.copy(), ev.y.copy())
        if "dinput" not in inter:
            return None
        found.append(np.asarray(inter["dinput"]))
    return found[0], found[1]


def _side(snap, dinput=None) -> dict:
    out = {"eval0": snap.logits, "loss": snap.loss, "grads": snap.grads}
    if dinput is not None:
        out["dinput"] = dinput
    return out


def conv_layers(ev: Evidence):
    """The resolved layer list of a conv network the emulation knows, else None."""
    spec = ev.spec
    if not getattr(spec, "is_layered", False) or getattr(spec, "input_shape", None) is None:
        return None
    if getattr(spec, "loss", "cross_entropy") != "cross_entropy":
        return None
    layers = spec.network.plain()
    names = {name for name, _ in layers}
    if not names & set(CONV_KINDS) or not names <= set(conv_math.KINDS):
        return None
    return layers


def conv_causes(ev: Evidence) -> str | None:
    """The line for a conv network (None for any other, or when nothing holds)."""
    layers = conv_layers(ev)
    if layers is None or ev.ref.errors or ev.cand.errors or ev.ref.grads is None:
        return None
    x = np.asarray(ev.x, dtype=np.float64)
    if x.ndim != 4:
        return None
    grads_in = _input_grads(ev)
    ref = _side(ev.ref, None if grads_in is None else grads_in[0])
    cand = _side(ev.cand, None if grads_in is None else grads_in[1])
    fields = tuple(ref)
    reduction = getattr(ev.spec, "loss_reduction", "mean")

    def run(at=None, variant=None):
        return conv_math.emulate(layers, ev.params0, x, ev.y, at, variant, reduction)

    tight = (ev.rtol / 10, ev.atol / 10)  # the check's own tolerances
    base = run()
    if differing(base, ref, fields, *tight):
        return None  # the emulation does not reproduce the reference: no evidence
    gap_base = largest_gap(base, cand, fields)
    for at, variant in candidates(layers):
        emulated = run(at, variant)
        gap = largest_gap(emulated, cand, fields)
        if differing(emulated, cand, fields, *tight) or gap_base < 10 * max(gap, 1e-15):
            continue
        before = x if at == 0 else base["outs"][at - 1]
        what = ", ".join("input gradient dL/dx" if f == "dinput" else named(f) for f in fields)
        where = f"the input of {_label(layers, at)}" if variant == "nhwc_input" \
            else _label(layers, at)
        return (f"{where}: {_words(layers, at, variant, before)} (checked: your {what} "
                f"equal a float64 emulation with this mistake at this layer, at the same "
                f"weights and batch, and the emulation without it reproduces the reference)")
    return None
