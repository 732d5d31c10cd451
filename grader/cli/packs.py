"""`grader packs`: the course packs the grader knows, and their experiments."""

from __future__ import annotations

import json

import click

from grader.cli.options import pack_options


@click.command("packs")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="A table, or JSON for programs.")
@pack_options(auto=False)
def command(output_format: str, pack_id: str | None) -> None:
    """List the course packs: id, title, experiments, and where each was found.

    Built-in packs ship with the grader; more are found in the folders of
    --pack-path or FAILURE_LAB_PACK_PATH (docs/writing-a-pack.md shows how to
    write one). --pack ID shows that pack alone.
    """
    from grader.packs import all_packs, get_pack

    packs = [get_pack(pack_id)] if pack_id else list(all_packs().values())
    if output_format == "json":
        click.echo(json.dumps([{
            "id": p.id, "title": p.title, "course": p.course, "exercise": p.exercise,
            "workflow_types": list(p.workflow_types),
            "experiments": [{"id": e, "title": t} for e, t in p.experiments.items()],
            "rubric": p.rubric_id, "builtin": p.builtin, "folder": str(p.folder),
        } for p in packs], indent=2))
        return
    from tabulate import tabulate

    rows = [(p.id, p.title, ", ".join(p.experiments), "built-in" if p.builtin else str(p.folder)) for p in packs]
    click.echo(tabulate(rows, headers=["pack", "title", "experiments", "from"]))
