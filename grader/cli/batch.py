"""`grader batch`: grade a whole class, live from a server or from a folder of submissions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.options import connection_options, output_options, pack_options, rubric_option
from grader.defaults import BATCH_CONCURRENCY, BATCH_MAX_RPS, BATCH_MAX_VISIBILITY_RPS, BATCH_SINCE

if TYPE_CHECKING:  # grader.sources.connect starts the SDK; --help should not pay for it
    from grader.sources.connect import ConnectionSettings


@click.command("batch")
@click.option("--roster", type=click.Path(dir_okay=False, path_type=Path), metavar="CSV",
              help="The class: a CSV with a `learner` column (its other columns are copied into the "
                   "gradebook), a Canvas gradebook export or a Moodle grading worksheet, as downloaded; "
                   "`,` `;` or tab  [default: every learner id found]")
@click.option("--id-column", metavar="NAME",
              help="The roster column holding each learner's LEARNER_ID (an email address there means its "
                   "local part)  [default: learner; Canvas: SIS Login ID; Moodle: Email address]")
@click.option("--lms-column", metavar="NAME",
              help="With a Canvas gradebook export as --roster: the assignment column canvas-import.csv fills "
                   "with each score (its title, id or whole header)  [default: the export's only assignment]")
@click.option("--due", metavar="DATETIME",
              help="The due date and time (ISO 8601, e.g. 2026-12-04T23:59, local time unless it has an "
                   "offset): a learner is late when a run that earned points closed after it.")
@click.option("--submissions", type=click.Path(path_type=Path), metavar="DIR",
              help="Grade files instead of a server: an LMS download (Canvas, Moodle or Gradescope, as a folder "
                   "or its .zip), or one subfolder or .zip per learner (named by learner id) holding exported "
                   "histories.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              metavar="DIR", help="Where gradebook.csv, gradebook.json and feedback/<learner>.md go (and "
                                  "canvas-import.csv or moodle-import.csv with an LMS export as --roster).")
@click.option("--previous", type=click.Path(dir_okay=False, path_type=Path), metavar="GRADEBOOK_JSON",
              help="An earlier gradebook.json: print what changed since (the regrade diff).")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=BATCH_CONCURRENCY, show_default=True,
              help="Live: reads in flight at once, over one connection.")
@click.option("--since", default=BATCH_SINCE, show_default=True, metavar="WHEN",
              help="Live: read every run started since WHEN, a duration back from now (120d, 36h, 2w) or a "
                   "date (2026-09-01). Every run in the window is graded, however many a learner has.")
@click.option("--limit", type=int, default=None, hidden=True,
              help="No longer used: a count of newest runs let decoys push real runs out (see --since).")
@click.option("--jobs", type=click.IntRange(1, 256), default=None,
              help="Files: processes that grade at once  [default: one per CPU]")
@click.option("--replay/--no-replay", default=True, show_default=True,
              help="Also replay every history through the reference workflow, as `grader check --replay` "
                   "does: it catches edits the other integrity rules cannot, and costs one replay per shape "
                   "of history, not per history (the other integrity rules always apply).")
@click.option("--credit-simulate/--no-credit-simulate", default=True, show_default=True,
              help="Credit runs made by `grader simulate` (its mark is on their start event); either way "
                   "their learners are flagged `simulate`.")
@click.option("--max-rps", type=click.FloatRange(0.1, 100000), default=BATCH_MAX_RPS, show_default=True,
              help="Live: history reads a second at most (Temporal Cloud allows a namespace 2,000 requests a "
                   "second by default; the learners' workers need their share). Halved for a while whenever "
                   "the server answers ResourceExhausted.")
@click.option("--max-visibility-rps", type=click.FloatRange(0.1, 10000), default=BATCH_MAX_VISIBILITY_RPS,
              show_default=True,
              help="Live: listing pages (1,000 runs each) a second at most; Temporal Cloud allows 30 visibility "
                   "calls a second per namespace.")
@click.option("--shard", metavar="K/N",
              help="Grade only part K of N of the class (a stable hash of each learner id), to split a large "
                   "class across N machines; each writes its own --out.")
@click.option("--resume", is_flag=True,
              help="Continue the batch that was interrupted on the same --out (killed, Ctrl+C, the machine "
                   "restarted), with the same arguments: the learners it had graded are kept, the rest graded.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@connection_options
@rubric_option
@pack_options(auto=True)
@output_options
def command(roster: Path | None, id_column: str | None, lms_column: str | None, due: str | None, submissions: Path | None, out_dir: Path, previous: Path | None,
            concurrency: int, since: str, limit: int | None, jobs: int | None, replay: bool, credit_simulate: bool,
            max_rps: float, max_visibility_rps: float, shard: str | None, resume: bool,
            quiet: bool,
            connection: ConnectionSettings, rubric: str, pack_id: str | None, output_format: str,
            output_file: Path | None) -> None:
    """Grade every learner of a class into a gradebook.

    \b
    Live (default): every learner's workflows on the server (learner ada
    owns the ids ada-...), the roster's learners or all found.
    Files: --submissions DIR, as an LMS download lays it out. Without --pack
    (or --rubric) each run is graded by the pack of its workflow type, so a
    class of two courses gets one gradebook with both packs' columns; --pack
    reads and grades only that pack's workflows.

    \b
    Each learner gets one row with a status:
      graded            each experiment's status and points, and the total
      missing           on the roster, but no runs or no files
      not-gradable      the server did not return their runs, even after
                        retrying: costs them nothing, grade again later
      unreadable-files  some files were bad (named); the rest were graded
    and flags beside it for a look: suspect (a history the integrity rules
    reject), copied-run (a run whose timings another learner's run has:
    credited to neither), simulate (graded on runs grader simulate made),
    unfamiliar-client (live: runs under their id started from a client
    none of their graded runs came from, e.g. a classmate's decoys).

    Progress goes to stderr (--quiet for none); stdout gets a short summary
    and, with --previous, the regrade diff. The other --format choices give
    the class table (markdown, html, junit, github) or one document per
    learner (gradescope and classroom50: a JSON object by learner;
    classroom, legacy: a "<learner> result=..." line each). A live batch
    waits up to 30 s for a server that stops answering, and says so.

    \b
    Exit codes: 0 every learner has a row (the grades are in the files,
    not the exit code); 1 some learners are not-gradable; 2 bad input
    (roster, folder, options); 3 no server; 4 the disk of --out is
    full; 5 another batch is writing into --out.
    """
    from grader.classroom.batch import batch_files, batch_live, parse_shard
    from grader.classroom.progress import Progress
    from grader.classroom.summary import after_summary, summary_renderer
    from grader.escape import terminal

    from grader.classroom.late import parse_due

    from grader.cli.options import apply_pack, rubric_for_files, rubric_named

    pack, rubric = apply_pack(pack_id, rubric)
    if pack is None and submissions is not None:
        rubric = rubric_for_files([submissions], rubric)
    elif pack is None and not rubric_named():
        rubric = None  # live: every pack's runs are listed, and the class graded pack by pack
    render_summary = summary_renderer(output_format)
    due_at = parse_due(due) if due is not None else None
    part = parse_shard(shard) if shard is not None else None
    if limit is not None:
        click.echo("grader: --limit no longer applies: every run started since --since is read, so no one's "
                   "runs can be pushed out of view", err=True)
    progress = Progress(quiet=quiet)
    _stop_cleanly_on_sigterm()
    if submissions is not None:
        result = batch_files(submissions, out_dir, roster=roster, previous=previous, rubric=rubric,
                             replay=replay, jobs=jobs, progress=progress, id_column=id_column,
                             lms_column=lms_column, due=due_at, resume=resume, credit_simulate=credit_simulate,
                             shard=part)
    else:
        batch = batch_live(out_dir, connection.resolve(), roster=roster, previous=previous, rubric=rubric,
                           concurrency=concurrency, since=since, replay=replay, progress=progress,
                           id_column=id_column, lms_column=lms_column, due=due_at, resume=resume,
                           credit_simulate=credit_simulate, max_rps=max_rps, max_visibility_rps=max_visibility_rps,
                           shard=part)
        from grader.background import run_sync

        # Ctrl+C cancels the batch and gives it time to remove its spool (exit 130 follows).
        result = run_sync(batch, cleanup_grace=30)
    for warning in result.warnings:
        click.echo(f"grader: warning: {terminal(warning)}", err=True)  # may quote names from the download
    text = render_summary(result)
    if output_file is None:
        click.echo(text, nl=False)
    else:
        from grader.classroom.gradebook import disk_errors
        from grader.formats import write_atomically

        with disk_errors(output_file, "--output"):
            write_atomically(output_file, text)
    after_summary(result, output_format)
    sys.exit(result.exit_code)


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, `kill`) ends the batch the way Ctrl+C does: staging removed, exit 130.

    Without it the process would vanish mid-write and leave its staging
    folder for the next batch to clear; its grading processes die with it
    either way (see grader.lab.processes.die_with_parent).
    """
    import signal

    from grader.interrupts import interrupt

    # Ctrl+C too: its default handler raises at any moment, including inside a fork's callbacks.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupt)
