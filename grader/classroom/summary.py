"""What ``grader batch`` prints on stdout: counts, who needs a look, the regrade diff, where the files are.

``table`` and ``json`` stay short for any class size: per-learner grades
live in the gradebook files, not here. Every other ``--format`` is its
module's ``render_gradebook(result)`` in :mod:`grader.formats`: the class
table (markdown, html, junit, github) or one document per learner for the
platforms that grade one submission at a time (gradescope, classroom).
"""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any, Callable

from tabulate import tabulate

from grader.engine.classreport import STATUSES, BatchResult
from grader.errors import BadInputError
from grader.escape import terminal

#: Longest finding shown in a diff line.
_FINDING = 100


def summary_dict(result: BatchResult) -> dict[str, Any]:
    """The summary as JSON-ready data."""
    return {
        "source": result.source,
        "learners": result.total,
        "counts": result.counts,
        "mean_score": result.mean_score,
        "max_score": result.max_score,
        "attention": [{"learner": a.learner, "status": a.status, "why": a.why} for a in result.attention],
        "not_on_roster": result.not_on_roster,
        "ignored": result.ignored,
        "unmatched": result.unmatched,
        "warnings": result.warnings,
        "regrade": None if result.changes is None else [c.to_dict() for c in result.changes],
        "files": [str(p) for p in result.written] + [str(result.out_dir / "feedback")],
        "elapsed_seconds": round(result.elapsed, 3),
        "exit_code": result.exit_code,
    }


def render_json(result: BatchResult) -> str:
    """The summary as one JSON document."""
    return json.dumps(summary_dict(result), indent=2, ensure_ascii=False) + "\n"


def _short(text: str, width: int = _FINDING) -> str:
    """``text`` made safe for a terminal (as ``check``'s table does it) and cut to ``width`` characters.

    Learner ids, problems and findings come from what learners handed in: a
    raw carriage return, ANSI sequence or OSC 8 hyperlink in them would
    rewrite or disguise the instructor's screen, so each shows as an escape.
    """
    text = terminal(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _names(names: list[str], most: int = 20) -> str:
    shown = ", ".join(_short(n, 60) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def render_table(result: BatchResult) -> str:
    """The summary for people."""
    counts = ", ".join(f"{result.counts.get(s, 0)} {s}" for s in STATUSES)
    lines = [f"Graded {result.total} learners from {_short(result.source, 200)} in {result.elapsed:.1f} s: {counts}"]
    if result.mean_score is not None:
        lines.append(f"Mean score of graded learners: {result.mean_score:.1f}/{result.max_score:g}")
    if result.retried:
        lines.append(f"{result.retried} reads needed a retry (the server was slow or restarting)")
    if result.attention:
        lines += ["", "Needs a look:"]
        rows = [(_short(a.learner, 40), a.status, _short(a.why)) for a in result.attention]
        lines.append(tabulate(rows, headers=["learner", "status", "why"], tablefmt="simple"))
    if result.not_on_roster:
        lines += ["", f"Not on the roster, not graded: {_names(result.not_on_roster)}"]
    if result.ignored:
        lines += ["", "Ignored (not a folder or .zip, or not a name a learner can have): " + _names(result.ignored)]
    if result.unmatched:
        lines += ["", f"Not matched to a learner ({len(result.unmatched)}):"]
        lines += [f"  {_short(line, 160)}" for line in result.unmatched[:50]]
        if len(result.unmatched) > 50:
            lines.append(f"  and {len(result.unmatched) - 50} more (all in --format json)")
    if result.changes is not None:
        lines += ["", f"Regrade: {len({c.learner for c in result.changes})} learners changed"]
        if result.changes:
            rows = [(_short(c.learner, 40), _short(c.experiment or "(status)", 40), _short(c.old, 20), "->",
                     _short(c.new, 20), _short(c.finding))
                    for c in result.changes]
            lines.append(tabulate(rows, headers=["learner", "experiment", "was", "", "now", "finding"],
                                  tablefmt="simple"))
    lines += ["", "Gradebook: " + ", ".join(terminal(p) for p in result.written)
              + f", {terminal(result.out_dir / 'feedback')}/<learner>.md"]
    return "\n".join(lines) + "\n"


_BUILT_IN = {"table": render_table, "json": render_json}


def summary_renderer(output_format: str) -> Callable[[BatchResult], str]:
    """The summary renderer of ``output_format``; :class:`BadInputError` for a format with none.

    Called before a batch starts, so a format with no class summary is refused before any work.
    """
    if output_format in _BUILT_IN:
        return _BUILT_IN[output_format]
    from grader.formats import FORMATS

    module = import_module(FORMATS[output_format]) if output_format in FORMATS else None
    render = getattr(module, "render_gradebook", None)
    if render is None:
        raise BadInputError(f"--format {output_format} has no class summary yet: use table or json "
                            "(the gradebook files hold every learner's report)")
    return render


def after_summary(result: BatchResult, output_format: str) -> None:
    """Run the format's optional ``after_render_gradebook(result)`` once the summary is out.

    ``github`` uses it to append the class table to ``$GITHUB_STEP_SUMMARY``.
    """
    if output_format in _BUILT_IN:
        return
    from grader.formats import FORMATS

    hook = getattr(import_module(FORMATS[output_format]), "after_render_gradebook", None)
    if hook is not None:
        hook(result)


def render_summary(result: BatchResult, output_format: str) -> str:
    """The summary in ``output_format`` (see :func:`summary_renderer`)."""
    return summary_renderer(output_format)(result)
