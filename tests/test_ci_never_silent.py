"""CI never goes silent: whatever breaks before grading, every document format still writes its document.

An app with no run_worker.py, an app whose worker dies of a syntax error, a
server that is not there: the format asked for still gets a whole document
(score 0, each experiment ungraded, the error as the finding), read here by
each format's consumer, and the exit code is the error's own, never 0.
Only the table, read by a person, keeps its one line on stderr.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml

from grader.cli import cli

DATA = Path(__file__).parent / "data"

#: Each document format and a function that reads it the way its platform does, returning the score.


def read_json(text: str) -> float:
    from grader.engine.report import report_schema

    document = json.loads(text)
    jsonschema.validate(document, report_schema())
    assert document["status"] == "error" and document["errors"]
    return document["score"]


def read_gradescope(text: str) -> float:
    document = json.loads(text)
    jsonschema.validate(document, json.loads((DATA / "gradescope-results.schema.json").read_text()))
    assert "could not grade" in document["output"]
    return document["score"]


def read_classroom50(text: str) -> float:
    document = json.loads(text)
    jsonschema.Draft202012Validator(json.loads((DATA / "classroom50-result-v1.schema.json").read_text())
                                    ).validate(document)
    assert all(t["message"].startswith("not graded: ") for t in document["tests"])
    return document["score"]


def read_junit(text: str, tmp_path: Path) -> float:
    path = tmp_path / "report.xml"
    path.write_text(text)
    xmlschema.XMLSchema(str(DATA / "junit-4.xsd")).validate(str(path))
    results = [type(r) for suite in JUnitXml.fromfile(str(path)) for case in suite for r in case.result]
    assert Error in results and Failure in results
    return 0


def read_github(text: str) -> float:
    lines = text.splitlines()
    assert lines[0].startswith("::error title=Input could not be graded::")
    assert lines[-1].startswith("Failure Lab: ERROR 0/")
    return 0


def read_markdown(text: str) -> float:
    assert text.startswith("# Failure Lab: ERROR 0/") and "not graded: " in text
    return 0


def read_classroom(text: str) -> float:
    import base64

    key, _, value = text.strip().partition("=")
    document = json.loads(base64.b64decode(value))
    assert key == "result" and document["status"] == "error"
    assert all("missing run_worker.py" in t["message"] for t in document["tests"])
    return sum(t["score"] for t in document["tests"])


@pytest.fixture
def no_worker_app(tmp_path: Path, solution_dir: Path) -> Path:
    """A learner's app that lost its run_worker.py."""
    app = tmp_path / "app"
    shutil.copytree(solution_dir, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "run_worker.py").unlink()
    return app


@pytest.mark.parametrize("name", ["json", "gradescope", "classroom50", "junit", "github", "markdown", "classroom"])
def test_simulate_with_an_app_that_cannot_start_writes_every_document(name: str, no_worker_app: Path,
                                                                      tmp_path: Path):
    out = tmp_path / "report.out"
    result = CliRunner().invoke(cli, ["simulate", str(no_worker_app), "--experiment", "compensation",
                                      "--format", name, "--output", str(out)])
    assert result.exit_code == 2, result.output  # bad input, as before: distinct from a failed grade (1)
    assert "missing run_worker.py" in result.stderr  # the one line is still said
    text = out.read_text()
    readers = {"json": read_json, "gradescope": read_gradescope, "classroom50": read_classroom50,
               "github": read_github, "markdown": read_markdown, "classroom": read_classroom}
    score = read_junit(text, tmp_path) if name == "junit" else readers[name](text)
    assert score == 0
    assert name == "classroom" or "missing run_worker.py" in text  # classroom's is base64, read above


def test_the_table_keeps_its_one_line(no_worker_app: Path):
    result = CliRunner().invoke(cli, ["simulate", str(no_worker_app), "--experiment", "compensation"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("grader: error: ") and "missing run_worker.py" in result.stderr


def test_check_with_no_server_still_writes_its_document():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(cli, ["check", "--address", f"127.0.0.1:{port}", "--rpc-timeout", "5",
                                      "--format", "gradescope", "--experiment", "live-fix"])
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    jsonschema.validate(document, json.loads((DATA / "gradescope-results.schema.json").read_text()))
    assert document["score"] == 0 and f"127.0.0.1:{port}" in document["output"]


def test_a_rubric_that_cannot_load_still_gives_a_document(tmp_path: Path):
    bad = tmp_path / "rubric.json"
    bad.write_text("{")
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--rubric", str(bad),
                                      "--format", "classroom50"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(json.loads((DATA / "classroom50-result-v1.schema.json").read_text())
                                    ).validate(document)
    assert document["tests"] == [] and document["score"] == 0


@pytest.mark.slow
def test_simulate_with_a_syntax_error_writes_junit_and_exits_2(tmp_path: Path, solution_dir: Path):
    app = tmp_path / "app"
    shutil.copytree(solution_dir, app, ignore=shutil.ignore_patterns("__pycache__"))
    with (app / "activities.py").open("a") as source:
        source.write("\ndef broken(:\n")
    result = CliRunner().invoke(cli, ["simulate", str(app), "--experiment", "compensation", "--latency", "0.3",
                                      "--format", "junit"])
    assert result.exit_code == 2, result.output
    assert "SyntaxError" in result.stderr
    read_junit(result.stdout, tmp_path)
    assert "SyntaxError" in result.stdout
