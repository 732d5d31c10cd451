"""Integrity: does a history look like what a Temporal server wrote, untouched?

A grade is only as good as the history under it, and a history is a JSON file
a learner can edit. This module looks for what an edit leaves behind and
turns it into findings; a history with any finding is *suspect*, and an
experiment never passes on a suspect history (see :mod:`grader.engine.report`).

Pure: histories in, findings out. No I/O, no server, no SDK. Reading a
bundle's manifest (hash mismatches) and replaying a history through the
reference workflow happen elsewhere (:mod:`grader.sources.bundles`,
:mod:`grader.lab.replay`) and arrive here as findings and notes.

Every rule was measured on real histories before it was written: the
goldens in ``tests/goldens`` (21 runs of this project's app: crashes by
SIGKILL, SIGTERM and SIGINT, a live fix, compensations, a cancel, a reset, a
paused server...), two more recordings of every golden scenario, a run whose
workflow task failed three times while signals arrived, a real reset exported
with its parent, and the goldens rewritten in the styles of the Go and
TypeScript apps. None of them trips any rule; a false alarm costs an honest
learner their grade, so each rule leaves room for what the server really
does:

- Event ids are 1..N. Exactly one WorkflowExecutionStarted, first; nothing
  after the closing event.
- References point back to an earlier event of the right type, and pairs
  agree (an activity's close names the start of the same activity). Events
  a workflow task's commands produced (they carry
  ``workflowTaskCompletedEventId``) come right after that
  WorkflowTaskCompleted: the server writes them in one batch.
- Times never went backwards on the goldens, except ActivityTaskStarted,
  which the server writes when the attempt ends but stamps with the time it
  began (the cancel golden's refund start is 1.5 s "older" than the event
  before it). So: every other event is no older than the ones before it
  (1 s of slack for a server clock step), and an activity's start lies
  between its scheduling and its end.
- Retries: attempt N cannot start before the backoffs of attempts 1..N-1
  have passed since scheduling (slack measured: +9 ms at least), plus a whole
  start-to-close timeout when the recorded last failure is that timeout
  (+5 ms at least); not when the failure set its own ``nextRetryDelay``.
  "Retries used up" needs the policy's maximum reached.
- Workers: a workflow task goes to a sticky queue ``<identity>-<32 hex>``
  only of the worker that completed the previous workflow task; a ``<hex>``
  names one process, so one identity. (That naming is the Rust-core SDKs':
  Python, TypeScript, .NET. Go and Java name sticky queues ``host:uuid``,
  which names no identity, so the rule stays silent for them.) A *new*
  worker starting a task scheduled on a dead worker's sticky queue is normal
  (the SIGINT and live-fix goldens show it) and is not a finding.
- Eager dispatch: a first attempt started less than 0.25 ms after its
  scheduling was handed to the worker that scheduled it in the same server
  call (the goldens: 25-430 us, always that worker). Dispatch to any other
  worker goes through the matching service: 1.4 ms at the very least,
  40 ms typically (measured with a second worker on 80 activities).
- A server-made run id (UUID version 7) holds the start time in its first
  48 bits: it agrees with the WorkflowExecutionStarted time within 1 ms on
  every golden (5 s allowed). Other run ids (older servers) are not checked.
- Several histories of one run id must agree event by event: one may be an
  earlier export of the other (a prefix of it while the run was open), and
  a reset run copies its parent's events up to the reset point; export
  spellings (ids as strings or numbers, enum forms, payload shorthand) are
  normalised before comparing. One run under two workflow ids (as the
  histories themselves record them) is a conflict too: that is what a
  renamed copy of another learner's run looks like next to the original.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import PurePath
from typing import Any, Iterable, Mapping, Sequence

from grader.engine.history import Event, History, decode_payloads

CONSISTENT, SUSPECT = "consistent", "suspect"

#: Slack for the server's own clock: a non-ActivityTaskStarted event may be this much older than one before it.
CLOCK_SLACK = timedelta(seconds=1)
#: Slack on retry timing (measured: every golden retry came at least 5 ms later than the policy's minimum).
RETRY_SLACK = timedelta(milliseconds=100)
#: A first attempt started this soon after scheduling can only have gone to the scheduling worker.
EAGER_WINDOW = timedelta(microseconds=250)
#: How far a version-7 run id's embedded time may be from the start event.
RUN_ID_SLACK_MS = 5000
#: A retry that follows a timeout is dispatched this soon after its backoff ends when a worker is
#: polling (measured on the crash goldens: 2-7 ms); an application failure landing there is a coincidence.
TIMEOUT_RETRY_WINDOW = timedelta(milliseconds=20)
#: A worker process stops polling its sticky queue only when it shuts down, which takes longer than
#: this after its last recorded act; another worker taking a task from that queue sooner is an edit.
STICKY_QUIET = timedelta(milliseconds=20)
#: Time between scheduling and the last attempt that the claimed attempts and backoffs do not explain,
#: on a worker process that never left, from which a missing attempt is inferred (at least this, and
#: at least 90% of the backoff one more attempt would have waited).
UNEXPLAINED_GAP = timedelta(seconds=1)

_WFT_SCHEDULED, _WFT_STARTED = "WorkflowTaskScheduled", "WorkflowTaskStarted"
_WFT_COMPLETED = "WorkflowTaskCompleted"
_AT_SCHEDULED, _AT_STARTED = "ActivityTaskScheduled", "ActivityTaskStarted"
_ATTEMPT_EVENTS = frozenset({_AT_STARTED, "ActivityTaskFailed"})
_AT_CLOSES = ("ActivityTaskCompleted", "ActivityTaskFailed", "ActivityTaskTimedOut", "ActivityTaskCanceled")
_CLOSES = frozenset({
    "WorkflowExecutionCompleted", "WorkflowExecutionFailed", "WorkflowExecutionCanceled",
    "WorkflowExecutionTerminated", "WorkflowExecutionTimedOut", "WorkflowExecutionContinuedAsNew",
})
_CHILD_INITIATED = "StartChildWorkflowExecutionInitiated"
_CORE_SUFFIX = re.compile(r"[0-9a-f]{32}")
#: Events only a workflow task's commands produce: each must name that task's WorkflowTaskCompleted.
_COMMAND_EVENTS = frozenset({
    _AT_SCHEDULED, "ActivityTaskCancelRequested", "TimerStarted", "TimerCanceled", "MarkerRecorded",
    "WorkflowExecutionCompleted", "WorkflowExecutionFailed", "WorkflowExecutionCanceled",
    "WorkflowExecutionContinuedAsNew", _CHILD_INITIATED, "SignalExternalWorkflowExecutionInitiated",
    "RequestCancelExternalWorkflowExecutionInitiated", "UpsertWorkflowSearchAttributes",
    "WorkflowPropertiesModified",
})

#: event type -> {reference attribute: (types it may point to, whether it must be present)}.
#: A missing optional reference is proto JSON's way of writing 0 ("none").
_REFERENCES: dict[str, dict[str, tuple[frozenset[str], bool]]] = {}


def _refs(types: Iterable[str], **attrs: tuple[Iterable[str], bool]) -> None:
    for etype in types:
        _REFERENCES[etype] = {k: (frozenset(v[0]), v[1]) for k, v in attrs.items()}


_refs([_WFT_STARTED], scheduledEventId=([_WFT_SCHEDULED], True))
_refs(["WorkflowTaskCompleted", "WorkflowTaskFailed"],
      scheduledEventId=([_WFT_SCHEDULED], True), startedEventId=([_WFT_STARTED], True))
_refs(["WorkflowTaskTimedOut"], scheduledEventId=([_WFT_SCHEDULED], True),
      startedEventId=([_WFT_STARTED], False))  # a schedule-to-start timeout never started
_refs([_AT_STARTED], scheduledEventId=([_AT_SCHEDULED], True))
_refs(["ActivityTaskCompleted", "ActivityTaskFailed"],
      scheduledEventId=([_AT_SCHEDULED], True), startedEventId=([_AT_STARTED], True))
_refs(["ActivityTaskTimedOut"], scheduledEventId=([_AT_SCHEDULED], True), startedEventId=([_AT_STARTED], False))
_refs(["ActivityTaskCanceled"], scheduledEventId=([_AT_SCHEDULED], True), startedEventId=([_AT_STARTED], False),
      latestCancelRequestedEventId=(["ActivityTaskCancelRequested"], False))
_refs(["ActivityTaskCancelRequested"], scheduledEventId=([_AT_SCHEDULED], True))
_refs(["TimerFired", "TimerCanceled"], startedEventId=(["TimerStarted"], True))
_refs(["ChildWorkflowExecutionStarted", "StartChildWorkflowExecutionFailed"],
      initiatedEventId=([_CHILD_INITIATED], True))
_refs(["ChildWorkflowExecutionCompleted", "ChildWorkflowExecutionFailed", "ChildWorkflowExecutionCanceled",
       "ChildWorkflowExecutionTimedOut", "ChildWorkflowExecutionTerminated"],
      initiatedEventId=([_CHILD_INITIATED], True), startedEventId=(["ChildWorkflowExecutionStarted"], True))
_refs(["ExternalWorkflowExecutionSignaled", "SignalExternalWorkflowExecutionFailed"],
      initiatedEventId=(["SignalExternalWorkflowExecutionInitiated"], True))
_refs(["ExternalWorkflowExecutionCancelRequested", "RequestCancelExternalWorkflowExecutionFailed"],
      initiatedEventId=(["RequestCancelExternalWorkflowExecutionInitiated"], True))


@dataclass(slots=True)
class Finding:
    """One thing in a history that a Temporal server would not have written."""

    #: Stable short code, e.g. ``after-close`` or ``retry-too-soon``.
    code: str
    #: One sentence for a person: what is wrong, with the event ids.
    message: str
    #: The events concerned (empty when the finding is about the file, e.g. its hash).
    event_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class IntegrityEntry:
    """The verdict on one history read: consistent, or suspect with its findings."""

    #: Where the history was read (a file, a bundle member or ``server ADDRESS/NAMESPACE``).
    source: str
    workflow_id: str
    run_id: str
    #: ``consistent`` or ``suspect``.
    status: str
    findings: list[Finding] = field(default_factory=list)
    #: What was checked beyond the rules, e.g. whether the history was replayed; never a finding.
    notes: list[str] = field(default_factory=list)

    @property
    def suspect(self) -> bool:
        """True when any finding was made."""
        return self.status == SUSPECT


def entry_for(history: History, findings: Sequence[Finding], notes: Sequence[str] = ()) -> IntegrityEntry:
    """The :class:`IntegrityEntry` of ``history`` with these findings."""
    return IntegrityEntry(history.source, history.workflow_id, history.run_id,
                          SUSPECT if findings else CONSISTENT, list(findings), list(notes))


def assess(histories: Sequence[History], *, extra: Mapping[str, Sequence[Finding]] | None = None,
           more_findings: Sequence[Sequence[Finding]] | None = None,
           notes: Sequence[Sequence[str]] | None = None,
           inspected: Sequence[list[Finding]] | None = None) -> list[IntegrityEntry]:
    """One entry per history, in order: its own rules, then agreement with the others read.

    ``extra`` adds findings made while reading, keyed by history source (a
    bundle file's hash mismatch; a bundle member's source is unique).
    ``more_findings`` and ``notes`` are per history, in the order of
    ``histories`` (a replay's nondeterminism error; "not replayed: another
    SDK's app"): by position, since histories read live share one source.
    ``inspected`` is :func:`inspect_history` of each history when the caller
    already has it (replay needs it first), so it is not worked out twice.
    """
    extra = extra or {}
    entries = []
    across = compare_runs(histories)
    for index, history in enumerate(histories):
        own = inspected[index] if inspected is not None else inspect_history(history)
        found = own + across.get(index, []) + list(extra.get(history.source, ()))
        if more_findings is not None:
            found += list(more_findings[index])
        entries.append(entry_for(history, found, notes[index] if notes is not None else ()))
    return entries


# --- one history ------------------------------------------------------------


def as_int(value: Any, default: int = 0) -> int:
    """An int64 field (a string or a number in proto JSON) as an int; ``default`` for anything else."""
    if type(value) is int:
        return value
    if value is None:  # a missing field, which int() would refuse with a costly exception
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


#: Longest duration taken seriously (ten years); anything longer is treated as this.
_LONGEST = 10 * 365 * 86400.0


def _seconds(value: Any) -> float | None:
    """A proto JSON duration (``"5s"``) in seconds; None when missing, zero or unreadable."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    if seconds != seconds or seconds <= 0:  # NaN or not positive
        return None
    return min(seconds, _LONGEST)


def _when(event: Event) -> datetime | None:
    try:
        return datetime.fromisoformat(event.time)
    except (TypeError, ValueError):
        return None


def _ms(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds * 1000:.2f} ms" if abs(seconds) < 1 else f"{seconds:.3f} s"


class _Index:
    """What the rules read from one history, read once and shared by every rule.

    Each rule walks the events on its own; without this they re-read the
    same attributes rule after rule (issue 18: the rules were a quarter of an
    offline grade). The lists are aligned with ``events`` (item ``i`` is what
    ``events[i]`` says), so an event made by hand with a repeated id is still
    read as itself; ``by_id`` and ``when`` are by id, the last event of an id
    winning, as the rules have always looked events up.
    """

    __slots__ = ("events", "by_id", "when", "scheduled", "started", "backoffs", "attempts")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        #: Event id -> event.
        self.by_id: dict[int, Event] = {}
        #: Event id -> its time, zone-aware; None when the event has none or it cannot be read.
        self.when: dict[int, datetime | None] = {}
        #: Each event's ``scheduledEventId`` as :func:`as_int` reads it: 0 when missing or unreadable.
        self.scheduled: list[int] = []
        #: Each event's ``startedEventId``, read the same way.
        self.started: list[int] = []
        #: (activity's scheduling event, retries) -> :meth:`backoff_total`, worked out when first asked.
        self.backoffs: dict[tuple[Event, int], timedelta] = {}
        #: Positions in ``events`` of the ActivityTaskStarted and ActivityTaskFailed events, in order:
        #: the retry rules read only those, a few of a history's events.
        self.attempts: list[int] = [i for i, event in enumerate(events) if event.type in _ATTEMPT_EVENTS]

    def backoff_total(self, scheduled: Event, retries: int) -> timedelta:
        """:func:`_backoff_total` under the retry policy of activity ``scheduled`` (none: the defaults).

        The retry rules ask for the same sums of one activity (each costs
        microseconds): the first asking works it out for the others.
        """
        key = (scheduled, retries)
        total = self.backoffs.get(key)
        if total is None:
            policy = scheduled.attrs.get("retryPolicy")
            total = self.backoffs[key] = _backoff_total(policy if isinstance(policy, dict) else {}, retries)
        return total


def inspect_history(history: History) -> list[Finding]:
    """Every rule that needs only this one history; an empty list means none fired."""
    events = history.events
    findings: list[Finding] = []
    add = findings.append
    # One pass for what every rule needs: events by id, parsed times, references, and the ids in order.
    index = _Index(events)
    by_id, when = index.by_id, index.when
    scheduled, started = index.scheduled.append, index.started.append
    parse = datetime.fromisoformat
    expected = 1
    for event in events:
        event_id = event.id
        if event_id != expected and expected > 0:
            add(Finding("event-ids", f"event ids are not 1..{len(events)} in order: event #{expected} "
                        f"has id {event_id}", [event_id]))
            expected = -len(events)  # report the first break only
        expected += 1
        by_id[event_id] = event
        # Events read from JSON carry their time parsed already (and zone-aware); an Event made
        # by hand may not.
        moment = event.when
        if moment is None and event.time:
            try:
                moment = parse(event.time)
            except (TypeError, ValueError):
                moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)  # exports write UTC; a missing zone must not break comparisons
        when[event_id] = moment
        attrs = event.attrs
        # Most events lack one of the two references: a missing one is 0 without calling as_int.
        reference = attrs.get("scheduledEventId")
        scheduled(0 if reference is None else as_int(reference))
        reference = attrs.get("startedEventId")
        started(0 if reference is None else as_int(reference))

    _structure(index, add)
    _times(index, add)
    _retries(index, add)
    _retry_timing(index, add)
    _workers(index, add)
    _sticky_handover(index, add)
    _run_id(history, when, add)
    return findings


def _plan(etype: str) -> tuple[tuple[tuple[str, frozenset[str], bool], ...], bool, str, str]:
    """What to check on an event of one type: references, command placement, task pairing."""
    refs = tuple((name, kinds, required) for name, (kinds, required) in _REFERENCES.get(etype, {}).items())
    kind = "wft" if etype.startswith("WorkflowTask") else "act" if etype.startswith("ActivityTask") else ""
    role = ""
    if kind and etype not in (_WFT_SCHEDULED, _AT_SCHEDULED, "ActivityTaskCancelRequested"):
        role = "started" if etype in (_WFT_STARTED, _AT_STARTED) else "ended"
    return refs, etype in _COMMAND_EVENTS, kind, role


_PLANS: dict[str, tuple[tuple[tuple[str, frozenset[str], bool], ...], bool, str, str]] = {}
_WFT_COMPLETED_ONLY = frozenset([_WFT_COMPLETED])


def _structure(index: _Index, add: Any) -> None:
    """Starts, closes, references, pairs and where commands sit."""
    events, by_id = index.events, index.by_id
    close: Event | None = None
    started_of: dict[tuple[str, int], int] = {}   # ("wft"|"act", scheduled id) -> started event id
    outcome_of: dict[tuple[str, int], int] = {}   # ("wft"|"act", scheduled id) -> closing event id
    previous: Event | None = None
    plans = _PLANS
    get_event = by_id.get
    for event, scheduled, started in zip(events, index.scheduled, index.started):
        etype, attrs, event_id = event.type, event.attrs, event.id
        plan = plans.get(etype)
        if plan is None:
            plan = plans[etype] = _plan(etype)
        refs, is_command, kind, role = plan
        if etype == "WorkflowExecutionStarted" and event_id != 1:
            add(Finding("second-start", f"event {event_id} starts the workflow again; a run has one "
                        "WorkflowExecutionStarted, its first event", [event_id]))
        if close is not None:
            add(Finding("after-close", f"event {event_id} ({etype}) comes after the run closed at event "
                        f"{close.id} ({close.type}); a closed run records nothing more", [close.id, event_id]))
        elif etype in _CLOSES:
            close = event

        for name, kinds, required in refs:
            # The usual case inline: a reference to an earlier event of the right type. Anything
            # else goes to _reference, which judges it again and says what is wrong.
            if name == "scheduledEventId":
                value = scheduled
            elif name == "startedEventId":
                value = started
            else:  # the references only this rule reads
                value = as_int(attrs.get(name))
            if value:
                target = get_event(value)
                if target is not None and value < event_id and target.type in kinds:
                    continue
                _reference(event, name, kinds, required, by_id, add)
            elif required:
                _reference(event, name, kinds, required, by_id, add)
        if is_command or "workflowTaskCompletedEventId" in attrs:
            target = _reference(event, "workflowTaskCompletedEventId", _WFT_COMPLETED_ONLY, True, by_id, add)
            # Commands are written in one batch right after their workflow task's completion.
            if target is not None and previous is not None and previous.id != target.id and \
                    as_int(previous.attrs.get("workflowTaskCompletedEventId"), -1) != target.id:
                add(Finding("command-out-of-place", f"event {event_id} ({etype}) is a command of the workflow "
                            f"task completed at event {target.id}, but event {previous.id} ({previous.type}) "
                            "stands between them", [target.id, event_id]))

        if role:
            if role == "started":
                _once(started_of, (kind, scheduled), event, "started", add)
            else:
                _once(outcome_of, (kind, scheduled), event, "ended", add)
                start_event = get_event(started)
                if started and start_event is not None and \
                        as_int(start_event.attrs.get("scheduledEventId")) != scheduled:
                    add(Finding("mismatched-pair", f"event {event_id} ({etype}) ends the task scheduled at event "
                                f"{scheduled} but names event {started} as its start, which started another task",
                                [event_id, started]))
        previous = event


def _reference(event: Event, name: str, kinds: frozenset[str], required: bool, by_id: dict[int, Event],
               add: Any) -> Event | None:
    raw = event.attrs.get(name)
    value = as_int(raw, 0) if raw is not None else 0
    if value == 0:
        if required:
            add(Finding("bad-reference", f"event {event.id} ({event.type}) lacks its {name}", [event.id]))
        return None
    target = by_id.get(value)
    if target is None or value >= event.id or target.type not in kinds:
        what = "no such event" if target is None else \
            "a later event" if value >= event.id else f"a {target.type}"
        wanted = " or ".join(sorted(kinds))
        add(Finding("bad-reference", f"event {event.id} ({event.type}) has {name} {value}, which is {what}; "
                    f"it must name an earlier {wanted}", [event.id] + ([value] if target else [])))
        return None
    return target


def _once(seen: dict[tuple[str, int], int], key: tuple[str, int], event: Event, verb: str, add: Any) -> None:
    if key[1] and key in seen:
        add(Finding("twice", f"the task scheduled at event {key[1]} {verb} twice: events {seen[key]} and "
                    f"{event.id}", [seen[key], event.id]))
    else:
        seen[key] = event.id


def _times(index: _Index, add: Any) -> None:
    """Times only move forward, except an activity start, which lies between its scheduling and its end."""
    events, times = index.events, index.when
    latest: tuple[datetime, int] | None = None
    ends: dict[int, Event] = {}
    for event, scheduled_id in zip(events, index.scheduled):
        if event.type in _AT_CLOSES:
            ends.setdefault(scheduled_id, event)
    for event, scheduled_id in zip(events, index.scheduled):
        when = times[event.id]
        if when is None:
            continue
        if event.type == _AT_STARTED:
            end = ends.get(scheduled_id)
            s_when = times.get(scheduled_id)
            e_when = times[end.id] if end is not None else None
            if s_when is not None and s_when - when > CLOCK_SLACK:
                add(Finding("time-backwards", f"activity start event {event.id} is dated "
                            f"{_ms(s_when - when)} before its scheduling (event {scheduled_id})",
                            [scheduled_id, event.id]))
            if e_when is not None and when - e_when > CLOCK_SLACK:
                add(Finding("time-backwards", f"activity start event {event.id} is dated "
                            f"{_ms(when - e_when)} after the activity ended (event {end.id})", [event.id, end.id]))
            continue
        if latest is not None and when < latest[0]:
            # Only an event older than the latest can be too old: most events skip the subtraction.
            if latest[0] - when > CLOCK_SLACK:
                add(Finding("time-backwards", f"event {event.id} ({event.type}) is dated {_ms(latest[0] - when)} "
                            f"before event {latest[1]}; the server writes events in time order",
                            [latest[1], event.id]))
        elif latest is None or when > latest[0]:
            latest = (when, event.id)


def _backoff_total(policy: Mapping[str, Any], retries: int) -> timedelta:
    """The least time ``retries`` retries wait in all under ``policy`` (the server adds no jitter)."""
    initial = _seconds(policy.get("initialInterval")) or 1.0
    coefficient = policy.get("backoffCoefficient")
    coefficient = float(coefficient) if isinstance(coefficient, (int, float)) and 1 <= coefficient <= 100 else 2.0
    maximum = _seconds(policy.get("maximumInterval")) or initial * 100  # the server's default cap
    total, wait = 0.0, min(initial, maximum)
    for done in range(min(retries, 200)):
        total += wait
        wait = min(wait * coefficient, maximum)
    # Waits never shrink, so the rest cost at least the last one each: still a lower bound.
    total += max(retries - 200, 0) * wait
    return timedelta(seconds=min(total, _LONGEST))


def _retries(index: _Index, add: Any) -> None:
    """Attempt numbers, last failures and retry states against the recorded retry policy."""
    events, by_id, times = index.events, index.by_id, index.when
    for position in index.attempts:
        event, scheduled_id, started_id = events[position], index.scheduled[position], index.started[position]
        if event.type == _AT_STARTED:
            scheduled = by_id.get(scheduled_id)
            if scheduled is None or scheduled.type != _AT_SCHEDULED:
                continue
            attempt = as_int(event.attrs.get("attempt"), 1)
            policy = scheduled.attrs.get("retryPolicy")
            policy = policy if isinstance(policy, dict) else {}
            maximum = as_int(policy.get("maximumAttempts"), 0)
            activity_type = scheduled.attrs.get("activityType")
            name = activity_type.get("name") if isinstance(activity_type, dict) else None
            name = name if isinstance(name, str) and name else "activity"
            if maximum and attempt > maximum:
                add(Finding("attempt-over-maximum", f"{name} reached attempt {attempt} (event {event.id}) but its "
                            f"retry policy allows {maximum} (event {scheduled.id})", [scheduled.id, event.id]))
            last_failure = event.attrs.get("lastFailure")
            if attempt > 1 and not isinstance(last_failure, dict):
                add(Finding("retry-without-failure", f"{name} is on attempt {attempt} (event {event.id}) with no "
                            "last failure: the server records why the previous attempt failed",
                            [scheduled.id, event.id]))
            if attempt <= 1:
                continue
            info = last_failure.get("applicationFailureInfo") if isinstance(last_failure, dict) else None
            if isinstance(info, dict) and info.get("nextRetryDelay"):
                continue  # the application chose its own delay: the policy's backoff does not apply
            start, scheduled_at = times[event.id], times[scheduled.id]
            if start is None or scheduled_at is None:
                continue
            needed = index.backoff_total(scheduled, attempt - 1)
            why = f"{attempt - 1} backoff(s) of its retry policy"
            if isinstance(last_failure, dict) and _is_start_to_close(last_failure):
                timeout = _seconds(scheduled.attrs.get("startToCloseTimeout"))
                if timeout:
                    needed += timedelta(seconds=timeout)
                    why += " plus the start-to-close timeout its last failure reports"
            if start - scheduled_at < needed - RETRY_SLACK:
                add(Finding("retry-too-soon", f"{name} attempt {attempt} started {_ms(start - scheduled_at)} after "
                            f"it was scheduled (events {scheduled.id} -> {event.id}); {why} take at least "
                            f"{_ms(needed)}", [scheduled.id, event.id]))
        elif event.type == "ActivityTaskFailed":
            state = str(event.attrs.get("retryState") or "")
            scheduled = by_id.get(scheduled_id)
            started = by_id.get(started_id)
            if scheduled is None or started is None:
                continue
            policy = scheduled.attrs.get("retryPolicy")
            if state.endswith("NON_RETRYABLE_FAILURE"):
                _non_retryable_claim(event, policy, add)
            if not state.endswith("MAXIMUM_ATTEMPTS_REACHED"):
                continue
            maximum = as_int(policy.get("maximumAttempts"), 0) if isinstance(policy, dict) else 0
            attempt = as_int(started.attrs.get("attempt"), 1)
            if maximum == 0 or attempt < maximum:
                allowed = f"allows {maximum}" if maximum else "has no limit"
                add(Finding("retries-not-used-up", f"event {event.id} says the retries are used up after attempt "
                            f"{attempt}, but the retry policy {allowed} (event {scheduled.id})",
                            [scheduled.id, started.id, event.id]))


def _application_failure(failure: Any) -> bool:
    """True for a failure the application raised (a worker reported it), not a timeout or a cancel."""
    return isinstance(failure, dict) and isinstance(failure.get("applicationFailureInfo"), dict)


def _next_backoff(index: _Index, scheduled: Event, retries: int) -> timedelta:
    """The backoff before retry number ``retries + 1`` under the retry policy of activity ``scheduled``."""
    return index.backoff_total(scheduled, retries + 1) - index.backoff_total(scheduled, retries)


def _retry_timing(index: _Index, add: Any) -> None:
    """The last attempt's start time against the failures and attempt count the history claims.

    Two things a real retry's timing gives away:

    - A retry after a start-to-close timeout starts right when the timeout
      plus the backoff ran out (the server's timer fires; a polling worker
      gets it in milliseconds). An application failure ends an attempt
      whenever the code raised, so a last attempt that starts within
      :data:`TIMEOUT_RETRY_WINDOW` of ``k`` whole timeouts plus the backoffs
      was retried after timeouts, whatever its ``lastFailure`` says
      (a crash run whose last failure was swapped for the bug's error).
    - On one worker process that never left (the same sticky queue before
      and after, no workflow task timed out), every retry is dispatched when
      its backoff ends; the attempts' own time is bounded by the last
      attempt's duration when every attempt failed the same way. Time beyond
      that, as much as another attempt's backoff, is an attempt the history
      no longer shows (an attempt number and retry limit lowered together).
    """
    events, by_id, times = index.events, index.by_id, index.when
    for position in index.attempts:
        event, scheduled_id = events[position], index.scheduled[position]
        if event.type != _AT_STARTED:
            continue
        attempt = as_int(event.attrs.get("attempt"), 1)
        scheduled = by_id.get(scheduled_id)
        if attempt < 2 or scheduled is None or scheduled.type != _AT_SCHEDULED:
            continue
        start, scheduled_at = times[event.id], times[scheduled.id]
        last_failure = event.attrs.get("lastFailure")
        if start is None or scheduled_at is None or not _application_failure(last_failure) or \
                last_failure["applicationFailureInfo"].get("nextRetryDelay"):
            continue
        activity_type = scheduled.attrs.get("activityType")
        name = activity_type.get("name") if isinstance(activity_type, dict) else None
        name = name if isinstance(name, str) and name else "activity"
        gap = start - scheduled_at
        backoffs = index.backoff_total(scheduled, attempt - 1)
        timeout = _seconds(scheduled.attrs.get("startToCloseTimeout"))
        if timeout:
            for timeouts in range(1, min(attempt, 50)):
                edge = backoffs + timedelta(seconds=timeout * timeouts)
                if edge <= gap <= edge + TIMEOUT_RETRY_WINDOW:
                    add(Finding("retry-timed-like-timeout", f"{name} attempt {attempt} (event {event.id}) started "
                                f"{_ms(gap)} after scheduling, {_ms(gap - edge)} after {timeouts} start-to-close "
                                f"timeout(s) of {timeout:g} s plus the backoffs would retry it, yet its last "
                                "failure is an application error, which ends an attempt whenever the code raises",
                                [scheduled.id, event.id]))
                    break
        _unexplained_gap(event, scheduled, attempt, name, gap, backoffs, index, add)


def _unexplained_gap(started: Event, scheduled: Event, attempt: int, name: str, gap: timedelta,
                     backoffs: timedelta, index: _Index, add: Any) -> None:
    """Flag time between scheduling and the last attempt that no claimed attempt or backoff explains."""
    events, by_id, times = index.events, index.by_id, index.when
    close = next((e for e in events[started.id:] if e.type in _AT_CLOSES
                  and as_int(e.attrs.get("scheduledEventId")) == scheduled.id), None)
    if close is None or close.type != "ActivityTaskFailed" or times[close.id] is None:
        return
    failure, last = close.attrs.get("failure"), started.attrs.get("lastFailure")
    # Only when every attempt failed the same way does the last attempt's length stand for the others'.
    if not _application_failure(failure) or \
            failure["applicationFailureInfo"].get("type") != last["applicationFailureInfo"].get("type"):
        return
    completed = by_id.get(as_int(scheduled.attrs.get("workflowTaskCompletedEventId")))
    worker = started.attrs.get("identity")
    if completed is None or not worker or completed.attrs.get("identity") != worker:
        return
    before = _sticky_suffix_before(events, completed.id)
    after = _sticky_suffix_after(events, close.id)
    if before is None or before != after:
        return  # no proof that one process lived through the retries
    if any(e.type == "WorkflowTaskTimedOut" for e in events[completed.id:close.id]):
        return
    duration = times[close.id] - times[started.id]
    unexplained = gap - backoffs - duration * (attempt - 1)
    # A missing attempt costs at least its whole backoff: asking for most of it leaves attempts that
    # merely varied in length (a slow first call) well below the line.
    threshold = max(UNEXPLAINED_GAP, _next_backoff(index, scheduled, attempt - 1) * 0.9)
    if unexplained >= threshold:
        add(Finding("retry-gap-unexplained", f"{name} attempt {attempt} (event {started.id}) started "
                    f"{_ms(gap)} after scheduling on the worker process that scheduled it and never left; "
                    f"{attempt - 1} failed attempt(s) like the last ({_ms(duration)}) and their backoffs "
                    f"({_ms(backoffs)}) leave {_ms(unexplained)} unexplained, as long as another attempt would "
                    "take: the attempt number or the retry policy was edited", [scheduled.id, started.id]))


def _sticky_suffix(event: Event) -> str | None:
    queue = event.attrs.get("taskQueue")
    if not isinstance(queue, dict) or not str(queue.get("kind", "")).endswith("STICKY"):
        return None
    suffix = str(queue.get("name") or "").rpartition("-")[2]
    return suffix if _CORE_SUFFIX.fullmatch(suffix) else None


def _sticky_suffix_before(events: list[Event], completed_id: int) -> str | None:
    """The sticky queue of the workflow task completed at ``completed_id`` (its scheduling event's)."""
    completed = events[completed_id - 1] if 0 < completed_id <= len(events) else None
    if completed is None or completed.id != completed_id:
        return None
    scheduled_id = as_int(completed.attrs.get("scheduledEventId"))
    scheduled = events[scheduled_id - 1] if 0 < scheduled_id <= len(events) else None
    return _sticky_suffix(scheduled) if scheduled is not None and scheduled.type == _WFT_SCHEDULED else None


def _sticky_suffix_after(events: list[Event], after_id: int) -> str | None:
    """The sticky queue of the first workflow task scheduled after event ``after_id``."""
    for event in events[after_id:]:
        if event.type == _WFT_SCHEDULED:
            return _sticky_suffix(event)
    return None


#: Ends a worker reports for the task it started (a WorkflowTaskFailed may come from the server: a reset).
_CLOSED_BY_ITS_WORKER = frozenset({"ActivityTaskCompleted", "ActivityTaskFailed", _WFT_COMPLETED})


def _sticky_handover(index: _Index, add: Any) -> None:
    """A worker taking a task from another's sticky queue: the owner must have shut down first.

    A sticky queue is polled by one process until it shuts down (then the
    server hands its tasks to the normal queue, which is how the SIGINT and
    live-fix goldens show a new worker starting them at once). A process
    that acted a moment before the task was scheduled was still polling:
    another worker starting that task means the identities were re-signed.
    And the worker that started a task reports its end: a task started by
    one identity and completed by another was re-signed half-way (an app
    that completes activities asynchronously from elsewhere would differ;
    the money-transfer apps do not).
    """
    by_id, times = index.by_id, index.when
    last_act: dict[str, Event] = {}
    for event, scheduled_id, started_id in zip(index.events, index.scheduled, index.started):
        etype, attrs = event.type, event.attrs
        identity = attrs.get("identity")
        signed = isinstance(identity, str) and identity
        if signed and etype in _CLOSED_BY_ITS_WORKER:
            started = by_id.get(started_id)
            by = started.attrs.get("identity") if started is not None else None
            if isinstance(by, str) and by and by != identity:
                add(Finding("task-closed-by-another", f"event {event.id} ({etype}) is signed {identity}, but "
                            f"{by} started that task (event {started.id}): the worker that runs a task reports "
                            "its end", [started.id, event.id]))
        if etype == _WFT_STARTED and signed:
            scheduled = by_id.get(scheduled_id)
            queue = scheduled.attrs.get("taskQueue") if scheduled is not None else None
            # The owner named by the queue is looked at first: usually the worker starting the task
            # is that owner, or the owner never acted, and the queue's name need not be matched.
            owner = str(queue.get("name") or "").rpartition("-")[0] if isinstance(queue, dict) else ""
            acted = last_act.get(owner) if owner and owner != identity else None
            if acted is not None and _sticky_suffix(scheduled):
                if times[acted.id] is not None and times[scheduled.id] is not None and \
                        timedelta(0) <= times[scheduled.id] - times[acted.id] < STICKY_QUIET:
                    add(Finding("sticky-taken-from-live-worker", f"event {event.id}: {identity} started a "
                                f"workflow task on {owner}'s sticky queue (event {scheduled.id}), "
                                f"{_ms(times[scheduled.id] - times[acted.id])} after {owner} last acted "
                                f"(event {acted.id}); a worker that was still polling gets its own sticky "
                                "tasks", [acted.id, scheduled.id, event.id]))
        if signed and etype != "WorkflowExecutionStarted" and etype != _AT_STARTED:
            # An activity's start is stamped with when the attempt began, not when it was written.
            last_act[identity] = event


def _non_retryable_claim(event: Event, policy: Any, add: Any) -> None:
    """An application failure the server called non-retryable must say so itself or be listed in the policy.

    Only application failures are judged: the server has more reasons for
    other kinds (a schedule-to-close timeout, a server failure).
    """
    failure = event.attrs.get("failure")
    info = failure.get("applicationFailureInfo") if isinstance(failure, dict) else None
    if not isinstance(info, dict) or info.get("nonRetryable") is True:
        return
    listed = policy.get("nonRetryableErrorTypes") if isinstance(policy, dict) else None
    listed = listed if isinstance(listed, list) else []
    kind = info.get("type")
    if kind not in listed:
        add(Finding("non-retryable-claim", f"event {event.id} says the failure {kind!r} could not be retried, but it "
                    "was not marked non-retryable and the retry policy does not list its type", [event.id]))


def _is_start_to_close(failure: Mapping[str, Any]) -> bool:
    info = failure.get("timeoutFailureInfo")
    return isinstance(info, dict) and str(info.get("timeoutType", "")).endswith("START_TO_CLOSE")


def _workers(index: _Index, add: Any) -> None:
    """Sticky queues against the workers that own them; first attempts against eager dispatch."""
    by_id, times = index.by_id, index.when
    last_completer: tuple[str, int] | None = None
    suffix_owner: dict[str, tuple[str, int]] = {}
    for event, scheduled_id in zip(index.events, index.scheduled):
        etype, attrs = event.type, event.attrs
        if etype == _WFT_COMPLETED:
            identity = attrs.get("identity")
            if isinstance(identity, str) and identity:
                last_completer = (identity, event.id)
        elif etype == _WFT_SCHEDULED:
            queue = attrs.get("taskQueue")
            if not isinstance(queue, dict) or not str(queue.get("kind", "")).endswith("STICKY"):
                continue
            name = str(queue.get("name") or "")
            owner, _, suffix = name.rpartition("-")
            if not _CORE_SUFFIX.fullmatch(suffix):
                # Only the Rust-core SDKs (Python, TypeScript, .NET) name sticky queues
                # <identity>-<32 hex>; Go and Java use host:uuid, which names no identity.
                continue
            if last_completer is not None and owner != last_completer[0]:
                add(Finding("sticky-queue-owner", f"event {event.id} schedules a workflow task on {owner}'s sticky "
                            f"queue, but the previous workflow task was completed by {last_completer[0]} "
                            f"(event {last_completer[1]}); only that worker asks for a sticky queue",
                            [last_completer[1], event.id]))
            if suffix:
                first = suffix_owner.setdefault(suffix, (owner, event.id))
                if first[0] != owner:
                    add(Finding("sticky-queue-identity", f"sticky queue suffix {suffix} (one worker process) "
                                f"appears under two identities: {first[0]} (event {first[1]}) and {owner} "
                                f"(event {event.id})", [first[1], event.id]))
        elif etype == _AT_STARTED and as_int(attrs.get("attempt"), 1) == 1:
            scheduled = by_id.get(scheduled_id)
            if scheduled is None:
                continue
            completed = by_id.get(as_int(scheduled.attrs.get("workflowTaskCompletedEventId")))
            scheduler = completed.attrs.get("identity") if completed is not None else None
            start, scheduled_at = times[event.id], times[scheduled.id]
            identity = attrs.get("identity")
            if scheduler and identity and identity != scheduler and start and scheduled_at and \
                    timedelta(0) <= start - scheduled_at < EAGER_WINDOW:
                add(Finding("eager-start-identity", f"event {event.id}: {identity} started the first attempt "
                            f"{_ms(start - scheduled_at)} after scheduling; that fast only the worker that "
                            f"scheduled it ({scheduler}, event {completed.id}) gets it, in the same server call",
                            [completed.id, scheduled.id, event.id]))


def _run_id(history: History, times: dict[int, datetime | None], add: Any) -> None:
    """A version-7 run id carries its creation time: it must match the start event.

    The id checked is the start event's own ``originalExecutionRunId``, not
    the run id the history was read under: a reset run read live has its own
    (newer) id but starts with a copy of its parent's start event.
    """
    run_id = history.events[0].attrs.get("originalExecutionRunId")
    # The layout is fixed (8-4-4-4-12 hex digits); the version is the 13th digit.
    if not isinstance(run_id, str) or len(run_id) != 36 or run_id[14] != "7" or run_id[8] != "-":
        return
    try:
        embedded_ms = int(run_id[:8] + run_id[9:13], 16)
    except ValueError:
        return
    start = times[history.events[0].id]
    if start is None:
        return
    drift = start.timestamp() * 1000 - embedded_ms
    if abs(drift) > RUN_ID_SLACK_MS:
        try:
            made = f"{datetime.fromtimestamp(embedded_ms / 1000, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
        except (ValueError, OverflowError, OSError):
            made = "a time no calendar holds"
        add(Finding("run-id-time", f"run id {run_id} was made at {made}, "
                    f"{abs(drift) / 1000:.1f} s from the run's start (event 1): the times were edited", [1]))


# --- several histories ------------------------------------------------------


def _fingerprint(event: Event, cache: dict[str, Any]) -> tuple[Any, ...]:
    """What one event says, in a form every export spelling of it shares."""
    attrs = event.attrs
    when = _when(event)
    failure = attrs.get("failure") or attrs.get("lastFailure")
    failure = failure if isinstance(failure, dict) else {}
    payloads = []
    for key in ("input", "result"):
        if key in attrs:
            payloads.append(json.dumps(decode_payloads(attrs.get(key), cache), sort_keys=True, default=str))
    retry_state = str(attrs.get("retryState") or "").rsplit("RETRY_STATE_", 1)[-1]
    return (
        event.type, when.replace(tzinfo=None) if when else event.time,
        attrs.get("identity"), as_int(attrs.get("attempt"), 0),
        as_int(attrs.get("scheduledEventId")), as_int(attrs.get("startedEventId")),
        (attrs.get("activityType") or {}).get("name") if isinstance(attrs.get("activityType"), dict) else None,
        (attrs.get("taskQueue") or {}).get("name") if isinstance(attrs.get("taskQueue"), dict) else None,
        failure.get("message"), retry_state, tuple(payloads),
    )


def _reset_point(history: History) -> int | None:
    for event in history.events:
        if event.type == "WorkflowTaskFailed" and str(event.attrs.get("cause", "")).endswith("RESET_WORKFLOW"):
            return event.id
    return None


#: Distinct versions of one run compared pairwise; past this many, each is compared with the first and
#: the one before it (linear), so a learner handing in thousands of edited copies costs seconds, not hours.
PAIRWISE_VERSIONS = 64


def compare_runs(histories: Sequence[History]) -> dict[int, list[Finding]]:
    """Findings for histories that share a run id but disagree, by index into ``histories``.

    Copies that say exactly the same thing are one *version* of the run and
    are compared once, so 2,000 identical copies cost 2,000 fingerprints,
    not two million comparisons. Versions are compared pairwise up to
    :data:`PAIRWISE_VERSIONS`, then each against the first and its neighbour.
    """
    groups: dict[str, list[int]] = {}
    for index, history in enumerate(histories):
        if isinstance(history.run_id, str) and history.run_id:
            groups.setdefault(history.run_id, []).append(index)
    found: dict[int, list[Finding]] = {}
    for run_id, members in groups.items():
        if len(members) < 2:
            continue
        versions: dict[tuple[Any, ...], list[int]] = {}
        prints: dict[int, list[tuple[Any, ...]]] = {}
        for index in members:
            cache: dict[str, Any] = {}
            fingerprint = [_fingerprint(e, cache) for e in histories[index].events]
            key = (_claimed_workflow_id(histories[index]), tuple(fingerprint))
            if key not in versions:
                prints[index] = fingerprint
            versions.setdefault(key, []).append(index)
        heads = [indexes[0] for indexes in versions.values()]
        if len(heads) <= PAIRWISE_VERSIONS:
            pairs = [(a, b) for i, a in enumerate(heads) for b in heads[i + 1:]]
        else:
            pairs = [(heads[0], b) for b in heads[1:]] + list(zip(heads[1:], heads[2:]))
        copies = {indexes[0]: indexes for indexes in versions.values()}
        for a, b in pairs:
            problem = _disagreement(histories[a], histories[b], prints[a], prints[b])
            if problem is None:
                continue
            message, event_ids = problem
            for mine, other in ((a, b), (b, a)):
                more = len(copies[other]) - 1
                named = histories[other].source + (f" (and {more} identical copies)" if more else "")
                finding = Finding("run-id-conflict", f"{named} holds the same run {run_id} but "
                                  f"{message}: at most one of them is what the server recorded", event_ids)
                for index in copies[mine]:
                    found.setdefault(index, []).append(finding)
    return found


def _claimed_workflow_id(history: History) -> str | None:
    """The workflow id the history itself (or its manifest, or the server) gives, never a file name.

    Servers before 1.2x do not write the id into the start event; a file of
    theirs is then named after its file, and two exports of one run saved
    under two names must not look like a rename.
    """
    recorded = history.events[0].attrs.get("workflowId")
    if isinstance(recorded, str) and recorded:
        return recorded
    wid = history.workflow_id
    if not isinstance(wid, str) or not wid or wid == PurePath(str(history.source)).stem:
        return None
    return wid


def _disagreement(a: History, b: History, pa: list[tuple[Any, ...]],
                  pb: list[tuple[Any, ...]]) -> tuple[str, list[int]] | None:
    """Why two histories of one run id cannot both be true, or None when they can."""
    wid_a, wid_b = _claimed_workflow_id(a), _claimed_workflow_id(b)
    if wid_a and wid_b and wid_a != wid_b:
        return f"under workflow id {wid_b!r}, not {wid_a!r}", [1]
    resets = [r for r in (_reset_point(a), _reset_point(b)) if r is not None]
    # A reset run copies its parent's events up to the reset point, then goes its own way.
    limit = min(resets) if resets else min(len(pa), len(pb)) + 1
    for index, (x, y) in enumerate(zip(pa, pb), 1):
        if index >= limit:
            break
        if x != y:
            return f"its event {index} says otherwise ({x[0]})", [index]
    if not resets and len(pa) != len(pb):
        shorter = a if len(pa) < len(pb) else b
        if shorter.events[-1].type in _CLOSES:
            return (f"one copy closes at event {len(shorter.events)} and the other goes on",
                    [len(shorter.events)])
    return None


# --- copies across learners --------------------------------------------------

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
#: A fingerprint is only taken from a run with at least this many distinct time steps between events,
#: recorded to the microsecond or finer: fewer (a run stopped at its first task, times cut to seconds)
#: could match another learner's run by chance.
MIN_DISTINCT_STEPS = 4


_BASE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _nanoseconds(text: Any) -> tuple[int, int] | None:
    """An RFC 3339 time as (nanoseconds since the epoch, fraction digits written), or None."""
    # The usual spelling (UTC, a fraction: 2026-01-31T12:00:00.123456789Z) is cut by position, without
    # the pattern; its date and time are checked when first met (_epoch_seconds). The same answers.
    if type(text) is str and len(text) > 20 and text[-1] == "Z" and text[19] == ".":
        fraction = text[20:-1]
        if len(fraction) <= 9 and fraction.isdecimal():
            seconds = _epoch_seconds(text[:19], "Z")
            if seconds is None:
                return None
            return seconds * 1_000_000_000 + int(fraction.ljust(9, "0")), len(fraction.rstrip("0"))
    match = _TIME.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    base, fraction, zone = match.groups()
    seconds = _epoch_seconds(base, zone)
    if seconds is None:
        return None
    fraction = fraction or ""
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0")), len(fraction.rstrip("0"))


#: A memo's "not worked out yet", which None (a real answer) cannot be.
_NOT_YET = object()
#: Whole seconds already worked out, by (date and time, zone): a run's events share most of theirs.
_SECONDS: dict[tuple[str, str], int | None] = {}
#: The same for UTC times that are real: what :func:`_timing_hash` looks up before calling anything.
_UTC_SECONDS: dict[str, int] = {}


def _epoch_seconds(base: str, zone: str) -> int | None:
    """Seconds since the epoch of ``base`` (``YYYY-MM-DDTHH:MM:SS``) in ``zone``; None if no such time."""
    key = (base, zone)
    seconds = _SECONDS.get(key, _NOT_YET)
    if seconds is _NOT_YET:
        try:
            seconds = int(datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone)).timestamp()) \
                if _BASE.fullmatch(base) else None
        except ValueError:
            seconds = None
        if len(_SECONDS) >= 4096:  # a class spans many seconds: keep the memo small
            _SECONDS.clear()
            _UTC_SECONDS.clear()
        _SECONDS[key] = seconds
        if zone == "Z" and seconds is not None:
            _UTC_SECONDS[base] = seconds
    return seconds


def timing_fingerprint(history: History) -> str | None:
    """A hash of the run's shape in time: each event's type and its offset from the start, in nanoseconds.

    Two runs made by two people never share it: the server stamps every
    event to the nanosecond. A copy of another learner's run with every id,
    name and identity renamed keeps it, and so does a copy whose times were
    all shifted by one amount. Computed once per run, so a class is checked
    for copies by grouping equal hashes: linear in the runs, no run compared
    with another. None when the run holds too little timing to tell
    (:data:`MIN_DISTINCT_STEPS`), so short runs never match by chance.
    """
    # Asked for twice a run in a batch (copies, then the learner's row): computed once.
    memo = history.__dict__.get("_timing_fingerprint", _NOT_YET)
    if memo is _NOT_YET:
        memo = history.__dict__["_timing_fingerprint"] = _timing_hash(history)
    return memo


def _timing_hash(history: History) -> str | None:
    """The work of :func:`timing_fingerprint`."""
    import hashlib

    events = history.events
    first = _nanoseconds(events[0].time) if events else None
    if first is None:
        return None
    start = first[0]
    steps: set[int] = set()
    precise = first[1] >= 6
    parts = []
    add, append = steps.add, parts.append
    seconds_of, scale = _UTC_SECONDS.get, _SCALE
    for event in events:
        text = event.time
        # The usual spelling inline (UTC with a fraction, 2026-01-31T12:00:00.123456789Z): a batch
        # fingerprints every run, and a call per event was a tenth of a grading process's time.
        # Anything else, and a second not seen yet, goes through _nanoseconds, which reads it the same.
        seconds = seconds_of(text[:19]) if type(text) is str and len(text) > 20 and text[-1] == "Z" \
            and text[19] == "." else None
        fraction = text[20:-1] if seconds is not None else ""
        if seconds is not None and len(fraction) <= 9 and fraction.isdecimal():
            offset = seconds * 1_000_000_000 + int(fraction) * scale[len(fraction)] - start
            if not precise:
                precise = len(fraction.rstrip("0")) >= 6
        else:
            stamp = _nanoseconds(text)
            if stamp is None:
                return None
            offset = stamp[0] - start
            precise = precise or stamp[1] >= 6
        add(offset)
        append(f"{event.type}:{offset};")
    if not precise or len(steps) - 1 < MIN_DISTINCT_STEPS:
        return None
    # One update of the joined text: the same digest as one update per event, for less work.
    return hashlib.sha256("".join(parts).encode()).hexdigest()


#: Nanoseconds in one unit of a fraction written with that many digits.
_SCALE = tuple(10 ** (9 - digits) for digits in range(10))


# --- who started a run ---------------------------------------------------------

_PID_AT = re.compile(r"^\d+@(.+)$")


def starter_client(history: History) -> str:
    """The client that started the run, from WorkflowExecutionStarted's ``identity``; "" when unrecorded.

    An SDK client's identity is ``<pid>@<host>`` and every ``python
    run_workflow.py`` is a new process, so a learner's own runs differ in
    the pid: the host is what stays. Other identities (the temporal CLI's
    ``temporal-cli:<user>@<host>``, one set by hand) are kept whole.
    """
    identity = history.events[0].attrs.get("identity") if history.events else None
    if not isinstance(identity, str):
        return ""
    match = _PID_AT.match(identity)
    return match[1] if match else identity
