"""The report as GitHub Actions workflow commands, plus a job summary.

On stdout, one annotation per thing a learner should see on the run's page:

- ``::error`` for each required check that failed (or could not run),
- ``::warning`` for each required check still pending (the run is open),
  and for failures in an optional experiment that does not count,
- ``::notice`` for each piece of bonus evidence that was found,
- ``::error`` for each input that could not be read at all,

then one plain line with the total. Every title and message is escaped the
way the runner parses them (``%``, ``\\r``, ``\\n``; and ``:`` and ``,`` in
properties), so a crafted failure message cannot end its annotation early or
start a command of its own.

When ``GITHUB_STEP_SUMMARY`` names a file (it does inside every Actions
step), :func:`after_render` appends the markdown report to it: experiments,
checks, points and Web UI links, shown on the run's summary page.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from grader.formats import markdown
from grader.formats.common import STATUS_WORD, counted, pending_message, points, shows_hint
from grader.escape import workflow_command_data, workflow_command_property
from grader.engine.report import Report


def command(kind: str, title: str, message: str) -> str:
    """One workflow command line, ``::kind title=...::message``, escaped."""
    return f"::{kind} title={workflow_command_property(title)}::{workflow_command_data(message)}"


def annotations(report: Report) -> list[str]:
    """The workflow commands for a report, in report order."""
    counted_ids = {e.id for e in counted(report)}
    lines = []
    for exp in report.experiments:
        if exp.workflow is None and report.errors:
            continue  # graded nothing because of an input error: its own ::error below says why, once
        is_counted = exp.id in counted_ids
        for chk in exp.checks:
            title = f"{exp.title}: {chk.title}"
            if chk.status == "not-attempted" and not exp.required:
                continue  # an optional experiment nobody tried: nothing to warn about
            if chk.required and chk.status in ("fail", "error", "not-attempted"):
                message = chk.message + (f" Hint: {chk.hint}" if shows_hint(chk) else "")
                if is_counted:
                    lines.append(command("error", title, message))
                else:
                    lines.append(command("warning", f"{title} (optional, not counted)", message))
            elif chk.required and chk.status == "pending":
                lines.append(command("warning", title, pending_message(chk.message)))
            elif not chk.required and chk.status == "pass":
                lines.append(command("notice", f"{title} (bonus evidence)", chk.message))
            elif chk.status == "pass" and shows_hint(chk):
                # Passed, on evidence that cannot rule out another cause: say so, with the advice.
                lines.append(command("notice", f"{title} (evidence: {chk.strength or 'weak'})",
                                     f"{chk.message} Hint: {chk.hint}"))
    for error in report.errors:
        lines.append(command("error", "Input could not be graded", error))
    return lines


def render(report: Report) -> str:
    """Workflow commands for every failed, pending and bonus check, then the total."""
    lines = annotations(report)
    lines.append(f"Failure Lab: {STATUS_WORD[report.status]} {points(report.score, report.max_score)} "
                 f"(rubric {workflow_command_data(report.rubric['id'])})")
    return "\n".join(lines) + "\n"


def step_summary(report: Report) -> str:
    """The markdown appended to the job summary."""
    return markdown.render(report, level=2) + "\n"


def after_render(report: Report, environ: Mapping[str, str] | None = None) -> None:
    """Append the markdown summary to ``$GITHUB_STEP_SUMMARY`` when Actions provides one."""
    _append_summary(step_summary(report), environ)


def _append_summary(text: str, environ: Mapping[str, str] | None) -> None:
    environ = os.environ if environ is None else environ
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(text)
    except OSError as err:
        # The annotations are out already; a summary that cannot be written must not change the grade.
        sys.stderr.write(f"grader: warning: cannot append the job summary to {path}: {err.strerror or err}\n")


def class_annotations(result) -> list[str]:
    """Workflow commands for a class: an error per not-gradable learner, a warning per learner to look at.

    Suspect histories, unreadable files, missing learners and runs handed
    in by more than one learner are warnings: the instructor should look,
    but the batch itself did its job.
    """
    from grader.formats.classbook import why

    lines = []
    for row in result.learners:
        reason = why(row) or row.status
        if row.status == "not-gradable":
            lines.append(command("error", f"Failure Lab: {row.learner} not gradable", reason))
        elif row.flags or row.duplicates or row.status in ("unreadable-files", "missing"):
            marks = ", ".join([*row.flags, *([row.status] if row.status != "graded" else []),
                               *(["shared run"] if row.duplicates else [])])
            lines.append(command("warning", f"Failure Lab: {row.learner} ({marks})", reason))
    return lines


def render_gradebook(result) -> str:
    """The class as workflow commands (``grader batch --format github``), then one line of counts."""
    from grader.formats.classbook import headline

    return "\n".join([*class_annotations(result), workflow_command_data(f"Failure Lab: {headline(result)}")]) + "\n"


def after_render_gradebook(result, environ: Mapping[str, str] | None = None) -> None:
    """Append the markdown class summary to ``$GITHUB_STEP_SUMMARY`` when Actions provides one."""
    _append_summary(markdown.render_gradebook(result, level=2) + "\n", environ)
