"""What the report is made of: the stages, their verdicts and results, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the stages, in the order they run
STAGES: tuple[str, ...] = ("equivalence", "gradcheck", "training", "drift", "cv", "bench")

PASS, FAIL, INFO, SKIPPED = "PASS", "FAIL", "INFO", "SKIPPED"
WARN, NOT_CHECKED = "WARN", "NOT CHECKED"


@dataclass
class Verdict:
    """One line of the verdict table."""

    key: str
    title: str
    verdict: str
    summary: str
    counts: bool = True
    seconds: float | None = None
    anchor: str = ""

    @property
    def passed(self) -> bool:
        """FAIL and NOT CHECKED fail a report; PASS, WARN, INFO and SKIPPED do not."""
        return self.verdict not in (FAIL, NOT_CHECKED)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "verdict": self.verdict,
                "counts": self.counts, "summary": self.summary, "seconds": self.seconds}


@dataclass
class StageResult:
    """What a stage hands to the report: verdicts, JSON, template data, files."""

    key: str
    verdicts: list[Verdict]
    json: dict[str, Any] | None
    view: dict[str, Any] | None
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ReportOutcome:
    """Returned by :func:`build_report`."""

    path: Path
    passed: bool
    verdicts: list[Verdict]
    elapsed_s: float
    results: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def index(self) -> Path:
        return self.path / "index.html"

