"""`grader init`: write a fresh copy of the exercise app (or the solution) for a learner."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from grader.lab.workspace import DEFAULT_DIR


@click.command("init")
@click.argument("directory", required=False, default=DEFAULT_DIR, type=click.Path(path_type=Path))
@click.option("--solution", is_flag=True, help="Write the reference solution instead of the exercise.")
def command(directory: Path, solution: bool) -> None:
    """Write a fresh copy of the exercise app to DIRECTORY (default ./failure-lab-exercise).

    The folder must be new or empty. Its README.md walks through the four
    experiments; the commands to start are printed at the end.
    """
    from grader.lab.workspace import init_app

    written = init_app(directory, solution=solution)
    what = "reference solution" if solution else "exercise app"
    folder = shlex.quote(str(directory))
    click.echo(f"Wrote the {what} to {directory} ({len(written)} files). Next, each in its own terminal:")
    click.echo("  grader server                                  # Temporal + Web UI on localhost:8233")
    click.echo(f"  cd {folder} && python run_worker.py")
    click.echo(f"  cd {folder} && python run_workflow.py")
    click.echo("Then break it as its README.md says, and grade each experiment:")
    click.echo("  grader check --experiment crash-recovery")
