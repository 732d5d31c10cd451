"""The table and the JSON exactly as a person or a pipeline sees them (CliRunner).

Expected outputs live in tests/expected/; after re-recording the goldens,
refresh them with `pytest tests/test_cli_output.py --update-expected` and
read the diff before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.engine.report import report_schema

GOLDENS = Path("tests") / "goldens"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("golden, experiment, code", [
    ("retries-exhausted-refund", "compensation", 0),
    ("cancel", "compensation", 1),
    ("server-paused", "network-partition", 1),
    ("running", "crash-recovery", 1),
])
def test_table_output_is_exact(expected_output, monkeypatch, golden: str, experiment: str, code: int):
    monkeypatch.chdir(Path(__file__).parent.parent)
    result = run("check", "--history", str(GOLDENS / f"{golden}.json"), "--experiment", experiment)
    assert result.exit_code == code
    assert result.stderr == ""
    expected_output(f"check-{golden}-{experiment}", result.stdout)


def test_all_experiments_on_one_history_table(expected_output, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    result = run("check", "--history", str(GOLDENS / "live-fix.json"))
    assert result.exit_code == 1  # one history cannot show a compensation too
    expected_output("check-live-fix-all", result.stdout)


def test_json_output_is_the_schema_document_and_nothing_else(monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    result = run("check", "--history", str(GOLDENS), "--format", "json")
    document = json.loads(result.stdout)
    jsonschema.validate(document, report_schema())
    assert document["schema_version"] == 1
    assert [e["id"] for e in document["experiments"]] == ["crash-recovery", "live-fix", "compensation",
                                                          "network-partition"]
    assert document["rubric"] == {"id": "failure-simulation", "version": "1.0"}
    assert document["status"] == "pass" and result.exit_code == 0
    assert all(c["evidence"] for e in document["experiments"][:3] for c in e["checks"]
               if c["status"] == "pass" and c["max_score"] > 0)


def test_timeline_of_a_golden(expected_output, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    result = run("timeline", "--history", str(GOLDENS / "sigkill-during-deposit.json"))
    assert result.exit_code == 0
    assert "!! worker" in result.stdout
    expected_output("timeline-sigkill-during-deposit", result.stdout)


def test_usage_errors_are_one_line():
    result = run("check", "--history", "x.json", "--workflow-id", "y")
    assert result.exit_code == 2 and "pick one" in result.stderr
    result = run("timeline")
    assert result.exit_code == 2 and "WORKFLOW_ID or --history" in result.stderr
