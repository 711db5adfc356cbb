"""Comparing two implementations: tolerances, per-quantity verdicts, the equivalence check.

A quantity passes when every element satisfies (as ``numpy.isclose`` computes it)

    |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|

so ``atol`` is absolute for quantities of order one and relative to the quantity's
largest magnitude for bigger ones (logits of size 1e4 get a proportionally larger
floor; rounding errors of sums scale with their terms, not with each result).
Shape and dtype are compared first, then values; NaN or inf anywhere is a mismatch.

Default tolerances (rtol, atol), per dtype:

* float64: (1e-7, 1e-12). Rounding differences between two correct float64
  implementations (different BLAS blockings, summation orders) are of order
  1e-16 * K for K-term sums, far below; a relative error of 1e-6 in any single
  gradient entry larger than about 1e-6 (times the quantity's scale) exceeds the bound.
* float32: (1e-4, 1e-5). float32 keeps about 7 digits; two correct
  implementations differ by a few units of 1e-7 per operation, amplified by
  depth, batch sums and near-ties in the softmax. These bounds pass correct
  implementations on every architecture the property-based tests generate and
  still catch gross errors (a wrong derivative, a missing mask, a factor of N).
  Use float64 to catch subtle ones.

After the optimizer step one exception is made, and only where rounding noise explains
it (:func:`harness.compare.excusal.excusable_after_step`): an entry whose two gradients differ, both at noise
level, may move differently (Adam turns 4e-8 against 0 into a full ``lr`` step). Such
entries are counted (``n_excused``) and shown; identical gradients never excuse.

With a float64 *arbiter* (the reference's model rebuilt in float64 with the same
weights), a float32 candidate is judged entry by entry against the arbiter instead of
the tolerances (the idea behind ``torch._dynamo.utils.same``)::

    |candidate - ref64| <= ARBITER_MULTIPLIER * max(|ref32 - ref64|, rms) + floor

with ``rms`` the root mean square of ``|ref32 - ref64|`` over the quantity and
``floor = ARBITER_FLOOR_ULPS * eps(float32) * max|ref64|``. The parameters after each
step are judged by the arbiter's rule for steps (:mod:`harness.compare.steps`), the
exact excusal rule still excusing entries whose gradient is rounding noise in both
(Adam amplifies such noise by up to ``lr / eps``). The check takes ``steps`` optimizer
steps and ends with the stress rows (:mod:`harness.compare.stress`) when asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare.closeness import (  # compare_dicts: the public name here too
    Comparison, compare, compare_dicts, scalar64 as _scalar64,
)
from harness.errors import ConfigError
from harness.compare.excusal import (EXCUSED_SHARE_LIMIT, _excusal_notes, clip_settings, clipped,
                                     excusable_after_step, inert_after_step, l2_weight_decay)
from harness.compare.dropout import own_masks_reason
from harness.model.masks import held_masks
from harness.compare.stress import stress_rows
from harness.compare.counts import format_counts, pair_fields, total
from harness.compare.steps import (compare_after_step, compare_buffers as _compare_buffers,
                                   gradient_noise, inert_from, later_steps, parted_note,
                                   resolution_notice)
from harness.runtime.values import jsonable

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-12),
    "float32": (1e-4, 1e-5),
}



def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` for ``dtype`` (float32 or float64)."""
    name = np.dtype(dtype).name
    if name not in DEFAULT_TOLERANCES:
        raise ConfigError(
            f"no default tolerances for dtype {name!r}; choose one of "
            f"{', '.join(DEFAULT_TOLERANCES)} or pass rtol and atol"
        )
    return DEFAULT_TOLERANCES[name]


def resolve_tolerances(dtype, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """Defaults for ``dtype`` where ``rtol`` or ``atol`` is None; validated.

    As with torch.testing.assert_close, give both or neither.
    """
    if (rtol is None) != (atol is None):
        raise ConfigError(f"give both `rtol` and `atol` or neither, got rtol={rtol}, atol={atol}")
    if rtol is None:
        return default_tolerances(dtype)
    for key, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"`{key}` must be a finite number >= 0, got {value!r}")
    return float(rtol), float(atol)


def comparisons_table(rows: list[Comparison]):
    """The rows as a pandas DataFrame (one row per quantity)."""
    import pandas as pd

    columns = ["quantity", "shape", "max_abs_err", "max_rel_err", "worst_index", "atol",
               "rtol", "mismatched", "passed", "n_elements", "n_excused", "rule"]
    return pd.DataFrame([r.row() for r in rows], columns=columns)


def format_table(rows: list[Comparison]) -> str:
    """A fixed-width text table of the rows.

    ``max_rel_err`` is over the elements whose expected value is not 0 ("-" when there
    is none); ``excused`` counts post-step entries let through as rounding noise.
    """
    w = max([28] + [len(r.quantity) for r in rows])
    header = f"{'quantity':<{w}} {'shape':<12} {'max_abs_err':>11} {'max_rel_err':>11} " \
             f"{'worst_index':<12} {'excused':>7} {'rule':>9} {'verdict':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        rel = f"{'-':>11}" if math.isnan(r.max_rel_err) else f"{r.max_rel_err:>11.3e}"
        lines.append(
            f"{r.quantity:<{w}} {str(r.shape):<12} {r.max_abs_err:>11.3e} {rel} "
            f"{'' if r.worst_index is None else str(r.worst_index):<12} "
            f"{r.n_excused:>7} {r.rule:>9} {'PASS' if r.passed else 'FAIL':>7}"
        )
    return "\n".join(lines)


@dataclass
class EquivalenceReport:
    """Outcome of :func:`check_equivalence`.

    Attributes
    ----------
    passed : bool
    rows : list of Comparison, in the order compared
    rtol, atol : float, the tolerances used
    dtype : str
    divergence : dict or None
        Where the implementations first part, when both expose intermediates and
        something failed: ``quantity`` (e.g. ``"dz1"``), ``layer``, ``phase``
        (forward or backward), ``message``; ``localised`` is False (quantity None)
        when every intermediate agrees. See :func:`harness.diagnose.localize.locate_divergence`.
    notes : list of str
        Extra lines for the text report (e.g. why no layer-level localisation was possible).
    arbiter : bool
        Whether a float64 arbiter judged the rows (``rule`` of each row says which).
    raised : BackendRaised or None
        The code under test raised after ``rows`` were compared (they are kept, and the
        report does not pass).
    n_quantities, n_passed, n_entries, n_excused : int (properties)
        Quantities compared and agreeing, entries compared, entries excused after the step.
    heavily_excused : list of str (property)
        Quantities with more than :data:`EXCUSED_SHARE_LIMIT` of their entries excused,
        besides the ``inert`` ones.
    inert : tuple of str
        Post-step quantities whose gradient is 0 by construction, so that any excusal
        there is expected: the bias of a linear layer right before a batch norm (which
        subtracts the batch mean, the bias with it).
    """

    rows: list[Comparison]
    rtol: float
    atol: float
    dtype: str
    reference: str = "reference"
    candidate: str = "candidate"
    divergence: dict | None = None
    notes: list[str] = field(default_factory=list)
    arbiter: bool = False
    raised: Any = None
    inert: tuple = ()
    not_checked: str | None = None
    steps: int = 1
    parted: str | None = None

    @property
    def passed(self) -> bool:
        return (self.raised is None and all(r.passed for r in self.rows)
                and self.not_checked is None)

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL``, or ``NOT CHECKED`` when what was compared agrees but the
        training passes could not be compared (``not_checked`` says why)."""
        if self.raised is not None or not all(r.passed for r in self.rows):
            return "FAIL"
        return "NOT CHECKED" if self.not_checked is not None else "PASS"

    @property
    def raised_line(self) -> str | None:
        """``backend.method raised Type: message`` when the code under test raised, else None."""
        return None if self.raised is None else " ".join(str(self.raised).split())

    @property
    def first_failure(self) -> Comparison | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def table(self):
        return comparisons_table(self.rows)

    @property
    def n_quantities(self) -> int:
        return len(self.rows)

    n_passed = total("rows", "passed", "Quantities that agree.")
    n_entries = total("rows", "n_elements", "Entries compared.")
    n_excused = total("rows", "n_excused", "Entries excused after the step.")

    @property
    def heavily_excused(self) -> list[str]:
        return [r.quantity for r in self.rows if r.excused_share > EXCUSED_SHARE_LIMIT
                and r.quantity not in self.inert]

    @property
    def counts_line(self) -> str:
        return format_counts(f"{self.n_passed} of {self.n_quantities} quantities agree",
                           self.n_entries, (self.n_excused, "excused"))

    def __str__(self) -> str:
        how = ("float64 arbiter" if self.arbiter
               else f"rtol={self.rtol:g}, atol={self.atol:g}")
        lines = [
            f"equivalence: {self.candidate} against {self.reference} ({self.dtype}, {how})",
            format_table(self.rows),
        ]
        first = self.first_failure
        if self.raised is not None:
            lines.append(f"FAIL: {self.raised_line}, after {len(self.rows)} quantities were "
                         f"compared ({sum(not r.passed for r in self.rows)} differ)")
        if first is None and self.raised is None and self.not_checked is not None:
            lines.append(f"NOT CHECKED: the training passes ({self.not_checked}); the "
                         f"{len(self.rows)} quantities compared agree")
        elif first is None and self.raised is None:
            lines.append(f"PASS: all {len(self.rows)} quantities agree")
        elif first is not None:
            n_bad = sum(not r.passed for r in self.rows)
            lines.append(f"FAIL: {n_bad} of {len(self.rows)} quantities differ; "
                         f"first: {first.quantity}")
            lines.append(first.message)
            if self.divergence:
                lines.append(f"first divergence: {self.divergence['message']}")
        lines.extend(self.notes)
        lines.append(self.counts_line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            **pair_fields("equivalence", self),
            "arbiter": self.arbiter,
            "first_failure": None if first is None else first.quantity,
            "first_failure_message": None if first is None else first.message,
            "divergence": self.divergence,
            "notes": list(self.notes),
            "n_quantities": self.n_quantities,
            "n_passed": self.n_passed,
            "n_entries": self.n_entries,
            "n_excused": self.n_excused,
            "heavily_excused": self.heavily_excused,
            "raised": None if self.raised is None else {
                "backend": self.raised.backend, "method": self.raised.method,
                "error_type": type(self.raised.original).__name__,
                "message": " ".join(str(self.raised.original).split())},
            "rows": [jsonable(r.row()) for r in self.rows],
        }

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)


def model_dtype(model) -> np.dtype:
    """The dtype a model computes in, read off its parameters."""
    params = model.get_params()
    return np.asarray(next(iter(params.values()))).dtype


def validate_batch(x, y, dims: tuple[int, ...], input_shape=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch against a network's dims; return (x, y) as arrays.

    ``x`` is (N, dims[0]) for a network on rows; for one on images (``input_shape``
    (C, H, W), or a model or spec that has one: :func:`harness.data.images.image_shape`)
    it must be (N, C, H, W) of that shape.
    """
    from harness.data.images import IMAGE_LAYOUT, image_shape

    x = np.asarray(x)
    y = np.asarray(y)
    shape = image_shape(input_shape)
    if shape is not None:
        if x.ndim != 4 or x.shape[0] == 0:
            raise ConfigError(f"`x` must be a non-empty batch of images {IMAGE_LAYOUT} of "
                              f"shape (N, {', '.join(map(str, shape))}), got shape {x.shape}")
        if tuple(x.shape[1:]) != shape:
            raise ConfigError(f"`x` holds images of shape (C, H, W) {tuple(x.shape[1:])} but "
                              f"the network's input shape is {shape}; layout {IMAGE_LAYOUT}")
    elif x.ndim != 2 or x.shape[0] == 0:
        also = (f" (a batch of images {IMAGE_LAYOUT} needs a network that says its input "
                f"shape (C, H, W): `model.input_shape`, or the ModelSpec it keeps as "
                f"`model.spec`)" if x.ndim == 4 else "")
        raise ConfigError(f"`x` must be a non-empty 2-D array (N, F), got shape {x.shape}"
                          f"{also}")
    elif x.shape[1] != dims[0]:
        raise ConfigError(f"`x` has {x.shape[1]} features but dims[0] is {dims[0]}")
    if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
        raise ConfigError("`x` must hold finite numbers")
    if y.shape != (x.shape[0],):
        raise ConfigError(f"`y` must have shape ({x.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"`y` must hold integer class indices, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= dims[-1]):
        raise ConfigError(f"`y` must be in 0..{dims[-1] - 1} (dims[-1] classes), "
                          f"got values {y.min()}..{y.max()}")
    return x, y.astype(np.int64)


def check_equivalence(reference, candidate, x, y, *, rtol: float | None = None,
                      atol: float | None = None, reference_name: str = "reference",
                      candidate_name: str = "candidate", arbiter=None,
                      steps: int = 1, stress: bool = False) -> EquivalenceReport:
    """Copy ``reference``'s parameters into ``candidate`` and compare everything.

    Compared, in order: the parameters after the copy, the logits, the loss, every
    gradient, the loss returned by one ``train_step`` of each, and every parameter
    after that step. Both models are changed: the candidate gets the reference's
    parameters, and each takes one optimizer step.

    Parameters
    ----------
    reference, candidate : Classifier
        Same ``dims``; compared in the reference's dtype.
    x : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    rtol, atol : float, optional
        Both or neither; defaults from :data:`DEFAULT_TOLERANCES` by dtype.
    arbiter : Classifier, optional
        A float64 model of the reference's kind and optimizer (e.g. the reference's
        backend rebuilt in float64). Its parameters are set to the reference's, up-cast,
        and it takes the same step. When the comparison runs in float32 every quantity
        is then judged against it (module docstring, rows' ``rule`` is ``"arbiter"``);
        in float64 it is not needed and not used (a note says so).
    steps : int
        Optimizer steps taken on the batch, the parameters compared after each
        (:mod:`harness.compare.steps`; the last of three or more on half the rows).
    stress : bool
        Add the stress rows (:mod:`harness.compare.stress`) after the steps.

    Post-step entries are excused only as :func:`excusable_after_step` allows; the
    count is in each row (``n_excused``), the notes and ``heavily_excused``.
    """
    from harness.errors import BackendRaised
    from harness.model.transfer import copy_params

    if tuple(reference.dims) != tuple(candidate.dims):
        raise ConfigError(f"reference dims {tuple(reference.dims)} differ from candidate dims "
                          f"{tuple(candidate.dims)}")
    x, y = validate_batch(x, y, tuple(reference.dims), reference)
    dtype = model_dtype(reference)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)
    tol = dict(rtol=rtol, atol=atol)
    run = _Run(names=(reference_name, candidate_name))
    arbiter = _usable_arbiter(arbiter, reference, dtype, run.notes)
    x_ref = x.astype(dtype, copy=False)

    copy_params(reference, candidate)
    before = reference.get_params()
    reason = own_masks_reason(reference, candidate, run.names)
    if reason is not None:  # a side draws its own dropout masks
        return _evaluation_only(reference, candidate, x_ref, y, before, tol, run, reason,
                                dtype)
    with held_masks(arbiter):
        arb = None if arbiter is None else _arbiter_values(arbiter, reference, before, x, y)
    raised = None
    try:  # what was compared before the code under test raises is kept
        # one set of dropout masks for the passes and the step: the step's gradient is
        # the one compared (a network without dropout draws none)
        with held_masks(reference), held_masks(candidate), held_masks(arbiter):
            grads = _compare_before_step(reference, candidate, x_ref, y, before, tol, arb,
                                         run)
            excused = _compare_step(reference, candidate, arbiter, x_ref, y, before, grads,
                                    tol, arb, run)
        later_steps(reference, candidate, arbiter, x_ref, y, tol, arb, run, steps, excused)
        if stress:
            run.rows.extend(stress_rows(reference, candidate, x_ref, y, before, tol,
                                        run.notes))
    except BackendRaised as exc:
        if not run.rows:  # nothing compared yet: the caller's finding alone
            raise
        raised = exc
    return _finished(run, reference, candidate, dtype, tol, steps, arbiter is not None, raised)


def _finished(run, reference, candidate, dtype, tol: dict, steps: int, arbitrated: bool,
              raised) -> EquivalenceReport:
    """The report of a finished comparison, with the step it parted at and the dtype's
    resolution notice among its notes."""
    parted = parted_note(run.rows, steps)
    if parted is not None and parted not in run.notes:
        run.notes.append(parted)
    settings = next((o for o in (getattr(m, a, None) for m in (reference, candidate)
                                 for a in ("optimizer_spec", "optimizer"))
                     if hasattr(o, "lr")), None)
    notice = resolution_notice(settings, dtype, steps)
    if notice is not None:
        run.notes.append(notice)
    return EquivalenceReport(run.rows, tol["rtol"], tol["atol"], dtype.name, *run.names,
                             divergence=run.divergence, notes=run.notes,
                             arbiter=arbitrated, raised=raised, inert=run.inert,
                             steps=steps, parted=parted)


def _evaluation_only(reference, candidate, x_ref, y, before: dict, tol: dict, run,
                     reason: str, dtype) -> EquivalenceReport:
    """What can be compared when a side draws its own dropout masks
    (:mod:`harness.compare.dropout`): the parameters, the evaluation pass and the mean
    training loss; the rest is NOT CHECKED."""
    from harness.compare.dropout import mean_loss_row, not_checked_note

    rows = compare_dicts("params", candidate.get_params(), before, **tol)
    rows.append(compare("logits", candidate.forward(x_ref), reference.forward(x_ref), **tol))
    rows.append(mean_loss_row(reference, candidate, x_ref, y))
    run.notes.append(not_checked_note(reason))
    return EquivalenceReport(rows, tol["rtol"], tol["atol"], dtype.name, *run.names,
                             notes=run.notes, not_checked=reason)


@dataclass
class _Run:
    """What :func:`check_equivalence` has found so far (kept when the code under test
    raises): the rows, the notes and the located divergence."""

    names: tuple[str, str]
    rows: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    divergence: dict | None = None
    inert: tuple = ()


def _usable_arbiter(arbiter, reference, dtype, notes: list[str]):
    """The arbiter after its checks; None (with a note) when the run is already float64."""
    if arbiter is None:
        return None
    if tuple(getattr(arbiter, "dims", ())) != tuple(reference.dims):
        raise ConfigError(f"the arbiter's dims {tuple(getattr(arbiter, 'dims', ()))} "
                          f"differ from the reference's {tuple(reference.dims)}")
    if model_dtype(arbiter) != np.float64:
        raise ConfigError(f"the arbiter must be a float64 model, got "
                          f"{model_dtype(arbiter).name}")
    if dtype == np.float64:
        notes.append("note: the arbiter was not used: the comparison already runs "
                     "in float64")
        return None
    return arbiter


def _arbiter_values(arbiter, reference, before: dict, x: np.ndarray, y: np.ndarray
                    ) -> dict[str, Any]:
    """The arbiter's parameters (the reference's, up-cast; its buffers too), logits, loss
    and gradients."""
    from harness.model.transfer import copy_buffers

    arbiter.set_params({k: np.asarray(v, dtype=np.float64) for k, v in before.items()})
    copy_buffers(reference, arbiter)
    x64 = x.astype(np.float64)
    arb: dict[str, Any] = {"x64": x64}
    arb["params"] = arbiter.get_params()
    arb["logits"] = arbiter.forward(x64)
    arb["loss"], arb["grads"] = arbiter.loss_and_grads(x64, y)
    return arb


def _compare_before_step(reference, candidate, x_ref, y, before: dict, tol: dict,
                         arb: dict | None, run: _Run) -> tuple[dict, dict]:
    """Compare the copied parameters, logits, loss and gradients; locate a divergence
    when one of them fails. Returns the reference's and the candidate's gradients."""
    judge = (lambda key: None) if arb is None else (lambda key: arb[key])
    rows = run.rows
    rows.extend(compare_dicts("params", candidate.get_params(), before, **tol,
                              arbiter=judge("params")))
    rows.extend(_compare_buffers("buffers", reference, candidate, tol, run))
    rows.append(compare("logits", candidate.forward(x_ref), reference.forward(x_ref), **tol,
                        arbiter=judge("logits")))
    loss_r, grads_r = reference.loss_and_grads(x_ref, y)
    loss_c, grads_c = candidate.loss_and_grads(x_ref, y)
    rows.append(compare("loss", loss_c, loss_r, **tol, scalar=True,
                        arbiter=None if arb is None else _scalar64(arb["loss"])))
    rows.extend(compare_dicts("grads", grads_c, grads_r, **tol, arbiter=judge("grads")))

    if not all(r.passed for r in rows):
        from harness.diagnose.localize import localisation_note, locate_divergence

        reference_name, candidate_name = run.names
        run.divergence = locate_divergence(reference, candidate, x_ref, y, **tol,
                                           reference_name=reference_name,
                                           candidate_name=candidate_name)
        if run.divergence is None:
            run.notes.append(localisation_note(reference, candidate, reference_name,
                                               candidate_name))
    return grads_r, grads_c


def _compare_step(reference, candidate, arbiter, x_ref, y, before: dict,
                  grads: tuple[dict, dict], tol: dict, arb: dict | None, run: _Run) -> None:
    """One ``train_step`` of each: compare its loss and the parameters after it, excusing
    only what :func:`excusable_after_step` allows."""
    from harness.model.transfer import copy_params

    grads_r, grads_c = grads
    if arb is not None:  # the relative rounding the step rule carries on
        arb["noise"] = gradient_noise(grads_r, arb["grads"], before,
                                      l2_weight_decay(reference))
    step_r = reference.train_step(x_ref, y)
    step_c = candidate.train_step(x_ref, y)
    if arbiter is not None:
        arb["step"] = _scalar64(arbiter.train_step(arb["x64"], y))
        arb["after"] = arbiter.get_params()
    run.rows.append(compare("train_step loss", step_c, step_r, **tol, scalar=True,
                            arbiter=None if arbiter is None else arb["step"]))
    after_r, after_c = reference.get_params(), candidate.get_params()
    norm, value = clip_settings(reference)
    if norm is not None or value is not None:  # the gradients the optimizers stepped with
        grads_r, grads_c = clipped(grads_r, norm, value), clipped(grads_c, norm, value)
    excuse = excusable_after_step(grads_r, grads_c, before, after_r, after_c, **tol,
                                  weight_decay=l2_weight_decay(reference))
    # under an arbiter the step is judged by its rule for steps (harness.compare.steps);
    # where Adam turns a gradient's rounding noise into a full step, the exact excusal
    # rule excuses the entry
    after = compare_after_step("params after step", after_c, after_r, **tol, before=before,
                               arbiter=None if arbiter is None else arb["after"],
                               ignore=excuse,
                               noise=None if arb is None else arb["noise"])
    run.rows.extend(after)
    run.inert = inert_after_step(reference)
    run.notes.extend(_excusal_notes(after, run.inert))
    buffers = _compare_buffers("buffers after step", reference, candidate, tol, None)
    if buffers:  # the running statistics the step updated, and evaluation with them
        run.rows.extend(buffers)
        if run.divergence is None:
            from harness.diagnose.localize import buffer_divergence

            run.divergence = buffer_divergence(reference, run.rows)
        # evaluation with running statistics that are not the initial ones, on the
        # reference's parameters and buffers: what the step changed is compared above
        copy_params(reference, candidate)
        run.rows.append(compare("logits after step (evaluation)", candidate.forward(x_ref),
                                reference.forward(x_ref), **tol))
        # the later steps go on from each side's own parameters
        candidate.set_params(inert_from(after_c, after_r, run.inert))
    return excuse
