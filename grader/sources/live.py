"""Histories read live from a Temporal server: the given ids, or a learner's newest runs.

Produces the same :class:`grader.sources.loaded.Loaded` as the file sources;
nothing after this module knows which one was used.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence, Any

from grader import defaults
from grader.engine.evidence import CLOSE_STATUS
from grader.engine.history import History, history_from_proto
from grader.engine.learner import owns, prefix_spellings, validate_learner_id
from grader.errors import BadInputError, HistoryError
from grader.sources.loaded import Loaded

if TYPE_CHECKING:
    # Only the live path needs the SDK, protobuf, asyncio and grader.sources.connect; they are
    # imported there, so offline grading starts fast (benchmarks/bench_startup.py).
    from temporalio.client import Client

    from grader.sources.connect import ConnectionSettings, Target

#: How many workflows ``grader check`` reads from a server when no id is given.
DEFAULT_LIMIT = defaults.LIVE_LIMIT
_CONCURRENCY = 50


def ui_link(ui_url: str, namespace: str, workflow_id: str, run_id: str) -> str:
    """The Web UI page of one run's event history."""
    return f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}/{run_id}/history"


#: The pack ``--pack`` named for the command running now; None lists every pack's workflows.
_chosen_pack: Any = None


def use_pack(pack: Any) -> None:
    """List only ``pack``'s workflows from now on (``--pack``), or with None every pack's again.

    :func:`grader.cli.options.apply_pack` sets it for one command and undoes
    it when the command closes, so one command's ``--pack`` never narrows the
    next one run in the same process (a test, a notebook).
    """
    global _chosen_pack
    _chosen_pack = pack


def listed_packs(rubric: Any = None) -> list:
    """The packs whose workflows a live read lists: ``--pack``'s; else the one ``rubric`` grades; else every pack."""
    from grader.packs import all_packs, pack_for_rubric

    if _chosen_pack is not None:
        return [_chosen_pack]
    pack = pack_for_rubric(rubric) if rubric is not None else None
    return [pack] if pack is not None else list(all_packs().values())


def listed_workflow_types(rubric: Any = None) -> tuple[str, ...]:
    """The workflow type names a live read asks the server for, every SDK spelling (the server compares case)."""
    return tuple(dict.fromkeys(t for p in listed_packs(rubric) for t in p.workflow_types))


def listed_label(rubric: Any = None) -> str:
    """The listed workflow types as a message names them: ``MoneyTransfer``, or ``MoneyTransfer or ...``."""
    return " or ".join(p.workflow_label for p in listed_packs(rubric))


def visibility_query(learner: str | None, rubric: Any = None) -> str:
    """The list filter for the graded packs' workflows, narrowed to the ids a learner owns (``ada-...``).

    The workflow types are :func:`listed_workflow_types`'s (``--pack``'s, the
    pack ``rubric`` grades, or every pack's).

    The server compares case-sensitively, so the usual spellings of the id
    are asked for (:func:`grader.engine.learner.prefix_spellings`); callers keep
    only what :func:`grader.engine.learner.owns` accepts.
    """
    query = _type_filter(listed_workflow_types(rubric))
    if learner:
        spellings = prefix_spellings(validate_learner_id(learner))
        either = " OR ".join(f"WorkflowId STARTS_WITH {_quote(p)}" for p in spellings)
        query += f" AND ({either})" if len(spellings) > 1 else f" AND {either}"
    return query


async def read_live(
    connection: ConnectionSettings | Target | str | None = None,
    namespace: str | None = None,
    *,
    workflow_ids: Sequence[str] = (),
    learner: str | None = None,
    limit: int = DEFAULT_LIMIT,
    ui_url: str | None = None,
    client: Client | None = None,
) -> Loaded:
    """Fetch histories from a server: the given ids, every run of ``learner``, or the newest MoneyTransfer runs.

    A learner's runs are all read, never only the newest ``limit``: anyone
    who can start workflows on a shared server could otherwise push them out
    of view with decoys under the learner's id. ``limit`` bounds the runs of
    a workflow id and the listing of everyone's runs.

    ``connection`` is where (see :func:`grader.sources.connect.as_target`; a plain
    string is an address). Runs still open also carry what ``describe()``
    says of their pending activities, so a check can tell a learner what the
    run is waiting for. Every call is bounded by the target's RPC timeout.
    Raises :class:`grader.errors.ServerUnavailableError` when nothing answers
    (or stops answering midway).
    """
    import asyncio

    from grader.sources.connect import as_target, connect

    target = as_target(connection, namespace)
    if ui_url is not None:
        target = dataclasses.replace(target, ui_url=ui_url)
    client = client or await connect(target)
    loaded = Loaded(sources=[f"server {target.address}/{target.namespace}"])
    targets: list[tuple[str, str | None]] = []
    for wid in workflow_ids:
        # The official tutorial app reuses one workflow id for every transfer:
        # grade every run of it (newest first), not just the latest.
        runs = await newest_runs(client, f"WorkflowId = {_quote(wid)}", limit, target)
        targets += [(e.id, e.run_id) for e in runs] or [(wid, None)]
    if not workflow_ids:
        found = (await learner_runs(client, learner, target) if learner else
                 await newest_runs(client, visibility_query(None), limit, target))
        targets = [(e.id, e.run_id) for e in found]
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(workflow_id: str, run_id: str | None) -> History | str:
        async with gate:
            return await fetch_one(client, workflow_id, run_id, target=target)

    for item in await asyncio.gather(*(one(w, r) for w, r in targets)):
        if isinstance(item, History):
            loaded.histories.append(item)
        else:
            loaded.errors.append(item)
    if learner and loaded.histories:
        from temporalio.service import RPCError

        try:
            loaded.others = await queue_neighbours(client, target, loaded.histories, learner, limit=limit)
        except RPCError:
            # A server whose visibility cannot filter by TaskQueue: this learner's grade does not
            # depend on it; cross-talk is then seen only where several learners are graded together.
            loaded.others = []
    return loaded


async def queue_neighbours(client: Client, target: Target, histories: Sequence[History], learner: str, *,
                           limit: int = DEFAULT_LIMIT) -> list[History]:
    """Other learners' newest runs (up to ``limit`` a queue) on the task queues ``learner``'s runs used.

    A worker takes whatever its queue holds, so another learner's worker can
    only have done this learner's work if it polled one of these queues: its
    runs there are where its sticky queue and identity show. With a task
    queue per learner (the apps' default) the listing finds nobody else and
    nothing more is read.
    """
    import asyncio

    from grader.engine.ownership import task_queue_of
    from grader.sources.connect import answered, rpc_deadline

    queues = sorted({q for q in map(task_queue_of, histories) if q})
    found: list = []
    for queue in queues:
        query = f"{_type_filter(listed_workflow_types())} AND TaskQueue = {_quote(queue)}"

        async def listing() -> list:
            return [e async for e in client.list_workflows(query, limit=limit * 5, rpc_timeout=rpc_deadline(target))
                    if not owns(learner, e.id)]

        runs = await answered(listing(), target)
        runs.sort(key=lambda e: e.start_time, reverse=True)
        found += runs[:limit]
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(workflow_id: str, run_id: str) -> History | str:
        async with gate:
            return await fetch_one(client, workflow_id, run_id, target=target)

    fetched = await asyncio.gather(*(one(e.id, e.run_id) for e in found))
    return [h for h in fetched if isinstance(h, History)]


def _type_filter(names: Sequence[str]) -> str:
    """``WorkflowType = 'A'``, or ``WorkflowType IN ('A', 'B')`` for several."""
    if len(names) == 1:
        return f"WorkflowType = {_quote(names[0])}"
    return f"WorkflowType IN ({', '.join(map(_quote, names))})"


def _quote(value: str) -> str:
    if "'" in value:
        raise BadInputError(f"{value!r}: a workflow id or learner id cannot contain a quote")
    return f"'{value}'"


async def learner_runs(client: Client, learner: str, target: Target) -> list:
    """Every run ``learner`` owns, newest first, read page by page (each page bounded by the RPC timeout)."""
    from grader.sources.connect import answered, rpc_deadline

    async def listing() -> list:
        return [e async for e in client.list_workflows(visibility_query(learner), page_size=1000,
                                                       rpc_timeout=rpc_deadline(target))
                if owns(learner, e.id)]

    found = await answered(listing(), target)
    found.sort(key=lambda e: e.start_time, reverse=True)
    return found


async def newest_runs(client: Client, query: str, limit: int, target: Target, *,
                      learner: str | None = None) -> list:
    """Up to ``limit`` executions matching ``query``, newest first (the dev server rejects ORDER BY).

    With ``learner``, only ids that learner owns are kept, whatever the
    visibility store's idea of a prefix match is.
    """
    from grader.sources.connect import answered, rpc_deadline

    async def listing() -> list:
        return [e async for e in client.list_workflows(query, limit=limit * 5, rpc_timeout=rpc_deadline(target))
                if learner is None or owns(learner, e.id)]

    found = await answered(listing(), target)
    found.sort(key=lambda e: e.start_time, reverse=True)
    return found[:limit]


#: How many of a server's newest MoneyTransfer runs :func:`learners_at` looks at.
LEARNER_SCAN = 1000


async def learners_at(client: Client, target: Target, *, scan: int = LEARNER_SCAN) -> dict[str, int]:
    """Learner id -> how many runs they have among the server's newest ``scan`` MoneyTransfer runs.

    What ``grader check`` asks before grading when no learner was named: one
    learner's runs are theirs to grade, several learners' are not. Ids match
    case-insensitively; each learner is shown in the spelling most of their
    runs use. Runs whose id names no learner are left out.
    """
    from collections import Counter

    from grader.sources.connect import answered, rpc_deadline
    from grader.engine.learner import learner_key, learner_of

    async def listing() -> list[str]:
        return [e.id async for e in client.list_workflows(visibility_query(None), limit=scan,
                                                          rpc_timeout=rpc_deadline(target))]

    spellings: dict[str, Counter] = {}
    for workflow_id in await answered(listing(), target):
        owner = learner_of(workflow_id)
        if owner is not None:
            spellings.setdefault(learner_key(owner), Counter())[owner] += 1
    return {min(c, key=lambda s: (-c[s], s)): sum(c.values()) for c in spellings.values()}


async def fetch_one(client: Client, workflow_id: str, run_id: str | None, *, target: Target | None = None,
                    address: str | None = None, ui_url: str | None = None) -> History | str:
    """One run's history (and, if it is still open, its pending activities), or an error line.

    A server that stops answering raises :class:`grader.errors.ServerUnavailableError`
    instead of becoming an error line, since no other run would fare better.
    (``address`` and ``ui_url`` describe the target for callers that have no
    :class:`Target`.)
    """
    from temporalio.service import RPCError, RPCStatusCode

    from grader.sources.connect import as_target

    if target is None:
        target = as_target(address or client.service_client.config.target_host, client.namespace)
        target = dataclasses.replace(target, ui_url=ui_url)
    try:
        return await fetch_run(client, workflow_id, run_id, target=target)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return f"workflow {workflow_id!r}: not found in namespace {client.namespace!r} at {target.address}"
        return f"workflow {workflow_id!r}: the server refused to return it ({err.message})"
    except HistoryError as err:
        return str(err)


async def fetch_run(client: Client, workflow_id: str, run_id: str | None, *, target: Target,
                    sdk_retries: bool = True) -> History:
    """One run's history (and, if it is still open, its pending activities).

    With ``sdk_retries=False`` the history is read without the SDK's own
    retries, so a caller that paces itself sees each ``ResourceExhausted``
    (the SDK would otherwise wait it out silently, seconds per read).

    A closed run costs one call; only an open run is also described, since
    its attempts and last failure exist nowhere else until it ends. Each call
    is bounded by ``target``'s RPC timeout. Raises :class:`ServerUnavailableError`
    when the server is gone or does not answer (a caller may retry), the
    server's other ``RPCError`` (not found ...) or :class:`HistoryError`.
    """
    from google.protobuf.json_format import MessageToDict

    from grader.sources.connect import answered, rpc_deadline

    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    source = f"server {target.address}/{client.namespace}"
    deadline = rpc_deadline(target)
    if sdk_retries:
        proto = await answered(handle.fetch_history(rpc_timeout=deadline), target)
    else:
        proto = await answered(_history_without_retries(client, workflow_id, run_id, deadline), target)
    history = history_from_proto(proto, workflow_id=workflow_id, source=source)
    still_open = history.events[-1].type not in CLOSE_STATUS
    # A reset run's events carry the old run's id, so its own id must be asked for.
    if still_open or (run_id is None and _was_reset(history)):
        description = await answered(handle.describe(rpc_timeout=deadline), target)
        run_id = run_id or description.run_id
        if still_open:
            history.pending_activities = [
                MessageToDict(p) for p in description.raw_description.pending_activities
            ]
    history.run_id = run_id or history.run_id
    if target.ui_url:
        history.ui_link = ui_link(target.ui_url, client.namespace, workflow_id, history.run_id)
    return history


async def _history_without_retries(client: Client, workflow_id: str, run_id: str | None, deadline: Any) -> Any:
    """A run's whole history, page by page, each page one call the SDK does not retry."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
    from temporalio.client import WorkflowHistory

    events: list[Any] = []
    token = b""
    while True:
        request = GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
            next_page_token=token)
        page = await client.workflow_service.get_workflow_execution_history(request, retry=False, timeout=deadline)
        events.extend(page.history.events)
        token = page.next_page_token
        if not token:
            return WorkflowHistory(workflow_id, events)


def _was_reset(history: History) -> bool:
    return any(e.type == "WorkflowTaskFailed" and str(e.attrs.get("cause", "")).endswith("RESET_WORKFLOW")
               for e in history.events)
