"""Options shared by several commands, and the one way a report is printed and exits."""

from __future__ import annotations

import sys
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
    """The one --format option every command that prints a report takes."""
    from grader.formats import FORMATS

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


def max_history_bytes_option(func: Any) -> Any:
    """--max-history-bytes: the largest history file read (bigger ones are refused unread)."""
    from grader.history import DEFAULT_MAX_HISTORY_BYTES

    return click.option("--max-history-bytes", type=click.IntRange(1), default=DEFAULT_MAX_HISTORY_BYTES,
                        show_default=True, metavar="BYTES",
                        help="Refuse history files larger than this, unread.")(func)


def emit_report(report: Any, output_format: str, *, failed: bool = False) -> None:
    """Print a report, its skipped inputs on stderr, and exit with the code it earns.

    ``failed`` forces exit code 1 whatever the grade (simulate: an experiment never reached its end).
    """
    from grader.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from grader.formats import render

    for error in report.errors:
        click.echo(f"grader: error: {error}", err=True)
    click.echo(render(report, output_format), nl=False)
    if report.errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_OK if report.passed and not failed else EXIT_FAILED)


