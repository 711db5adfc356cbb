"""Find the first layer and quantity where two implementations part."""

from __future__ import annotations

from harness.compare import compare
from harness.protocol import ExposesIntermediates


def locate_divergence(reference, candidate, x, y, *, rtol: float, atol: float) -> dict | None:
    """Compare named intermediates in computation order; describe the first mismatch.

    Returns None when either side does not implement ``intermediates`` (the caller
    then has the parameter-level verdict only) or when every intermediate agrees.
    Otherwise a dict with ``quantity`` (e.g. ``"dz1"``), ``layer`` (int), ``phase``
    (``"forward"`` or ``"backward"``) and a one-line ``message``.
    """
    if not (isinstance(reference, ExposesIntermediates)
            and isinstance(candidate, ExposesIntermediates)):
        return None
    ref = reference.intermediates(x, y)
    cand = candidate.intermediates(x, y)
    for name, expected in ref.items():
        result = compare(f"intermediates['{name}']", cand.get(name), expected,
                         rtol=rtol, atol=atol) if name in cand else None
        if result is None or not result.passed:
            layer = int(name.lstrip("dzaWb"))
            phase = "backward" if name.startswith("d") else "forward"
            detail = "missing in candidate" if result is None else (
                f"{result.n_mismatched} / {result.n_elements} elements differ, greatest "
                f"absolute difference {result.max_abs_err:.3e}")
            return {
                "quantity": name,
                "layer": layer,
                "phase": phase,
                "message": f"layer {layer}, {phase} quantity {name}: {detail}",
            }
    return None
