"""`grader timeline`: one history as a short timeline, the way the grader reads it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader.cli.options import connection_options, max_history_bytes_option

if TYPE_CHECKING:  # grader.sources.connect stays unimported until a server is needed
    from grader.sources.connect import ConnectionSettings


@click.command("timeline")
@click.argument("workflow_id", required=False)
@click.option("--history", "history_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Read the history from a file instead of the server.")
@max_history_bytes_option
@connection_options
def command(workflow_id: str | None, history_file: Path | None, max_history_bytes: int,
            connection: ConnectionSettings) -> None:
    """Show one history as a short timeline: what the grader saw.

    Time since start, activity, attempt, worker and failure on each line, and
    a marker where a worker was lost.
    """
    from grader.engine.evidence import build_evidence
    from grader.engine.history import load_history_file
    from grader.engine.timeline import render_timeline

    if (workflow_id is None) == (history_file is None):
        raise click.UsageError("give a WORKFLOW_ID or --history FILE (one of them)")
    if history_file is not None:
        history = load_history_file(history_file, max_bytes=max_history_bytes)
    else:
        from grader.background import run_sync  # asyncio and the rest only on the live path

        history = run_sync(_fetch_for_timeline(connection, workflow_id))
    click.echo(render_timeline(history, build_evidence(history)), nl=False)


async def _fetch_for_timeline(connection: ConnectionSettings, workflow_id: str) -> Any:
    from grader.sources.connect import connect
    from grader.errors import BadInputError
    from grader.engine.history import History
    from grader.sources.live import fetch_one

    target = connection.resolve()
    client = await connect(target)
    item = await fetch_one(client, workflow_id, None, target=target)
    if not isinstance(item, History):
        raise BadInputError(item)
    return item
