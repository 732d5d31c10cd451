"""`grader check`: grade the experiments from histories read live or from files."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.options import (
    connection_options,
    emit_report,
    grading_options,
    max_history_bytes_option,
    output_options,
)

@click.command("check")
@click.option("--history", "histories", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A history JSON file or a folder of them (repeatable); grades offline.")
@click.option("--workflow-id", "workflow_ids", multiple=True, metavar="ID",
              help="Grade this workflow from the server (repeatable).")
@click.option("--learner", metavar="PREFIX",
              help="Without --workflow-id: only workflows whose id starts with PREFIX.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without --workflow-id: how many of the newest MoneyTransfer runs to read.")
@click.option("--ui-url", metavar="URL", help="Web UI base for links  [default: address port + 1000]")
@max_history_bytes_option
@connection_options
@grading_options
@output_options
def command(histories: tuple[Path, ...], workflow_ids: tuple[str, ...], learner: str | None, limit: int,
          ui_url: str | None, max_history_bytes: int, address: str, namespace: str,
          experiments: tuple[str, ...], rubric: str, output_format: str) -> None:
    """Grade the experiments from workflow histories.

    \b
    Live (default): reads MoneyTransfer workflows from the server, newest first.
    Offline: --history FILE|DIR, as exported by
      temporal workflow show -w ID --output json > FILE
    or the Web UI's Download button.

    \b
    Exit codes: 0 every graded experiment passed; 1 some failed or are still
    running; 2 bad input (a history file, the rubric, an option); 3 no server.
    """
    from grader import api
    from grader.server import run_sync

    if histories and (workflow_ids or learner):
        raise click.UsageError("--history grades files; --workflow-id/--learner read a server: pick one")
    if histories:
        report = api.check_files(list(histories), rubric=rubric, experiments=experiments or None,
                                 max_history_bytes=max_history_bytes)
    else:
        report = run_sync(api.check_live(address, namespace, workflow_ids=workflow_ids, learner=learner,
                                         limit=limit, ui_url=ui_url, rubric=rubric,
                                         experiments=experiments or None))
    emit_report(report, output_format)
