"""`grader check`: grade the experiments from histories read live or from files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.options import (
    connection_options,
    documents_on_error,
    emit_report,
    grading_options,
    max_history_bytes_option,
    output_options,
    pack_options,
)

if TYPE_CHECKING:  # grader.sources.connect stays unimported until a server is needed
    from grader.sources.connect import ConnectionSettings


@click.command("check")
@click.option("--history", "histories", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A history JSON file, a folder of them, or a bundle from `grader export` (a folder with "
                   "manifest.json, or a .zip) (repeatable); grades offline.")
@click.option("--workflow-id", "workflow_ids", multiple=True, metavar="ID",
              help="Grade this workflow from the server (repeatable).")
@click.option("--learner", metavar="ID",
              help="Without --workflow-id: only this learner's workflows (ids `ID-...`, any case). With "
                   "--workflow-id or --history: grade them as this learner's work (a run naming another "
                   "learner earns nothing)  [default: LEARNER_ID when set]")
@click.option("--all-learners", is_flag=True,
              help="Without --workflow-id: every learner's workflows, even when LEARNER_ID is set.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without --workflow-id or a learner: how many of the newest runs to read "
                   "(a learner's runs are all read).")
@click.option("--replay/--no-replay", default=False, show_default=True,
              help="Also replay each history through the reference workflow (integrity). It loads the "
                   "Temporal SDK, about 0.3 s, so this quick check leaves it to `grader batch` and the "
                   "Gradescope autograder unless asked.")
@click.option("--watch", is_flag=True,
              help="Grade again every --interval seconds, show the table when it changes, and exit 0 as "
                   "soon as every experiment asked for passes (Ctrl+C stops).")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True, metavar="SECONDS",
              help="With --watch: seconds between two reads.")
@click.option("--open", "open_page", is_flag=True,
              help="Also write the report as one HTML page (a picture of each run) to a temporary file and "
                   "open it in a browser, or say where it is when there is none.")
@max_history_bytes_option
@connection_options
@grading_options
@pack_options(auto=True)
@output_options
def command(histories: tuple[Path, ...], workflow_ids: tuple[str, ...], learner: str | None,
            all_learners: bool, limit: int, replay: bool, watch: bool, interval: float, open_page: bool,
            max_history_bytes: int, connection: ConnectionSettings, experiments: tuple[str, ...], rubric: str,
            pack_id: str | None, output_format: str, output_file: Path | None) -> None:
    """Grade the experiments from workflow histories.

    \b
    Live (default): reads every pack's workflows from the server (--pack
    reads only that pack's), newest first. Runs and files are graded pack
    by pack, each told from its workflow type, unless --pack or --rubric says.
    Offline: --history FILE|DIR|BUNDLE, as exported by
      temporal workflow show -w ID --output json > FILE
    or the Web UI's Download button, or `grader export`.

    Live reads grade one learner's workflows (ids `ada-...` for learner ada,
    any case): --learner's, else LEARNER_ID's; --all-learners grades
    everyone's. With neither, a server holding one learner's workflows grades
    those, and one holding several learners' lists them and exits 2. A stderr
    line says whose were graded.

    \b
    --format html gives one self-contained page with a picture of each run;
    --open writes it to a temporary file and opens it. --watch grades again
    every --interval seconds until the experiments pass.

    \b
    Exit codes: 0 every graded experiment passed; 1 some failed or are still
    running; 2 bad input (a history file, the rubric, an option, an address);
    3 no server, or it did not answer within --rpc-timeout, or TLS failed;
    130 interrupted (Ctrl+C).
    """
    from grader import api
    from grader.cli.options import apply_pack, rubric_for_files, rubric_named
    from grader.errors import EXIT_BAD_INPUT, NothingToGradeError

    pack, rubric = apply_pack(pack_id, rubric)
    if pack is None and histories:
        rubric = rubric_for_files(histories, rubric)
    # Live without --pack or --rubric: every pack's runs are read and each is graded by its own pack
    # (``rubric`` still names what an error document lists).
    grading_rubric = None if pack is None and not histories and not rubric_named() else rubric

    if histories and (workflow_ids or all_learners):
        raise click.UsageError("--history grades files; --workflow-id/--all-learners read a server: pick one")
    if learner is not None and all_learners:
        raise click.UsageError("--learner and --all-learners exclude each other")
    graded_as = ""
    if histories and learner is not None:  # whose hand-in the files are: runs naming another learner earn nothing
        from grader.engine.learner import validate_learner_id

        learner = validate_learner_id(learner, what="--learner")
        graded_as = f"graded the files as learner {learner}'s work"
    # A server that does not answer still gives a document format its document (CI never goes silent).
    with documents_on_error(output_format, output_file, rubric=rubric, experiments=experiments):
        whose = graded_as
        if not histories and not workflow_ids:
            learner, whose = _learner_to_grade(learner, all_learners)
            if whose is None:  # nobody named: a shared server's other learners must not be graded as yours
                learner, whose = _only_learner(connection)
        if watch:
            _watch(histories, workflow_ids, learner, limit, interval, connection, experiments, grading_rubric,
                   output_format, open_page, max_history_bytes)
            return
        if histories:
            report = api.check_files(list(histories), rubric=rubric, experiments=experiments or None,
                                     replay=replay, max_history_bytes=max_history_bytes, learner=learner)
        else:
            from grader.background import run_sync  # asyncio and the rest only on the live path

            target = connection.resolve()
            report = run_sync(api.check_live(target, workflow_ids=workflow_ids, learner=learner, limit=limit,
                                             rubric=grading_rubric, experiments=experiments or None,
                                             replay=replay))
        if report.graded_nothing and output_format == "table":
            # No table of zeros: say in one line per input what went wrong. Every other
            # format (a program, a CI page or a feedback file reads it) still gets its
            # document, errors listed in it, never an empty output.
            from grader.escape import terminal

            for error in report.errors:
                click.echo(f"grader: error: {terminal(error)}", err=True)
            if report.errors:
                raise SystemExit(EXIT_BAD_INPUT)
            if not histories:
                raise NothingToGradeError(api.nothing_found_message(target.address, target.namespace, learner))
    if whose:  # said once something was graded: the nothing-found line above names the learner itself
        click.echo(f"grader: {whose}", err=True)
    if open_page:
        open_in_browser(report)
    emit_report(report, output_format, output_file)


def _learner_to_grade(learner: str | None, all_learners: bool) -> tuple[str | None, str | None]:
    """--learner, else LEARNER_ID (validated), else everyone with --all-learners, and the sentence that says which.

    ``(None, None)`` when nothing names a learner: :func:`_only_learner` then asks the server.
    """
    import os

    from grader.engine.learner import validate_learner_id

    if all_learners:
        return None, "graded every learner's workflows (--all-learners)"
    if learner is not None:
        learner = validate_learner_id(learner, what="--learner")
        return learner, f"graded learner {learner} (workflows {learner}-...)"
    from_env = os.environ.get("LEARNER_ID")
    if from_env is None:
        return None, None
    learner = validate_learner_id(from_env, what="LEARNER_ID")
    return learner, f"graded learner {learner} from LEARNER_ID (workflows {learner}-...)"


#: How many learners the "whose grade?" line names before "and N more".
_LEARNERS_SHOWN = 20


def _only_learner(connection: ConnectionSettings) -> tuple[str | None, str | None]:
    """With no learner named: the one learner whose runs the server holds, or exit 2 listing several.

    On a shared server, grading everyone's runs as if they were yours would
    show a classmate's PASS as your grade, so several learners' runs end in a
    question (exit 2) instead of a table.
    """
    from grader.background import run_sync
    from grader.sources.connect import connect
    from grader.errors import BadInputError, ServerUnavailableError
    from grader.escape import terminal
    from grader.sources.live import learners_at

    target = connection.resolve()

    async def ask() -> dict[str, int]:
        return await learners_at(await connect(target), target)

    try:
        found = run_sync(ask())
    except ServerUnavailableError:
        # Say it where every other failed read is said: grading below reports it (and a
        # document format still gets its document, so CI never goes silent).
        return None, None
    where = f"{target.address} (namespace {target.namespace})"
    if not found:
        return None, f"graded every {_listed()} workflow at {where}"
    if len(found) == 1:
        (only,) = found
        return only, (f"graded learner {terminal(only)}, the only learner with {_listed()} workflows at {where}; "
                      "set LEARNER_ID or pass --learner to be sure")
    names = sorted(found, key=lambda name: (-found[name], name))
    listed = [f"{terminal(n)} ({found[n]} run{'s' if found[n] != 1 else ''})" for n in names[:_LEARNERS_SHOWN]]
    if len(names) > len(listed):
        listed.append(f"and {len(names) - len(listed)} more")
    click.echo(f"grader: {len(names)} learners have {_listed()} workflows at {where}: {', '.join(listed)}",
               err=True)
    raise BadInputError("whose grade? pass --learner ID (or set LEARNER_ID) to grade one learner's workflows, "
                        "or --all-learners for everyone's")


def _listed() -> str:
    """The workflow types a live read lists, as messages name them (--pack's, or every pack's)."""
    from grader.sources import live

    return live.listed_label()


def _watch(histories, workflow_ids, learner, limit, interval, connection, experiments, rubric, output_format,
           open_page, max_history_bytes) -> None:
    """--watch: the loop lives in grader.watch; Ctrl+C reaches the group as KeyboardInterrupt (exit 130)."""
    import asyncio
    import sys

    from grader import watch

    if output_format != "table" or open_page:
        raise click.UsageError("--watch shows the table as it changes: leave out --format and --open")
    if histories:
        loop = watch.watch_files(list(histories), rubric=rubric, experiments=experiments or None,
                                 interval=interval, max_history_bytes=max_history_bytes)
    else:
        loop = watch.watch_live(connection.resolve(), workflow_ids=workflow_ids, learner=learner, limit=limit,
                                rubric=rubric, experiments=experiments or None, interval=interval)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # The usual case: this thread has no loop, so Ctrl+C cancels the watch at once.
        asyncio.run(loop)
    else:  # called from async code (a test, a notebook): run it on a thread of its own
        from grader.background import run_sync

        run_sync(loop)
    sys.exit(0)


def open_in_browser(report) -> Path:
    """Write ``report`` as HTML to a temporary file and open it in a browser when there is one.

    Says on stderr where the file is either way. On Linux without a display
    (and no $BROWSER) no browser is tried: a text browser would take over the terminal.
    """
    import os
    import sys
    import tempfile
    import webbrowser

    from grader.formats import render

    fd, name = tempfile.mkstemp(prefix="failure-lab-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render(report, "html"))
    path = Path(name)
    graphical = (sys.platform != "linux" or os.environ.get("BROWSER") or os.environ.get("DISPLAY")
                 or os.environ.get("WAYLAND_DISPLAY"))
    opened = False
    if graphical:
        try:
            opened = webbrowser.open(path.as_uri())
        except webbrowser.Error:
            opened = False
    if opened:
        click.echo(f"grader: opened the report in a browser: {path}", err=True)
    else:
        click.echo(f"grader: no browser to open here; the report is at {path}", err=True)
    return path
