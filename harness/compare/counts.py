"""What the check reports share in their summaries: totals, the counts line, the dict head.

Every report (:class:`harness.compare.equivalence.EquivalenceReport`,
:class:`harness.gradients.gradcheck_report.GradcheckReport`,
:class:`harness.training.trajectory.TrajectoryReport`)
ends its text with one counts line, e.g. ``"12 of 12 quantities agree, 1,230 entries
compared, 0 excused"``; :func:`format_counts` writes it. :func:`total` declares a count
that sums one attribute over the report's rows, and :func:`pair_fields` gives the
leading entries of the ``to_dict()`` of a report that compares two models.
"""

from __future__ import annotations

from typing import Any

#: the entries a two-model report's ``to_dict()`` starts with, after ``check``
PAIR_FIELDS: tuple[str, ...] = ("passed", "reference", "candidate", "dtype", "rtol", "atol")


def total(items: str, attr: str, doc: str | None = None) -> property:
    """A read-only property: the sum of ``attr`` over the sequence attribute ``items``.

    Parameters
    ----------
    items : str
        Name of the report's attribute holding the rows (e.g. ``"rows"``).
    attr : str
        Name of the row attribute to add up (booleans count 1).
    doc : str, optional
        The property's docstring.

    Returns
    -------
    property
        Its value is an int.
    """
    def get(self) -> int:
        return int(sum(getattr(item, attr) for item in getattr(self, items)))

    get.__name__ = f"total_{attr}"
    return property(get, doc=doc)


def format_counts(head: str, entries: int, *tail: tuple[int, str],
                verb: str = "compared") -> str:
    """The last line of a report: ``"<head>, <entries> entries <verb>, <n> <label>, ..."``.

    Parameters
    ----------
    head : str
        What was compared and how many agree, e.g. ``"3 of 4 quantities agree"``.
    entries : int
        Entries compared (or checked), written with thousands separators.
    *tail : (int, str)
        Further counts and their labels, e.g. ``(0, "excused")``.
    verb : str
        What happened to the entries: ``"compared"`` or ``"checked"``.
    """
    parts = [head, f"{entries:,} entries {verb}"]
    parts.extend(f"{n:,} {label}" for n, label in tail)
    return ", ".join(parts)


def pair_fields(check: str, report) -> dict[str, Any]:
    """``{"check": check, ...}`` and then :data:`PAIR_FIELDS`, read off ``report``."""
    return {"check": check, **{name: getattr(report, name) for name in PAIR_FIELDS}}
