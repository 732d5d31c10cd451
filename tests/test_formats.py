"""Every output format, read back by a real consumer or checked against a published schema.

- junit: read with junitparser and validated against a published JUnit XSD
  (tests/data/junit-4.xsd, vendored from a PyPI package) with xmlschema;
- markdown: rendered by markdown-it-py (CommonMark with GFM tables);
- gradescope: validated against the results.json fields Gradescope's
  specification lists (tests/data/gradescope-results.schema.json);
- classroom: decoded and added up the way GitHub Classroom's reporter does;
- github: parsed back the way the Actions runner reads workflow commands
  (tests/test_github.py runs the shipped workflow's commands);
- table: what a terminal would show.

Plus ``--output``, the rubric's visibility fields, and a crafted history
whose hostile text must stay inert in every format.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt

from crafted import EVIL_RESULT, EVIL_WORKFLOW_ID, write_crafted_history
from grader import api
from grader.cli import cli
from grader.formats import FORMATS, render
from grader.engine.evidence import build_evidence
from grader.engine.history import load_history_file
from grader.engine.report import assemble, grade_experiment
from grader.engine.rubric import load_rubric

ROOT = Path(__file__).parent.parent
GOLDENS = ROOT / "tests" / "goldens"
DATA = ROOT / "tests" / "data"
ALL_FORMATS = ["table", "json", "markdown", "gradescope", "junit", "github", "classroom"]


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(scope="module")
def mixed_report():
    """One report with passes, a failure with a hint, a pending run, a bonus and an optional experiment.

    The best run wins each experiment, so one folder cannot hold a failure next to a
    pending run; each experiment's checks run on their own golden (whichever experiment
    that run would count for) and are assembled.
    """
    rubric = load_rubric()

    def one(golden: str, experiment: str):
        run = build_evidence(load_history_file(GOLDENS / f"{golden}.json"))
        return grade_experiment(rubric.experiment(experiment), run)

    experiments = [one("sigkill-during-deposit", "crash-recovery"), one("running", "live-fix"),
                   one("cancel", "compensation"), one("no-failure", "network-partition")]
    return assemble(experiments, load_rubric())


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    return write_crafted_history(tmp_path)


def gradescope_schema() -> dict:
    return json.loads((DATA / "gradescope-results.schema.json").read_text())


def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(DATA / "junit-4.xsd"))


# --- the registry and the shared option -------------------------------------------------------

def test_every_issue_format_is_registered_and_offered_by_check_and_simulate():
    assert [name for name in FORMATS if name in ALL_FORMATS] == ALL_FORMATS  # html may sit among them
    for command in ("check", "simulate"):
        result = run(command, "--help")
        assert result.exit_code == 0
        for name in ALL_FORMATS:
            assert name in result.stdout
        assert "--output FILE" in result.stdout


def test_an_unknown_format_is_a_usage_error():
    result = run("check", "--history", str(GOLDENS / "live-fix.json"), "--format", "yaml")
    assert result.exit_code == 2
    assert "yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ALL_FORMATS)
def test_each_format_keeps_the_exit_code_and_writes_only_itself(name: str):
    passing = run("check", "--history", str(GOLDENS / "retries-exhausted-refund.json"),
                  "--experiment", "compensation", "--format", name)
    failing = run("check", "--history", str(GOLDENS / "cancel.json"), "--experiment", "compensation",
                  "--format", name)
    assert (passing.exit_code, failing.exit_code) == (0, 1)
    assert passing.stderr == "" and passing.stdout.strip()


# --- --output ---------------------------------------------------------------------------------

def test_output_writes_the_file_atomically_and_leaves_stdout_empty(tmp_path: Path):
    target = tmp_path / "report.xml"
    target.write_text("old report")
    result = run("check", "--history", str(GOLDENS / "cancel.json"), "--experiment", "compensation",
                 "--format", "junit", "--output", str(target))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert target.read_text().startswith('<?xml version="1.0"')
    assert [p.name for p in tmp_path.iterdir()] == ["report.xml"]  # no temporary file left behind
    junit_schema().validate(str(target))


def test_output_into_a_missing_folder_is_one_line_and_exit_2(tmp_path: Path):
    result = run("check", "--history", str(GOLDENS / "cancel.json"), "--format", "json",
                 "--output", str(tmp_path / "no" / "such" / "report.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith("grader: error: cannot write ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_output_into_a_read_only_folder_is_exit_2(tmp_path: Path):
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = run("check", "--history", str(GOLDENS / "cancel.json"), "--output", str(tmp_path / "r.txt"))
    finally:
        tmp_path.chmod(stat.S_IRWXU)
    assert result.exit_code == 2 and "cannot write" in result.stderr


# --- junit ------------------------------------------------------------------------------------

def test_junit_is_valid_against_the_published_xsd_and_readable_by_junitparser(mixed_report, tmp_path: Path):
    path = tmp_path / "junit.xml"
    path.write_text(render(mixed_report, "junit"))
    junit_schema().validate(str(path))
    xml = JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == [e.title for e in mixed_report.experiments]
    for exp in mixed_report.experiments:
        suite = suites[exp.title]
        assert suite.tests == len(exp.checks)
        props = {p.name: p.value for p in suite.properties()}
        assert float(props["score"]) == exp.score and float(props["max_score"]) == exp.max_score
        for chk in exp.checks:
            assert float(props[f"{chk.id}.score"]) == chk.score
            assert float(props[f"{chk.id}.max_score"]) == chk.max_score
        cases = list(suite)
        assert len(cases) == len(exp.checks)
        for case, chk in zip(cases, exp.checks):
            kinds = {type(r) for r in case.result}
            if chk.required and chk.status in ("fail", "pending"):
                assert kinds == {Failure}
                failure = case.result[0]
                assert chk.message in failure.message
                if chk.hint:
                    assert f"hint: {chk.hint}" in failure.text
                if chk.status == "pending":
                    assert "still running" in failure.message
            elif chk.required and chk.status == "error":
                assert kinds == {Error}
            elif not chk.required and chk.status != "pass":
                assert kinds == {Skipped}
            else:
                assert case.is_passed
    failed = sum(1 for e in mixed_report.experiments for c in e.checks
                 if c.required and c.status in ("fail", "pending"))
    assert failed > 0 and sum(s.failures for s in xml) == failed


def test_junit_reports_unreadable_inputs_as_errors(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run("check", "--history", str(GOLDENS / "live-fix.json"), "--history", str(bad),
                 "--format", "junit")
    assert result.exit_code == 2
    (tmp_path / "out.xml").write_text(result.stdout)
    junit_schema().validate(str(tmp_path / "out.xml"))
    inputs = [s for s in JUnitXml.fromfile(str(tmp_path / "out.xml")) if s.name == "Inputs"]
    assert len(inputs) == 1 and inputs[0].errors == 1
    assert "bad.json" in list(inputs[0])[0].result[0].message


# --- gradescope -------------------------------------------------------------------------------

def test_gradescope_results_follow_the_spec_and_add_up(mixed_report):
    document = json.loads(render(mixed_report, "gradescope"))
    jsonschema.validate(document, gradescope_schema())
    assert document["score"] == mixed_report.score
    checks = [t for t in document["tests"] if "hint" not in t["tags"]]
    assert len(checks) == sum(len(e.checks) for e in mixed_report.experiments)
    assert sum(t["score"] for t in document["tests"]) == mixed_report.score
    assert sum(t["max_score"] for t in document["tests"]) == mixed_report.max_score
    pending = [t for t in checks if "pending" in t["tags"] and "required" in t["tags"]]
    assert pending and all(t["status"] == "failed" and "still running" in t["output"] for t in pending)
    # Hints are their own zero-point tests, shown after the due date by default; findings stay visible.
    hints = [t for t in document["tests"] if "hint" in t["tags"]]
    assert hints and all(t["visibility"] == "after_due_date" and t["max_score"] == 0 for t in hints)
    assert all(t["visibility"] == "visible" for t in checks)
    for exp in mixed_report.experiments:
        for chk in exp.checks:
            if chk.hint and chk.required and chk.status != "pass":
                assert any(t["output"] == chk.hint for t in hints)
                assert not any(chk.hint in t["output"] for t in checks)


def test_rubric_visibility_reaches_the_gradescope_tests(tmp_path: Path):
    rubric = json.loads((ROOT / "rubrics" / "failure-simulation.json").read_text())
    del rubric["$schema"]
    for chk in rubric["experiments"][2]["checks"]:  # compensation
        chk["visibility"] = "after_published"
        chk["hint_visibility"] = "visible"
    rubric["experiments"][2]["checks"][0]["visibility"] = "hidden"
    rubric["experiments"][2]["params"]["allowed_maximum_attempts"] = [5]  # so a check fails, with its hint
    path = tmp_path / "rubric.json"
    path.write_text(json.dumps(rubric))
    result = run("check", "--history", str(GOLDENS / "retries-exhausted-refund.json"), "--experiment", "compensation",
                 "--rubric", str(path), "--format", "gradescope")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    jsonschema.validate(document, gradescope_schema())
    checks = [t for t in document["tests"] if "hint" not in t["tags"]]
    hints = [t for t in document["tests"] if "hint" in t["tags"]]
    assert [t["visibility"] for t in checks] == ["hidden", "after_published", "after_published", "after_published"]
    assert hints and {t["visibility"] for t in hints} == {"visible"}
    as_json = json.loads(run("check", "--history", str(GOLDENS / "retries-exhausted-refund.json"), "--experiment",
                             "compensation", "--rubric", str(path), "--format", "json").stdout)
    assert as_json["experiments"][0]["checks"][0]["visibility"] == "hidden"


def test_a_rubric_with_an_unknown_visibility_is_refused(tmp_path: Path):
    rubric = json.loads((ROOT / "rubrics" / "failure-simulation.json").read_text())
    del rubric["$schema"]
    rubric["experiments"][0]["checks"][0]["visibility"] = "students-only"
    path = tmp_path / "rubric.json"
    path.write_text(json.dumps(rubric))
    result = run("check", "--history", str(GOLDENS / "live-fix.json"), "--rubric", str(path))
    assert result.exit_code == 2
    assert "experiments/0/checks/0/visibility" in result.stderr


# --- classroom --------------------------------------------------------------------------------

def classroom_document(stdout: str) -> dict:
    """Decode the ``result=`` line as the reporter does: base64, then JSON."""
    line, = stdout.splitlines()
    key, _, value = line.partition("=")
    assert key == "result"
    return json.loads(base64.b64decode(value, validate=True).decode("utf-8"))


def test_classroom_result_carries_partial_credit(mixed_report):
    document = classroom_document(render(mixed_report, "classroom"))
    assert document["version"] == 1
    assert document["status"] == "fail"
    assert document["max_score"] == mixed_report.max_score
    # The reporter's gradebook total: the tests' scores added up, out of max_score.
    total = sum(t["score"] for t in document["tests"])
    assert total == mixed_report.score and 0 < total < document["max_score"]
    for test in document["tests"]:
        assert set(test) >= {"name", "status", "message", "score"}
        assert test["status"] in ("pass", "fail", "error")


def test_classroom_passes_a_full_grade():
    result = run("check", "--history", str(GOLDENS), "--format", "classroom")
    assert result.exit_code == 0
    document = classroom_document(result.stdout)
    assert document["status"] == "pass"
    assert sum(t["score"] for t in document["tests"]) == document["max_score"] == 30


# --- markdown ---------------------------------------------------------------------------------

def markdown_html(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough").render(text)


def test_markdown_renders_a_table_per_experiment_with_findings_and_hints(mixed_report):
    text = render(mixed_report, "markdown")
    html = markdown_html(text)
    assert html.count("<table>") == len(mixed_report.experiments)
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        assert len(re.findall(r"<t[hd][ >]", row)) == 3
    failing = [c for e in mixed_report.experiments for c in e.checks
               if c.required and c.status == "fail" and c.hint]
    assert failing
    for chk in failing:
        assert chk.hint.split("(")[0].strip().replace("'", "&#x27;") in html.replace("'", "&#x27;")


# --- safe text: a crafted history in every format ---------------------------------------------

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e]")


# html is its own module's business (issue 11) and is checked in a browser by its own tests.
@pytest.mark.parametrize("name", [n for n in FORMATS if n not in ("json", "html")])
def test_crafted_history_text_is_inert_in_every_format(crafted: Path, name: str):
    result = run("check", "--history", str(crafted), "--experiment", "crash-recovery", "--format", name)
    assert result.exit_code == 1  # the result check fails: the crafted result names no transaction
    assert not CONTROL.search(result.stdout), repr(CONTROL.search(result.stdout))
    assert "\r" not in result.stdout


def test_crafted_text_cannot_overwrite_the_fail_line_in_the_table(crafted: Path):
    result = run("check", "--history", str(crafted), "--experiment", "crash-recovery")
    lines = result.stdout.splitlines()
    fail_line = next(line for line in lines if "The result names the real transactions" in line)
    assert fail_line.lstrip().startswith("FAIL")
    assert "evil\\x0d\\x1b[1A-run" in result.stdout  # shown, not obeyed
    assert "\\x1b[2K\\x1b[32mPASS" in result.stdout


def test_crafted_text_stays_text_in_junit(crafted: Path, tmp_path: Path):
    result = run("check", "--history", str(crafted), "--experiment", "crash-recovery", "--format", "junit")
    path = tmp_path / "junit.xml"
    path.write_text(result.stdout)
    junit_schema().validate(str(path))
    suite, = JUnitXml.fromfile(str(path))
    props = {p.name: p.value for p in suite.properties()}
    assert props["workflow_id"] == EVIL_WORKFLOW_ID.replace("\r", "\\x0d").replace("\x1b", "\\x1b")
    failures = [case.result[0] for case in suite if case.result and isinstance(case.result[0], Failure)]
    assert len(failures) == 1
    assert "</failure><x/>" in failures[0].message  # parsed back as text, not as markup
    assert len(list(suite)) == 5


def test_crafted_text_stays_text_in_markdown(crafted: Path):
    result = run("check", "--history", str(crafted), "--experiment", "crash-recovery", "--format", "markdown")
    html = markdown_html(result.stdout)
    assert "<x/>" not in html and "</failure>" not in html
    assert "javascript:" not in re.sub(r"<(?!a )[^>]*>", "", html) or 'href="javascript' not in html
    assert 'href="javascript' not in html
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        assert len(re.findall(r"<t[hd][ >]", row)) == 3  # a | in the text adds no column
    assert "@team" in html and "<code>" in html
    # The workflow id is inside one code span, whole.
    assert "evil\\x0d\\x1b[1A-run|&lt;/system-out&gt;::warning::`*x*`" in html


def test_crafted_text_cannot_start_a_github_command(crafted: Path):
    result = run("check", "--history", str(crafted), "--experiment", "crash-recovery", "--format", "github")
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert len(commands) == len(lines) - 1  # everything but the total line is one of our commands
    assert [c.split(" ", 1)[0] for c in commands] == ["::error", "::notice"]
    assert "%250A" in commands[0]  # a literal %0A in the history is not a newline for the runner
    assert EVIL_RESULT.split("\n")[1].split(" ")[0] not in [line.split(" ")[0] for line in lines]


@pytest.mark.slow
def test_simulate_writes_any_format_to_output_and_keeps_its_summary_on_stdout(tmp_path: Path):
    """simulate takes the same options: its grade as JUnit in a file, its run summary on stdout."""
    import subprocess
    import sys

    target = tmp_path / "simulate.xml"
    done = subprocess.run([sys.executable, "-m", "grader", "simulate", "--experiment", "compensation",
                           "--latency", "0.3", "--format", "junit", "--output", str(target)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "compensation" in done.stdout and "reached" in done.stdout  # the summary table
    assert "<testsuite" not in done.stdout
    junit_schema().validate(str(target))
    suite, = JUnitXml.fromfile(str(target))
    assert suite.name == "Compensation" and suite.failures == 0 and suite.tests == 4


def test_crafted_text_is_inert_in_the_timeline_too(crafted: Path):
    result = run("timeline", "--history", str(crafted))
    assert result.exit_code == 0
    assert not CONTROL.search(result.stdout) and "\r" not in result.stdout
    assert "evil\\x0d\\x1b[1A-run" in result.stdout


def test_evidence_strength_and_not_needed_checks_reach_every_structured_format(tmp_path: Path):
    """A proven live fix and a retry limit that did not apply read the same in markdown, gradescope, junit."""
    live = api.check_files([GOLDENS / "live-fix.json"], experiments=["live-fix"]).experiments[0]
    comp = api.check_files([GOLDENS / "non-retryable-refund.json"], experiments=["compensation"]).experiments[0]
    report = assemble([live, comp], load_rubric(), count_optional=True)
    not_needed = next(c for c in comp.checks if not c.applies)

    text = render(report, "markdown")
    assert "Live bug fix: PASS 10/10 (evidence: proven)" in text
    assert f"| N/A | {not_needed.title} |" in text
    assert "not needed" in text

    tests = json.loads(render(report, "gradescope"))["tests"]
    assert any("evidence-proven" in t["tags"] for t in tests)
    assert [t["name"] for t in tests if "not-needed" in t["tags"]] == [f"Compensation: {not_needed.title}"]

    path = tmp_path / "junit.xml"
    path.write_text(render(report, "junit"))
    junit_schema().validate(str(path))
    props = {p.name: p.value for suite in JUnitXml.fromfile(str(path)) for p in suite.properties()}
    assert props["live-fix.fixed-by-restart.evidence"] == "proven"
    assert props[f"{not_needed.id}.applies"] == "false"


# --- experiments nobody tried: not-attempted, and an optional one is never a failure ---------


@pytest.fixture(scope="module")
def all_but_the_partition():
    """Three real runs, one per required experiment: network-partition (optional) is not attempted."""
    return api.check_files([GOLDENS / f"{n}.json" for n in ("sigkill-during-deposit", "live-fix",
                                                             "retries-exhausted-refund")])


@pytest.fixture(scope="module")
def plain_transfer():
    """A transfer with no experiment in it: every experiment is not attempted."""
    return api.check_files([GOLDENS / "no-failure.json"])


def test_a_plain_transfer_scores_0_with_every_experiment_not_attempted(plain_transfer):
    assert [e.status for e in plain_transfer.experiments] == ["not-attempted"] * 4
    assert plain_transfer.score == 0 and plain_transfer.status == "fail"
    table = render(plain_transfer, "table")
    assert "Crash recovery: NOT ATTEMPTED  0/10" in table
    assert "Network partition (optional): NOT ATTEMPTED  0/3" in table
    data = json.loads(render(plain_transfer, "json"))
    jsonschema.validate(data, json.loads((ROOT / "grader" / "schemas" / "report.schema.json").read_text()))
    assert {e["status"] for e in data["experiments"]} == {"not-attempted"}


def test_the_optional_experiment_not_attempted_is_no_failure_anywhere(all_but_the_partition, tmp_path: Path):
    report = all_but_the_partition
    partition = report.experiments[-1]
    assert (partition.id, partition.status, partition.score) == ("network-partition", "not-attempted", 0)
    assert report.status == "pass" and report.score == report.max_score == 30
    # JUnit: the optional suite's cases are all skipped, none failed; the XSD still holds.
    path = tmp_path / "junit.xml"
    path.write_text(render(report, "junit"))
    junit_schema().validate(str(path))
    suite = next(s for s in JUnitXml.fromfile(str(path)) if s.name == partition.title)
    assert suite.failures == 0 and suite.errors == 0 and suite.skipped == suite.tests == len(partition.checks)
    assert all({type(r) for r in case.result} == {Skipped} for case in suite)
    # Gradescope: no failed test about it (none at all); the summary still names it.
    document = json.loads(render(report, "gradescope"))
    jsonschema.validate(document, gradescope_schema())
    assert not [t for t in document["tests"] if "network-partition" in t["tags"]]
    assert not [t for t in document["tests"] if t["status"] == "failed"]
    assert "Network partition (optional, not counted): NOT ATTEMPTED" in document["output"]
    # GitHub: no warning, no error.
    github = render(report, "github")
    assert "::warning" not in github and "::error" not in github
    # Classroom: nothing failed.
    classroom = json.loads(base64.b64decode(render(report, "classroom").strip().removeprefix("result=")))
    assert {t["status"] for t in classroom["tests"]} == {"pass"}
    # The words formats say it was not attempted, never FAIL.
    assert "Network partition (optional): NOT ATTEMPTED  0/3" in render(report, "table")
    assert "NOT ATTEMPTED" in render(report, "markdown") and "Not attempted:" in render(report, "markdown")
    html = render(report, "html")
    assert 'data-experiment="network-partition" data-status="not-attempted"' in html
    assert "Not attempted: no run has a silence" in html


def test_a_required_experiment_not_attempted_fails_in_junit_github_and_gradescope(plain_transfer, tmp_path: Path):
    path = tmp_path / "junit.xml"
    path.write_text(render(plain_transfer, "junit"))
    junit_schema().validate(str(path))
    suites = {s.name: s for s in JUnitXml.fromfile(str(path))}
    crash = suites["Crash recovery"]
    assert crash.failures == len([c for c in plain_transfer.experiments[0].checks if c.required])
    assert suites["Network partition"].failures == 0
    github = render(plain_transfer, "github")
    assert "::error title=Crash recovery" in github and "Network partition" not in github
    document = json.loads(render(plain_transfer, "gradescope"))
    failed = {t["tags"][0] for t in document["tests"] if t["status"] == "failed"}
    assert failed == {"crash-recovery", "live-fix", "compensation"}
