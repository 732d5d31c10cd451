"""Options shared by several commands, and the one way a report is printed and exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from grader import defaults

# --- options shared by several commands -------------------------------------

EXPERIMENT_IDS = tuple(defaults.EXPERIMENTS)


def connection_options(func: Any) -> Any:
    """--address and --namespace, from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE when unset."""
    func = click.option("--namespace", envvar="TEMPORAL_NAMESPACE", default=defaults.DEFAULT_NAMESPACE,
                        show_default=True, help="Temporal namespace (or TEMPORAL_NAMESPACE).")(func)
    return click.option("--address", envvar="TEMPORAL_ADDRESS", default=defaults.DEFAULT_ADDRESS,
                        show_default=True, help="Temporal server host:port (or TEMPORAL_ADDRESS).")(func)


def output_options(func: Any) -> Any:
    """--format and --output, the same on every command that prints a report.

    The command receives ``output_format`` (a name of ``grader.formats.FORMATS``)
    and ``output_file`` (a Path or None) and hands both to :func:`emit_report`.
    """
    from grader.formats import FORMATS

    func = click.option("--output", "output_file", type=click.Path(dir_okay=False, path_type=Path),
                        metavar="FILE", default=None,
                        help="Write the report to FILE (atomically) instead of stdout.")(func)
    return click.option("--format", "output_format", type=click.Choice(list(FORMATS)),
                        default=next(iter(FORMATS)), show_default=True,
                        help="table for people; json for programs (stdout then holds only the JSON); "
                             "markdown for PR comments and feedback; gradescope (results.json); junit "
                             "(GitLab, Jenkins); github (annotations and job summary); classroom "
                             "(the result=... line for GitHub Classroom's reporter).")(func)


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


def emit_report(report: Any, output_format: str, output_file: Path | None = None, *,
                failed: bool = False) -> None:
    """Print a report (or write it to ``output_file``), its skipped inputs on stderr, and exit.

    The exit code is the one the report earns. ``failed`` forces exit code 1
    whatever the grade (simulate: an experiment never reached its end).
    """
    from grader.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from grader.formats import after_render, render, write_atomically
    from grader.formats.safe import terminal

    for error in report.errors:
        click.echo(f"grader: error: {terminal(error)}", err=True)
    text = render(report, output_format)
    if output_file is None:
        click.echo(text, nl=False)
    else:
        write_atomically(output_file, text)
    after_render(report, output_format)
    if report.errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_OK if report.passed and not failed else EXIT_FAILED)


