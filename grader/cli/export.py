"""`grader export`: a learner's runs read from the server and written as a submission bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.options import connection_options, pack_options

if TYPE_CHECKING:  # grader.sources.connect pulls in the SDK: imported only when the command runs
    from grader.sources.connect import ConnectionSettings


@click.command("export")
@click.option("--learner", required=True, metavar="ID",
              help="The learner whose runs to export: workflow ids ID-... (exactly: ada is not adam).")
@click.option("--output", "-o", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the bundle (must not exist)  [default: ID-bundle, or ID-bundle.zip]")
@click.option("--zip", "as_zip", is_flag=True, help="Write one .zip file instead of a folder.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="How many of the learner's newest runs to export.")
@connection_options
@pack_options(auto=False)
def command(learner: str, output: Path | None, as_zip: bool, limit: int, connection: "ConnectionSettings",
            pack_id: str | None) -> None:
    """Export a learner's runs of the pack's workflow (--pack, default money-transfer) as a submission bundle.

    \b
    The bundle holds each run's history as `temporal workflow show --output
    json` prints it, and manifest.json: grader version, server, namespace,
    learner, workflow and run ids, export time and each file's sha256.
    Grade it with: grader check --history BUNDLE
    (a file changed after the export is then reported as suspect).

    A run whose worker process also did work in another learner's runs on
    the same task queue (cross-talk: no credit) is named on stderr.
    """
    from grader.sources.bundles import export_learner
    from grader.background import run_sync

    from grader.cli.options import apply_pack

    apply_pack(pack_id, None)
    output = output or Path(f"{learner}-bundle{'.zip' if as_zip else ''}")
    target = connection.resolve()
    def cross_talk(workflow_id: str, finding) -> None:
        from grader.escape import terminal

        click.echo(f"grader: warning: {terminal(workflow_id)}: {finding.code}: {terminal(finding.message)}", err=True)

    manifest = run_sync(export_learner(output, learner=learner, connection=target, limit=limit, as_zip=as_zip,
                                       on_cross_talk=cross_talk))
    runs = len(manifest.histories)
    click.echo(f"exported {runs} run{'s' if runs != 1 else ''} of learner {learner} from "
               f"{target.address}/{target.namespace} to {output}")
    for entry in manifest.histories:
        click.echo(f"  {entry.workflow_id}  run {entry.run_id}  {entry.file}")
