"""The ``grader`` command line: parse options, call the library, print.

One module per command; this one holds the group, registers the commands and
turns every :class:`grader.errors.GraderError` into a one-line message and its
exit code, in one place.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from grader import __version__
from grader.errors import GraderError


class GraderGroup(click.Group):
    """A click group that reports every GraderError as one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraderError as err:
            click.echo(f"grader: {err.label}{err}", err=True)
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
    grader batch      grade a whole class into a gradebook
    grader timeline   show one history the way the grader reads it
    grader export     write a learner's runs as a submission bundle
    """


# Each command lives in its own module; adding one is one line here.
from grader.cli import batch as _batch  # noqa: E402
from grader.cli import check as _check  # noqa: E402
from grader.cli import export as _export  # noqa: E402
from grader.cli import options as _options  # noqa: E402
from grader.cli import server as _server  # noqa: E402
from grader.cli import simulate as _simulate  # noqa: E402
from grader.cli import timeline as _timeline  # noqa: E402

for _module in (_server, _simulate, _check, _batch, _timeline, _export):
    cli.add_command(_module.command)


#: The experiment ids, in the tutorial's order (the choices of --experiment).
EXPERIMENT_IDS = _options.EXPERIMENT_IDS


def main() -> None:
    """Entry point of the ``grader`` console script."""
    cli(prog_name="grader")


