"""The evidence model: what one workflow history proves, built in one pass.

Evidence objects are read-only by convention. The small ones are plain
slotted dataclasses rather than frozen ones: a frozen dataclass sets each
field through ``object.__setattr__``, and these are built for every event.

Checks read only this model; they never see raw events and never call a
server. Every fact keeps the event ids it came from, so a report can point a
learner at the exact rows of the Web UI's event history.

What a history can and cannot prove is measured in HISTORY-FACTS.md; the
short version that shapes this module:

- Failed attempts are not events. An activity has one ActivityTaskStarted,
  written when it finally ends, carrying the final ``attempt`` and the
  previous attempt's ``lastFailure``; only the last failure survives.
- ``identity`` (``pid@host`` by default) is on task Started/Completed/Failed
  events, never on Scheduled ones. WorkflowExecutionStarted holds the
  starter's identity, not a worker's.
- Order is by event id, not by time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from grader.engine.history import History, as_int, decode_payloads, parse_duration, parse_time

#: Identities that are not worker processes.
NON_WORKER_PREFIXES = ("temporal-cli:", "history-service", "tctl@")

#: Closing event type -> the run's final status.
CLOSE_STATUS = {
    "WorkflowExecutionCompleted": "COMPLETED",
    "WorkflowExecutionFailed": "FAILED",
    "WorkflowExecutionCanceled": "CANCELED",
    "WorkflowExecutionTerminated": "TERMINATED",
    "WorkflowExecutionTimedOut": "TIMED_OUT",
    "WorkflowExecutionContinuedAsNew": "CONTINUED_AS_NEW",
}
_ACTIVITY_CLOSE = {
    "ActivityTaskCompleted": "completed",
    "ActivityTaskFailed": "failed",
    "ActivityTaskTimedOut": "timed_out",
    "ActivityTaskCanceled": "canceled",
}
_WORKER_EVENTS = frozenset({
    "WorkflowTaskStarted", "WorkflowTaskCompleted", "WorkflowTaskFailed",
    "ActivityTaskStarted", "ActivityTaskCompleted", "ActivityTaskFailed", "ActivityTaskCanceled",
})


class cached_property:  # noqa: N801 - used like functools.cached_property
    """Compute an attribute on first use and keep it in the instance.

    functools.cached_property takes a lock on every first access in Python
    3.11, which costs more than most of these computations; evidence objects
    are never shared between threads while they are built.
    """

    def __init__(self, func: Any) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


def strip_prefix(value: Any, prefix: str) -> str:
    """An enum name without its prefix: ``strip_prefix("RETRY_STATE_TIMEOUT", "RETRY_STATE_")`` -> ``TIMEOUT``."""
    if not isinstance(value, str):
        return ""
    return value[len(prefix):] if value.startswith(prefix) else value


def build_id_of(attrs: dict[str, Any]) -> str | None:
    """The worker build id a task event records (``workerVersion.buildId``), or None."""
    version = attrs.get("workerVersion")
    build_id = version.get("buildId") if isinstance(version, dict) else None
    return build_id if isinstance(build_id, str) and build_id else None


def is_worker_identity(identity: Any) -> bool:
    """True for a worker process's identity, False for a client, the CLI or the server itself."""
    return isinstance(identity, str) and bool(identity) and not identity.startswith(NON_WORKER_PREFIXES)


def sticky_queue_owner(queue_name: str) -> str:
    """The worker identity in a sticky queue name, which is ``<identity>-<32 hex>``."""
    return queue_name.rsplit("-", 1)[0]


def first_value(values: list[Any] | None) -> Any:
    """The first decoded payload, or None."""
    return values[0] if values else None


def payment_field(details: Any, name: str) -> Any:
    """A PaymentDetails field whatever its spelling: source_account, sourceAccount, SourceAccount."""
    if not isinstance(details, dict):
        return None
    if name in details:
        return details[name]
    wanted = name.replace("_", "").lower()
    for key, value in details.items():
        if key.replace("_", "").lower() == wanted:
            return value
    return None


@dataclass(slots=True)
class FailureInfo:
    """A failure, classified the way the checks need it."""

    #: "timeout", "worker_shutdown", "application", "canceled", "terminated", "server" or "other".
    kind: str
    #: The failure's message, e.g. "This deposit has failed.".
    message: str
    #: Application failure type (the exception class name), e.g. "ValueError".
    type: str | None = None
    #: For timeouts: START_TO_CLOSE, SCHEDULE_TO_START, HEARTBEAT, SCHEDULE_TO_CLOSE.
    timeout_type: str | None = None
    #: True when the failure itself said it must not be retried.
    non_retryable: bool = False
    #: Message of the innermost cause, when the failure wraps others.
    root_message: str | None = None

    def describe(self) -> str:
        """A short human form: ``ValueError: This deposit has failed.`` or ``timeout START_TO_CLOSE``."""
        if self.kind == "timeout":
            return f"timeout {self.timeout_type or ''}".strip()
        if self.type:
            return f"{self.type}: {self.message}"
        return self.message or self.kind


#: Longest failure message carried into evidence: a message is quoted by several checks and every
#: format, so a 60 MB one made a 600 MB report. Longer ones keep their start and say how much is cut.
MAX_MESSAGE = 2000


def cut_message(text: Any) -> Any:
    """``text`` at most :data:`MAX_MESSAGE` characters long, with a marker saying how much was cut."""
    if not isinstance(text, str) or len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}… [{len(text) - MAX_MESSAGE} more characters cut]"


def classify_failure(failure: Any) -> FailureInfo | None:
    """Turn a proto-JSON ``Failure`` object into a :class:`FailureInfo` (None if absent)."""
    if not isinstance(failure, dict) or not failure:
        return None
    message = cut_message(failure.get("message") or "")
    root = failure
    while isinstance(root.get("cause"), dict):
        root = root["cause"]
    root_message = cut_message(root.get("message")) if root is not failure else None
    if "timeoutFailureInfo" in failure:
        info = failure.get("timeoutFailureInfo") or {}
        return FailureInfo("timeout", message or "activity timed out",
                           timeout_type=strip_prefix(info.get("timeoutType"), "TIMEOUT_TYPE_") or None,
                           root_message=root_message)
    if "applicationFailureInfo" in failure:
        info = failure.get("applicationFailureInfo") or {}
        ftype = info.get("type") or None
        shutdown = ftype == "WorkerShutdown" or "worker is shutting down" in message.lower()
        return FailureInfo("worker_shutdown" if shutdown else "application", message, type=ftype,
                           non_retryable=bool(info.get("nonRetryable")), root_message=root_message)
    if "canceledFailureInfo" in failure:
        return FailureInfo("canceled", message or "canceled", root_message=root_message)
    if "terminatedFailureInfo" in failure:
        return FailureInfo("terminated", message or "terminated", root_message=root_message)
    if "serverFailureInfo" in failure:
        info = failure.get("serverFailureInfo") or {}
        return FailureInfo("server", message, non_retryable=bool(info.get("nonRetryable")),
                           root_message=root_message)
    return FailureInfo("other", message, root_message=root_message)


@dataclass(slots=True)
class RetryPolicyInfo:
    """The retry policy an activity was scheduled with (from ActivityTaskScheduled)."""

    initial_interval: timedelta | None
    backoff_coefficient: float | None
    maximum_interval: timedelta | None
    #: 0 means unlimited (the key is missing from the JSON then).
    maximum_attempts: int
    non_retryable_error_types: tuple[str, ...]

    @classmethod
    def from_json(cls, policy: Any) -> "RetryPolicyInfo | None":
        """Build from the ``retryPolicy`` JSON object; None when the event has none."""
        if not isinstance(policy, dict):
            return None
        return cls(
            initial_interval=parse_duration(policy.get("initialInterval")),
            backoff_coefficient=_as_float(policy.get("backoffCoefficient")),
            maximum_interval=parse_duration(policy.get("maximumInterval")),
            maximum_attempts=as_int(policy.get("maximumAttempts"), 0),
            non_retryable_error_types=tuple(policy.get("nonRetryableErrorTypes") or ()),
        )


def _as_float(value: Any) -> float | None:
    """A proto JSON double (a number, or a string spelling one; checked finite by the history reader)."""
    return None if value is None else float(value)


@dataclass
class ActivityEvidence:
    """One scheduled activity and everything the history says about it."""

    #: Activity type, e.g. "deposit".
    activity_type: str
    activity_id: str
    #: Event id of ActivityTaskScheduled; later events refer to it.
    scheduled_event_id: int
    scheduled_time: str
    #: Identity of the worker whose workflow task scheduled the activity.
    scheduled_by: str | None
    #: The ActivityTaskScheduled attributes as recorded; timeouts, retry
    #: policy and input are read from them when a check first asks.
    scheduled_attrs: dict[str, Any]
    #: Decoded payloads shared by the whole history (see decode_payloads).
    payload_cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Scratch space where checks keep what they derive from this activity (its evidence line).
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    started_event_id: int | None = None
    started_time: str | None = None
    #: started_time parsed, when readable.
    started_at: datetime | None = None
    #: Final attempt number (from ActivityTaskStarted); 0 while never started.
    attempt: int = 0
    #: Failure of the attempt before the final one (ActivityTaskStarted.lastFailure).
    last_failure: FailureInfo | None = None
    #: Worker identity that ran the final attempt.
    started_by: str | None = None
    #: Build id of the worker whose workflow task scheduled the activity
    #: (``workerVersion.buildId`` of that WorkflowTaskCompleted), if recorded.
    scheduled_build_id: str | None = None
    #: Build id of the worker that ran the final attempt, if recorded.
    started_build_id: str | None = None
    #: "completed", "failed", "timed_out", "canceled" or "pending".
    outcome: str = "pending"
    closed_event_id: int | None = None
    closed_time: str | None = None
    #: closed_time parsed, when readable.
    closed_at: datetime | None = None
    #: Worker identity that reported the end (completed or failed).
    finished_by: str | None = None
    #: The result Payloads exactly as in the history; see :attr:`result`.
    raw_result: Any = None
    #: The final failure, for failed or timed-out activities.
    failure: FailureInfo | None = None
    #: Why retrying stopped, e.g. MAXIMUM_ATTEMPTS_REACHED or NON_RETRYABLE_FAILURE.
    retry_state: str | None = None

    @cached_property
    def input(self) -> list[Any] | None:
        """Decoded input arguments (a list), None when not plain JSON. Decoded on first use."""
        return decode_payloads(self.scheduled_attrs.get("input"), self.payload_cache)

    @cached_property
    def retry_policy(self) -> RetryPolicyInfo | None:
        """The retry policy it was scheduled with."""
        return RetryPolicyInfo.from_json(self.scheduled_attrs.get("retryPolicy"))

    @property
    def maximum_attempts(self) -> int:
        """The retry policy's attempt limit; 0 means unlimited (or no policy recorded)."""
        policy = self.scheduled_attrs.get("retryPolicy")
        return as_int(policy.get("maximumAttempts"), 0) if isinstance(policy, dict) else 0

    @cached_property
    def start_to_close_timeout(self) -> timedelta | None:
        """Longest one attempt may run; None when not set."""
        return parse_duration(self.scheduled_attrs.get("startToCloseTimeout"))

    @property
    def schedule_to_close_timeout(self) -> timedelta | None:
        """Longest all attempts together may take; None when not set."""
        return parse_duration(self.scheduled_attrs.get("scheduleToCloseTimeout"))

    @property
    def heartbeat_timeout(self) -> timedelta | None:
        """Longest silence between heartbeats; None when not set."""
        return parse_duration(self.scheduled_attrs.get("heartbeatTimeout"))

    @cached_property
    def result(self) -> Any:
        """Decoded result (the first payload) of a completed activity."""
        return first_value(decode_payloads(self.raw_result, self.payload_cache))

    @property
    def failed_attempts(self) -> int:
        """How many attempts failed: attempt - 1, plus the last one if the activity failed."""
        if self.attempt == 0:
            return 0
        return self.attempt - 1 + (1 if self.outcome in ("failed", "timed_out") else 0)

    @property
    def first_input(self) -> Any:
        """The first input argument (the PaymentDetails) as decoded JSON, or None."""
        return self.input[0] if self.input else None

    def final_attempt_duration(self) -> timedelta | None:
        """Time from the final attempt's start to the activity's end, when both are known."""
        start, end = self.started_at, self.closed_at
        return end - start if start and end else None


@dataclass
class WorkerEvidence:
    """One worker process as seen through its identity."""

    identity: str
    first_event_id: int
    last_event_id: int
    #: Workflow tasks this worker completed.
    workflow_tasks: int = 0
    #: (activity type, attempt) pairs it started, in order.
    activities: list[tuple[str, int]] = field(default_factory=list)
    #: Sticky queue names seen for this identity (one per process; several
    #: under one identity reveal restarts of a worker with a fixed identity).
    sticky_queues: list[str] = field(default_factory=list)

    @property
    def looks_default(self) -> bool:
        """True for the SDK default form ``pid@host``, which changes on every restart."""
        pid, sep, _ = self.identity.partition("@")
        return bool(sep) and pid.isdigit()


@dataclass(slots=True)
class Handover:
    """Work passing from one worker identity to another while the run was open."""

    from_identity: str
    to_identity: str
    #: First event of the new worker.
    event_id: int
    #: True when the old worker never did anything after the handover: what a
    #: crash looks like (sharing work between live workers does not).
    final: bool


@dataclass(slots=True)
class ProcessChange:
    """A worker process that was lost while the run was open, and another process
    *with the same identity* that went on with the work.

    An identity is a string anyone can set (``Worker(identity=...)``), so two
    processes may share one; the history still tells them apart. Each process
    polls a sticky queue of its own, ``<identity>-<32 hex>``, and the server
    sends a run's next workflow task there. Two signs are read:

    - ``new sticky queue``: the identity's workflow tasks moved to a second
      sticky queue name, which only a second process has;
    - ``worker shut down``: an activity attempt failed with the SDK's
      worker-shutdown failure and was retried under the same identity: the
      process that ran it stopped, so another one ran the retry;
    - ``sticky queue unanswered``: a workflow task waited on the process's
      sticky queue until the server timed it out (SCHEDULE_TO_START, on time,
      so the server was running), the work went on from the normal queue
      under the same identity, and that sticky queue was never used again: a
      live process would have taken the task within milliseconds.

    Changes between *different* identities are :class:`Handover` objects.
    """

    identity: str
    #: The first event the new process certainly did (a workflow task it started).
    event_id: int
    #: The lost process's sticky queue.
    old_queue: str
    #: "new sticky queue", "sticky queue unanswered" or "worker shut down".
    how: str
    #: The events it rests on, in order.
    event_ids: tuple[int, ...]
    #: The last event before the change that the old process is known to have been alive for
    #: (the task left on its sticky queue, or its queue's last use).
    last_old_event_id: int
    #: How long the task waited on the lost sticky queue, for "sticky queue unanswered".
    waited_seconds: float | None = None

    def describe(self) -> str:
        """One sentence a learner can check against the Web UI's events."""
        if self.how == "worker shut down":
            return (f"worker identity {self.identity} is shared by two processes: the attempt before event "
                    f"{self.event_id} was lost because its worker shut down, and the retry ran in another "
                    "process with the same identity")
        if self.how == "sticky queue unanswered":
            return (f"worker identity {self.identity} is shared by two processes: the workflow task on its "
                    f"sticky queue {self.old_queue} went unanswered for {self.waited_seconds or 0:.1f} s "
                    f"until the server timed it out (event {self.event_ids[1]}), and a new process with the "
                    f"same identity took the work from the normal queue at event {self.event_id}")
        return (f"worker identity {self.identity} is shared by two processes: its workflow tasks moved from "
                f"sticky queue {self.old_queue} to a new one at event {self.event_id}, which only a new "
                "process polls")


@dataclass(slots=True)
class EventRef:
    """A pointer to one event, for evidence lists."""

    event_id: int
    event_type: str
    detail: str = ""


@dataclass(slots=True)
class PendingActivity:
    """What ``describe()`` says of an activity of a still-open run."""

    activity_type: str
    #: SCHEDULED (waiting, e.g. in retry backoff), STARTED or CANCEL_REQUESTED.
    state: str
    attempt: int
    last_failure: FailureInfo | None
    last_worker_identity: str | None


@dataclass
class RunEvidence:
    """Everything the checks may use about one workflow run."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    #: COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW or RUNNING.
    status: str
    start_time: str
    close_time: str | None
    #: Identity of whoever started the workflow (a client, not a worker).
    starter_identity: str | None
    #: The workflow's input Payloads as in the history; see :attr:`input`.
    raw_input: Any
    #: The result Payloads of a completed run; see :attr:`result`.
    raw_result: Any
    #: Failure of a failed run.
    failure: FailureInfo | None
    closed_event: EventRef | None
    activities: list[ActivityEvidence]
    #: Worker processes in the order they first appear.
    workers: list[WorkerEvidence]
    handovers: list[Handover]
    #: WorkflowTaskTimedOut events: a lost worker's sticky queue going unanswered.
    lost_worker_signs: list[EventRef]
    #: WorkflowTaskFailed with cause RESET_WORKFLOW: the run was reset here.
    resets: list[EventRef]
    cancel_requested: EventRef | None
    terminated: EventRef | None
    #: Longest silence between two consecutive events: (seconds, event before, event after).
    longest_gap: tuple[float, int, int] | None
    #: From describe() for runs read live while open.
    pending: list[PendingActivity] | None
    #: Where the history came from.
    source: str
    source_kind: str
    ui_link: str | None
    event_count: int
    #: Decoded payloads shared by the whole history (see decode_payloads).
    payload_cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Event id -> its time, for events whose time is readable: what a picture
    #: of the run needs to place handovers, silences and marks (grader.engine.runview).
    event_times: dict[int, datetime] = field(default_factory=dict, repr=False, compare=False)
    #: Scratch space where checks keep what several of them derive from this
    #: run (evidence lines, per-activity verdicts), so it is built once.
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: The history's events, kept so that rarely needed evidence (silences)
    #: is built on first use instead of in every walk. Checks read the
    #: evidence built from them, never the events.
    raw_events: list[Any] = field(default_factory=list, repr=False, compare=False)
    #: Every sticky queue name a workflow task was scheduled on, when the walk recorded them
    #: (None: not known, the events are read again when needed).
    sticky_queue_names: set[str] | None = field(default=None, repr=False, compare=False)

    def silences_over(self, minimum: float) -> list["Silence"]:
        """The silences of at least ``minimum`` seconds, longest first, with what explains each."""
        key = ("silences", minimum)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = find_silences(self, minimum)
        return found

    @property
    def silences(self) -> list["Silence"]:
        """Every stretch between two consecutive events, longest first, with what explains it."""
        return self.silences_over(0.0)

    @cached_property
    def process_changes(self) -> list[ProcessChange]:
        """Processes lost and replaced under one shared identity (see :class:`ProcessChange`).

        Built on first use from the events; identity changes are :attr:`handovers`.
        """
        after = self.resets[-1].event_id if self.resets else 0
        changes = find_process_changes(self.raw_events, after=after) if self._may_change_process() else []
        for a in self.activities:
            lf = a.last_failure
            # The SDK reports an attempt lost to its worker shutting down: that process stopped,
            # so the retry, under the same identity, ran in another one.
            if (lf is not None and lf.kind == "worker_shutdown" and a.attempt > 1 and a.started_event_id
                    and a.started_event_id > after and a.started_by and a.started_by == a.scheduled_by
                    and not any(c.identity == a.started_by and c.event_id <= a.started_event_id for c in changes)):
                changes.append(ProcessChange(a.started_by, a.started_event_id, "", "worker shut down",
                                             (a.scheduled_event_id, a.started_event_id), a.scheduled_event_id))
        changes.sort(key=lambda c: c.event_id)
        # One restart seen twice (the shutdown, then the new process's own sticky queue) is one change.
        kept: list[ProcessChange] = []
        for c in changes:
            previous = next((k for k in reversed(kept) if k.identity == c.identity), None)
            if c.how == "new sticky queue" and previous is not None and previous.how == "worker shut down":
                continue
            kept.append(c)
        return kept

    def _may_change_process(self) -> bool:
        """False when the walk saw what rules out every change :func:`find_process_changes` finds.

        Most runs have neither of its signs: a workflow task timed out before it
        started, or one identity owning two sticky queues. Saying so from what
        the walk kept spares a grading two more walks of the events.
        """
        names = self.sticky_queue_names
        if names is None:
            return True
        if any(sign.detail == "SCHEDULE_TO_START" for sign in self.lost_worker_signs):
            return True
        return len({sticky_queue_owner(name) for name in names}) < len(names)

    @property
    def process_lost(self) -> bool:
        """True when a worker process was lost while the run was open and another process took over:
        a handover that never went back, or a process change under a shared identity."""
        return any(h.final for h in self.handovers) or bool(self.process_changes)

    @cached_property
    def input(self) -> Any:
        """Decoded workflow input (the first argument, the PaymentDetails)."""
        return first_value(decode_payloads(self.raw_input, self.payload_cache))

    @cached_property
    def result(self) -> Any:
        """Decoded result (the first payload) of a completed run."""
        return first_value(decode_payloads(self.raw_result, self.payload_cache))

    @cached_property
    def _by_type(self) -> dict[str, list[ActivityEvidence]]:
        index: dict[str, list[ActivityEvidence]] = {}
        for a in self.activities:
            index.setdefault(a.activity_type.lower(), []).append(a)
        return index

    def activities_of(self, activity_type: str) -> list[ActivityEvidence]:
        """Activities of one type, in schedule order.

        Case is ignored: the tutorial's apps in other languages name them
        ``Withdraw`` or ``withdraw``.
        """
        return self._by_type.get(activity_type.lower(), [])

    @property
    def duration(self) -> timedelta | None:
        """Start to close, for closed runs."""
        start, end = parse_time(self.start_time), parse_time(self.close_time)
        return end - start if start and end else None

    @property
    def worker_identities(self) -> list[str]:
        """Worker identities in order of first appearance."""
        return [w.identity for w in self.workers]

    @property
    def identity_looks_fixed(self) -> bool:
        """True when no worker identity has the default ``pid@host`` form, so restarts may hide."""
        return bool(self.workers) and not any(w.looks_default for w in self.workers)

    @property
    def is_open(self) -> bool:
        """True while the run has not closed."""
        return self.status == "RUNNING"


def build_evidence(history: History) -> RunEvidence:
    """Walk ``history`` once and build its :class:`RunEvidence`."""
    events = history.events
    started = events[0].attrs
    activities: dict[int, ActivityEvidence] = {}
    payloads: dict[str, Any] = {}
    workers: dict[str, WorkerEvidence] = {}
    task_identity: dict[int, str] = {}  # WorkflowTaskCompleted event id -> identity
    task_build_id: dict[int, str] = {}  # WorkflowTaskCompleted event id -> worker build id
    worker_sequence: list[tuple[int, str]] = []
    sticky_names: set[str] = set()
    lost: list[EventRef] = []
    resets: list[EventRef] = []
    cancel_requested = terminated = closed_event = None
    result = failure = None
    status = "RUNNING"
    close_time = None
    previous_time: datetime | None = None
    previous_id = 0

    widest = None  # (timedelta, event before, event after)
    times: dict[int, datetime] = {}
    for event in events:
        etype, attrs = event.type, event.attrs

        when = event.when  # parsed (and checked timezone-aware) when the history was read
        if when is not None:
            times[event.id] = when
            if previous_time is not None:
                gap = when - previous_time
                if widest is None or gap > widest[0]:
                    widest = (gap, previous_id, event.id)
            previous_time, previous_id = when, event.id

        identity = None
        if etype in _WORKER_EVENTS:
            identity = attrs.get("identity")
            # An identity already in ``workers`` passed is_worker_identity when it was added.
            worker = workers.get(identity) if isinstance(identity, str) else None
            if worker is None and is_worker_identity(identity):
                worker = workers[identity] = WorkerEvidence(identity, event.id, event.id)
            if worker is not None:
                worker.last_event_id = event.id
                worker_sequence.append((event.id, identity))
            if etype == "WorkflowTaskStarted":  # the commonest event: nothing more to learn
                continue

        if etype == "WorkflowTaskScheduled":
            queue = attrs.get("taskQueue") or {}
            if queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
                name = queue.get("name") or ""
                sticky_names.add(name)
                owner = sticky_queue_owner(name)
                if owner in workers and name not in workers[owner].sticky_queues:
                    workers[owner].sticky_queues.append(name)
        elif etype == "WorkflowTaskCompleted":
            build_id = build_id_of(attrs)
            if build_id:
                task_build_id[event.id] = build_id
            if identity:
                task_identity[event.id] = identity
                if identity in workers:
                    workers[identity].workflow_tasks += 1
        elif etype == "WorkflowTaskTimedOut":
            lost.append(EventRef(event.id, etype, strip_prefix(attrs.get("timeoutType"), "TIMEOUT_TYPE_")))
        elif etype == "WorkflowTaskFailed":
            cause = strip_prefix(attrs.get("cause"), "WORKFLOW_TASK_FAILED_CAUSE_")
            if cause == "RESET_WORKFLOW":
                resets.append(EventRef(event.id, etype, attrs.get("identity") or ""))
        elif etype == "ActivityTaskScheduled":
            completed_by = as_int(attrs.get("workflowTaskCompletedEventId"))
            activities[event.id] = ActivityEvidence(
                activity_type=(attrs.get("activityType") or {}).get("name") or "",
                activity_id=str(attrs.get("activityId", "")),
                scheduled_event_id=event.id,
                scheduled_time=event.time,
                scheduled_by=task_identity.get(completed_by),
                scheduled_build_id=task_build_id.get(completed_by),
                scheduled_attrs=attrs,
                payload_cache=payloads,
            )
        elif etype == "ActivityTaskStarted":
            activity = activities.get(as_int(attrs.get("scheduledEventId")))
            if activity is not None:
                activity.started_event_id = event.id
                activity.started_time = event.time
                activity.started_at = when  # parsed above already, for the gap
                activity.attempt = as_int(attrs.get("attempt"), 1)
                activity.last_failure = classify_failure(attrs.get("lastFailure"))
                activity.started_by = identity
                activity.started_build_id = build_id_of(attrs)
                if identity in workers:
                    workers[identity].activities.append((activity.activity_type, activity.attempt))
        elif etype in _ACTIVITY_CLOSE:
            activity = activities.get(as_int(attrs.get("scheduledEventId")))
            if activity is not None:
                activity.outcome = _ACTIVITY_CLOSE[etype]
                activity.closed_event_id = event.id
                activity.closed_time = event.time
                activity.closed_at = when
                activity.finished_by = identity
                if etype == "ActivityTaskCompleted":
                    activity.raw_result = attrs.get("result")
                else:
                    activity.failure = classify_failure(attrs.get("failure"))
                    activity.retry_state = strip_prefix(attrs.get("retryState"), "RETRY_STATE_") or None
        elif etype == "WorkflowExecutionCancelRequested":
            cancel_requested = EventRef(event.id, etype, attrs.get("identity") or "")
        elif etype in CLOSE_STATUS:
            status = CLOSE_STATUS[etype]
            close_time = event.time
            if etype == "WorkflowExecutionCompleted":
                result = attrs.get("result")
            elif etype == "WorkflowExecutionFailed":
                failure = classify_failure(attrs.get("failure"))
            elif etype == "WorkflowExecutionTerminated":
                terminated = EventRef(event.id, etype, attrs.get("reason") or "")
            closed_event = EventRef(event.id, etype)

    return RunEvidence(
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        workflow_type=(started.get("workflowType") or {}).get("name") or "",
        task_queue=(started.get("taskQueue") or {}).get("name") or "",
        status=status,
        start_time=events[0].time,
        close_time=close_time,
        starter_identity=started.get("identity"),
        raw_input=started.get("input"),
        raw_result=result,
        failure=failure,
        closed_event=closed_event,
        activities=list(activities.values()),
        workers=list(workers.values()),
        handovers=(_handovers(worker_sequence, after=resets[-1].event_id if resets else 0)
                   if len(workers) > 1 else []),
        lost_worker_signs=lost,
        resets=resets,
        cancel_requested=cancel_requested,
        terminated=terminated,
        longest_gap=(widest[0].total_seconds(), widest[1], widest[2]) if widest else None,
        pending=_pending(history.pending_activities),
        source=history.source,
        source_kind=history.source_kind,
        ui_link=history.ui_link,
        event_count=len(events),
        payload_cache=payloads,
        event_times=times,
        raw_events=events,
        sticky_queue_names=sticky_names,
    )


@dataclass(slots=True)
class Silence:
    """A stretch of time with no event, between two consecutive events, and what the history says of it.

    Many things leave a long silence that is not an outage (measured in
    HISTORY-FACTS): a killed worker's start-to-close and sticky-queue
    timeouts, a workflow started before any worker ran, a worker restarted
    during a live fix, a slow attempt retried, a workflow timer. Only a
    silence with the same worker process on both sides and nothing else to
    account for it fits an outage: :attr:`explained_by` is then empty.
    """

    seconds: float
    #: The events either side of it.
    before_event_id: int
    after_event_id: int
    #: The last worker identity seen up to the silence, and the first one seen after it.
    worker_before: str | None
    worker_after: str | None
    #: Why this silence is not an outage, in words; "" when nothing in the history explains it.
    explained_by: str
    #: The activity whose final attempt was running all through the silence (started
    #: before it, closed after it), if any.
    attempt: ActivityEvidence | None = None
    #: What kind of thing explains it: "" (nothing), "no-activities", "reset", "no-worker-yet",
    #: "no-worker-after", "worker-changed", "new-process", "retry", "timer" or "slow-attempt".
    kind: str = ""
    #: Proof that the server was unreachable during it, in words (an attempt that completed past
    #: its deadline on the same worker, a server timer that fired late); "" when there is none.
    proof: str = ""

    @property
    def counts(self) -> bool:
        """True when the silence fits an outage: nothing else explains it."""
        return not self.explained_by

    @property
    def proven(self) -> bool:
        """True when the silence fits an outage and the history proves the server was unreachable."""
        return self.counts and bool(self.proof)

    @property
    def same_worker(self) -> bool:
        """True for a silence with one worker process on both sides, whatever explains it: what
        pausing the server (or cutting the network) while a transfer runs leaves."""
        return self.kind in ("", "retry", "slow-attempt")

    @property
    def outlived_deadline(self) -> bool:
        """True when the activity running through it completed, on that same attempt and worker,
        after its start-to-close deadline: a running server would have timed the attempt out
        (only a frozen or stopped server lets it finish).
        """
        return self.attempt is not None and outlived_deadline(self.attempt)


def outlived_deadline(a: ActivityEvidence) -> bool:
    """True when ``a``'s final attempt completed on the worker that started it, past its
    start-to-close deadline: a running server would have timed it out."""
    if a.outcome != "completed" or not a.started_by or a.started_by != a.finished_by:
        return False
    took, limit = a.final_attempt_duration(), a.start_to_close_timeout
    return bool(took and limit and took > limit + DEADLINE_SLACK)


def late_attempt_text(a: ActivityEvidence) -> str:
    """Why an attempt that outlived its deadline proves the server was away, in words."""
    took = a.final_attempt_duration()
    return (f"{a.activity_type} attempt {a.attempt} completed {took.total_seconds():.1f} s after it started, "
            f"past its {a.start_to_close_timeout.total_seconds():g} s start-to-close deadline, on the same "
            "worker: a running server would have timed it out, so the server was unreachable")


#: How far past its start-to-close deadline an attempt must complete to prove a
#: frozen server; a running server's timer and a completion can race by a few ms.
DEADLINE_SLACK = timedelta(seconds=1)
#: Leeway on the time retries and timers may take, for the server's own scheduling.
_RETRY_SLACK = timedelta(seconds=1)


def retry_time_bound(activity: ActivityEvidence) -> timedelta | None:
    """The longest time the failed attempts before ``activity``'s final one can take, with backoff.

    Each failed attempt lasts at most its start-to-close timeout, and each
    retry waits its backoff interval (growing by the coefficient up to the
    maximum interval). None when nothing bounds it: no start-to-close
    timeout, or a bound beyond any outage a learner would stage.
    """
    limit = activity.start_to_close_timeout
    if limit is None:
        return None
    policy = activity.retry_policy
    interval = (policy.initial_interval if policy else None) or timedelta(seconds=1)
    try:
        coefficient = float((policy.backoff_coefficient if policy else None) or 2.0)
    except (TypeError, ValueError):
        coefficient = 2.0
    cap = policy.maximum_interval if policy else None
    failed = max(activity.attempt - 1, 0)
    total = timedelta(0)
    try:
        for done in range(failed):
            wait = min(interval, cap) if cap else interval
            total += limit + wait
            if wait == cap or coefficient <= 1:
                # Every later wait is this one: the rest in one step, however many attempts.
                total += (limit + wait) * (failed - done - 1)
                break
            interval = interval * coefficient
            if total > _NO_BOUND:
                return None
    except (OverflowError, ValueError):  # absurd policies or attempt counts
        return None
    return None if total > _NO_BOUND else total + _RETRY_SLACK


#: Retries that may take longer than this explain any silence.
_NO_BOUND = timedelta(days=1)


def silence_cause(run: RunEvidence, after: int) -> str:
    """A short guess at why nothing happened before event ``after``, from what ended the silence.

    ``grader timeline`` and the HTML picture both print it; whether the silence
    counts as an outage is the network-partition check's call (see
    :func:`silence_label`).
    """
    if any(s.event_id == after for s in run.lost_worker_signs):
        return "waiting for a timeout"
    for a in run.activities:
        if a.closed_event_id == after and a.outcome == "timed_out":
            return "waiting for a timeout"
        if a.started_event_id == after and a.attempt > 1:
            lf = a.last_failure
            return "waiting for a timeout" if lf and lf.kind == "timeout" else "retrying"
    if any(h.event_id == after for h in run.handovers) or any(c.event_id == after for c in run.process_changes):
        return "waiting for another worker"
    if not any(w.first_event_id < after for w in run.workers):
        return "no worker running?"
    return "server unreachable?"


def silence_label(run: RunEvidence, before: int, after: int, *, minimum: float) -> tuple[str, bool]:
    """What to call the silence between events ``before`` and ``after``, and whether it is a proven outage.

    The same reading as the network-partition check's: only a silence that
    nothing else explains *and* whose events prove the server was unreachable
    is called "server unreachable" (and drawn as an outage); an unexplained
    silence without that proof says so; one the guess cannot name but the
    check explains says what explains it. ``minimum`` is the shortest silence
    the caller shows (the verdicts of those are worked out once per run and kept).
    """
    verdict = next((j for j in run.silences_over(minimum) if (j.before_event_id, j.after_event_id) == (before, after)),
                   None)
    if verdict is not None and verdict.proven:
        return "server unreachable: proven", True
    if verdict is not None and verdict.counts:
        return "unexplained, but nothing proves the server was unreachable", False
    cause = silence_cause(run, after)
    if cause == "server unreachable?":
        if verdict is not None:
            return f"not an outage: {verdict.explained_by}", False
        return "no outage proven", False
    return cause, False


def find_silences(run: RunEvidence, minimum: float = 0.0) -> list[Silence]:
    """The gaps of at least ``minimum`` seconds between consecutive events of ``run``, longest
    first, each with what explains it (use :meth:`RunEvidence.silences_over`, which keeps them).

    What explains a silence, checked in this order:

    - the run ran no activities, so no outage could have caught any work;
    - the run was reset at its end (what lies before are an older run's events, times included);
    - no worker had picked the run up yet (nothing before it but the start);
    - no worker worked after it (the run was ended from outside);
    - the worker identity changed across it: a crash or a restart (the worker
      expected before it may be the owner of the sticky queue a workflow task
      was left on);
    - the identity is fixed but a new sticky queue (a new process) shows up after it;
    - it ends at the start of a retried attempt and fits in the time the failed
      attempts (each up to its start-to-close timeout) and their backoff may take;
    - it ends at a workflow timer firing no later than the timer was set for.

    A workflow task timed out on a sticky queue is deliberately *not* an
    explanation by itself: whether its worker was really gone shows in who
    worked after the silence (a worker change, above), and a server that
    wakes from a freeze after that timeout was due may fire it although the
    worker is alive.

    Only the gaps that reach ``minimum`` are explained, so a rubric's 10 s
    costs next to nothing on the many histories with no such gap.
    """
    if run.longest_gap is None or run.longest_gap[0] < minimum:
        return []  # most histories: the walk already measured the widest gap
    floor = max(timedelta(seconds=minimum), timedelta.resolution)
    long = []
    previous = None
    for event_id, when in run.event_times.items():  # in event id order, as the walk stored them
        if previous is not None and when - previous[1] >= floor:
            long.append((when - previous[1], previous[0], event_id))
        previous = (event_id, when)
    if not long:
        return []
    events = run.raw_events
    position = {e.id: i for i, e in enumerate(events)}
    retried = {a.started_event_id: a for a in run.activities if a.started_event_id and a.attempt > 1}
    reset_at = {r.event_id for r in run.resets}
    queue_seen: dict[str, int] | None = None  # sticky queue name -> event id where it first appears
    silences = []
    for gap, before_id, after_id in long:
        event = events[position[after_id]]
        before = _worker_up_to(events, position[before_id])
        after = _worker_from(events, position[after_id])
        why = kind = ""
        attempt = next((a for a in run.activities if a.started_event_id and a.closed_event_id
                        and a.started_event_id <= before_id and a.closed_event_id >= after_id), None)
        if not run.activities:
            why, kind = "the run ran no activities, so no outage could catch any work", "no-activities"
        elif after_id in reset_at:
            why, kind = "the run was reset here: the events before it are copies of an older run's", "reset"
        elif before is None:
            why, kind = "no worker had picked the run up yet", "no-worker-yet"
        elif after is None:
            why, kind = "no worker worked after it", "no-worker-after"
        elif before != after:
            why, kind = f"the worker changed across it ({before} -> {after}): a crash or a restart", "worker-changed"
        else:
            if queue_seen is None:
                queue_seen = _sticky_queues(events)
            change = next((c for c in run.process_changes if c.identity == before
                           and c.last_old_event_id <= before_id and after_id <= c.event_id), None)
            if change is not None:
                why, kind = f"{change.describe()}: a crash or a restart", "new-process"
            elif _new_process_after(queue_seen, before, after_id):
                why = f"worker {before} started a new process (a new sticky queue) after it: a restart"
                kind = "new-process"
            elif after_id in retried:
                why = _retry_explains(retried[after_id])
                kind = "retry" if why else ""
            elif event.type == "TimerFired":
                why = _timer_explains(events, position, event, gap)
                kind = "timer" if why else ""
            if not why and attempt is not None:
                why = _slow_attempt_explains(attempt)
                kind = "slow-attempt" if why else ""
        proof = _outage_proof(run, events, position, event, attempt, retried.get(after_id)) if not why else ""
        silences.append(Silence(gap.total_seconds(), before_id, after_id, before, after, why, attempt,
                                kind, proof))
    silences.sort(key=lambda s: -s.seconds)
    return silences


def _worker_up_to(events: list[Any], index: int) -> str | None:
    """The worker expected at ``events[index]``: the last one that worked, or the owner of the
    sticky queue a workflow task was last scheduled on (a task left on a dead worker's sticky
    queue waits there for its timeout)."""
    for event in reversed(events[: index + 1]):
        if event.type in _WORKER_EVENTS:
            identity = event.attrs.get("identity")
            if is_worker_identity(identity):
                return identity
        elif event.type == "WorkflowTaskScheduled":
            queue = event.attrs.get("taskQueue")
            if isinstance(queue, dict) and queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
                owner = sticky_queue_owner(str(queue.get("name") or ""))
                if is_worker_identity(owner):
                    return owner
    return None


def _worker_from(events: list[Any], index: int) -> str | None:
    """The first worker identity on ``events[index]`` or after it."""
    for event in events[index:]:
        if event.type in _WORKER_EVENTS:
            identity = event.attrs.get("identity")
            if is_worker_identity(identity):
                return identity
    return None


def _sticky_queues(events: list[Any]) -> dict[str, int]:
    """Each sticky queue name and the id of the event where it first appears."""
    seen: dict[str, int] = {}
    for event in events:
        if event.type == "WorkflowTaskScheduled":
            queue = event.attrs.get("taskQueue")
            if isinstance(queue, dict) and queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
                seen.setdefault(str(queue.get("name") or ""), event.id)
    return seen


def _retry_explains(a: ActivityEvidence) -> str:
    """Why a silence ending at ``a``'s retried attempt is its retries, or "" when they cannot be."""
    bound = retry_time_bound(a)
    scheduled = parse_time(a.scheduled_time)
    if a.started_at is None or scheduled is None:
        return ""
    waited = a.started_at - scheduled
    if bound is not None and waited > bound:
        return ""
    return (f"{a.activity_type} attempt {a.attempt} started {waited.total_seconds():.1f} s after it was "
            f"scheduled, within what {a.attempt - 1} failed attempt(s) and their backoff may take: "
            "a slow or failing attempt retried")


def _timer_explains(events: list[Any], position: dict[int, int], fired: Any, gap: timedelta) -> str:
    """Why a silence ending at a TimerFired is the timer, or "" when it fired later than set."""
    index = position.get(as_int(fired.attrs.get("startedEventId")))
    if index is None:
        return ""
    duration = parse_duration(events[index].attrs.get("startToFireTimeout"))
    if duration is None or gap > duration + _RETRY_SLACK:
        return ""
    return f"a workflow timer of {duration.total_seconds():g} s"


def _slow_attempt_explains(a: ActivityEvidence) -> str:
    """Why a silence inside ``a``'s final attempt is that attempt being slow, or "" when it cannot be.

    An attempt that completed within its start-to-close deadline on the worker
    that started it fits a slow call just as well as a paused server; one that
    completed past the deadline cannot be a slow call (the server would have
    timed it out) and is left unexplained, with its proof.
    """
    if a.outcome != "completed" or not a.started_by or a.started_by != a.finished_by or outlived_deadline(a):
        return ""
    limit = a.start_to_close_timeout
    within = (f"within its {limit.total_seconds():g} s start-to-close deadline" if limit
              else "and it has no start-to-close deadline")
    return (f"{a.activity_type} attempt {a.attempt} ran on worker {a.started_by} all through it and completed "
            f"{within}: a slow call leaves the same silence, so it proves no outage")


#: How late a server timer must fire to prove the server was not running: a
#: running dev server fires timers within milliseconds, a loaded one within a second.
LATE_TIMER_SLACK = timedelta(seconds=2)


def _outage_proof(run: RunEvidence, events: list[Any], position: dict[int, int], event: Any,
                  attempt: ActivityEvidence | None, retry: ActivityEvidence | None = None) -> str:
    """Proof, from the events around an unexplained silence, that the server was unreachable; "" if none.

    A running server times out an attempt at its start-to-close deadline and
    fires its own timers on time. So an attempt that completed past its
    deadline on the same worker, or a timer or a timeout recorded well after it
    was due, can only mean the server itself stopped for that long.
    """
    if attempt is not None and outlived_deadline(attempt):
        return late_attempt_text(attempt)
    if event.when is None:
        return ""
    if retry is not None:
        return _late_timeout_text(retry)
    due: datetime | None = None
    what = ""
    if event.type == "TimerFired":
        index = position.get(as_int(event.attrs.get("startedEventId")))
        started = events[index] if index is not None else None
        duration = parse_duration(started.attrs.get("startToFireTimeout")) if started is not None else None
        if started is not None and started.when is not None and duration is not None:
            due, what = started.when + duration, f"the workflow timer of {duration.total_seconds():g} s"
    elif event.type == "WorkflowTaskTimedOut" and strip_prefix(
            event.attrs.get("timeoutType"), "TIMEOUT_TYPE_") == "START_TO_CLOSE":
        index = position.get(as_int(event.attrs.get("startedEventId")))
        scheduled = position.get(as_int(event.attrs.get("scheduledEventId")))
        limit = parse_duration(events[scheduled].attrs.get("startToCloseTimeout")) if scheduled is not None else None
        if index is not None and events[index].when is not None and limit is not None:
            due, what = events[index].when + limit, f"the workflow task's {limit.total_seconds():g} s timeout"
    elif event.type == "ActivityTaskTimedOut":
        a = next((x for x in run.activities if x.closed_event_id == event.id), None)
        failure = a.failure if a is not None else None
        if (a is not None and a.started_at is not None and a.start_to_close_timeout is not None
                and failure is not None and failure.timeout_type == "START_TO_CLOSE"):
            due = a.started_at + a.start_to_close_timeout
            what = f"{a.activity_type}'s {a.start_to_close_timeout.total_seconds():g} s start-to-close timeout"
    if due is None or event.when - due <= LATE_TIMER_SLACK:
        return ""
    return (f"{what} was recorded at event {event.id}, {(event.when - due).total_seconds():.1f} s after it was "
            "due: a running server keeps its timers, so the server was unreachable")


def _late_timeout_text(a: ActivityEvidence) -> str:
    """Proof from a retried attempt whose earlier attempts timed out: "" when there is none.

    Called for a silence ending at ``a``'s retried attempt with the same worker
    process on both sides, which was polling all along. A running server times
    each attempt out at its start-to-close deadline and hands the retry to
    that worker's waiting poll at once, so the retried attempt starts within
    :func:`retry_time_bound` of the scheduling. Starting well after that bound
    means the server recorded the timeout long after it was due.
    """
    lf = a.last_failure
    if lf is None or lf.kind != "timeout" or lf.timeout_type not in ("START_TO_CLOSE", "HEARTBEAT"):
        return ""
    bound = retry_time_bound(a)
    scheduled = parse_time(a.scheduled_time)
    if bound is None or scheduled is None or a.started_at is None:
        return ""
    late = a.started_at - scheduled - bound
    if late <= LATE_TIMER_SLACK:
        return ""
    return (f"{a.activity_type} attempt {a.attempt} started {(a.started_at - scheduled).total_seconds():.1f} s after "
            f"it was scheduled, {late.total_seconds():.1f} s later than {a.attempt - 1} attempt(s) timing out at "
            f"their deadline and the backoff allow, with the same worker polling: the server recorded the "
            "timeout long after it was due, so the server was unreachable")


#: The longest a workflow task may wait on a sticky queue before a *running* server times it
#: out: the SDKs' default sticky schedule-to-start timeout is 5 s (Go, Java) or 10 s (Python,
#: TypeScript), plus slack. A later timeout may be a frozen server catching up on its timers.
STICKY_TIMEOUT_BOUND = timedelta(seconds=12)


def find_process_changes(events: list[Any], *, after: int = 0) -> list[ProcessChange]:
    """Processes lost and replaced under one identity, from the sticky queues (see :class:`ProcessChange`).

    Events up to ``after`` (a reset point) are an older run's copies and are skipped.
    """
    sticky_of: dict[int, str] = {}  # WorkflowTaskScheduled event id -> its sticky queue
    uses: dict[str, list[int]] = {}  # sticky queue -> the WorkflowTaskScheduled ids that used it
    position: dict[int, int] = {}
    for index, event in enumerate(events):
        position[event.id] = index
        if event.type == "WorkflowTaskScheduled" and event.id > after:
            queue = event.attrs.get("taskQueue")
            if isinstance(queue, dict) and queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
                name = str(queue.get("name") or "")
                if is_worker_identity(sticky_queue_owner(name)):
                    sticky_of[event.id] = name
                    uses.setdefault(name, []).append(event.id)
    if not sticky_of:
        return []
    changes: list[ProcessChange] = []
    gone: set[str] = set()
    for index, event in enumerate(events):
        if event.type != "WorkflowTaskTimedOut" or event.id <= after or strip_prefix(
                event.attrs.get("timeoutType"), "TIMEOUT_TYPE_") != "SCHEDULE_TO_START":
            continue
        scheduled_id = as_int(event.attrs.get("scheduledEventId"))
        name = sticky_of.get(scheduled_id)
        if name is None or any(u > event.id for u in uses[name]):
            continue  # not a sticky task, or its process answered on that queue later: it lived on
        scheduled = events[position[scheduled_id]]
        if scheduled.when is None or event.when is None or event.when - scheduled.when > STICKY_TIMEOUT_BOUND:
            continue  # a late timeout may be a frozen server catching up, not a lost process
        owner = sticky_queue_owner(name)
        taken = next((e for e in events[index + 1:] if e.type == "WorkflowTaskStarted"), None)
        if taken is None or taken.attrs.get("identity") != owner:
            continue  # nobody went on, or another identity did (a Handover)
        gone.add(name)
        changes.append(ProcessChange(owner, taken.id, name, "sticky queue unanswered",
                                     (scheduled_id, event.id, taken.id), scheduled_id,
                                     (event.when - scheduled.when).total_seconds()))
    last: dict[str, tuple[str, int]] = {}  # identity -> (its latest sticky queue, where it was used)
    for scheduled_id in sorted(sticky_of):
        name = sticky_of[scheduled_id]
        owner = sticky_queue_owner(name)
        previous = last.get(owner)
        if previous and previous[0] != name and previous[0] not in gone and max(uses[previous[0]]) < scheduled_id:
            # The completion that named the new queue is the new process's first certain work.
            started = next((e.id for e in reversed(events[:position[scheduled_id]])
                            if e.type == "WorkflowTaskStarted" and e.attrs.get("identity") == owner), scheduled_id)
            changes.append(ProcessChange(owner, started, previous[0], "new sticky queue",
                                         (previous[1], scheduled_id), previous[1]))
        last[owner] = (name, scheduled_id)
    changes.sort(key=lambda c: c.event_id)
    return changes


def _new_process_after(queue_seen: dict[str, int], identity: str, event_id: int) -> bool:
    """True when ``identity`` had a sticky queue before ``event_id`` and a different one from it on.

    Each worker process polls its own sticky queue, so a second name under one
    fixed identity is a second process.
    """
    firsts = [at for name, at in queue_seen.items() if sticky_queue_owner(name) == identity]
    return any(at < event_id for at in firsts) and any(at >= event_id for at in firsts)


def _handovers(sequence: list[tuple[int, str]], *, after: int) -> list[Handover]:
    """Each first appearance of a new worker identity after another one had worked.

    Events up to ``after`` (a reset point) are copies from an older run and
    prove nothing about this one.
    """
    sequence = [(eid, ident) for eid, ident in sequence if eid > after]
    last_seen: dict[str, int] = {}
    for eid, ident in sequence:
        last_seen[ident] = eid
    handovers: list[Handover] = []
    seen: set[str] = set()
    current: str | None = None
    for eid, ident in sequence:
        if ident not in seen and current is not None:
            handovers.append(Handover(current, ident, eid, final=last_seen[current] < eid))
        seen.add(ident)
        current = ident
    return handovers


def _pending(raw: list[dict[str, Any]] | None) -> list[PendingActivity] | None:
    if raw is None:
        return None
    pending = []
    for item in raw:
        pending.append(PendingActivity(
            activity_type=(item.get("activityType") or {}).get("name", ""),
            state=strip_prefix(item.get("state"), "PENDING_ACTIVITY_STATE_"),
            attempt=as_int(item.get("attempt"), 1),
            last_failure=classify_failure(item.get("lastFailure")),
            last_worker_identity=item.get("lastWorkerIdentity") or None,
        ))
    return pending
