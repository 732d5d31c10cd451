"""A class's histories read live: one listing, then each learner's runs, retried through faults.

The namespace's ``MoneyTransfer`` workflows are listed once, page by page,
and grouped by the learner id that owns each workflow id
(:func:`grader.learner.learner_of`), instead of one listing per learner;
only each learner's newest ``limit`` runs are kept while paging, so memory
follows the class, not the namespace's history. Every request takes a turn
from a :class:`~grader.classroom.pacing.Pacer` first. Reads that fail for a
passing reason (the server restarting, a dropped connection) are retried with
a bounded, doubling backoff; the budget is shared, so once the server has
been gone for the whole budget every read gives up at once rather than each
waiting its own turn. ``ResourceExhausted`` (the server rate-limits us) is
not an outage: the pacer slows down, says so, and the read is tried again.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import Counter
from typing import Awaitable, Callable, TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from grader.classroom.pacing import Pacer
from grader.connect import ServerTimeoutError, Target, answered, rpc_deadline
from grader.errors import ServerUnavailableError
from grader.learner import learner_key, learner_of
from grader.sources import visibility_query

T = TypeVar("T")

#: Statuses that say "try again later", not "this request is wrong".
TRANSIENT = frozenset({
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
    if isinstance(err, ServerUnavailableError):
        err = err.__cause__
    return isinstance(err, RPCError) and err.status == RPCStatusCode.RESOURCE_EXHAUSTED


def is_transient(err: BaseException) -> bool:
    """True for a failure that may pass: the server restarting, overloaded, slow, or a dropped connection.

    :func:`grader.connect.answered` turns a gone or silent server into
    :class:`ServerUnavailableError`; its cause says which. Refused
    credentials and unknown workflows are not transient.
    """
    if isinstance(err, ServerTimeoutError):
        return True
    if isinstance(err, ServerUnavailableError):
        err = err.__cause__
    return isinstance(err, RPCError) and err.status in TRANSIENT


class Retrier:
    """Retries transient RPC errors with a doubling backoff, within one budget shared by all reads."""

    def __init__(self, budget: float = DEFAULT_RETRY_SECONDS, *, first: float = 0.2, cap: float = 2.0) -> None:
        #: Seconds of continuous failure after which reads stop retrying.
        self.budget = budget
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
        answer slows ``pacer`` down and is tried again after a backoff, up to
        :data:`MAX_THROTTLED_TRIES` times, without counting as an outage.
        """
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
                left = self.budget - (now - self.down_since)
                if given_up or left <= 0:
                    self._last_error = err
                    raise
                self._last_error = err
                if not counted:
                    self.retried += 1
                    counted = True
                # Jitter keeps 32 readers from hammering a restarting server in step.
                await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.0)))
                delay = min(delay * 2, self.cap)
                continue
            self.down_since = None
            return result

    def _given_up(self) -> bool:
        return (self.down_since is not None and self._last_error is not None
                and time.monotonic() - self.down_since >= self.budget)


async def list_learner_runs(client: Client, retrier: Retrier, target: Target, *,
                            learners: set[str] | None = None, limit: int = 20,
                            pacer: Pacer | None = None) -> dict[str, list[tuple[str, str]]]:
    """Learner id -> its newest ``limit`` runs as ``(workflow_id, run_id)``, newest first.

    Only workflow ids that start with a valid learner id and ``-`` count;
    with ``learners``, only those learners' runs are kept. Ids match
    case-insensitively (:func:`grader.learner.learner_key`): a learner given
    in ``learners`` is returned under that spelling, others under the
    spelling most of their workflow ids use. The listing is read a page at a
    time, each page paced by ``pacer`` and retried on its own (a fault on
    page 90 does not read pages 1-89 again), and each learner keeps at most
    ``limit`` runs while paging.
    """
    from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

    wanted: dict[str, list[str]] | None = None
    if learners is not None:
        wanted = {}
        for name in sorted(learners):  # a roster naming bob and BOB gives both the same runs
            wanted.setdefault(learner_key(name), []).append(name)
    newest: dict[str, list[tuple[float, str, str]]] = {}
    spellings: dict[str, Counter] = {}
    token = b""
    query = visibility_query(None)
    while True:
        request = ListWorkflowExecutionsRequest(namespace=target.namespace, page_size=PAGE_SIZE,
                                                next_page_token=token, query=query)
        # Each page is bounded by the RPC timeout, not the whole listing: a big namespace takes many pages.
        page = await retrier.call(lambda: answered(client.workflow_service.list_workflow_executions(
            request, timeout=rpc_deadline(target)), target), pacer=pacer)
        for info in page.executions:
            workflow_id = info.execution.workflow_id
            owner = learner_of(workflow_id)
            if owner is None:
                continue
            key = learner_key(owner)
            if wanted is not None and key not in wanted:
                continue
            if wanted is None:
                spellings.setdefault(key, Counter())[owner] += 1
            item = (info.start_time.seconds + info.start_time.nanos / 1e9, workflow_id, info.execution.run_id)
            kept = newest.setdefault(key, [])
            # A min-heap of the newest `limit` runs: a run older than all of them is dropped at once.
            if len(kept) < limit:
                heapq.heappush(kept, item)
            elif item > kept[0]:
                heapq.heapreplace(kept, item)
        token = page.next_page_token
        if not token:
            break
    runs: dict[str, list[tuple[str, str]]] = {}
    for key, items in newest.items():
        if wanted is not None:
            names = wanted[key]
        else:  # the spelling most runs use; ties go to the first in sorted order
            counted = spellings[key]
            names = [min(counted, key=lambda s: (-counted[s], s))]
        ordered = [(wid, rid) for _, wid, rid in sorted(items, reverse=True)]
        for name in names:
            runs[name] = list(ordered)
    return runs
