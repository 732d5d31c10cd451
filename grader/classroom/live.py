"""A class's histories read live: one listing, then each learner's runs, retried through faults.

The namespace's workflows of the graded type are listed once and grouped by
the learner id that owns each workflow id (:func:`grader.engine.learner.learner_of`),
instead of one listing per learner. Reads that fail for a passing reason
(the server restarting, overloaded, a dropped connection) are retried with a
bounded, doubling backoff; the budget is shared, so once the server has been
gone for the whole budget every read gives up at once rather than each
waiting its own turn.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from grader.classroom.pacing import Pacer
from grader.sources.connect import ServerTimeoutError, Target, answered, rpc_deadline
from grader.errors import BadInputError, ServerUnavailableError
from grader.engine.learner import learner_key, learner_of
from grader.sources.live import visibility_query

if TYPE_CHECKING:  # the SDK is imported by what talks to a server, not by a batch of files
    from temporalio.client import Client

T = TypeVar("T")


@cache
def transient_statuses() -> frozenset:
    """Statuses that say "try again later", not "this request is wrong"."""
    from temporalio.service import RPCStatusCode

    return frozenset({
        RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED, RPCStatusCode.INTERNAL, RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED,
    })

#: Seconds a batch keeps retrying while the server does not answer.
DEFAULT_RETRY_SECONDS = 30.0
#: Tries of one read the server keeps throttling (ResourceExhausted), backing off up to 10 s between them.
MAX_THROTTLED_TRIES = 12
#: Runs a listing page asks for (the server's own maximum is 1,000).
PAGE_SIZE = 1000


def is_throttle(err: BaseException) -> bool:
    """True for ``ResourceExhausted``: the server is up but rate-limits this namespace (or this client)."""
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(err, ServerUnavailableError):
        err = err.__cause__
    return isinstance(err, RPCError) and err.status == RPCStatusCode.RESOURCE_EXHAUSTED


def is_transient(err: BaseException) -> bool:
    """True for a failure that may pass: the server restarting, overloaded, slow, or a dropped connection.

    :func:`grader.sources.connect.answered` turns a gone or silent server into
    :class:`ServerUnavailableError`; its cause says which. Refused
    credentials and unknown workflows are not transient.
    """
    from temporalio.service import RPCError

    if isinstance(err, ServerTimeoutError):
        return True
    if isinstance(err, ServerUnavailableError):
        err = err.__cause__
    return isinstance(err, RPCError) and err.status in transient_statuses()


class Retrier:
    """Retries transient RPC errors with a doubling backoff, within one budget shared by all reads."""

    def __init__(self, budget: float = DEFAULT_RETRY_SECONDS, *, first: float = 0.2, cap: float = 2.0,
                 notify: Callable[[str], None] | None = None) -> None:
        #: Seconds of continuous failure after which reads stop retrying.
        self.budget = budget
        #: Where a stall is reported, once when it starts, once when it ends or is given up on
        #: (a batch's progress line): a long silence must never look like a hang.
        self.notify = notify
        #: When the first call that failed in the current stall was started (monotonic).
        self._stall_began: float | None = None
        self._said_given_up = False
        self.first = first
        self.cap = cap
        #: When the server last started failing (monotonic), None while it answers.
        self.down_since: float | None = None
        #: How many reads were retried at least once (for the summary).
        self.retried = 0
        #: How many answers were ResourceExhausted (the server rate-limiting us).
        self.throttled = 0
        self._last_error: BaseException | None = None
        #: Seconds between two probes of a server given up on.
        self.probe_every = 5.0
        self._last_probe = 0.0

    async def call(self, make: Callable[[], Awaitable[T]], *, pacer: Pacer | None = None) -> T:
        """Await ``make()``; on a transient failure wait and call it again, until the budget is spent.

        Each try first waits for its turn from ``pacer``. A ``ResourceExhausted``
        answer is not an outage: it slows ``pacer`` down (which says so) and
        the read is tried again after a backoff, up to
        :data:`MAX_THROTTLED_TRIES` times.
        """
        import asyncio  # not at the top: a batch of files imports this module and never needs it

        from temporalio.service import RPCError

        delay = self.first
        counted = False
        throttled = 0
        while True:
            given_up = self._given_up()
            if given_up:
                # The server has been gone for the whole budget: further reads fail at once (each
                # would otherwise sit through the SDK's own retries first), except one probe every
                # few seconds, so a server that comes back is noticed and the rest of the class read.
                now = time.monotonic()
                if now - self._last_probe < self.probe_every:
                    raise self._last_error
                self._last_probe = now
            if pacer is not None:
                await pacer.take()
            started = time.monotonic()
            try:
                result = await make()
            except (RPCError, ServerUnavailableError) as err:
                if not is_transient(err):
                    raise
                if is_throttle(err) and throttled < MAX_THROTTLED_TRIES:
                    throttled += 1
                    self.throttled += 1
                    if pacer is not None:
                        pacer.throttled()
                    await asyncio.sleep(min(10.0, 0.25 * 2 ** throttled) * random.uniform(0.5, 1.0))
                    continue
                now = time.monotonic()
                if self.down_since is None:
                    self.down_since = now
                    self._stall_began = started
                    self._say(f"the server is not answering ({_reason(err)}): waiting up to {self.budget:g} s "
                              "for it, then carrying on")
                left = self.budget - (now - self.down_since)
                if given_up or left <= 0:
                    self._last_error = err
                    if not self._said_given_up:
                        self._said_given_up = True
                        self._say(f"the server has not answered for {now - (self._stall_began or now):.0f} s: "
                                  "reads left unanswered are marked not-gradable (grade them again later); "
                                  f"still asking every {self.probe_every:g} s")
                    raise
                self._last_error = err
                if not counted:
                    self.retried += 1
                    counted = True
                # Jitter keeps 32 readers from hammering a restarting server in step.
                await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.0)))
                delay = min(delay * 2, self.cap)
                continue
            if self.down_since is not None:
                silent = time.monotonic() - (self._stall_began or self.down_since)
                self._say(f"the server answers again after {silent:.0f} s of silence: carrying on")
            self.down_since = None
            self._stall_began = None
            self._said_given_up = False
            return result

    def _say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)

    def _given_up(self) -> bool:
        return (self.down_since is not None and self._last_error is not None
                and time.monotonic() - self.down_since >= self.budget)


def _reason(err: BaseException) -> str:
    """A failed call's reason in a few words, for the stall message."""
    if isinstance(err, ServerTimeoutError):
        return "no answer within the RPC timeout"
    from temporalio.service import RPCError

    if isinstance(err, ServerUnavailableError) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, RPCError):
        return f"{err.status.name if err.status is not None else 'error'}: {str(err)[:80]}"
    return str(err)[:80]


_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90d``, ``36h``, ``2w``) or a date or time (``2026-09-01``).

    Raises :class:`BadInputError` with the forms it takes.
    """
    now = now or datetime.now(timezone.utc)
    value = str(text).strip()
    match = _SINCE.match(value.lower())
    if match:
        return now - timedelta(seconds=min(int(match[1]) * _UNIT_SECONDS[match[2]], 100 * 365 * 86400))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"--since {value!r}: give a duration back from now (90d, 36h, 2w) or a date "
                            "(2026-09-01) or time (2026-09-01T08:00)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


async def list_learner_runs(client: Client, retrier: Retrier, target: Target, *,
                            learners: set[str] | None = None,
                            since: datetime | None = None,
                            pacer: Pacer | None = None,
                            rubric: Any = None,
                            types_seen: set[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """Learner id -> every run it started since ``since`` as ``(workflow_id, run_id)``, newest first.

    All of them, page after page: a bound by count (the newest N) would let
    anyone who can start workflows push a learner's real runs out of view
    with decoys under their id; a bound by time cannot be pushed. Only
    workflow ids that start with a valid learner id and ``-`` count; with
    ``learners``, only those learners' runs are kept. Ids match
    case-insensitively (:func:`grader.engine.learner.learner_key`): a learner given
    in ``learners`` is returned under that spelling, others under the
    spelling most of their workflow ids use. Each page is one request, paced
    by ``pacer`` and retried on its own (a fault on page 90 does not read
    pages 1 to 89 again); only the ids of the runs kept are held. The
    workflow types listed are those of the pack ``rubric`` grades
    (:func:`grader.sources.live.listed_workflow_types`; every pack's without
    one), and ``types_seen`` collects those the kept runs have.
    """
    from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

    query = visibility_query(None, rubric)
    if since is not None:
        query += f" AND StartTime >= '{since.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    wanted: dict[str, list[str]] | None = None
    if learners is not None:
        wanted = {}
        for name in sorted(learners):  # a roster naming bob and BOB gives both the same runs
            wanted.setdefault(learner_key(name), []).append(name)
    found: dict[str, list] = defaultdict(list)
    token = b""
    while True:
        request = ListWorkflowExecutionsRequest(namespace=target.namespace, page_size=PAGE_SIZE,
                                                next_page_token=token, query=query)
        # Each page is bounded by the RPC timeout, not the whole listing: a big namespace takes many pages.
        # A raw call is not retried by the SDK, so a ResourceExhausted reaches the Retrier (paced, said).
        page = await retrier.call(lambda: answered(client.workflow_service.list_workflow_executions(
            request, timeout=rpc_deadline(target)), target), pacer=pacer)
        for info in page.executions:
            workflow_id = info.execution.workflow_id
            owner = learner_of(workflow_id)
            if owner is None or (wanted is not None and learner_key(owner) not in wanted):
                continue
            started = info.start_time.seconds + info.start_time.nanos / 1e9
            found[learner_key(owner)].append((started, workflow_id, info.execution.run_id, owner))
            if types_seen is not None:
                types_seen.add(info.type.name)
        token = page.next_page_token
        if not token:
            break
    runs: dict[str, list[tuple[str, str]]] = {}
    for key, items in found.items():
        items.sort(key=lambda item: item[0], reverse=True)
        if wanted is not None:
            names = wanted[key]
        else:  # the spelling most runs use; ties go to the first in sorted order
            spellings = Counter(item[3] for item in items)
            names = [min(spellings, key=lambda s: (-spellings[s], s))]
        for name in names:
            runs[name] = [(wid, rid) for _, wid, rid, _ in items]
    return runs
