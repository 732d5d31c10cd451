"""The ``grader`` command line: parse options, call the library, print.

One module per command; this one holds the group, registers the commands and
turns every exception into a one-line message and its exit code, in one place
(:func:`exit_for`): a :class:`grader.errors.GraderError` says what to do, Ctrl+C
is exit 130, and anything else is a bug of ours, exit 70 with the traceback in
a file, never a grade.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from grader import __version__
from grader.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, GraderError, internal_error_line

#: click's own ways of ending a command (usage errors, --help, Ctrl+C while parsing), handled by click.
_CLICK_ENDINGS = (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)


def exit_for(err: BaseException) -> NoReturn:
    """Print the one line ``err`` deserves on stderr and exit with its code."""
    if isinstance(err, GraderError):
        click.echo(f"grader: {err.label}{err}", err=True)
        sys.exit(err.exit_code)
    if isinstance(err, (KeyboardInterrupt, click.exceptions.Abort)):
        click.echo("grader: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(internal_error_line(err), err=True)
    sys.exit(EXIT_INTERNAL)


#: Every command and the module that defines it (as ``command``); adding one is one line here.
#: A module is imported only when its command runs or help lists it, so `grader check`
#: does not pay for the imports of batch, simulate or the Gradescope builder.
COMMANDS: dict[str, str] = {
    "init": "grader.cli.init",
    "server": "grader.cli.server",
    "simulate": "grader.cli.simulate",
    "check": "grader.cli.check",
    "batch": "grader.cli.batch",
    "timeline": "grader.cli.timeline",
    "export": "grader.cli.export",
    "gradescope-autograder": "grader.cli.gradescope",
    "packs": "grader.cli.packs",
}


class GraderGroup(click.Group):
    """A click group that loads each command on demand and turns its exceptions into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        from importlib import import_module

        return import_module(COMMANDS[name]).command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            from grader.packs import all_packs

            all_packs()  # every command may name a pack's experiments or read its histories
            return super().invoke(ctx)
        except _CLICK_ENDINGS:
            raise
        except (Exception, KeyboardInterrupt) as err:
            exit_for(err)


@click.group(cls=GraderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grader")
def cli() -> None:
    """Failure Lab: run and grade Temporal's failure experiments (money transfer, sagas, ...).

    \b
    grader init       write a copy of the exercise app to work in
    grader server     start the embedded Temporal dev server (Web UI included)
    grader simulate   perform the experiments for real, then grade them
    grader check      grade the experiments from workflow histories
    grader batch      grade a whole class into a gradebook
    grader timeline   show one history the way the grader reads it
    grader export     write a learner's runs as a submission bundle
    grader gradescope-autograder  build the zip a Gradescope assignment runs
    grader packs      list the course packs (--pack ID on init, simulate, check, batch, export)
    """


#: The experiment ids, in the tutorial's order (the choices of --experiment).
from grader.cli.options import EXPERIMENT_IDS  # noqa: E402,F401


def main(args: list[str] | None = None) -> NoReturn:
    """Run the command line and exit; what ``grader`` and ``python -m grader`` call.

    click runs in non-standalone mode so that Ctrl+C while the arguments are
    parsed also ends as "grader: interrupted" (click alone says "Aborted!"
    and exits 1, the code for a failed grade).
    """
    try:
        code = cli.main(args=args, prog_name="grader", standalone_mode=False)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except BrokenPipeError:
        # The reader went away (`grader check | head`): nothing left to say to it.
        sys.stdout = None
        sys.exit(141)
    except (Exception, KeyboardInterrupt) as err:
        exit_for(err)
    sys.exit(code if isinstance(code, int) else 0)


