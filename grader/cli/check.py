"""`grader check`: grade the experiments from histories read live or from files."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.options import connection_options, emit_report, grading_options, output_options

@click.command("check")
@click.option("--history", "histories", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A history JSON file or a folder of them (repeatable); grades offline.")
@click.option("--workflow-id", "workflow_ids", multiple=True, metavar="ID",
              help="Grade this workflow from the server (repeatable).")
@click.option("--learner", metavar="ID",
              help="Without --workflow-id: only this learner's workflows (ids `ID-...`)  "
                   "[default: LEARNER_ID when set]")
@click.option("--all-learners", is_flag=True,
              help="Without --workflow-id: every learner's workflows, even when LEARNER_ID is set.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without --workflow-id: how many of the newest MoneyTransfer runs to read.")
@click.option("--ui-url", metavar="URL", help="Web UI base for links  [default: address port + 1000]")
@connection_options
@grading_options
@output_options
def command(histories: tuple[Path, ...], workflow_ids: tuple[str, ...], learner: str | None,
          all_learners: bool, limit: int, ui_url: str | None, address: str, namespace: str, experiments: tuple[str, ...], rubric: str,
          output_format: str) -> None:
    """Grade the experiments from workflow histories.

    \b
    Live (default): reads MoneyTransfer workflows from the server, newest first.
    Offline: --history FILE|DIR, as exported by
      temporal workflow show -w ID --output json > FILE
    or the Web UI's Download button.

    Live reads grade one learner's workflows (ids `ada-...` for learner ada):
    --learner's, else LEARNER_ID's; --all-learners grades everyone's. A
    stderr line says which.

    \b
    Exit codes: 0 every graded experiment passed; 1 some failed or are still
    running; 2 bad input (a history file, the rubric, an option); 3 no server.
    """
    from grader import api
    from grader.server import run_sync

    if histories and (workflow_ids or learner or all_learners):
        raise click.UsageError("--history grades files; --workflow-id/--learner read a server: pick one")
    if learner is not None and all_learners:
        raise click.UsageError("--learner and --all-learners exclude each other")
    if not histories and not workflow_ids:
        learner = _learner_to_grade(learner, all_learners)
    if histories:
        report = api.check_files(list(histories), rubric=rubric, experiments=experiments or None)
    else:
        report = run_sync(api.check_live(address, namespace, workflow_ids=workflow_ids, learner=learner,
                                         limit=limit, ui_url=ui_url, rubric=rubric,
                                         experiments=experiments or None))
    emit_report(report, output_format)


def _learner_to_grade(learner: str | None, all_learners: bool) -> str | None:
    """--learner, else LEARNER_ID, else everyone; validated, and said on stderr."""
    import os

    from grader.learner import validate_learner_id

    if all_learners:
        click.echo("grader: grading every learner's workflows (--all-learners)", err=True)
        return None
    if learner is not None:
        learner = validate_learner_id(learner, what="--learner")
        click.echo(f"grader: grading learner {learner} (workflows {learner}-...)", err=True)
        return learner
    from_env = os.environ.get("LEARNER_ID")
    if from_env is None:
        click.echo("grader: grading every learner's workflows: set LEARNER_ID or pass --learner "
                   "to grade only yours", err=True)
        return None
    learner = validate_learner_id(from_env, what="LEARNER_ID")
    click.echo(f"grader: grading learner {learner} from LEARNER_ID (workflows {learner}-...)", err=True)
    return learner
