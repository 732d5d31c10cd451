"""What the class formats (``grader batch --format X``) share: the class table's cells and the reports.

A class format renders a :class:`grader.engine.classreport.BatchResult`. The
class table (markdown, html, junit, github) comes from the compact
:class:`~grader.engine.classreport.ClassRow` each learner has in it. The
formats that hand a platform one document per learner (gradescope,
classroom) need each learner's whole report, which a batch never keeps in
memory: :func:`learner_reports` reads them back, one learner at a time, from
the ``gradebook.json`` the batch has just written, never from the histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from grader.formats.common import STATUS_WORD

if TYPE_CHECKING:
    from grader.engine.classreport import BatchResult, Cell, ClassRow
    from grader.engine.report import Report

#: The learner statuses that mean nothing could be graded for them.
NOTHING_GRADED = ("missing", "not-gradable")


def cell_words(cell: "Cell | None") -> str:
    """An experiment's cell as plain words: ``PASS 10``, ``FAIL 0``, or ``-`` when not graded."""
    if cell is None:
        return "-"
    word = STATUS_WORD.get(cell.status, cell.status.upper())
    return word if cell.points is None else f"{word} {cell.points:g}"


def score_words(row: "ClassRow") -> str:
    """``16/30``, or ``-/30`` when nothing was graded."""
    return f"{'-' if row.score is None else f'{row.score:g}'}/{row.max_score:g}"


def late_words(late: bool | None) -> str:
    """gradebook.csv's ``late`` cell: ``yes``, ``no``, or "" when nothing tells."""
    return "" if late is None else ("yes" if late else "no")


def tells_late(result: "BatchResult") -> bool:
    """True when some learner's lateness is known (a due date or the LMS said): the class table shows it."""
    return any(row.late is not None for row in result.learners)


def headline(result: "BatchResult") -> str:
    """One sentence: how many learners, from where, and the counts per status."""
    from grader.engine.classreport import STATUSES

    counts = ", ".join(f"{result.counts.get(s, 0)} {s}" for s in STATUSES)
    line = f"{result.total} learners from {result.source}: {counts}."
    if result.mean_score is not None:
        line += f" Mean score of graded learners: {result.mean_score:.1f}/{result.max_score:g}."
    return line


def why(row: "ClassRow") -> str:
    """The first reason a learner needs a look, or "" (a suspect history's line first)."""
    suspect = next((p for p in row.problems if "suspect history" in p), "")
    if suspect:
        return suspect
    if row.problems:
        return row.problems[0]
    if row.duplicates:
        return row.duplicates[0]
    return ""


@dataclass
class LearnerReport:
    """A learner of ``gradebook.json``: status, flags, problems and the report (None when not graded)."""

    learner: str
    status: str
    flags: list[str]
    problems: list[str]
    report: "Report | None"


def learner_reports(result: "BatchResult") -> Iterator[LearnerReport]:
    """Each learner of the gradebook the batch wrote, in its order, with the report rebuilt as a model."""
    from grader.engine.classreport import read_learners
    from grader.engine.report import report_from_dict
    from grader.errors import BadInputError

    path = result.out_dir / "gradebook.json"
    try:
        for entry in read_learners(path):
            report = entry.get("report")
            yield LearnerReport(entry["learner"], entry["status"], list(entry.get("flags") or []),
                                list(entry.get("problems") or []),
                                report_from_dict(report) if report is not None else None)
    except (OSError, ValueError, KeyError) as err:
        raise BadInputError(f"cannot read back {path} to render the class: {err}") from None
