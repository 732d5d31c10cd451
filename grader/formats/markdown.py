"""The report as Markdown: headings per experiment, each check with its finding and hint.

Kept minimal on purpose; it is what a learner's ``feedback/<learner>.md``
holds under the gradebook's own header.
"""

from __future__ import annotations

from grader.report import Report

_MARK = {"pass": "PASS", "fail": "FAIL", "pending": "PENDING", "error": "ERROR"}


def _points(score: float, max_score: float) -> str:
    return f"{score:g}/{max_score:g}"


def render(report: Report) -> str:
    """The report as a Markdown document (no title: the caller adds one)."""
    lines: list[str] = []
    for exp in report.experiments:
        optional = " (optional)" if not exp.required else ""
        lines.append(f"## {exp.title}{optional}: {_MARK[exp.status]} {_points(exp.score, exp.max_score)}")
        lines.append("")
        if exp.workflow:
            lines.append(f"Graded on workflow `{exp.workflow.workflow_id}`, run `{exp.workflow.run_id or '?'}`"
                         + (f" (best of {exp.candidates})" if exp.candidates > 1 else "") + ".")
            lines.append("")
        elif exp.note:
            lines.append(exp.note)
            lines.append("")
        said: set[str] = set()
        for chk in exp.checks:
            title = chk.title if chk.required else f"{chk.title} (bonus)"
            mark = _MARK[chk.status] if chk.required or chk.status == "pass" else "-"
            lines.append(f"- **{mark}** {title}: {_points(chk.score, chk.max_score)}")
            if chk.status != "pass" and chk.message not in said:
                said.add(chk.message)
                lines.append(f"  - {chk.message}")
                if chk.hint and chk.required:
                    lines.append(f"  - hint: {chk.hint}")
        lines.append("")
    if report.errors:
        lines.append("## Not graded")
        lines.append("")
        lines.extend(f"- {error}" for error in report.errors)
        lines.append("")
    lines.append(f"**Total: {_points(report.score, report.max_score)} {_MARK[report.status]}** "
                 f"(rubric {report.rubric['id']} {report.rubric['version']}, grader {report.grader_version})")
    return "\n".join(lines) + "\n"
