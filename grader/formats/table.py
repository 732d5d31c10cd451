"""The default human report: per experiment, one row per check, with what to do under failures."""

from __future__ import annotations

from grader.report import Report

_MARK = {"pass": "PASS", "fail": "FAIL", "pending": "PENDING", "error": "ERROR"}


def _points(score: float, max_score: float) -> str:
    def fmt(x: float) -> str:
        return f"{x:g}"
    return f"{fmt(score)}/{fmt(max_score)}"


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
    for exp in report.experiments:
        optional = "" if exp.required else " (optional)"
        head = f"{exp.title}{optional}: {_MARK[exp.status]}  {_points(exp.score, exp.max_score)}"
        strengths = {c.strength for c in exp.checks if c.strength and c.status == "pass"}
        if strengths and exp.status == "pass":
            # The weakest claim wins: one merely consistent check makes the whole verdict so.
            head += "  (evidence: consistent)" if "consistent" in strengths else "  (evidence: proven)"
        lines = [head]
        if exp.workflow:
            where = f"  workflow {exp.workflow.workflow_id} run {exp.workflow.run_id or '?'}"
            if exp.candidates > 1:
                where += f" (best of {exp.candidates})"
            lines.append(where)
            lines.append(f"  {exp.workflow.ui_link or exp.workflow.source}")
            if exp.selection:
                lines.append(f"  {exp.selection}")
        elif exp.note:
            lines.append(f"  {exp.note}")
        rows, notes = [], []
        said = set()  # a still-running workflow gives every check the same message: say it once
        for chk in exp.checks:
            rows.append([_mark(chk), _check_title(chk), _check_points(chk)])
            below = []
            explain = chk.status != "pass" or not chk.applies or chk.strength == "consistent" and chk.hint
            if explain and chk.message not in said:
                said.add(chk.message)
                below.append(f"        {chk.message}")
                if chk.hint and (chk.required or chk.status == "pass"):
                    below.append(f"        hint: {chk.hint}")
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
             f"(rubric {report.rubric['id']} {report.rubric['version']}, grader {report.grader_version})")
    blocks.append(total)
    return "\n\n".join(blocks) + "\n"


def _suspect_section(report: Report) -> str:
    """Every suspect history with its findings; empty when all histories are consistent."""
    suspect = [entry for entry in report.integrity if entry.status == "suspect"]
    if not suspect:
        return ""
    lines = [f"Suspect histories: {len(suspect)} of {len(report.integrity)} (no experiment passes on them)"]
    for entry in suspect:
        lines.append(f"  {entry.source}  workflow {entry.workflow_id or '?'} run {entry.run_id or '?'}")
        for finding in entry.findings:
            lines.append(f"    {finding.code}: {finding.message}")
    return "\n".join(lines)
