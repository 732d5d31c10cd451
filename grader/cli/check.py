"""`grader check`: grade the experiments from histories read live or from files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.options import (
    connection_options,
    emit_report,
    grading_options,
    max_history_bytes_option,
    output_options,
)

if TYPE_CHECKING:  # grader.connect stays unimported until a server is needed
    from grader.connect import ConnectionSettings


@click.command("check")
@click.option("--history", "histories", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A history JSON file or a folder of them (repeatable); grades offline.")
@click.option("--workflow-id", "workflow_ids", multiple=True, metavar="ID",
              help="Grade this workflow from the server (repeatable).")
@click.option("--learner", metavar="PREFIX",
              help="Without --workflow-id: only workflows whose id starts with PREFIX.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without --workflow-id: how many of the newest MoneyTransfer runs to read.")
@max_history_bytes_option
@connection_options
@grading_options
@output_options
def command(histories: tuple[Path, ...], workflow_ids: tuple[str, ...], learner: str | None, limit: int,
          max_history_bytes: int, connection: ConnectionSettings, experiments: tuple[str, ...], rubric: str,
          output_format: str) -> None:
    """Grade the experiments from workflow histories.

    \b
    Live (default): reads MoneyTransfer workflows from the server, newest first.
    Offline: --history FILE|DIR, as exported by
      temporal workflow show -w ID --output json > FILE
    or the Web UI's Download button.

    \b
    Exit codes: 0 every graded experiment passed; 1 some failed or are still
    running; 2 bad input (a history file, the rubric, an option, an address);
    3 no server, or it did not answer within --rpc-timeout, or TLS failed.
    """
    from grader import api
    from grader.errors import EXIT_BAD_INPUT, NothingToGradeError
    from grader.server import run_sync

    if histories and (workflow_ids or learner):
        raise click.UsageError("--history grades files; --workflow-id/--learner read a server: pick one")
    if histories:
        report = api.check_files(list(histories), rubric=rubric, experiments=experiments or None,
                                 max_history_bytes=max_history_bytes)
    else:
        target = connection.resolve()
        report = run_sync(api.check_live(target, workflow_ids=workflow_ids, learner=learner, limit=limit,
                                         rubric=rubric, experiments=experiments or None))
    if report.graded_nothing and output_format != "json":
        # No table of zeros: say in one line per input what went wrong. A program
        # asking for JSON still gets the document (errors listed in it), never an empty stdout.
        for error in report.errors:
            click.echo(f"grader: error: {error}", err=True)
        if report.errors:
            raise SystemExit(EXIT_BAD_INPUT)
        if not histories:
            raise NothingToGradeError(api.nothing_found_message(target.address, target.namespace, learner))
    emit_report(report, output_format)
