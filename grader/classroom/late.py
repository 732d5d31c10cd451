"""Whether a learner's work came in late: the gradebook's ``late`` column.

Three things can tell, and any one saying "late" makes it late:

- the LMS's own marker: Canvas's ``_LATE`` in a download's file names,
  Moodle's grading worksheet ``Status`` saying "... late";
- when the LMS says the work was handed in (Gradescope's ``created_at``),
  against ``--due``;
- the runs themselves: a run that earned points and closed after ``--due``.
  A run that closed before the due time and a later one that earned nothing
  more do not make the work late; only work that counted does.

``late`` is false when one of them could tell (an LMS marker, or ``--due``)
and none said late, and unknown (empty) when nothing could tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from grader.errors import BadInputError

#: Event types that close a run; the run's close time is that event's time.
CLOSING_EVENTS = frozenset({
    "WorkflowExecutionCompleted", "WorkflowExecutionFailed", "WorkflowExecutionCanceled",
    "WorkflowExecutionTerminated", "WorkflowExecutionTimedOut", "WorkflowExecutionContinuedAsNew"})


@dataclass(frozen=True)
class LateHint:
    """What the LMS said about one learner's submission."""

    #: The LMS's marker: True (late), False (on time), None (it said nothing).
    marked: bool | None = None
    #: When the LMS says the work was handed in, if it says.
    submitted_at: datetime | None = None


def parse_due(text: str) -> datetime:
    """``--due`` as an aware datetime: ISO 8601, ``2026-12-04T23:59`` or with an offset; no offset means local time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInputError(f"--due {text!r} is not a date and time: write it as 2026-12-04T23:59 (local time) "
                            "or 2026-12-04T23:59+01:00") from None
    return when if when.tzinfo else when.astimezone()


def closed_at(events: list) -> datetime | None:
    """When a run closed (its closing event's time), or None for a run still open or a time not recorded."""
    if events and events[-1].type in CLOSING_EVENTS:
        return events[-1].when
    return None


def is_late(report, histories: Iterable, *, due: datetime | None, hint: LateHint | None) -> bool | None:
    """The ``late`` value of one learner (see the module's docstring); ``report`` may be None."""
    hint = hint or LateHint()
    if hint.marked:
        return True
    if due is not None:
        if hint.submitted_at is not None and hint.submitted_at > due:
            return True
        if report is not None:
            closes = {h.run_id: closed_at(h.events) for h in histories}
            for experiment in report.experiments:
                run = experiment.workflow
                if experiment.score > 0 and run is not None:
                    when = closes.get(run.run_id)
                    if when is not None and when > due:
                        return True
        return False
    return False if hint.marked is not None else None
