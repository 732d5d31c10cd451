"""``feedback/<learner>.md``: a learner's report with the gradebook's word on their status above it."""

from __future__ import annotations

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

    ``row`` is a :class:`grader.classroom.gradebook.Spooled` learner.
    """
    lines = [f"{FEEDBACK_TITLE}{row.learner}", ""]
    score = "" if row.score is None else f", {row.score:g}/{row.max_score:g}"
    flags = "".join(f", flagged **{flag}**" for flag in row.flags)
    lines += [f"Status: **{row.status}**{flags}{score} (rubric {rubric.id} {rubric.version})", ""]
    if _SAID.get(row.status):
        lines += [_SAID[row.status], ""]
    # Bad files are also listed by the report below; say each problem once.
    problems = [p for p in row.problems if p not in row.feedback_body]
    if problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in problems]
        lines.append("")
    if row.duplicates:
        lines += ["## Runs handed in by more than one learner", "",
                  "The same run cannot be two people's work; your instructor will look at it.", ""]
        for dup in row.duplicates:
            names = ", ".join(dup["also_under"])
            more = dup["others"] - len(dup["also_under"])
            names += f" and {more} more" if more > 0 else ""
            lines.append(f"- run `{dup['run_id']}` (workflow `{dup['workflow_id']}`) also appears under: {names}")
        lines.append("")
    if row.feedback_body:
        lines.append(row.feedback_body.rstrip("\n"))
        lines.append("")
    return "\n".join(lines)
