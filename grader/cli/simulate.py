"""`grader simulate`: perform the experiments for real with real workers and faults, then grade them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader.cli.options import (
    EXPERIMENT,
    EXPERIMENT_IDS,
    connection_options,
    documents_on_error,
    emit_report,
    output_options,
    pack_options,
    rubric_option,
)

if TYPE_CHECKING:  # grader.sources.connect stays unimported until a server is needed
    from grader.sources.connect import ConnectionSettings

# The simulate command's choices and defaults live in the library, written once, in a
# module light enough to import for `grader --help` (grader.lab.simulate pulls in temporalio).
from grader.lab.simulate_options import KILL_POINTS, SIGNALS  # noqa: E402
from grader.lab.simulate_options import SimulationOptions as _Sim  # noqa: E402


@click.command("simulate")
@click.argument("app_dir", required=False, type=click.Path(path_type=Path))
@click.option("--experiment", "experiments", multiple=True, type=EXPERIMENT,
              help="Run only this experiment (repeatable)  [default: all the pack's]")
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
@click.option("--save-histories", type=click.Path(path_type=Path), metavar="DIR",
              help="Write each experiment's history to DIR/<experiment>.json "
                   "(the `temporal workflow show --output json` format).")
@click.option("--learner", metavar="ID",
              help="Make the workflows under this learner id (`ID-crash-recovery-...`), so `grader check "
                   "--learner ID` and `grader batch` find them  [default: sim]")
@connection_options
@rubric_option
@pack_options(auto=False)
@output_options
def command(app_dir: Path | None, experiments: tuple[str, ...], connection: ConnectionSettings, pack_id: str | None,
             kill_signal: str, kill_during: str, failed_attempts: int, max_attempts: int, outage: float,
             latency: float | None, wait_limit: float, task_queue: str | None,
             save_histories: Path | None, learner: str | None, rubric: str, output_format: str,
             output_file: Path | None) -> None:
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

    Without --address (or --profile) it starts a throwaway in-memory server
    and ignores TEMPORAL_* variables; with one, it uses that server, connected
    as `grader check` would be (network-partition is then skipped).

    \b
    Exit codes: 0 every experiment reached its end and passed its grade;
    1 some did not; 2 bad APP_DIR or option; 3 no server at --address;
    4 environment problem.
    """
    from grader.lab.app import bundled_app, validate_app_dir
    from grader.engine.rubric import load_rubric
    from grader.lab.simulate import check_histories_dir, run_experiments
    from grader.lab.simulate_options import SimulationOptions

    # Whatever breaks before the grade (no app, a worker that does not start, no server) still
    # gives every document format its document, score 0 and the error inside (CI never goes silent).
    from grader.cli.options import apply_pack

    pack, rubric = apply_pack(pack_id, rubric)
    if pack is not None and pack.id != "money-transfer":
        return _simulate_pack(pack, app_dir, experiments=experiments, connection=connection, kill_signal=kill_signal,
                              wait_limit=wait_limit, save_histories=save_histories, learner=learner, rubric=rubric,
                              output_format=output_format, output_file=output_file)
    with documents_on_error(output_format, output_file, rubric=rubric, experiments=experiments):
        app = validate_app_dir(app_dir) if app_dir is not None else bundled_app("solution")
        chosen_rubric = load_rubric(rubric)  # a bad rubric stops us before any process starts
        if save_histories is not None:
            check_histories_dir(save_histories)  # and so does a folder we could not write to
        options = SimulationOptions(signal=kill_signal, kill_during=kill_during, failed_attempts=failed_attempts,
                                    max_attempts=max_attempts, outage=outage, latency=latency,
                                    wait_limit=wait_limit, task_queue=task_queue, learner=learner)
        # Only an explicit --address or --profile means "use my server": a TEMPORAL_ADDRESS or
        # TEMPORAL_PROFILE left in the shell must not send experiments (or their workers) elsewhere.
        external = connection.resolve() if connection.address is not None or connection.profile else None
        _perform(lambda progress: run_experiments(app, experiments=experiments or EXPERIMENT_IDS, address=external,
                                                  options=options, progress=progress),
                 rubric=chosen_rubric, outage=outage, save_histories=save_histories, output_format=output_format,
                 output_file=output_file)


def _simulate_pack(pack: Any, app_dir: Path | None, *, experiments: tuple[str, ...], connection: Any,
                   kill_signal: str, wait_limit: float, save_histories: Path | None, learner: str | None,
                   rubric: Any, output_format: str, output_file: Path | None) -> None:
    """``grader simulate --pack ID`` for a pack with its own scenarios (its ``scenarios.py``).

    The money-transfer options (--kill-during, --outage, ...) do not apply;
    --signal, --wait-limit, --save-histories, --learner and --address do.
    """
    from grader.engine.rubric import load_rubric
    from grader.errors import BadInputError
    from grader.lab.simulate import check_histories_dir
    from grader.packs import pack_scenarios

    with documents_on_error(output_format, output_file, rubric=rubric, experiments=experiments):
        scenarios = pack_scenarios(pack)
        wrong = sorted(set(experiments) - set(pack.experiments))
        if wrong:
            raise BadInputError(f"--experiment {wrong[0]} is not an experiment of pack {pack.id}: choose from "
                                f"{', '.join(pack.experiments)}")
        app = Path(app_dir) if app_dir is not None else pack.solution_dir
        chosen_rubric = load_rubric(rubric)
        if save_histories is not None:
            check_histories_dir(save_histories)
        external = connection.resolve().address if connection.address is not None or connection.profile else None
        _perform(lambda progress: scenarios.run_scenarios(
                     app, experiments=experiments or tuple(pack.experiments), address=external,
                     learner=learner or "sim", kill_signal=kill_signal, wait_limit=wait_limit, progress=progress),
                 rubric=chosen_rubric, outage=None, save_histories=save_histories, output_format=output_format,
                 output_file=output_file)


def _perform(start: Any, *, rubric: Any, outage: float | None, save_histories: Path | None, output_format: str,
             output_file: Path | None) -> None:
    """Run the experiments ``start(progress)`` performs, show what happened, grade it and emit the report.

    Progress lines go to stderr with the seconds since the start. Ctrl+C or
    SIGTERM cancels the run, whose own ``finally`` stops every process it
    started, and ends as an interrupt (exit 130).
    """
    import asyncio
    import signal
    import time

    from tabulate import tabulate

    from grader.api import grade_simulation
    from grader.lab.simulate import save_histories as write_histories

    began = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - began:5.1f}s] {message}", err=True)

    async def run() -> Any:
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        return await start(progress)

    try:
        runs = asyncio.run(run())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    for path in write_histories(runs, save_histories) if save_histories else []:
        progress(f"history saved to {path}")
    reached = {True: "yes", False: "NO", None: "skipped"}
    # Any format but the table owns stdout, so the summary goes to stderr then; with --output the
    # report goes to a file and stdout is free for the summary again.
    summary_to_stderr = output_format != "table" and output_file is None
    click.echo(tabulate(
        [(r.experiment, reached[r.ok], r.status, "-" if r.duration is None else f"{r.duration:.1f} s",
          r.workflow_id or "-", r.run_id or "-") for r in runs],
        headers=["experiment", "reached", "status", "duration", "workflow id", "run id"],
    ), err=summary_to_stderr)
    for r in runs:
        click.echo(f"{r.experiment}: {r.note}", err=summary_to_stderr)
    progress(f"done in {time.monotonic() - began:.1f} s; grading what it produced")
    report = grade_simulation([r for r in runs if r.ok is not None], rubric=rubric, outage=outage)
    if not summary_to_stderr:
        click.echo()
    emit_report(report, output_format, output_file, failed=any(r.ok is False for r in runs))
