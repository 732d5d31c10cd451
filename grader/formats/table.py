"""The default human report: per experiment, one row per check, with what to do under failures.

Everything that came from a history goes through :func:`grader.escape.terminal`,
so a crafted failure message cannot move the cursor or rewrite a FAIL line.
"""

from __future__ import annotations

from grader.formats.common import NOT_ATTEMPTED
from grader.formats.common import STATUS_WORD as _MARK
from grader.formats.common import points as _points
from grader.escape import terminal
from grader.engine.report import Report, provenance_said


def _columns(rows: list[list[str]]) -> list[str]:
    """Lay out rows of (mark, title, points): left, left, right, two spaces apart.

    Three fixed columns need no table library; tabulate's import alone cost
    about a sixth of a whole `grader check --history` run (benchmarks/bench_startup.py).
    """
    if not rows:
        return []
    mark, title, points = (max(len(row[i]) for row in rows) for i in range(3))
    # rstrip: a bonus row has no points, and a line ends where its text does.
    return [f"{m:<{mark}}  {t:<{title}}  {p:>{points}}".rstrip() for m, t, p in rows]


def _mark(chk) -> str:
    """PASS/FAIL/... for a required check; for bonus evidence only whether it was seen."""
    if not chk.applies:
        return "N/A"
    if chk.required or chk.status == "pass":
        return _MARK[chk.status]
    return "-"


def _check_title(chk) -> str:
    """The check's title; bonus checks say so, and whether their evidence was seen."""
    if chk.required:
        return chk.title
    return f"{chk.title} (bonus evidence{'' if chk.status == 'pass' else ', not seen'})"


def _check_points(chk) -> str:
    """Points earned of possible; empty for bonus evidence that is worth no points."""
    return _points(chk.score, chk.max_score) if chk.required or chk.max_score else ""


def render(report: Report) -> str:
    """The default human report: per experiment, one row per check, with what to do under failures."""
    blocks: list[str] = []
    if report.in_progress is not None:  # above the table: the run the learner is most likely watching
        blocks.append(terminal(report.in_progress.line()))
    for exp in report.experiments:
        optional = "" if exp.required else " (optional)"
        head = f"{terminal(exp.title)}{optional}: {_MARK[exp.status]}  {_points(exp.score, exp.max_score)}"
        strengths = {c.strength for c in exp.checks if c.strength and c.status == "pass"}
        if strengths and exp.status == "pass":
            # The weakest claim wins: one merely consistent check makes the whole verdict so.
            head += "  (evidence: consistent)" if "consistent" in strengths else "  (evidence: proven)"
        lines = [head]
        if exp.workflow:
            where = f"  workflow {terminal(exp.workflow.workflow_id)} run {terminal(exp.workflow.run_id or '?')}"
            if exp.candidates > 1:
                where += f" (best of {exp.candidates})"
            lines.append(f"{where}, {provenance_said(exp.workflow.provenance)}")
            lines.append(f"  {terminal(exp.workflow.ui_link or exp.workflow.source)}")
            if exp.selection:
                lines.append(f"  {terminal(exp.selection)}")
        elif exp.note:
            lines.append(f"  {terminal(exp.note)}")
        if exp.status == NOT_ATTEMPTED:  # one line says it; a row per check would repeat it
            blocks.append("\n".join(lines))
            continue
        rows, notes = [], []
        said = set()  # a still-running workflow gives every check the same message: say it once
        for chk in exp.checks:
            rows.append([_mark(chk), terminal(_check_title(chk)), _check_points(chk)])
            below = []
            explain = chk.status != "pass" or not chk.applies or chk.strength == "consistent" and chk.hint
            if explain and chk.message not in said:
                said.add(chk.message)
                below.append(f"        {terminal(chk.message)}")
                if chk.hint and (chk.required or chk.status == "pass"):
                    below.append(f"        hint: {terminal(chk.hint)}")
            notes.append(below)
        table = _columns(rows)
        for row, below in zip(table, notes):
            lines.append("  " + row)
            lines.extend(below)
        blocks.append("\n".join(lines))
    suspect = _suspect_section(report)
    if suspect:
        blocks.append(suspect)
    total = (f"Total: {_points(report.score, report.max_score)}  {_MARK[report.status]}  "
             f"(rubric {terminal(report.rubric['id'])} {terminal(report.rubric['version'])}, "
             f"grader {report.grader_version})")
    blocks.append(total)
    return "\n\n".join(blocks) + "\n"


def _suspect_section(report: Report) -> str:
    """Every suspect history with its findings; empty when all histories are consistent."""
    suspect = [entry for entry in report.integrity if entry.status == "suspect"]
    if not suspect:
        return ""
    lines = [f"Suspect histories: {len(suspect)} of {len(report.integrity)} (no experiment passes on them)"]
    for entry in suspect:
        lines.append(f"  {terminal(entry.source)}  workflow {terminal(entry.workflow_id or '?')} "
                     f"run {terminal(entry.run_id or '?')}")
        for finding in entry.findings:
            lines.append(f"    {terminal(finding.code)}: {terminal(finding.message)}")
    return "\n".join(lines)
