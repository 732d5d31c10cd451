"""`grader init`: write a fresh copy of the exercise app (or the solution) for a learner."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from grader.cli.options import pack_options
from grader.lab.workspace import DEFAULT_DIR


@click.command("init")
@click.argument("directory", required=False, default=DEFAULT_DIR, type=click.Path(path_type=Path))
@click.option("--solution", is_flag=True, help="Write the reference solution instead of the exercise.")
@pack_options(auto=False)
def command(directory: Path, solution: bool, pack_id: str | None) -> None:
    """Write a fresh copy of the exercise app to DIRECTORY (default ./failure-lab-exercise).

    The folder must be new or empty. Its README.md walks through the
    experiments; the commands to start are printed at the end. --pack sagas
    writes the Saga exercise's pizza-order app instead of the money transfer.
    """
    from grader.errors import BadInputError
    from grader.lab.workspace import init_app
    from grader.packs import DEFAULT_PACK, get_pack

    pack = get_pack(pack_id or DEFAULT_PACK)
    source = pack.solution_dir if solution else pack.exercise_dir
    if source is None:
        raise BadInputError(f"pack {pack.id} ships no {'solution' if solution else 'exercise'} app")
    written = init_app(directory, solution=solution, source=source)
    what = "reference solution" if solution else "exercise app"
    folder = shlex.quote(str(directory))
    click.echo(f"Wrote the {what} to {directory} ({len(written)} files). Next, each in its own terminal:")
    click.echo("  grader server                                  # Temporal + Web UI on localhost:8233")
    click.echo(f"  cd {folder} && python run_worker.py")
    click.echo(f"  cd {folder} && python run_workflow.py")
    click.echo("Then break it as its README.md says, and grade each experiment:")
    named = "" if pack.id == DEFAULT_PACK else f" --pack {pack.id}"
    click.echo(f"  grader check{named} --experiment {next(iter(pack.experiments))}")
