"""A picture-ready model of one run: lanes, attempts, silences and marks, in seconds from its start.

The HTML report draws each graded run as a timeline, but a renderer never
reads a history: everything the picture needs is put into the report here,
from the run's :class:`grader.engine.evidence.RunEvidence`, while grading. The same
model goes into ``--format json`` (``timelines``), so any other program can
draw it too.

What the history cannot tell is kept as such, never invented (HISTORY-FACTS):

- Failed attempts are not events. Only an activity's *final* attempt has a
  start time and a worker; the earlier ones happened somewhere between the
  activity's scheduling and that start. They become one bar with
  ``recorded=False`` spanning that window, on the ``unrecorded`` lane, with
  the one failure that survives (the previous attempt's).
- While a run is open, an activity has no start event yet; what ``describe()``
  said about it (state, attempt, last failure) is all there is.

Offsets are seconds from the run's earliest event time, rounded to
milliseconds; ``None`` means the history does not say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from grader.engine import catalog
from grader.engine.evidence import ActivityEvidence, RunEvidence, payment_field, silence_label

#: A silence between two consecutive events at least this long is drawn (as
#: in ``grader timeline``, which prints a line for the same silences).
SILENCE_SECONDS = 5.0

_MARK_ORDER = {"started": 0, "lost": 1, "takeover": 2, "handover": 2, "failure": 3, "outage": 3}

#: Lane ids that are not worker identities.
WORKFLOW_LANE = "workflow"
UNRECORDED_LANE = "unrecorded"


@dataclass(slots=True)
class Lane:
    """One row of the picture: the workflow itself, a worker process, or attempts nobody recorded."""

    #: ``workflow``, ``unrecorded``, or the worker identity (``pid@host``).
    id: str
    #: ``workflow``, ``worker`` or ``unrecorded``.
    kind: str
    #: When the lane's owner was first and last seen (offsets), None when unknown.
    first_seen: float | None = None
    last_seen: float | None = None
    #: True for a worker that stopped answering while the run was open (a crash or a stop).
    lost: bool = False


@dataclass(slots=True)
class Attempt:
    """One bar: an activity's final attempt, or the earlier attempts whose times were not recorded."""

    #: Activity type, as the app names it.
    activity: str
    #: Lane id the bar is drawn on.
    lane: str
    #: First and last attempt number the bar stands for (equal for a single attempt; 0 when unknown).
    first_attempt: int
    last_attempt: int
    #: True when start and end are the attempt's own times; False when the
    #: history only bounds them (start..end is then the window they lie in).
    recorded: bool
    #: completed, failed, timed_out, canceled (final attempts), retried
    #: (earlier attempts, which all failed), or pending (still open).
    outcome: str
    start: float | None
    end: float | None
    #: The failure's text, for a failed bar (for ``retried``: the last earlier attempt's failure).
    failure: str | None = None
    #: The events this bar comes from (for tooltips and the Web UI).
    event_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Silence:
    """A stretch of at least SILENCE_SECONDS with no event."""

    start: float
    end: float
    #: The events on either side.
    before_event_id: int
    after_event_id: int
    #: A short guess at why: waiting for a timeout, retrying, waiting for
    #: another worker, no worker running?, server unreachable?
    reason: str
    #: True when the server itself was away (an outage): an attempt outlived
    #: its start-to-close timeout on the same worker across the silence, or
    #: nothing else explains it.
    outage: bool = False


@dataclass(slots=True)
class Mark:
    """A point worth pointing at: the start and end, a lost worker, a takeover, a failure, a fix, a refund, an outage."""

    #: started, closed, lost, takeover, handover, failure, fix, refund, outage, reset or cancel.
    kind: str
    lane: str
    #: Offset in seconds; None when the history does not time it.
    at: float | None
    event_id: int | None
    #: One line for a person, e.g. "15502@worker-host lost (last seen at event 10)".
    label: str


@dataclass(slots=True)
class RunTimeline:
    """Everything needed to draw one graded run."""

    workflow_id: str
    run_id: str
    #: COMPLETED, FAILED, ..., or RUNNING.
    status: str
    #: Seconds from the first to the last event (the drawn width).
    span: float
    lanes: list[Lane]
    attempts: list[Attempt]
    silences: list[Silence]
    marks: list[Mark]
    #: For a run read live while open: what describe() says is pending, one line each.
    pending: list[str] = field(default_factory=list)


def build_timeline(run: RunEvidence) -> RunTimeline:
    """The picture model of ``run`` (built once per run and kept in ``run.memo``)."""
    cached = run.memo.get("timeline")
    if cached is None:
        cached = run.memo["timeline"] = _Builder(run).build()
    return cached


class _Builder:
    """Turns evidence into lanes, bars, silences and marks."""

    def __init__(self, run: RunEvidence) -> None:
        self.run = run
        self.times = run.event_times
        self.origin: datetime | None = min(self.times.values()) if self.times else None

    def offset(self, when: datetime | None) -> float | None:
        if when is None or self.origin is None:
            return None
        return round((when - self.origin).total_seconds(), 3)

    def at_event(self, event_id: int | None) -> float | None:
        return self.offset(self.times.get(event_id)) if event_id is not None else None

    def build(self) -> RunTimeline:
        run = self.run
        lost = {h.from_identity for h in run.handovers if h.final} | {c.identity for c in run.process_changes}
        lanes = [Lane(WORKFLOW_LANE, "workflow", 0.0 if self.origin else None, self.at_event(
            run.closed_event.event_id if run.closed_event else None))]
        for w in run.workers:
            lanes.append(Lane(w.identity, "worker", self.at_event(w.first_event_id),
                              self.at_event(w.last_event_id), lost=w.identity in lost))
        attempts: list[Attempt] = []
        marks: list[Mark] = []
        for a in run.activities:
            self.activity(a, attempts, marks)
        if any(b.lane == UNRECORDED_LANE for b in attempts):
            lanes.append(Lane(UNRECORDED_LANE, "unrecorded"))
        silences = self.silences(attempts)
        marks += self.run_marks(silences)
        # Time order; at one moment, what happened to the workers comes before what it led to.
        marks.sort(key=lambda m: (m.at is None, m.at or 0.0, m.event_id or 0, _MARK_ORDER.get(m.kind, 5)))
        span = max(self.offset(t) for t in self.times.values()) if self.times else 0.0
        return RunTimeline(run.workflow_id, run.run_id, run.status, span or 0.0, lanes, attempts, silences,
                           marks, pending=[_pending_text(p) for p in run.pending or []])

    # --- activities -----------------------------------------------------------

    def activity(self, a: ActivityEvidence, attempts: list[Attempt], marks: list[Mark]) -> None:
        name = a.activity_type
        scheduled = self.at_event(a.scheduled_event_id)
        start = self.offset(a.started_at)
        if a.attempt == 0:  # no start event: never started, or still open
            live = [p for p in self.run.pending or [] if p.activity_type.lower() == name.lower()]
            if a.outcome == "pending":
                p = live[0] if live else None
                failure = p.last_failure.describe() if p and p.last_failure else None
                attempts.append(Attempt(name, UNRECORDED_LANE, 1 if p else 0, p.attempt if p else 0, False,
                                        "pending", scheduled, None, failure, [a.scheduled_event_id]))
            return
        if a.attempt > 1:
            # The earlier attempts: only their window and the last one's failure are known.
            failure = a.last_failure.describe() if a.last_failure else None
            attempts.append(Attempt(name, UNRECORDED_LANE, 1, a.attempt - 1, False, "retried", scheduled, start,
                                    failure, [a.scheduled_event_id, a.started_event_id]))
            if failure:
                marks.append(Mark("failure", UNRECORDED_LANE, start, a.started_event_id,
                                  f"{name} attempt {a.attempt - 1} failed: {failure}"))
        lane = a.started_by or UNRECORDED_LANE
        end = self.offset(a.closed_at)
        failure = a.failure.describe() if a.failure else None
        ids = [i for i in (a.started_event_id, a.closed_event_id) if i is not None]
        attempts.append(Attempt(name, lane, a.attempt, a.attempt, start is not None, a.outcome, start, end,
                                failure, ids))
        if failure:
            why = f" ({a.retry_state})" if a.retry_state else ""
            marks.append(Mark("failure", lane, end, a.closed_event_id,
                              f"{name} attempt {a.attempt} {a.outcome.replace('_', ' ')}: {failure}{why}"))
        if self.is_fix(a):
            before, after = a.scheduled_build_id, a.started_build_id
            proof = f" (code fingerprint {before} -> {after})" if before and after else ""
            marks.append(Mark("fix", lane, start, a.started_event_id,
                              f"fixed code: {name} attempt {a.attempt} succeeded on {a.finished_by}, "
                              f"after {a.last_failure.describe()}{proof}"))
        failed = self.compensates(a)
        if failed is not None:
            details = a.first_input
            amount, account = payment_field(details, "amount"), payment_field(details, "source_account")
            what = f" of {amount} to {account}" if amount is not None and account is not None else ""
            marks.append(Mark("refund", lane, start, a.started_event_id,
                              f"{name}{what} ({a.outcome}): the failed {failed.activity_type} compensated"))

    def is_fix(self, a: ActivityEvidence) -> bool:
        """A live fix: a step its pack calls fixable failed with the bug, then completed in a worker
        process that was not the scheduler's (another identity, other code, or a process change under a shared identity).

        When both workers stamped a code fingerprint (build id) and it did not
        change, the restart brought no new code: that is not drawn as a fix
        (the live-fix check fails it too).
        """
        lf = a.last_failure
        if not (catalog.is_fixable(a.activity_type) and a.outcome == "completed"
                and lf is not None and lf.kind == "application" and a.finished_by and a.scheduled_by):
            return False
        if a.scheduled_build_id and a.scheduled_build_id == a.started_build_id:
            return False
        new_code = bool(a.scheduled_build_id and a.started_build_id)  # differ, by the line above
        restarted = any(c.event_id > a.scheduled_event_id or c.last_old_event_id >= a.scheduled_event_id
                        for c in self.run.process_changes)
        return a.finished_by != a.scheduled_by or new_code or restarted

    def compensates(self, a: ActivityEvidence) -> ActivityEvidence | None:
        """The failed step a compensation activity answers (drawn as a ``refund`` mark), or None.

        A pack names its compensation activities; one counts as compensating when
        another step failed before it was scheduled.
        """
        if catalog.compensated_step(a.activity_type) is None:
            return None
        return next((d for d in self.run.activities
                     if d.outcome in ("failed", "timed_out") and d.closed_event_id
                     and d.closed_event_id < a.scheduled_event_id
                     and catalog.compensated_step(d.activity_type) is None), None)

    # --- silences and run-level marks -------------------------------------------

    def silences(self, attempts: list[Attempt]) -> list[Silence]:
        out = []
        previous: tuple[int, datetime] | None = None
        # Event-id order, as in the history: an ActivityTaskStarted is stamped with
        # its start but written at its end, so times may step back (as in ``grader timeline``).
        for event_id, when in self.times.items():
            if previous and (when - previous[1]).total_seconds() >= SILENCE_SECONDS:
                start, end = self.offset(previous[1]), self.offset(when)
                # Named as grader timeline names it, shaded as an outage only where the
                # network-partition check counts it, so picture and verdict never disagree.
                reason, outage = silence_label(self.run, previous[0], event_id, minimum=SILENCE_SECONDS)
                out.append(Silence(start, end, previous[0], event_id, reason, outage=outage))
            previous = (event_id, when)
        return out

    def run_marks(self, silences: list[Silence]) -> list[Mark]:
        run = self.run
        marks = [Mark("started", WORKFLOW_LANE, self.at_event(1) if 1 in self.times else 0.0, 1,
                      f"started by {run.starter_identity or 'an unknown client'}")]
        for h in run.handovers:
            at = self.at_event(h.event_id)
            if h.final:
                last = next((w for w in run.workers if w.identity == h.from_identity), None)
                last_id = last.last_event_id if last else None
                marks.append(Mark("lost", h.from_identity, self.at_event(last_id), last_id,
                                  f"worker {h.from_identity} lost (last seen at event {last_id})"))
                marks.append(Mark("takeover", h.to_identity, at, h.event_id,
                                  f"worker {h.to_identity} took over from {h.from_identity}"))
            else:
                marks.append(Mark("handover", h.to_identity, at, h.event_id,
                                  f"work moved from {h.from_identity} to {h.to_identity} (both alive)"))
        for c in run.process_changes:
            # One lane (one identity), two processes: the loss and the takeover on that lane.
            marks.append(Mark("lost", c.identity, self.at_event(c.last_old_event_id), c.last_old_event_id,
                              f"worker {c.identity}'s process lost: {c.how} (event {c.event_ids[-2] if len(c.event_ids) > 2 else c.last_old_event_id})"))
            marks.append(Mark("takeover", c.identity, self.at_event(c.event_id), c.event_id,
                              f"a new process with the same identity {c.identity} took over: {c.describe()}"))
        for s in silences:
            if s.outage:
                marks.append(Mark("outage", WORKFLOW_LANE, s.start, s.after_event_id,
                                  f"outage: {s.end - s.start:.1f} s with no event from the server "
                                  f"(events {s.before_event_id} to {s.after_event_id})"))
        for r in run.resets:
            marks.append(Mark("reset", WORKFLOW_LANE, self.at_event(r.event_id), r.event_id,
                              f"run reset by {r.detail or '?'}: earlier events are copies of the old run"))
        if run.cancel_requested:
            c = run.cancel_requested
            marks.append(Mark("cancel", WORKFLOW_LANE, self.at_event(c.event_id), c.event_id,
                              f"cancel requested by {c.detail or '?'}"))
        if run.closed_event:
            text = f"workflow {run.status}"
            if run.failure:
                text += f": {run.failure.message}"
            elif run.terminated and run.terminated.detail:
                text += f": {run.terminated.detail}"
            marks.append(Mark("closed", WORKFLOW_LANE, self.at_event(run.closed_event.event_id),
                              run.closed_event.event_id, text))
        return marks


def _pending_text(p) -> str:
    text = f"{p.activity_type} {p.state.lower()}, attempt {p.attempt}"
    if p.last_failure:
        text += f", last failure {p.last_failure.describe()}"
    if p.last_worker_identity:
        text += f", last worker {p.last_worker_identity}"
    return text
