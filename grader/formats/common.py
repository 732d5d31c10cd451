"""Small facts about a report that several formats state the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.engine.checks import CheckResult
    from grader.engine.report import ExperimentReport, Report

#: What each status is called in prose.
STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "pending": "PENDING", "error": "ERROR",
               "not-attempted": "NOT ATTEMPTED"}

#: The status of an experiment no run shows (and of each of its checks).
NOT_ATTEMPTED = "not-attempted"

#: The sentence a pending experiment gets wherever a format has room for one.
STILL_RUNNING = "The workflow is still running: the grade is pending until it closes."


def pending_message(message: str) -> str:
    """A pending check's finding, saying that the run is still open (once, not twice)."""
    return message if "still running" in message.lower() else f"{STILL_RUNNING} {message}"


def points(score: float, max_score: float) -> str:
    """``7/10``, with no trailing ``.0``."""
    return f"{score:g}/{max_score:g}"


def counted(report: "Report") -> list["ExperimentReport"]:
    """The experiments whose points make up ``report.score`` and ``report.max_score``.

    Optional experiments count only when they were asked for by name (or
    nothing else was graded); the report keeps the sums, so this finds the set
    of experiments that adds up to them: the required ones when they do, else all.
    """
    required = [e for e in report.experiments if e.required]
    if required and abs(sum(e.max_score for e in required) - report.max_score) < 1e-9 \
            and abs(sum(e.score for e in required) - report.score) < 1e-9:
        return required
    return list(report.experiments)


def check_title(check: "CheckResult") -> str:
    """A check's title; bonus evidence says so, and whether it was seen (as the table says it)."""
    if check.required:
        return check.title
    return f"{check.title} (bonus evidence{'' if check.status == 'pass' else ', not seen'})"


def explains(check: "CheckResult") -> bool:
    """Whether a check's finding deserves a line of its own under the verdict.

    Failures and pending checks, a pass that happened only because the check
    did not apply ("not needed: ..."), and a pass whose evidence is merely
    consistent when the check has advice for it (the table's rule too).
    """
    return (check.status not in ("pass", NOT_ATTEMPTED) or not check.applies
            or (check.strength == "consistent" and bool(check.hint)))


def shows_hint(check: "CheckResult") -> bool:
    """Whether a check's hint is shown: under a failed required check, or advice on a weak pass."""
    return bool(check.hint) and explains(check) and (check.required or check.status == "pass")


def evidence_strength(experiment: "ExperimentReport") -> str:
    """``proven``, ``consistent`` or "" for a passing experiment: the weakest of its checks' claims."""
    strengths = {c.strength for c in experiment.checks if c.strength and c.status == "pass"}
    if not strengths or experiment.status != "pass":
        return ""
    return "consistent" if "consistent" in strengths else "proven"


def not_attempted(experiment: "ExperimentReport") -> bool:
    """True for an experiment no run shows: it scores 0 and, when optional, is never a failure."""
    return experiment.status == NOT_ATTEMPTED


def is_bonus(check: "CheckResult") -> bool:
    """A check that adds evidence (or points) but can never fail its experiment."""
    return not check.required
