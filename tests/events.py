"""Plain reads of a history's JSON events, for tests that check histories by hand.

Deliberately independent of ``grader.engine.history`` and ``grader.engine.evidence``: these
tests state what a history holds straight from its events, so they can catch
the grader's own reading going wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CLOSING = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED": "COMPLETED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED": "FAILED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED": "CANCELED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED": "TERMINATED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT": "TIMED_OUT",
}


def attributes(event: dict) -> dict:
    """The ``...EventAttributes`` object of an event."""
    return next((v for k, v in event.items() if k.endswith("EventAttributes")), {})


def types(history: dict) -> list[str]:
    """Event types in event id order, without the ``EVENT_TYPE_`` prefix."""
    return [e["eventType"].removeprefix("EVENT_TYPE_") for e in history["events"]]


def status(history: dict) -> str:
    """How the run ended, from its last event; RUNNING if it has not."""
    return CLOSING.get(history["events"][-1]["eventType"], "RUNNING")


def failure_kind(failure: dict | None) -> str | None:
    """``ValueError``-like application type, or ``TIMEOUT_TYPE_START_TO_CLOSE``-like timeout."""
    if not failure:
        return None
    if "timeoutFailureInfo" in failure:
        return failure["timeoutFailureInfo"].get("timeoutType")
    return failure.get("applicationFailureInfo", {}).get("type") or failure.get("message")


@dataclass
class Attempt:
    """One ActivityTaskStarted joined to its activity type and outcome."""

    activity: str
    attempt: int
    identity: str
    last_failure: dict | None
    #: COMPLETED, FAILED, TIMED_OUT, CANCELED, or None while it runs.
    outcome: str | None
    #: The closing event's attributes (retryState, failure, result ...).
    closing: dict


def attempts(history: dict) -> list[Attempt]:
    """Every recorded activity attempt, in event order."""
    names: dict[str, str] = {}
    started: dict[str, Attempt] = {}
    found: list[Attempt] = []
    for e in history["events"]:
        t, a = e["eventType"], attributes(e)
        if t == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            names[e["eventId"]] = a["activityType"]["name"]
        elif t == "EVENT_TYPE_ACTIVITY_TASK_STARTED":
            att = Attempt(names[a["scheduledEventId"]], a.get("attempt", 1), a.get("identity", ""),
                          a.get("lastFailure"), None, {})
            started[a["scheduledEventId"]] = att
            found.append(att)
        elif t.startswith("EVENT_TYPE_ACTIVITY_TASK_") and a.get("scheduledEventId") in started:
            att = started[a["scheduledEventId"]]
            att.outcome, att.closing = t.removeprefix("EVENT_TYPE_ACTIVITY_TASK_"), a
    return found


def last(history: dict, activity: str) -> Attempt:
    """The last recorded attempt of ``activity``."""
    return [a for a in attempts(history) if a.activity == activity][-1]


def worker_identities(history: dict) -> list[str]:
    """Distinct worker identities on workflow and activity tasks, in order of appearance."""
    seen: list[str] = []
    for e in history["events"]:
        if e["eventType"] in ("EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
                              "EVENT_TYPE_ACTIVITY_TASK_STARTED", "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
                              "EVENT_TYPE_ACTIVITY_TASK_FAILED"):
            ident = attributes(e).get("identity")
            if ident and ident not in seen:
                seen.append(ident)
    return seen


def longest_gap(history: dict) -> float:
    """The longest time in seconds between two consecutive events."""
    times = [datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")) for e in history["events"]]
    return max(((b - a).total_seconds() for a, b in zip(times, times[1:])), default=0.0)


def own_timings(history: dict, nanoseconds: int) -> dict:
    """``history`` with its last event ``nanoseconds`` later, in place: another run's timings.

    Tests that hand one golden to several learners use it so each learner's
    run is their own, as real runs are; the same timings under two learners
    are a ``copied-run``, credited to neither (see tests/test_provenance.py).
    """
    last = history["events"][-1]
    head, fraction = last["eventTime"].rstrip("Z").split(".")
    last["eventTime"] = f"{head}.{int(fraction.ljust(9, '0')) + nanoseconds:09d}Z"
    return history
