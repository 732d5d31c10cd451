"""Several runs, one experiment: the most convincing run is graded, and the report says why.

The scenario from the issue, built from real goldens in one folder: a learner
did the live fix and then a kill -9 crash. Both satisfy crash-recovery's
required checks; only the kill -9 run hit an activity in flight (the bonus),
so it is the one to grade, whatever the files are called.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.api import check_files
from grader.cli import cli
from grader.engine.evidence import build_evidence
from grader.engine.history import load_history_file, parse_time
from grader.engine.report import report_schema

GOLDENS = Path(__file__).parent / "goldens"


def folder(tmp_path: Path, **files: str) -> Path:
    """A submission folder holding goldens under new names: ``new_name=golden``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for new_name, golden in files.items():
        shutil.copy(GOLDENS / f"{golden}.json", tmp_path / f"{new_name}.json")
    return tmp_path


def crash_recovery(path: Path):
    (experiment,) = check_files([path], experiments=["crash-recovery"]).experiments
    return experiment


@pytest.mark.parametrize("names", [("a", "b"), ("b", "a")], ids=["live-fix-first", "kill-first"])
def test_after_a_live_fix_and_a_kill_the_kill_is_graded(tmp_path: Path, names: tuple[str, str]):
    path = folder(tmp_path, **{names[0]: "live-fix", names[1]: "sigkill-during-deposit"})
    experiment = crash_recovery(path)
    assert Path(experiment.workflow.source).name == f"{names[1]}.json"
    bonus = next(c for c in experiment.checks if c.id == "crash-recovery.interrupted-activity")
    assert bonus.status == "pass"
    # One run, one experiment: the live fix counts for live-fix only, so it is no candidate here.
    assert experiment.candidates == 1 and experiment.selection == ""


def test_a_pending_run_that_shows_no_experiment_yet_is_no_candidate(tmp_path: Path):
    # running.json is newer than sigkill-during-deposit.json and still open with no
    # crash in it yet: the kill is graded, and a plain transfer beside them counts for nothing.
    path = folder(tmp_path, a="running", b="sigkill-during-deposit", c="no-failure")
    experiment = crash_recovery(path)
    assert Path(experiment.workflow.source).name == "b.json"
    assert experiment.status == "pass" and experiment.candidates == 1
    alone = crash_recovery(folder(tmp_path / "alone", a="running", b="no-failure"))
    running = build_evidence(load_history_file(GOLDENS / "running.json"))
    # With no run showing a crash, the open run may still become one: pending on that run, and the note says so.
    assert alone.status == "pending" and alone.workflow.workflow_id == running.workflow_id
    assert f"workflow {running.workflow_id} is still running" in alone.note


def test_equally_good_runs_go_to_the_newest(tmp_path: Path):
    path = folder(tmp_path, a="sigkill-during-withdraw", b="sigkill-during-deposit")
    starts = {name: parse_time(build_evidence(load_history_file(path / f"{name}.json")).start_time)
              for name in ("a", "b")}
    newest = max(starts, key=starts.get)
    experiment = crash_recovery(path)
    assert Path(experiment.workflow.source).name == f"{newest}.json"
    assert "the newest of the runs that did as well" in experiment.selection


def test_one_run_needs_no_selection_line():
    experiment = crash_recovery(GOLDENS / "sigkill-during-deposit.json")
    assert experiment.selection == "" and experiment.candidates == 1


def test_the_selection_is_printed_and_valid_json(tmp_path: Path):
    path = folder(tmp_path, a="sigkill-during-withdraw", b="sigkill-during-deposit")
    table = CliRunner().invoke(cli, ["check", "--history", str(path), "--experiment", "crash-recovery"])
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[3].startswith("  chosen for 4/4 required checks passed")
    as_json = CliRunner().invoke(cli, ["check", "--history", str(path), "--experiment", "crash-recovery",
                                       "--format", "json"])
    data = json.loads(as_json.stdout)
    jsonschema.validate(data, report_schema())
    assert data["experiments"][0]["selection"].startswith("chosen for")


def test_a_limit_that_applied_beats_one_that_was_not_needed(tmp_path: Path) -> None:
    """Both compensations pass; the one whose retry limit really ran out proves the challenge."""
    for name in ("retries-exhausted-refund", "non-retryable-refund"):
        shutil.copy(GOLDENS / f"{name}.json", tmp_path / f"{name}.json")
    report = check_files([tmp_path], experiments=["compensation"])
    chosen = report.experiments[0]
    assert chosen.workflow.source.endswith("retries-exhausted-refund.json")
    assert "did not apply" in chosen.selection
