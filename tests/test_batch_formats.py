"""`grader batch --format X`: every class format, from a real submissions folder, read by its consumer.

The class is built from the golden histories the way an LMS download lays
it out: a learner who passes, one whose only run is still open, one who
handed in nothing, one with a truncated file and a run copied from another
learner, one whose exported bundle was edited afterwards (suspect), and one
whose history carries hostile text in its workflow id and result. Each
format is checked the way its platform reads it: JUnit against the
published XSD and with junitparser, Gradescope's documents against the
results.json schema, Classroom's lines decoded as its reporter does,
markdown parsed with markdown-it, the HTML page parsed with html.parser.
"""

from __future__ import annotations

import base64
import json
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt

from crafted import EVIL_WORKFLOW_ID, write_crafted_history
from events import own_timings
from grader.classroom import batch_files
from grader.engine.classreport import NOT_GRADABLE, ClassRow
from grader.cli import cli
from grader.formats import FORMATS
from grader.engine.report import report_from_dict

GOLDENS = Path(__file__).parent / "goldens"
DATA = Path(__file__).parent / "data"
EXPERIMENTS = ["crash-recovery", "live-fix", "compensation", "network-partition"]


@pytest.fixture
def submissions(tmp_path: Path) -> Path:
    """An LMS download with one learner of every kind the class formats must show."""
    from grader.sources.bundles import write_bundle
    from grader.engine.history import load_history_file

    root = tmp_path / "download"
    (root / "ada").mkdir(parents=True)
    for name in ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund"):
        # ada's own runs: the goldens' run ids, but one event a nanosecond later, so the others'
        # copies below share her run ids (shared runs) without her timings (a copied-run is
        # credited to no one, which tests/test_provenance.py covers).
        (root / "ada" / f"{name}.json").write_text(json.dumps(_retimed(name, 1)))
    with zipfile.ZipFile(root / "bob.zip", "w") as archive:
        archive.write(GOLDENS / "running.json", "histories/running.json")
    (root / "carol").mkdir()  # handed in nothing
    (root / "dave").mkdir()
    shutil.copy(GOLDENS / "live-fix.json", root / "dave" / "fix.json")  # ada's run, copied
    (root / "dave" / "crash.json").write_text('{"events": [')  # cut short
    (root / "eve").mkdir()
    write_crafted_history(root / "eve")
    golden = GOLDENS / "retries-exhausted-refund.json"
    history = load_history_file(golden)
    write_bundle([(history.workflow_id, history.run_id, json.loads(golden.read_text()))], root / "fay",
                 server_address="localhost:7233", namespace="default", learner="fay", as_zip=False)
    edited = next(p for p in (root / "fay").iterdir() if p.name != "manifest.json")
    edited.write_text(edited.read_text() + " ")  # no longer the bytes the manifest hashed
    return root


def _retimed(name: str, nanoseconds: int) -> dict:
    """A golden as another learner's own run of the scenario (see :func:`events.own_timings`)."""
    return own_timings(json.loads((GOLDENS / f"{name}.json").read_text()), nanoseconds)


def batch(submissions: Path, out: Path, output_format: str, *extra: str, env: dict | None = None):
    """Run `grader batch` as a user would, and return click's result."""
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q",
                                      "--no-replay", "--format", output_format, *extra], env=env)
    assert result.exit_code == 0, result.output
    return result


def gradebook(out: Path) -> dict[str, dict]:
    """The gradebook the batch wrote, by learner (the reference each format is compared with)."""
    return {e["learner"]: e for e in json.loads((out / "gradebook.json").read_text())["learners"]}


def test_the_class_has_every_kind_of_learner(submissions: Path, tmp_path: Path):
    batch(submissions, tmp_path / "out", "table")
    book = gradebook(tmp_path / "out")
    assert {k: v["status"] for k, v in book.items()} == {
        "ada": "graded", "bob": "graded", "carol": "missing", "dave": "unreadable-files", "eve": "graded",
        "fay": "graded"}
    assert book["fay"]["flags"] == ["suspect"]
    assert book["ada"]["duplicates"] and book["dave"]["duplicates"]


def test_every_format_has_a_class_rendering():
    """No --format is refused by batch any more: each format module offers render_gradebook."""
    from grader.classroom.summary import summary_renderer

    for name in FORMATS:
        assert callable(summary_renderer(name))


# --- markdown --------------------------------------------------------------------------------


def _table_rows(text: str) -> list[list[str]]:
    """The cells of the first table, as markdown-it parses them (header row first)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    rows, row, in_table = [], None, False
    for token in tokens:
        if token.type == "table_open":
            in_table = True
        elif token.type == "table_close":
            break
        elif token.type == "tr_open" and in_table:
            row = []
        elif token.type == "tr_close" and in_table:
            rows.append(row)
        elif token.type == "inline" and in_table and row is not None:
            row.append("".join(child.content for child in token.children or []))
    return rows


def test_markdown_class_table_matches_the_gradebook(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    text = batch(submissions, out, "markdown").stdout
    book = gradebook(out)
    rows = _table_rows(text)
    assert rows[0][:4] == ["learner", "status", "flags", "score"] and len(rows[0]) == 4 + len(EXPERIMENTS)
    by_learner = {row[0]: row for row in rows[1:]}
    assert list(by_learner) == list(book)  # gradebook order, every learner once
    for name, entry in book.items():
        row = by_learner[name]
        assert row[1].endswith(entry["status"])
        assert row[2] == ", ".join(entry["flags"])
        score = "-" if entry["score"] is None else f"{entry['score']:g}"
        assert row[3] == f"{score}/{entry['max_score']:g}"
        experiments = {e["id"]: e for e in (entry["report"] or {}).get("experiments", [])}
        for cell, exp_id in zip(row[4:], EXPERIMENTS):
            exp = experiments.get(exp_id)
            word = exp["status"].replace("-", " ").upper() if exp else ""
            assert cell == "-" if exp is None else cell.endswith(f"{word} {exp['score']:g}")
    assert "## Needs a look" in text
    # The crafted history's text never reaches the page raw: no carriage return, no escape sequence.
    assert "\r" not in text and "\x1b" not in text


def test_markdown_shows_the_regrade_diff(submissions: Path, tmp_path: Path):
    batch(submissions, tmp_path / "before", "table")
    (submissions / "carol" / "refund.json").write_text(json.dumps(_retimed("retries-exhausted-refund", 2)))
    text = batch(submissions, tmp_path / "after", "markdown", "--previous",
                 str(tmp_path / "before" / "gradebook.json")).stdout
    assert "## Regrade: 1 learner changed" in text
    assert "| `carol` | (status) | missing | graded |" in text
    assert "| `carol` | compensation | - | pass 10 |" in text


# --- html ------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects what a browser would load from elsewhere, and the learner rows with their cells."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0
        self.rows: dict[str, dict] = {}
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.external.append(attrs[key])
        if tag == "tr" and "data-learner" in attrs:
            self._row = attrs["data-learner"]
            self.rows[self._row] = {"status": attrs["data-status"], "cells": {}}
        if tag == "td" and self._row and "data-experiment" in attrs:
            self.rows[self._row]["cells"][attrs["data-experiment"]] = attrs["data-status"]

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None


def test_html_class_page_is_self_contained_and_matches_the_gradebook(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    page_file = tmp_path / "class.html"
    batch(submissions, out, "html", "--output", str(page_file))
    text = page_file.read_text()
    page = _Page()
    page.feed(text)
    assert page.external == [] and page.scripts == 0
    book = gradebook(out)
    assert list(page.rows) == list(book)
    for name, entry in book.items():
        assert page.rows[name]["status"] == entry["status"]
        expected = {e["id"]: e["status"] for e in (entry["report"] or {}).get("experiments", [])}
        assert page.rows[name]["cells"] == expected
    assert '<span class="flag">suspect</span>' in text
    assert "<x/>" not in text and "\x1b" not in text


# --- junit -----------------------------------------------------------------------------------


def test_junit_class_is_valid_and_readable(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    path = tmp_path / "class.xml"
    batch(submissions, out, "junit", "--output", str(path))
    xmlschema.XMLSchema(str(DATA / "junit-4.xsd")).validate(str(path))
    book = gradebook(out)
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(path))}
    assert list(suites) == list(book)
    for name, entry in book.items():
        cases = list(suites[name])
        assert len(cases) == len(EXPERIMENTS)
        experiments = {e["id"]: e for e in (entry["report"] or {}).get("experiments", [])}
        for case, exp_id in zip(cases, EXPERIMENTS):
            assert case.classname == f"failure-lab.{exp_id}"
            kinds = {type(r) for r in case.result}
            exp = experiments.get(exp_id)
            if exp is None or (exp["status"] == "not-attempted" and not exp["required"]):
                assert kinds == {Skipped}  # an optional experiment nobody tried is never a failure
            elif exp["status"] in ("fail", "pending", "not-attempted"):
                assert kinds == {Failure}
                assert case.result[0].type == exp["status"]
            elif exp["status"] == "error":
                assert kinds == {Error}
            else:
                assert kinds == set()
        properties = {p.name: p.value for p in suites[name].properties()}
        assert properties["status"] == entry["status"]
        assert properties["flags"] == ",".join(entry["flags"])
    assert "still running" in str(list(suites["bob"])[0].result[0].message)


def test_junit_gives_a_not_gradable_learner_an_error_per_experiment(submissions: Path, tmp_path: Path):
    """Files never make a learner not-gradable (only a server that will not answer does), so the
    learner is added to a real batch's result as the live batch would record them."""
    from grader.formats.junit import render_gradebook

    result = batch_files(submissions, tmp_path / "out")
    result.learners.append(ClassRow("zoe", NOT_GRADABLE, [], None, 30.0, {},
                                    ["workflow zoe-1: the server did not return it (timeout), even after retrying"]))
    path = tmp_path / "class.xml"
    path.write_text(render_gradebook(result))
    xmlschema.XMLSchema(str(DATA / "junit-4.xsd")).validate(str(path))
    zoe = next(s for s in JUnitXml.fromfile(str(path)) if s.name == "zoe")
    assert [{type(r) for r in case.result} for case in zoe] == [{Error}] * len(EXPERIMENTS)
    assert "did not return it" in list(zoe)[0].result[0].message


# --- github ----------------------------------------------------------------------------------


def test_github_annotations_and_the_step_summary(submissions: Path, tmp_path: Path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    out = tmp_path / "out"
    text = batch(submissions, out, "github",
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}).stdout
    lines = text.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    warned = {line.split("title=Failure Lab%3A ", 1)[1].split(" ", 1)[0] for line in commands}
    # missing, unreadable files, suspect (fay edited her bundle), and those who
    # handed in the same run (eve planted text in a copy of ada's); a learner only graded gets none
    book = gradebook(out)
    assert warned == {n for n, e in book.items() if e["status"] != "graded" or e["flags"] or e["duplicates"]}
    assert warned == {"carol", "dave", "fay", "ada", "eve"}
    assert all(line.startswith("::warning title=") for line in commands)
    # Nothing else on stdout can start a workflow command, whatever the histories said.
    assert [line for line in lines if "::" in line and not line.startswith("::")] == []
    written = summary.read_text()
    assert written.startswith("earlier step\n## Failure Lab class gradebook")
    assert _table_rows(written)[0][:4] == ["learner", "status", "flags", "score"]


def test_github_class_run_as_a_workflow_step_would(submissions: Path, tmp_path: Path):
    """The real entry point in a child process, with the variables Actions sets, as a CI step runs it."""
    import os
    import subprocess
    import sys

    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run([sys.executable, "-m", "grader", "batch", "--submissions", str(submissions),
                           "--out", str(tmp_path / "out"), "-q", "--no-replay", "--format", "github"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("::warning title=Failure Lab%3A ada (shared run)::run ")
    assert "| `carol` | ➖ missing |  | -/30 |" in summary.read_text()


def test_github_marks_a_not_gradable_learner_as_an_error(submissions: Path, tmp_path: Path):
    from grader.formats.github import render_gradebook

    result = batch_files(submissions, tmp_path / "out")
    result.learners.append(ClassRow("zoe", NOT_GRADABLE, [], None, 30.0, {}, ["the server: timeout\n::error::x"]))
    line = render_gradebook(result).splitlines()[-2]
    assert line == "::error title=Failure Lab%3A zoe not gradable::the server: timeout%0A::error::x"


# --- gradescope ------------------------------------------------------------------------------


def test_gradescope_maps_each_learner_to_their_own_results_json(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    documents = json.loads(batch(submissions, out, "gradescope").stdout)
    schema = json.loads((DATA / "gradescope-results.schema.json").read_text())
    book = gradebook(out)
    assert list(documents) == list(book)
    for name, doc in documents.items():
        jsonschema.validate(doc, schema)
        assert doc["extra_data"]["status"] == book[name]["status"]
        if book[name]["report"] is not None:
            assert doc["score"] == book[name]["score"]
    assert documents["carol"]["score"] == 0 and documents["carol"]["tests"] == []
    # The same document `grader check --format gradescope` gives the learner for their own files.
    alone = CliRunner().invoke(cli, ["check", "--format", "gradescope",
                                     *(x for p in sorted((submissions / "ada").iterdir())
                                       for x in ("--history", str(p)))])
    assert alone.exit_code == 0, alone.output
    own = json.loads(alone.stdout)
    ada = dict(documents["ada"])
    ada.pop("extra_data")
    assert ada["tests"] == own["tests"] and ada["score"] == own["score"]


# --- classroom -------------------------------------------------------------------------------


def test_classroom_prints_one_result_line_per_learner(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    text = batch(submissions, out, "classroom").stdout
    book = gradebook(out)
    decoded = {}
    for line in text.splitlines():
        learner, _, rest = line.partition(" ")
        key, _, value = rest.partition("=")
        assert key == "result"
        decoded[learner] = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    assert list(decoded) == list(book)
    for name, doc in decoded.items():
        assert doc["version"] == 1 and doc["max_score"] == book[name]["max_score"]
        # The reporter adds the tests' scores up: that is the learner's grade.
        assert sum(t["score"] for t in doc["tests"]) == (book[name]["score"] or 0)
    assert decoded["carol"]["status"] == "error"
    assert decoded["ada"]["status"] == "pass"


# --- the model ---------------------------------------------------------------------------------


def test_a_report_survives_its_json_round_trip(submissions: Path, tmp_path: Path):
    """The class documents rebuild each report from gradebook.json: nothing may be lost on the way."""
    batch(submissions, tmp_path / "out", "table")
    for entry in gradebook(tmp_path / "out").values():
        if entry["report"] is None:
            continue
        rebuilt = report_from_dict(entry["report"]).to_dict()
        rebuilt.pop("timelines"), entry["report"].pop("timelines", None)
        assert json.loads(json.dumps(rebuilt)) == entry["report"]


def test_hostile_text_stays_inert_in_every_class_format(submissions: Path, tmp_path: Path):
    for name in ("markdown", "html", "junit", "github", "gradescope", "classroom"):
        text = batch(submissions, tmp_path / name, name).stdout
        assert "\x1b" not in text and "\r" not in text, name
        assert EVIL_WORKFLOW_ID not in text, name


def test_a_class_where_nobody_handed_anything_in_still_gets_whole_documents(tmp_path: Path):
    """A roster whose learners all sent nothing: every machine format is still a whole document."""
    (tmp_path / "download" / "ada").mkdir(parents=True)
    roster = tmp_path / "roster.csv"
    roster.write_text("learner,email\nada,ada@example.org\nbob,bob@example.org\n")
    out = tmp_path / "out"
    junit = tmp_path / "class.xml"
    batch(tmp_path / "download", out, "junit", "--roster", str(roster), "--output", str(junit))
    xmlschema.XMLSchema(str(DATA / "junit-4.xsd")).validate(str(junit))
    suites = list(JUnitXml.fromfile(str(junit)))
    assert [s.name for s in suites] == ["ada", "bob"]
    assert all({type(r) for r in case.result} == {Skipped} for s in suites for case in s)
    documents = json.loads(batch(tmp_path / "download", out, "gradescope", "--roster", str(roster)).stdout)
    schema = json.loads((DATA / "gradescope-results.schema.json").read_text())
    for doc in documents.values():
        jsonschema.validate(doc, schema)
    assert [d["extra_data"]["status"] for d in documents.values()] == ["missing", "missing"]
    lines = batch(tmp_path / "download", out, "classroom", "--roster", str(roster)).stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["ada", "bob"]
    github = batch(tmp_path / "download", out, "github", "--roster", str(roster)).stdout
    assert github.count("::warning ") == 2
