"""The result GitHub Classroom's autograding reporter reads, as a ``$GITHUB_OUTPUT`` line.

Classroom's grader actions each set a step output ``result``: base64 of a
JSON document with ``version`` (1), ``status`` (pass, fail or error),
``max_score`` and ``tests``, each test with ``name``, ``status``,
``message`` and its ``score``. The reporter adds the tests' scores up and
sends ``total/max_score`` to the Classroom gradebook, so partial credit
(16/30) arrives as such instead of the all-or-nothing of an exit code.

This format prints exactly ``result=<base64>``: a step appends it to
``$GITHUB_OUTPUT`` (``grader ... --format classroom >> "$GITHUB_OUTPUT"``)
and the reporter step reads ``steps.<id>.outputs.result``. Checks of
experiments that do not count (an optional one not asked for) are listed
with score 0, so the sum of scores is always the report's score.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from grader.formats.common import check_title, counted, pending_message, shows_hint
from grader.escape import visible_controls
from grader.engine.report import Report

_STATUS = {"pass": "pass", "fail": "fail", "pending": "fail", "error": "error", "not-attempted": "fail"}


def document(report: Report) -> dict[str, Any]:
    """The JSON document before encoding."""
    counted_ids = {e.id for e in counted(report)}
    tests = []
    for exp in report.experiments:
        is_counted = exp.id in counted_ids
        for chk in exp.checks:
            message = chk.message if chk.status != "pending" else pending_message(chk.message)
            if shows_hint(chk):
                message += f" Hint: {chk.hint}"
            name = f"{exp.title}: {check_title(chk)}" + ("" if is_counted else " (optional, not counted)")
            tests.append({
                "name": visible_controls(name),
                # A bonus check that found nothing is not a failure of the learner.
                # An optional experiment nobody tried is not a failure either.
                "status": _STATUS[chk.status] if chk.required and (exp.required or chk.status != "not-attempted")
                else "pass",
                "message": visible_controls(message),
                "test_code": f"grader check --experiment {exp.id}",
                "filename": "",
                "line_no": 0,
                "execution_time": "0s",
                "score": chk.score if is_counted else 0,
                "max_score": chk.max_score if is_counted else 0,
            })
    return {
        "version": 1,
        "status": "error" if report.status == "error" else ("pass" if report.passed else "fail"),
        "max_score": report.max_score,
        "tests": tests,
    }


def encode(report: Report) -> str:
    """The base64 text the reporter decodes."""
    raw = json.dumps(document(report), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return base64.b64encode(raw.encode("ascii")).decode("ascii")


def render(report: Report) -> str:
    """``result=<base64 JSON>``, one line for ``$GITHUB_OUTPUT``."""
    return f"result={encode(report)}\n"


def render_gradebook(result) -> str:
    """``grader batch --format classroom``: one ``<learner> result=<base64>`` line per learner.

    Classroom's reporter grades one repository, so a class has no single
    result: each line carries the document that learner's own repository
    would report, after their id and a space, so a script can split each
    line at its one space and hand the result on. The id is percent-encoded
    (:func:`line_learner`): a folder named ``bob result=<base64>`` or one
    holding a newline cannot forge a second result or a second line. A
    learner with no report gets ``status`` ``error``, no tests, and the
    rubric's maximum.
    """
    from grader.formats.classbook import learner_reports

    lines = []
    for entry in learner_reports(result):
        if entry.report is not None:
            encoded = encode(entry.report)
        else:
            doc = {"version": 1, "status": "error", "max_score": result.max_score, "tests": []}
            raw = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            encoded = base64.b64encode(raw.encode("ascii")).decode("ascii")
        lines.append(f"{line_learner(entry.learner)} result={encoded}")
    return "\n".join(lines) + "\n"


def line_learner(learner: str) -> str:
    """A learner id as the first field of a class line: no space, ``=``, control character or ``%`` left raw.

    Ids that are plain names (``ada``, ``g.hopper+lab@uni``) read as they are;
    anything else is percent-encoded as UTF-8, which ``urllib.parse.unquote``
    turns back into the id.
    """
    from urllib.parse import quote

    return quote(learner.encode("utf-8", "surrogatepass"), safe="@+._-~")
