"""The report as GitHub-flavoured markdown: for pull-request comments, step summaries and feedback files.

One heading for the total, then per experiment a heading with its verdict,
the run it was graded on (linked to the Web UI when known) and a table of
its checks, with each failure's finding and hint below the table. Every
piece of history text is escaped with :func:`grader.escape.markdown`,
so a crafted name cannot break the table, inject links or mention anyone.
"""

from __future__ import annotations

from urllib.parse import quote

from grader.formats.common import NOT_ATTEMPTED, STATUS_WORD, check_title, evidence_strength, explains, points, shows_hint
from grader.escape import markdown as md
from grader.escape import markdown_code, visible_controls
from grader.engine.report import ExperimentReport, Report, provenance_said

_ICON = {"pass": "✅", "fail": "❌", "pending": "⏳", "error": "⚠️", "not-attempted": "➖"}


def _run_line(exp: ExperimentReport) -> str:
    if exp.workflow is None:
        return md(exp.note) if exp.note else ""
    ref = exp.workflow
    run = f"workflow {markdown_code(ref.workflow_id)}, run {markdown_code(ref.run_id or '?')}"
    if exp.candidates > 1:
        run += f" (best of {exp.candidates} runs)"
    if ref.ui_link and ref.ui_link.startswith(("http://", "https://")):
        # Percent-encode the target: a workflow id with ``>`` or a space cannot end the link early.
        target = quote(visible_controls(ref.ui_link), safe=":/?&=%#@+,;~-._")
        run += f" · [open in the Web UI](<{target}>)"
    else:
        run += f" · from {markdown_code(ref.source)}"
    return run + f" · {provenance_said(ref.provenance)}"


def experiment_section(exp: ExperimentReport, *, level: int = 2) -> list[str]:
    """One experiment as markdown lines: heading, run, checks table, findings and hints."""
    optional = " (optional)" if not exp.required else ""
    strength = evidence_strength(exp)
    lines = [f"{'#' * level} {_ICON[exp.status]} {md(exp.title)}{optional}: "
             f"{STATUS_WORD[exp.status]} {points(exp.score, exp.max_score)}"
             + (f" (evidence: {strength})" if strength else ""), ""]
    run = _run_line(exp)
    if run:
        lines += [run, ""]
    if exp.selection:  # why this run, when several could have been graded
        lines += [md(exp.selection), ""]
    if exp.status == NOT_ATTEMPTED:  # no run to show checks for: say what would count
        return lines + [f"Not attempted: {md(exp.note)}.", ""]
    lines += ["| | check | points |", "|---|---|---:|"]
    for chk in exp.checks:
        if not chk.applies:
            mark = "N/A"
        else:
            mark = _ICON[chk.status] if chk.required or chk.status == "pass" else "➖"
        shown = points(chk.score, chk.max_score) if chk.required or chk.max_score else ""
        lines.append(f"| {mark} | {md(check_title(chk))} | {shown} |")
    lines.append("")
    said: set[str] = set()  # a still-running run gives every check the same message: say it once
    for chk in exp.checks:
        if not explains(chk) or chk.message in said:
            continue
        said.add(chk.message)
        lines.append(f"- **{md(chk.title)}**: {md(chk.message)}")
        if shows_hint(chk):
            lines.append(f"  - hint: {md(chk.hint)}")
    if said:
        lines.append("")
    return lines


def render(report: Report, *, level: int = 1) -> str:
    """The whole report as markdown (``level`` sets the top heading's depth)."""
    lines = [f"{'#' * level} Failure Lab: {STATUS_WORD[report.status]} {points(report.score, report.max_score)}",
             "",
             f"Rubric {markdown_code(report.rubric['id'])} {md(report.rubric['version'])}, "
             f"grader {md(report.grader_version)}.", ""]
    for exp in report.experiments:
        lines += experiment_section(exp, level=level + 1)
    suspect = [entry for entry in report.integrity if entry.status == "suspect"]
    if suspect:
        lines += [f"{'#' * (level + 1)} Suspect histories: {len(suspect)} of {len(report.integrity)} "
                  "(no experiment passes on them)", ""]
        for entry in suspect:
            lines.append(f"- {markdown_code(entry.source)}: workflow {markdown_code(entry.workflow_id or '?')}, "
                         f"run {markdown_code(entry.run_id or '?')}")
            lines += [f"  - {md(finding.code)}: {md(finding.message)}" for finding in entry.findings]
        lines.append("")
    if report.errors:
        lines += [f"{'#' * (level + 1)} Inputs that could not be graded", ""]
        lines += [f"- {md(error)}" for error in report.errors]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


_LEARNER_ICON = {"graded": "", "missing": "➖ ", "not-gradable": "⚠️ ", "unreadable-files": "⚠️ "}


def render_gradebook(result, *, level: int = 1) -> str:
    """The class as markdown (``grader batch --format markdown``): one table row per learner.

    Columns: learner, status, flags, score, then each experiment's status
    and points; then who needs a look and why, and the regrade diff when
    ``--previous`` was given. ``result`` is a
    :class:`grader.engine.classreport.BatchResult`.
    """
    from grader.formats.classbook import cell_words, headline, late_words, score_words, tells_late, why

    head = "#" * level
    lines = [f"{head} Failure Lab class gradebook", "",
             md(headline(result)) + (f" Rubric {markdown_code(result.rubric['id'])} "
                                     f"{md(result.rubric['version'])}." if result.rubric else ""), ""]
    titles = [md(title) + (" (optional)" if exp_id in result.optional else "") for exp_id, title in result.experiments]
    late = tells_late(result)  # a column only when a due date or the LMS said who was late
    lines.append("| learner | status | flags | score | " + ("late | " if late else "") + " | ".join(titles) + " |")
    lines.append("|---|---|---|---:|" + ("---|" if late else "") + "---|" * len(titles))
    for row in result.learners:
        cells = []
        for exp_id, _ in result.experiments:
            cell = row.cells.get(exp_id)
            icon = f"{_ICON[cell.status]} " if cell is not None and cell.status in _ICON else ""
            cells.append(icon + cell_words(cell))
        lines.append(f"| {markdown_code(row.learner)} | {_LEARNER_ICON.get(row.status, '')}{md(row.status)} | "
                     f"{md(', '.join(row.flags))} | {score_words(row)} | "
                     + (f"{late_words(row.late)} | " if late else "") + " | ".join(cells) + " |")
    lines.append("")
    look = [row for row in result.learners if row.status != "graded" or row.flags or row.duplicates]
    if look:
        lines += [f"{head}# Needs a look", ""]
        lines += [f"- {markdown_code(row.learner)} ({md(row.status)}"
                  + "".join(f", {md(flag)}" for flag in row.flags) + f"): {md(why(row))}" for row in look]
        lines.append("")
    if result.changes is not None:
        changed = len({c.learner for c in result.changes})
        lines += [f"{head}# Regrade: {changed} learner{'' if changed == 1 else 's'} changed", ""]
        if result.changes:
            lines += ["| learner | experiment | was | now | finding |", "|---|---|---|---|---|"]
            lines += [f"| {markdown_code(c.learner)} | {md(c.experiment or '(status)')} | {md(c.old)} | "
                      f"{md(c.new)} | {md(c.finding)} |" for c in result.changes]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
