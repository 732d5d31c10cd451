"""Where histories come from: exported JSON files, or a Temporal server read live.

Both sources produce :class:`grader.history.History` objects; nothing after
this module knows which one was used. A bad file does not stop the others:
it becomes one line in the error list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from google.protobuf.json_format import MessageToDict
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from grader import defaults
from grader.connect import connect
from grader.errors import BadInputError, HistoryError
from grader.evidence import CLOSE_STATUS
from grader.history import History, history_from_proto, iter_history_paths, load_history_file
from grader.learner import owns, validate_learner_id, workflow_prefix

#: How many workflows ``grader check`` reads from a server when no id is given.
DEFAULT_LIMIT = 20
_CONCURRENCY = 50


@dataclass
class Loaded:
    """Histories read from one source, plus one line per input that failed."""

    histories: list[History] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: A description of each source read, for the report.
    sources: list[str] = field(default_factory=list)


def read_files(paths: Sequence[Path]) -> Loaded:
    """Read every history file (folders expand to their ``*.json``); bad files become errors."""
    loaded = Loaded()
    for path in iter_history_paths(paths):
        loaded.sources.append(str(path))
        try:
            loaded.histories.append(load_history_file(path))
        except HistoryError as err:
            loaded.errors.append(str(err))
    return loaded


def ui_link(ui_url: str, namespace: str, workflow_id: str, run_id: str) -> str:
    """The Web UI page of one run's event history."""
    return f"{ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}/{run_id}/history"


def visibility_query(learner: str | None) -> str:
    """The list filter for MoneyTransfer workflows, narrowed to the ids a learner owns (``ada-...``)."""
    query = f"WorkflowType = {_quote(defaults.WORKFLOW_TYPE)}"
    if learner:
        query += f" AND WorkflowId STARTS_WITH {_quote(workflow_prefix(validate_learner_id(learner)))}"
    return query


async def read_live(
    address: str = defaults.DEFAULT_ADDRESS,
    namespace: str = defaults.DEFAULT_NAMESPACE,
    *,
    workflow_ids: Sequence[str] = (),
    learner: str | None = None,
    limit: int = DEFAULT_LIMIT,
    ui_url: str | None = None,
    client: Client | None = None,
) -> Loaded:
    """Fetch histories from a server: the given ids, or the newest MoneyTransfer runs.

    Runs still open also carry what ``describe()`` says of their pending
    activities, so a check can tell a learner what the run is waiting for.
    Raises :class:`grader.errors.ServerUnavailableError` when nothing answers.
    """
    client = client or await connect(address, namespace)
    ui_url = ui_url or defaults.ui_url_for(address)
    loaded = Loaded(sources=[f"server {address}/{namespace}"])
    targets: list[tuple[str, str | None]] = []
    for wid in workflow_ids:
        # The official tutorial app reuses one workflow id for every transfer:
        # grade every run of it (newest first), not just the latest.
        runs = await _newest(client, f"WorkflowId = {_quote(wid)}", limit)
        targets += [(e.id, e.run_id) for e in runs] or [(wid, None)]
    if not workflow_ids:
        found = await _newest(client, visibility_query(learner), limit, learner=learner)
        targets = [(e.id, e.run_id) for e in found]
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(workflow_id: str, run_id: str | None) -> History | str:
        async with gate:
            return await fetch_one(client, workflow_id, run_id, address=address, ui_url=ui_url)

    for item in await asyncio.gather(*(one(w, r) for w, r in targets)):
        if isinstance(item, History):
            loaded.histories.append(item)
        else:
            loaded.errors.append(item)
    return loaded


def _quote(value: str) -> str:
    if "'" in value:
        raise BadInputError(f"{value!r}: a workflow id or learner id cannot contain a quote")
    return f"'{value}'"


async def _newest(client: Client, query: str, limit: int, *, learner: str | None = None) -> list:
    """Up to ``limit`` executions matching ``query``, newest first (the dev server rejects ORDER BY).

    With ``learner``, only ids that learner owns are kept, whatever the
    visibility store's idea of a prefix match is.
    """
    found = [e async for e in client.list_workflows(query, limit=limit * 5)
             if learner is None or owns(learner, e.id)]
    found.sort(key=lambda e: e.start_time, reverse=True)
    return found[:limit]


async def fetch_one(client: Client, workflow_id: str, run_id: str | None, *, address: str,
                    ui_url: str) -> History | str:
    """One run's history (and, if it is still open, its pending activities), or an error line."""
    try:
        return await fetch_run(client, workflow_id, run_id, address=address, ui_url=ui_url)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return f"workflow {workflow_id!r}: not found in namespace {client.namespace!r} at {address}"
        return f"workflow {workflow_id!r}: the server refused to return it ({err.message})"
    except HistoryError as err:
        return str(err)


async def fetch_run(client: Client, workflow_id: str, run_id: str | None, *, address: str,
                    ui_url: str) -> History:
    """One run's history (and, if it is still open, its pending activities).

    A closed run costs one call; only an open run is also described, since
    its attempts and last failure exist nowhere else until it ends. Raises
    the server's ``RPCError`` (a caller may retry it) or :class:`HistoryError`.
    """
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    source = f"server {address}/{client.namespace}"
    proto = await handle.fetch_history()
    history = history_from_proto(proto, workflow_id=workflow_id, source=source)
    still_open = history.events[-1].type not in CLOSE_STATUS
    # A reset run's events carry the old run's id, so its own id must be asked for.
    if still_open or (run_id is None and _was_reset(history)):
        description = await handle.describe()
        run_id = run_id or description.run_id
        if still_open:
            history.pending_activities = [
                MessageToDict(p) for p in description.raw_description.pending_activities
            ]
    history.run_id = run_id or history.run_id
    history.ui_link = ui_link(ui_url, client.namespace, workflow_id, history.run_id)
    return history


def _was_reset(history: History) -> bool:
    return any(e.type == "WorkflowTaskFailed" and str(e.attrs.get("cause", "")).endswith("RESET_WORKFLOW")
               for e in history.events)
