"""The report as JUnit XML, which GitLab, Jenkins and most CI dashboards read.

One ``<testsuite>`` per experiment and one ``<testcase>`` per check. A
failed or pending required check carries a ``<failure>`` whose message is
the finding and whose body adds the hint; an error (a check that could not
run) is an ``<error>``. A bonus check that did not pass is ``<skipped>``:
it cannot fail anything. Points live in each suite's ``<properties>``
(the experiment's ``score``/``max_score`` and every check's), because the
common JUnit schema allows properties on suites only. A test case's name is
the check's title alone (:func:`stable_name`), never its points or its
outcome, so a dashboard keeps one history per check however its score moves.

The document is built with ElementTree, which escapes ``<``, ``&`` and
quotes; :func:`grader.escape.xml_text` first makes visible the control
characters XML cannot hold, so whatever a history says, the XML stays valid.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from grader.formats.classbook import late_words
from grader.formats.common import counted, explains, pending_message, shows_hint
from grader.escape import xml_text
from grader.engine.report import CheckReport, ExperimentReport, Report


def _num(value: float) -> str:
    return f"{value:g}"


def stable_name(check: "CheckReport") -> str:
    """A check's test-case name, the same whatever its outcome: CI dashboards track a test's history by name.

    No points and no status in it (they are the suite's properties); a bonus
    check says so whether or not its evidence was seen.
    """
    return check.title if check.required else f"{check.title} (bonus evidence)"


def _suite(exp: ExperimentReport, *, is_counted: bool) -> ET.Element:
    # An optional experiment nobody tried is skipped, never failed; a required one is a failure.
    skip_all = exp.status == "not-attempted" and not exp.required
    failures = 0 if skip_all else sum(1 for c in exp.checks if c.required and c.status in ("fail", "pending",
                                                                                           "not-attempted"))
    errors = sum(1 for c in exp.checks if c.required and c.status == "error")
    skipped = len(exp.checks) if skip_all else sum(1 for c in exp.checks if not c.required and c.status != "pass")
    suite = ET.Element("testsuite", {
        "name": xml_text(exp.title, keep_newlines=False),
        "id": exp.id,
        "package": "failure-lab",
        "tests": str(len(exp.checks)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": "0",
    })
    props = ET.SubElement(suite, "properties")

    def prop(name: str, value: object) -> None:
        ET.SubElement(props, "property", {"name": name, "value": xml_text(value, keep_newlines=False)})

    prop("experiment", exp.id)
    prop("status", exp.status)
    prop("score", _num(exp.score))
    prop("max_score", _num(exp.max_score))
    prop("required", str(exp.required).lower())
    prop("counted", str(is_counted).lower())
    if exp.workflow is not None:
        prop("workflow_id", exp.workflow.workflow_id)
        prop("run_id", exp.workflow.run_id)
        prop("source", exp.workflow.source)
        if exp.workflow.ui_link:
            prop("ui_link", exp.workflow.ui_link)
    if exp.selection:
        prop("selection", exp.selection)
    for chk in exp.checks:
        prop(f"{chk.id}.score", _num(chk.score))
        prop(f"{chk.id}.max_score", _num(chk.max_score))
        if chk.strength:
            prop(f"{chk.id}.evidence", chk.strength)
        if not chk.applies:
            prop(f"{chk.id}.applies", "false")

    for chk in exp.checks:
        case = ET.SubElement(suite, "testcase", {
            "name": xml_text(stable_name(chk), keep_newlines=False),
            "classname": f"failure-lab.{exp.id}",
            "time": "0",
        })
        message = xml_text(chk.message, keep_newlines=False)
        body = "\n".join(part for part in (
            xml_text(chk.message),
            f"hint: {xml_text(chk.hint)}" if shows_hint(chk) else "",
            f"check: {chk.id}",
        ) if part)
        if skip_all:
            ET.SubElement(case, "skipped").text = f"optional experiment not attempted: {message}"
        elif not chk.required:
            if chk.status != "pass":
                ET.SubElement(case, "skipped").text = f"bonus evidence not shown: {message}"
        elif chk.status == "not-attempted":
            ET.SubElement(case, "failure", {"message": message, "type": "not-attempted"}).text = body
        elif chk.status == "error":
            ET.SubElement(case, "error", {"message": message, "type": "error"}).text = body
        elif chk.status == "pending":
            ET.SubElement(case, "failure", {"message": pending_message(message),
                                            "type": "pending"}).text = body
        elif chk.status == "fail":
            ET.SubElement(case, "failure", {"message": message, "type": "fail"}).text = body
        out = []
        if chk.status == "pass" and explains(chk):
            out.append(body)  # a weak or not-needed pass still says why, with its advice
        if exp.workflow is not None:
            out.append(f"workflow {exp.workflow.workflow_id} run {exp.workflow.run_id}\n"
                       f"{exp.workflow.ui_link or exp.workflow.source}")
        if out:
            ET.SubElement(case, "system-out").text = xml_text("\n".join(out))
    return suite


def render(report: Report) -> str:
    """The report as one JUnit XML document."""
    counted_ids = {e.id for e in counted(report)}
    suites = [_suite(e, is_counted=e.id in counted_ids) for e in report.experiments]
    if report.errors:
        # Unreadable inputs are errors of the grading run itself: one case each, so CI shows them.
        inputs = ET.Element("testsuite", {"name": "Inputs", "id": "inputs", "package": "failure-lab",
                                          "tests": str(len(report.errors)), "failures": "0",
                                          "errors": str(len(report.errors)), "skipped": "0", "time": "0"})
        for index, error in enumerate(report.errors, 1):
            case = ET.SubElement(inputs, "testcase", {"name": f"input {index}", "classname": "failure-lab.inputs",
                                                      "time": "0"})
            ET.SubElement(case, "error", {"message": xml_text(error, keep_newlines=False),
                                          "type": "bad-input"}).text = xml_text(error)
        suites.append(inputs)
    return _document(f"Failure Lab ({report.rubric['id']} {report.rubric['version']})", suites)


def _document(name: str, suites: list) -> str:
    """The ``testsuites`` root over ``suites``, its totals summed from theirs, as an XML document."""
    root = ET.Element("testsuites", {
        "name": xml_text(name, keep_newlines=False),
        "tests": str(sum(int(s.get("tests")) for s in suites)),
        "failures": str(sum(int(s.get("failures")) for s in suites)),
        "errors": str(sum(int(s.get("errors")) for s in suites)),
        "time": "0",
    })
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_gradebook(result) -> str:
    """The class as JUnit XML (``grader batch --format junit``): a suite per learner, a case per experiment.

    A failed or pending experiment is a ``<failure>`` with its finding; a
    learner whose runs could not be read (not-gradable) gets an ``<error>``
    on every experiment, since nothing about their work is known; a learner
    with nothing handed in (missing), or an experiment with no grade, is
    ``<skipped>``. Status, flags, score and problems are the suite's properties.
    """
    suites = []
    for row in result.learners:
        suite = ET.Element("testsuite", {"name": xml_text(row.learner, keep_newlines=False),
                                         "id": xml_text(row.learner, keep_newlines=False),
                                         "package": "failure-lab", "time": "0"})
        props = ET.SubElement(suite, "properties")

        def prop(name: str, value: object) -> None:
            ET.SubElement(props, "property", {"name": name, "value": xml_text(value, keep_newlines=False)})

        prop("status", row.status)
        prop("flags", ",".join(row.flags))
        prop("score", "" if row.score is None else _num(row.score))
        prop("max_score", _num(row.max_score))
        if row.late is not None:
            prop("late", late_words(row.late))
        for index, problem in enumerate(row.problems, 1):
            prop(f"problem.{index}", problem)
        failures = errors = skipped = 0
        for exp_id, title in result.experiments:
            cell = row.cells.get(exp_id)
            if cell is not None and cell.points is not None:
                prop(f"{exp_id}.score", _num(cell.points))
            case = ET.SubElement(suite, "testcase", {"name": xml_text(title, keep_newlines=False),
                                                     "classname": f"failure-lab.{exp_id}", "time": "0"})
            if row.status == "not-gradable":
                errors += 1
                why = row.problems[0] if row.problems else "the learner's runs could not be read"
                ET.SubElement(case, "error", {"message": xml_text(why, keep_newlines=False),
                                              "type": "not-gradable"}).text = xml_text("\n".join(row.problems))
            elif cell is None:
                skipped += 1
                # The common JUnit schema gives <skipped> no attributes: the reason is its text.
                ET.SubElement(case, "skipped").text = xml_text(
                    f"{row.status}: not graded" if row.status == "missing" else "no grade for this experiment")
            elif cell.status == "not-attempted" and exp_id in result.optional:
                skipped += 1  # an optional experiment nobody tried is never a failure
                ET.SubElement(case, "skipped").text = xml_text(f"optional experiment not attempted: {cell.finding}")
            elif cell.status in ("fail", "pending", "not-attempted"):
                failures += 1
                message = pending_message(cell.finding) if cell.status == "pending" else cell.finding
                ET.SubElement(case, "failure", {"message": xml_text(message, keep_newlines=False),
                                                "type": cell.status}).text = xml_text(message)
            elif cell.status == "error":
                errors += 1
                ET.SubElement(case, "error", {"message": xml_text(cell.finding, keep_newlines=False),
                                              "type": "error"}).text = xml_text(cell.finding)
        suite.set("tests", str(len(result.experiments)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
        suites.append(suite)
    rubric = f" ({result.rubric['id']} {result.rubric['version']})" if result.rubric else ""
    return _document(f"Failure Lab class{rubric}", suites)
