"""The report as Gradescope's ``results.json`` (its autograder results specification).

Top level: ``score`` (the report's score: what goes to the gradebook),
``execution_time``, ``output`` (the verdict per experiment, in markdown with
``output_format: md``) and ``tests``. Each check is one test with ``name``,
``score``, ``max_score``, ``status`` (``passed`` or ``failed``), ``output``
(the finding), ``visibility`` (the rubric's, ``visible`` by default) and
``tags`` (the experiment id, ``required``/``bonus``, and the status when it
is not pass or fail). A pending check is a failed test whose output says the
workflow is still running. Bonus evidence that was not seen is a failed test
too (Gradescope has no third state, and "passed" would claim it was seen), at
0 of its points, its name saying ``bonus evidence, not seen``, its output that
it costs nothing, and a ``not-seen`` tag. ``execution_time`` is whole seconds,
rounded up.

Hints get their own tests. A failed check's hint is a separate zero-point
test named ``Hint: <check>`` whose visibility is the rubric's
``hint_visibility``, ``after_due_date`` unless the rubric says otherwise.
The finding stays visible at once (a learner can act on what was found),
while the advice that tells them how to get the points appears only after
the due date, so resubmitting over and over cannot farm hints. Gradescope
decides per test what a learner sees; putting the hint in the check's own
output would tie both to one visibility.

Checks of an experiment that does not count (optional, not asked for) are
listed with zero points, so the tests never add up past ``score``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

from grader.formats.common import STATUS_WORD, check_title, counted, evidence_strength, pending_message, points, shows_hint
from grader.escape import markdown as md
from grader.escape import visible_controls
from grader.engine.report import Report

def whole_seconds(seconds: float) -> int:
    """``execution_time`` as the spec has it, whole seconds: rounded up, so a run that took any time shows 1 or more."""
    return max(0, math.ceil(seconds - 1e-9)) if seconds > 0 else 0


def document(report: Report, *, execution_time: float = 0.0) -> dict[str, Any]:
    """The ``results.json`` document before encoding.

    ``execution_time`` is the seconds the grading took; the autograder runner
    measures it, a plain ``--format gradescope`` leaves it at 0.
    """
    counted_ids = {e.id for e in counted(report)}
    tests: list[dict[str, Any]] = []
    number = 0
    for index, exp in enumerate(report.experiments, 1):
        is_counted = exp.id in counted_ids
        if exp.status == "not-attempted" and not exp.required:
            continue  # an optional experiment nobody tried is no failed test; the summary names it
        for check_index, chk in enumerate(exp.checks, 1):
            number += 1
            tags = [exp.id, "required" if chk.required else "bonus"]
            if chk.status in ("pending", "error", "not-attempted"):
                tags.append(chk.status)
            if not is_counted:
                tags.append("not-counted")
            if chk.strength and chk.status == "pass":
                tags.append(f"evidence-{chk.strength}")
            if not chk.applies:
                tags.append("not-needed")
            passed = chk.status == "pass"  # before its first use: it is per check
            if not chk.required and not passed:
                tags.append("not-seen")
            output = chk.message
            if chk.status == "pending":
                output = pending_message(chk.message)
            elif chk.status == "error":
                output = f"The check could not run: {chk.message}"
            elif not chk.required and not passed:
                output = f"Bonus evidence not found (it costs nothing): {chk.message}"
            name = f"{exp.title}: {check_title(chk)}" + ("" if is_counted else " (optional, not counted)")
            tests.append({
                "name": visible_controls(name),
                "number": f"{index}.{check_index}",
                "score": chk.score if is_counted else 0,
                "max_score": chk.max_score if is_counted else 0,
                # Gradescope knows only passed and failed: evidence not seen is not "passed", even where
                # it costs nothing (its name and output say so, and it is worth 0 of its points).
                "status": "passed" if passed else "failed",
                "output": visible_controls(output),
                "visibility": chk.visibility,
                "tags": tags,
            })
            if shows_hint(chk):
                tests.append({
                    "name": visible_controls(f"Hint: {exp.title}: {chk.title}"),
                    "number": f"{index}.{check_index}h",
                    "score": 0,
                    "max_score": 0,
                    "status": "failed",
                    "output": visible_controls(chk.hint),
                    "visibility": chk.hint_visibility,
                    "tags": [exp.id, "hint"] + ([] if is_counted else ["not-counted"]),
                })
    lines = [f"**Failure Lab: {STATUS_WORD[report.status]} {points(report.score, report.max_score)}**", ""]
    for exp in report.experiments:
        optional = " (optional, not counted)" if exp.id not in counted_ids else ""
        strength = evidence_strength(exp)
        lines.append(f"- {md(exp.title)}{optional}: {STATUS_WORD[exp.status]} {points(exp.score, exp.max_score)}"
                     + (f" (evidence: {strength})" if strength else "")
                     + (f" (workflow {md(exp.workflow.workflow_id)})" if exp.workflow else
                        (f": {md(exp.note)}" if exp.note else "")))
    for error in report.errors:
        lines.append(f"- could not grade: {md(error)}")
    lines += ["", "Hints for failed checks appear as separate tests; "
                  "the rubric decides when they become visible (after the due date by default)."]
    return {
        "score": report.score,
        "execution_time": whole_seconds(execution_time),
        "output": "\n".join(lines),
        "output_format": "md",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": tests,
    }


def render(report: Report) -> str:
    """``results.json`` text."""
    return json.dumps(document(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def class_documents(result) -> Iterator[tuple[str, dict[str, Any]]]:
    """The class for Gradescope: each learner, in gradebook order, with the ``results.json`` their report gets.

    Gradescope grades one submission at a time, so there is no class
    document of its own; this maps each learner to exactly what
    ``grader check --format gradescope`` would give them, with the
    gradebook's status, flags and problems in ``extra_data``. A learner
    with no report (missing, not-gradable) gets a document with no tests
    and score 0 (the spec requires one) and an output saying why; for a
    not-gradable learner that output says it is on our side and they will be
    graded again, and ``extra_data.status`` lets a script leave them out.
    """
    from grader.formats.classbook import learner_reports

    for entry in learner_reports(result):
        extra = {"status": entry.status, "flags": entry.flags,
                 "problems": [visible_controls(p) for p in entry.problems]}
        if entry.report is not None:
            doc = document(entry.report)
        else:
            reasons = "".join(f"\n- {md(p)}" for p in entry.problems)
            said = (" Your runs could not be read: this is on our side, and you will be graded again."
                    if entry.status == "not-gradable" else "")
            doc = {"score": 0, "execution_time": 0,
                   "output": f"**Failure Lab: {entry.status}**, nothing was graded.{said}{reasons}",
                   "output_format": "md", "tests": []}
        doc["extra_data"] = extra
        yield visible_controls(entry.learner), doc


def render_gradebook(result) -> str:
    """``grader batch --format gradescope``: one JSON object, learner -> results.json document.

    Written one learner at a time (each as a one-key object with its braces
    cut off), so only the text, not every learner's document, is held at once.
    """
    # ASCII escapes keep the text one byte a character: one emoji in a class of thousands would
    # otherwise make Python hold the whole output at four bytes a character.
    members = [json.dumps({learner: doc}, indent=2, ensure_ascii=True, allow_nan=False)[2:-2]
               for learner, doc in class_documents(result)]
    return "{\n" + ",\n".join(members) + "\n}\n" if members else "{}\n"
