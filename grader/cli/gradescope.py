"""`grader gradescope-autograder`: build Gradescope's autograder zip (or, inside it, grade a submission)."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.options import rubric_option


@click.command("gradescope-autograder")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("autograder.zip"),
              show_default=True, help="Where to write the zip to upload to Gradescope.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="Pack this failure-lab wheel  [default: build one from this checkout "
                                   "with `pip wheel --no-deps`]")
@click.option("--run", "run", is_flag=True,
              help="Grade $AUTOGRADER_ROOT/submission (default /autograder) into results/results.json: "
                   "what the zip's run_autograder calls.")
@rubric_option
def command(out: Path, wheel: Path | None, run: bool, rubric: str) -> None:
    """Build the autograder zip for a Gradescope programming assignment.

    \b
    The zip holds setup.sh (installs Python and this package from the wheel
    packed beside it), run_autograder (grades the history files or the
    submission bundle a learner uploads) and the rubric. Upload it as the
    assignment's autograder; learners then upload the JSON histories that
    `temporal workflow show --output json` or `grader simulate --save-histories`
    wrote, or a zip of them.

    \b
    The rubric's `visibility` and `hint_visibility` per check decide what a
    learner sees and when; hints are shown after the due date by default.
    """
    from grader.classroom.autograder import build_autograder_zip, run_autograder

    if run:
        results = run_autograder()
        click.echo(f"results written to {results}")
        return
    path = build_autograder_zip(out, wheel=wheel, rubric=rubric)
    click.echo(f"{path}: upload it as the Gradescope assignment's autograder ({path.stat().st_size // 1024} KiB)")
