"""Bad input ends in one clear line and exit code 2, and never stops the good files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.errors import EXIT_BAD_INPUT, EXIT_NO_SERVER

GOLDENS = Path(__file__).parent / "goldens"


def _a_good_history() -> Path:
    return sorted(GOLDENS.glob("*.json"))[0] if GOLDENS.exists() else None


def _other_workflow_type() -> str:
    good = json.loads(next(p for p in sorted(GOLDENS.glob("*.json"))).read_text())
    good["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "PayInvoice"
    return json.dumps(good)


BAD = {
    "not-json.json": ("this is not json", "not a JSON file"),
    "empty-object.json": ("{}", 'no "events" list'),
    "junk-event.json": ('{"events":[{"foo":1}]}', "no valid eventType"),
    "empty.json": ("", "the file is empty"),
    "list.json": ("[]", "has no events"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_file_is_one_line_exit_2(tmp_path: Path, name: str):
    text, expected = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    result = CliRunner().invoke(cli, ["check", "--history", str(path)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    errors = [l for l in result.stderr.splitlines() if l.startswith("grader: error:")]
    assert len(errors) == 1 and str(path) in errors[0] and expected in errors[0]
    assert "Traceback" not in result.output


def test_truncated_and_foreign_files_do_not_stop_the_good_one(tmp_path: Path):
    good = next(p for p in sorted(GOLDENS.glob("*.json")))
    shutil.copy(good, tmp_path / "a-good.json")
    (tmp_path / "b-truncated.json").write_text(good.read_text()[: len(good.read_text()) // 2])
    (tmp_path / "c-other-type.json").write_text(_other_workflow_type())
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--format", "json"])
    assert result.exit_code == EXIT_BAD_INPUT
    report = json.loads(result.stdout)
    assert report["sources"] == [str(tmp_path / n) for n in ("a-good.json", "b-truncated.json",
                                                            "c-other-type.json")]
    assert len(report["errors"]) == 2
    assert "b-truncated.json: not valid JSON" in report["errors"][0]
    assert "c-other-type.json: this is a history of workflow type 'PayInvoice'" in report["errors"][1]
    assert all(e["workflow"]["source"] == str(tmp_path / "a-good.json") for e in report["experiments"])


def test_missing_file(tmp_path: Path):
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path / "nope.json")])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "nope.json: cannot read it" in result.stderr


def test_invalid_rubric_names_file_and_field(tmp_path: Path):
    rubric = tmp_path / "mine.json"
    rubric.write_text(json.dumps({"id": "mine", "version": "1", "experiments": [
        {"id": "crash-recovery", "checks": [{"id": "crash-recovery.completed", "points": "two"}]}]}))
    result = CliRunner().invoke(cli, ["check", "--history", str(_a_good_history()), "--rubric", str(rubric)])
    assert result.exit_code == EXIT_BAD_INPUT
    line = result.stderr.strip()
    assert line.count("\n") == 0
    assert str(rubric) in line and "experiments/0/checks/0/points" in line


def test_unknown_check_in_rubric(tmp_path: Path):
    rubric = tmp_path / "mine.toml"
    rubric.write_text('id = "mine"\nversion = "1"\n[[experiments]]\nid = "live-fix"\n'
                      '[[experiments.checks]]\nid = "live-fix.magic"\npoints = 1\n')
    result = CliRunner().invoke(cli, ["check", "--history", str(_a_good_history()), "--rubric", str(rubric)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no check 'live-fix.magic' in live-fix" in result.stderr


def test_unknown_rubric_name():
    result = CliRunner().invoke(cli, ["check", "--history", str(_a_good_history()), "--rubric", "nope"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no rubric 'nope'" in result.stderr and "failure-simulation" in result.stderr


def test_no_server_is_exit_3():
    from grader.server import free_port

    result = CliRunner().invoke(cli, ["check", "--address", f"localhost:{free_port()}"])
    assert result.exit_code == EXIT_NO_SERVER
    assert "grader server" in result.stderr and "Traceback" not in result.output


# --- nothing to grade: one line, no table -----------------------------------


def test_a_missing_history_prints_only_its_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"grader: error: {tmp_path / 'missing.json'}: cannot read it (No such file or directory)"]


@pytest.mark.parametrize("content, says", [
    ("[build-system]\nrequires = []\n", "not a JSON file (it starts with '[build-syste')"),
    ("# Notes\n", "not a JSON file (it starts with '# Notes')"),
    ('{"events": [{"eventId": "1"', "the JSON stops before it is complete; the file may be truncated: export it again"),
    ('{"events": [}', "not valid JSON"),
])
def test_the_advice_fits_the_kind_of_bad_file(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "h.json"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["check", "--history", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert says in result.stderr
    assert ("export it again" in result.stderr) == ("truncated" in says)
