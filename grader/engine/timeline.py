"""A short, plain-text timeline of one workflow history: what the grader saw.

A learner whose experiment did not pass wants to see the run the way the
grader read it: which worker ran which attempt, what the last failure was,
where a worker disappeared and where the history went quiet. This module
renders that, one line per meaningful step::

    Workflow wf-1e3a3d  run 01a20f6a-...  COMPLETED  source h.json
      +0.0s   #1  started by 4007@host: $250 from 85-150 to 43-812
      +0.0s   #3  worker 4020@host picked up its first workflow task
      ...
                  !! worker 4020@host lost; 4311@host took over
      +9.1s  #12  deposit attempt 2 on 4311@host, retry after timeout START_TO_CLOSE

Lines follow event ids, never event times: ActivityTaskStarted is written
when an activity ends but stamped with the time it started, so times can
step backwards. Workflow-task bookkeeping (scheduled, started, completed) is
left out, except for the first task a new worker picks up.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from typing import Any

from grader.engine.evidence import (
    CLOSE_STATUS,
    FailureInfo,
    Handover,
    RunEvidence,
    build_evidence,
    classify_failure,
    first_value,
    is_worker_identity,
    payment_field,
    silence_label,
    sticky_queue_owner,
    strip_prefix,
)
from grader.engine.history import Event, History, as_int, decode_payloads, parse_time

#: A silence between two consecutive events at least this long gets its own line.
SILENCE_SECONDS = 5.0
#: Lines wrap at this many characters (the header may be longer for long paths).
LINE_WIDTH = 100
#: A step longer than one line continues on at most this many lines in all.
MAX_STEP_LINES = 2

# Event lines are " +12.3s  #45  text"; markers and continuations start where the text does.
_TIME_WIDTH, _ID_WIDTH = 7, 4
_TEXT_INDENT = " " * (_TIME_WIDTH + 1 + _ID_WIDTH + 2)
_SPACES = re.compile(r"\s+")


def render_timeline(history: History, run: RunEvidence | None = None) -> str:
    """Render ``history`` as a plain-text timeline, one line per meaningful step.

    ``run`` is the history's evidence when the caller already built it (it is
    built here otherwise); the worker handovers and lost-worker signs come
    from it, so the timeline marks exactly what the checks relied on. The
    text ends with a newline and carries no colours.
    """
    run = run if run is not None else build_evidence(history)
    renderer = _Renderer(history, run)
    # Ids and failure messages are the history's text: show control characters, never obey them.
    from grader.escape import visible_controls

    return "\n".join(visible_controls(line, keep_newlines=True) for line in renderer.lines()) + "\n"


class _Renderer:
    """One pass over the events, remembering what later lines refer back to."""

    def __init__(self, history: History, run: RunEvidence) -> None:
        self.history = history
        self.run = run
        self.start = parse_time(history.events[0].time)
        #: ActivityTaskScheduled event id -> activity type.
        self.activity_names: dict[int, str] = {}
        #: WorkflowTaskScheduled event id -> the sticky queue's owner, when sticky.
        self.sticky_owner: dict[int, str] = {}
        #: Worker identities seen on any task event so far.
        #: Worker identities that already ran a workflow task.
        self.seen_task_workers: set[str] = set()
        self.handovers: dict[int, Handover] = {h.event_id: h for h in run.handovers}
        #: Processes replaced under one shared identity, by the event the new process took over at.
        self.process_changes = {c.event_id: c for c in run.process_changes}

    def lines(self) -> list[str]:
        out = [self.header()]
        previous_time: datetime | None = None
        previous_id = 0
        for event in self.history.events:
            when = parse_time(event.time)
            if when and previous_time and (when - previous_time).total_seconds() >= SILENCE_SECONDS:
                seconds = (when - previous_time).total_seconds()
                reason, _ = silence_label(self.run, previous_id, event.id, minimum=SILENCE_SECONDS)
                out.append(self.marker(f"... {seconds:.1f} s of silence ({reason})"))
            if when:
                previous_time, previous_id = when, event.id
            handover = self.handovers.get(event.id)
            if handover is not None:
                out.append(self.marker(_handover_text(handover)))
            change = self.process_changes.get(event.id)
            if change is not None:
                out.append(self.marker(f"!! worker {change.identity}'s process lost ({change.how}); a new process "
                                       "with the same identity took over"))
            text = self.describe(event)
            if text is not None:
                out.append(self.event_line(event, when, text))
        out.extend(self.pending_lines())
        return out

    # --- layout -----------------------------------------------------------

    def header(self) -> str:
        run = self.run
        return (f"Workflow {run.workflow_id}  run {run.run_id or '?'}  {run.status}  "
                f"source {run.source}")

    def event_line(self, event: Event, when: datetime | None, text: str) -> str:
        offset = f"+{(when - self.start).total_seconds():.1f}s" if when and self.start else "?"
        if offset.startswith("+-"):  # a reset run's copied events can predate its start
            offset = offset[1:]
        return _wrap(f"{offset:>{_TIME_WIDTH}} {'#' + str(event.id):>{_ID_WIDTH}}  {text}")

    def marker(self, text: str) -> str:
        return _wrap(_TEXT_INDENT + text)

    # --- what each event says -----------------------------------------------

    def describe(self, event: Event) -> str | None:
        """The line text for ``event``, or None for noise."""
        etype, attrs = event.type, event.attrs
        method = getattr(self, "_" + etype, None)
        if method is not None:
            return method(event, attrs)
        if etype in CLOSE_STATUS:
            return self.closed(etype, attrs)
        return None

    def _WorkflowExecutionStarted(self, event: Event, attrs: dict[str, Any]) -> str:
        text = f"started by {attrs.get('identity') or 'an unknown client'}"
        details = _payment_text(first_value(decode_payloads(attrs.get("input"))))
        return f"{text}: {details}" if details else text

    def _WorkflowTaskScheduled(self, event: Event, attrs: dict[str, Any]) -> None:
        queue = attrs.get("taskQueue") or {}
        if queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
            # Sticky queue names are "<worker identity>-<32 hex>".
            self.sticky_owner[event.id] = sticky_queue_owner(queue.get("name") or "")
        return None

    def _WorkflowTaskStarted(self, event: Event, attrs: dict[str, Any]) -> str | None:
        identity = attrs.get("identity")
        if is_worker_identity(identity) and identity not in self.seen_task_workers:
            self.seen_task_workers.add(identity)
            return f"worker {identity} picked up its first workflow task"
        return None

    def _WorkflowTaskTimedOut(self, event: Event, attrs: dict[str, Any]) -> str:
        kind = strip_prefix(attrs.get("timeoutType"), "TIMEOUT_TYPE_") or "?"
        owner = self.sticky_owner.get(as_int(attrs.get("scheduledEventId")))
        if owner and kind == "SCHEDULE_TO_START":
            return f"workflow task timed out ({kind}): {owner} did not answer (lost worker?)"
        return f"workflow task timed out ({kind})"

    def _WorkflowTaskFailed(self, event: Event, attrs: dict[str, Any]) -> str:
        cause = strip_prefix(attrs.get("cause"), "WORKFLOW_TASK_FAILED_CAUSE_") or "?"
        identity = attrs.get("identity") or "?"
        if cause == "RESET_WORKFLOW":
            return f"== run reset here by {identity}: events above are copies of the old run"
        failure = classify_failure(attrs.get("failure"))
        text = f"workflow task failed on {identity}: {cause}"
        return f"{text}: {failure.describe()}" if failure else text

    def _ActivityTaskScheduled(self, event: Event, attrs: dict[str, Any]) -> str:
        name = (attrs.get("activityType") or {}).get("name") or "?"
        self.activity_names[event.id] = name
        return f"{name} scheduled"

    def _ActivityTaskStarted(self, event: Event, attrs: dict[str, Any]) -> str:
        name = self.activity_name(attrs)
        text = f"{name} attempt {as_int(attrs.get('attempt'), 1)} on {attrs.get('identity') or '?'}"
        last = classify_failure(attrs.get("lastFailure"))
        return f"{text}, retry after {_failure_text(last)}" if last else text

    def _ActivityTaskCompleted(self, event: Event, attrs: dict[str, Any]) -> str:
        result = first_value(decode_payloads(attrs.get("result")))
        return f"{self.activity_name(attrs)} completed -> {_value_text(result)}"

    def _ActivityTaskFailed(self, event: Event, attrs: dict[str, Any]) -> str:
        return self.activity_end(attrs, "failed")

    def _ActivityTaskTimedOut(self, event: Event, attrs: dict[str, Any]) -> str:
        return self.activity_end(attrs, "timed out")

    def _ActivityTaskCancelRequested(self, event: Event, attrs: dict[str, Any]) -> str:
        return f"{self.activity_name(attrs)} cancel requested"

    def _ActivityTaskCanceled(self, event: Event, attrs: dict[str, Any]) -> str:
        return f"{self.activity_name(attrs)} canceled"

    def _TimerStarted(self, event: Event, attrs: dict[str, Any]) -> str:
        return f"timer started ({attrs.get('startToFireTimeout') or '?'})"

    def _TimerFired(self, event: Event, attrs: dict[str, Any]) -> str:
        return "timer fired"

    def _WorkflowExecutionSignaled(self, event: Event, attrs: dict[str, Any]) -> str:
        return f"signal {attrs.get('signalName') or '?'} from {attrs.get('identity') or '?'}"

    def _WorkflowExecutionCancelRequested(self, event: Event, attrs: dict[str, Any]) -> str:
        return f"cancel requested by {attrs.get('identity') or '?'}"

    def _WorkflowExecutionTerminated(self, event: Event, attrs: dict[str, Any]) -> str:
        text = f"workflow TERMINATED by {attrs.get('identity') or '?'}"
        reason = attrs.get("reason")
        return f"{text}: {reason}" if reason else text

    def closed(self, etype: str, attrs: dict[str, Any]) -> str:
        text = f"workflow {CLOSE_STATUS[etype]}"
        if etype == "WorkflowExecutionCompleted":
            return f"{text} -> {_value_text(first_value(decode_payloads(attrs.get('result'))))}"
        failure = classify_failure(attrs.get("failure"))
        return f"{text}: {_failure_text(failure)}" if failure else text

    def activity_end(self, attrs: dict[str, Any], verb: str) -> str:
        text = f"{self.activity_name(attrs)} {verb}"
        failure = classify_failure(attrs.get("failure"))
        if failure:
            text = f"{text}: {_failure_text(failure)}"
        state = strip_prefix(attrs.get("retryState"), "RETRY_STATE_")
        return f"{text} ({state})" if state else text

    def activity_name(self, attrs: dict[str, Any]) -> str:
        return self.activity_names.get(as_int(attrs.get("scheduledEventId")), "activity")

    # --- context --------------------------------------------------------------

    def pending_lines(self) -> list[str]:
        """For a run read live while open: what describe() says is still pending."""
        lines = []
        for item in self.run.pending or []:
            text = f"still open: {item.activity_type} {item.state.lower()}, attempt {item.attempt}"
            if item.last_failure:
                text += f", last failure {_failure_text(item.last_failure)}"
            if item.last_worker_identity:
                text += f", last worker {item.last_worker_identity}"
            lines.append(self.marker(text))
        return lines


# --- small helpers -------------------------------------------------------------


def _handover_text(handover: Handover) -> str:
    if handover.final:
        return f"!! worker {handover.from_identity} lost; {handover.to_identity} took over"
    # The old worker kept working afterwards: two live workers shared the run.
    return f"!! work moved from {handover.from_identity} to {handover.to_identity} (both alive)"


def _failure_text(failure: FailureInfo) -> str:
    return _SPACES.sub(" ", failure.describe()).strip()


def _payment_text(value: Any) -> str:
    """``$250 from 85-150 to 43-812`` for a PaymentDetails dict, else a short JSON form."""
    if value is None:
        return ""
    amount, source, target = (payment_field(value, k) for k in ("amount", "source_account", "target_account"))
    if None not in (amount, source, target):
        return f"${amount} from {source} to {target}"
    return _value_text(value)


def _value_text(value: Any) -> str:
    if value is None:
        return "(no result)"
    return _SPACES.sub(" ", json.dumps(value, ensure_ascii=False, default=str))


def _wrap(line: str) -> str:
    """Fold a long line onto indented continuation lines, cut after MAX_STEP_LINES."""
    if len(line) <= LINE_WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, LINE_WIDTH, subsequent_indent=_TEXT_INDENT,
                                   max_lines=MAX_STEP_LINES, placeholder=" ...",
                                   break_on_hyphens=False))
