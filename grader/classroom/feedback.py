"""``feedback/<learner>.md``: a learner's report with the gradebook's word on their status above it."""

from __future__ import annotations

from grader.escape import markdown as md
from grader.escape import markdown_code
from grader.engine.rubric import Rubric

#: The first line of every feedback file, before the learner id; the gradebook tells its own files by it.
FEEDBACK_TITLE = "# Failure Lab feedback: "

#: What each status means, said to the learner.
_SAID = {
    "graded": "",
    "missing": ("No runs of yours were found, so nothing was graded. This is not a failed attempt: "
                "if you did the experiments, check that your workflow ids start with your learner id "
                "(`LEARNER_ID`) or that your files were handed in."),
    "not-gradable": ("Your runs could not be read, even after retrying. This is a problem on our side, "
                     "not yours: it costs you no points, and you will be graded again."),
    "unreadable-files": ("Some of your files could not be read (listed below); the others were graded. "
                         "Export those histories again and hand them in."),
}


def render_feedback(row, rubric: Rubric) -> str:
    """The Markdown a learner gets back: status, problems, shared runs, then the report itself.

    ``row`` is a :class:`grader.classroom.gradebook.Spooled` learner. Every
    piece of text a learner wrote (their id as a folder name, file and
    member names, messages from their histories, other learners' ids) is
    escaped the way the report's markdown is (:mod:`grader.escape`):
    rendered with HTML allowed, nothing in the file runs, loads or links by
    itself, and no control character reaches a terminal that shows it raw.
    """
    lines = [f"{FEEDBACK_TITLE}{md(row.learner)}", ""]
    score = "" if row.score is None else f", {row.score:g}/{row.max_score:g}"
    flags = "".join(f", flagged **{md(flag)}**" for flag in row.flags)
    late = ", handed in **late**" if row.late else ""
    lines += [f"Status: **{md(row.status)}**{flags}{score}{late} (rubric {md(rubric.id)} {md(rubric.version)})", ""]
    if _SAID.get(row.status):
        lines += [_SAID[row.status], ""]
    # Bad files are also listed by the report below; say each problem once. A set of the body's
    # lines, not a search of the body per problem: that was quadratic in a learner's bad files.
    body_lines = set(row.feedback_body.splitlines())
    problems = [line for line in (f"- {md(p)}" for p in row.problems) if line not in body_lines]
    if problems:
        lines += ["## Problems", ""]
        lines += problems
        lines.append("")
    if row.duplicates:
        lines += ["## Runs handed in by more than one learner", "",
                  "The same run cannot be two people's work; your instructor will look at it.", ""]
        for dup in row.duplicates:
            names = ", ".join(md(name) for name in dup["also_under"])
            more = dup["others"] - len(dup["also_under"])
            names += f" and {more} more" if more > 0 else ""
            lines.append(f"- run {markdown_code(dup['run_id'])} (workflow {markdown_code(dup['workflow_id'])}) "
                         f"also appears under: {names}")
        lines.append("")
    if row.feedback_body:
        lines.append(row.feedback_body.rstrip("\n"))
        lines.append("")
    return "\n".join(lines)
