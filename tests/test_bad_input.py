"""Bad input ends in one clear line and exit code 2, and never stops the good files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    assert [e["source"] for e in report["integrity"]] == [str(tmp_path / "a-good.json")]
    assert all(e["workflow"] is None or e["workflow"]["source"] == str(tmp_path / "a-good.json")
               for e in report["experiments"])


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
    from grader.lab.server import free_port

    result = CliRunner().invoke(cli, ["check", "--address", f"localhost:{free_port()}"])
    assert result.exit_code == EXIT_NO_SERVER
    assert "grader server" in result.stderr and "Traceback" not in result.output


# --- the crashes a fuzzer found, each now one line and exit 2 ----------------------


def _golden_doc(name: str = "sigkill-during-deposit") -> dict:
    return json.loads((GOLDENS / f"{name}.json").read_text())


def _first(doc: dict, event_type: str) -> dict:
    """The attributes of the first event of ``event_type`` (``ACTIVITY_TASK_STARTED``)."""
    event = next(e for e in doc["events"] if e["eventType"] == f"EVENT_TYPE_{event_type}")
    return next(v for k, v in event.items() if k.endswith("EventAttributes"))


def _event(doc: dict, event_type: str) -> dict:
    return next(e for e in doc["events"] if e["eventType"] == f"EVENT_TYPE_{event_type}")


def _set(path: str, value):
    """An edit of the golden: ``path`` is EVENT_TYPE/key/key..., or event/N/key for the event itself."""
    def edit(doc: dict) -> dict:
        head, *keys = path.split("/")
        node = doc["events"][int(keys.pop(0))] if head == "event" else _first(doc, head)
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return doc
    return edit


def _with_last_failure_message(doc: dict) -> dict:
    started = [a for a in (next(v for k, v in e.items() if k.endswith("EventAttributes"))
                           for e in doc["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED")
               if "lastFailure" in a]
    started[0]["lastFailure"]["message"] = 42
    return doc


#: name -> (edit of a golden's JSON document or raw text, what the one line must say)
CRASHERS = {
    "event-time-number": (_set("event/3/eventTime", 5), "eventTime must be an RFC 3339 time"),
    "event-time-naive": (_set("event/3/eventTime", "2026-11-24T21:48:27"), "with its zone"),
    "event-id-huge": (lambda text: text.replace('"eventId":"4"', '"eventId":1e999', 1), "not valid JSON"),
    "event-id-float": (lambda text: text.replace('"eventId":"4"', '"eventId":4.5', 1), "no valid eventId"),
    "event-id-beyond-int64": (_set("event/3/eventId", "9223372036854775808"), "no valid eventId"),
    "task-queue-string": (_set("WORKFLOW_TASK_SCHEDULED/taskQueue", "q"), "taskQueue must be a task queue"),
    "identity-list": (_set("ACTIVITY_TASK_STARTED/identity", ["w"]), "identity must be a string (got a list)"),
    "activity-type-string": (_set("ACTIVITY_TASK_SCHEDULED/activityType", "withdraw"),
                             'activityType must be an object like {"name": "..."}'),
    "failure-message-number": (_with_last_failure_message, "lastFailure.message must be a string (got 42)"),
    "attempt-negative": (_set("ACTIVITY_TASK_STARTED/attempt", -3), "attempt must be an attempt number"),
    "attempt-zero": (_set("ACTIVITY_TASK_STARTED/attempt", 0), "attempt must be an attempt number"),
    "scheduled-id-text": (_set("ACTIVITY_TASK_COMPLETED/scheduledEventId", "five"),
                          "scheduledEventId must be an event id"),
    "duration-infinite": (_set("ACTIVITY_TASK_SCHEDULED/startToCloseTimeout", "1e999s"),
                          'startToCloseTimeout must be a duration like "5s"'),
    "backoff-text": (_set("ACTIVITY_TASK_SCHEDULED/retryPolicy/backoffCoefficient", "Infinity"),
                     "retryPolicy.backoffCoefficient must be a number from 0 to 1,000,000"),
    "run-id-number": (_set("WORKFLOW_EXECUTION_STARTED/originalExecutionRunId", 12345),
                      "originalExecutionRunId must be a string"),
    "workflow-id-list": (_set("WORKFLOW_EXECUTION_STARTED/workflowId", ["a"]), "workflowId must be a string"),
    "payload-metadata-list": (_set("ACTIVITY_TASK_SCHEDULED/input", {"payloads": [{"metadata": [], "data": "e30="}]}),
                              "input.payloads[0].metadata must be an object"),
    "nan-literal": (lambda text: text.replace('"attempt":1', '"attempt":NaN', 1), "not valid JSON"),
    "nested-deeper-than-1024": (lambda text: text.replace('"header":{}', '"header":' + "[" * 1100 + "]" * 1100, 1),
                                "not valid JSON"),
    "lone-surrogate-in-workflow-id": (lambda text: text.replace('"workflowId":"', '"workflowId":"\\ud800', 1),
                                      "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_malformed_field_is_one_line_exit_2(tmp_path: Path, name: str):
    edit, expected = CRASHERS[name]
    doc = _golden_doc()
    try:
        text = json.dumps(edit(doc), separators=(",", ":"))
    except (TypeError, AttributeError):  # the edit works on the text
        text = edit(json.dumps(doc, separators=(",", ":")))
    assert text != json.dumps(_golden_doc(), separators=(",", ":"))
    path = tmp_path / f"{name}.json"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["check", "--history", str(path), "--format", "json"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"grader: error: {path}: "), errors
    assert expected in errors[0]
    assert json.loads(result.stdout)["errors"] == [errors[0].removeprefix("grader: error: ")]


def test_every_golden_passes_validation():
    """Validation must never refuse a genuine history (a false refusal costs an honest learner)."""
    from grader.engine.history import load_history_file

    for path in sorted(GOLDENS.glob("*.json")):
        assert load_history_file(path).events


def test_odd_but_well_typed_values_are_graded(tmp_path: Path):
    """Ids pointing at nothing and events of unknown kinds are graded, not crashed on."""
    doc = _golden_doc()
    _first(doc, "ACTIVITY_TASK_COMPLETED")["scheduledEventId"] = "999"
    _first(doc, "ACTIVITY_TASK_SCHEDULED")["workflowTaskCompletedEventId"] = "0"
    _first(doc, "ACTIVITY_TASK_STARTED")["attempt"] = 2147483647
    _event(doc, "WORKFLOW_TASK_STARTED")["eventTime"] = "9999-12-31T23:59:59.999999999Z"
    doc["events"].insert(3, {"eventId": "3", "eventType": "EVENT_TYPE_MARKER_RECORDED",
                             "markerRecordedEventAttributes": {"markerName": 5}})
    for number, event in enumerate(doc["events"], 1):
        event["eventId"] = str(number)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(cli, ["check", "--history", str(path), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["sources"] == [str(path)]
    assert all(c["status"] != "error" for e in report["experiments"] for c in e["checks"])


# --- what is read at all ---------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    """The installed command in its own process, with a timeout: a FIFO must not hang it."""
    grader = Path(sys.executable).parent / "grader"
    return subprocess.run([str(grader), *args], capture_output=True, text=True, timeout=30)


def test_fifo_is_refused_without_opening_it(tmp_path: Path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = _run("check", "--history", str(fifo))
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr == f"grader: error: {fifo}: a named pipe (FIFO), not a regular file: pass a history " \
                            "exported with `temporal workflow show -w ID --output json > FILE`\n"


def test_dev_zero_is_refused_unread():
    result = _run("check", "--history", "/dev/zero", "--format", "json")
    assert result.returncode == EXIT_BAD_INPUT
    assert "/dev/zero: a character device, not a regular file" in result.stderr
    assert json.loads(result.stdout)["errors"][0].startswith("/dev/zero: a character device")


def test_size_limit(tmp_path: Path):
    good = GOLDENS / "live-fix.json"
    size = good.stat().st_size
    refused = CliRunner().invoke(cli, ["check", "--history", str(good), "--max-history-bytes", str(size - 1)])
    assert refused.exit_code == EXIT_BAD_INPUT
    assert refused.stderr == (f"grader: error: {good}: {size} bytes, more than the {size - 1} allowed "
                              "(raise --max-history-bytes if the history is genuine)\n")
    accepted = CliRunner().invoke(cli, ["check", "--history", str(good), "--max-history-bytes", str(size),
                                        "--experiment", "live-fix"])
    assert accepted.exit_code == 0, accepted.output
    timeline = CliRunner().invoke(cli, ["timeline", "--history", str(good), "--max-history-bytes", "10"])
    assert timeline.exit_code == EXIT_BAD_INPUT and "more than the 10 allowed" in timeline.stderr


def test_folder_reports_every_odd_entry_and_grades_the_rest(tmp_path: Path):
    shutil.copy(GOLDENS / "live-fix.json", tmp_path / "a-upper.JSON")
    shutil.copy(GOLDENS / "compensation.json" if (GOLDENS / "compensation.json").exists()
                else GOLDENS / "retries-exhausted-refund.json", tmp_path / "b-refund.json")
    os.mkfifo(tmp_path / "c-pipe.json")
    (tmp_path / "d-loop.json").symlink_to(tmp_path / "d-loop.json")
    (tmp_path / "e-folder.json").mkdir()
    (tmp_path / "f-dangling.json").symlink_to(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not a history")
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--format", "json"])
    assert result.exit_code == EXIT_BAD_INPUT
    report = json.loads(result.stdout)
    assert report["sources"] == [str(tmp_path / n) for n in ("a-upper.JSON", "b-refund.json", "c-pipe.json",
                                                            "d-loop.json", "e-folder.json", "f-dangling.json")]
    assert report["errors"] == [
        f"{tmp_path / 'c-pipe.json'}: a named pipe (FIFO), not a regular file: pass a history exported with "
        "`temporal workflow show -w ID --output json > FILE`",
        f"{tmp_path / 'd-loop.json'}: cannot read it (a symbolic link loop)",
        f"{tmp_path / 'e-folder.json'}: a folder, not a regular file: pass a history exported with "
        "`temporal workflow show -w ID --output json > FILE`",
        f"{tmp_path / 'f-dangling.json'}: cannot read it (No such file or directory)",
    ]
    graded = {e["id"]: e for e in report["experiments"]}
    assert graded["live-fix"]["status"] == "pass"
    assert graded["compensation"]["status"] == "pass"


def test_an_empty_folder_does_not_stop_the_other_paths(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    good = GOLDENS / "live-fix.json"
    result = CliRunner().invoke(cli, ["check", "--history", str(empty), "--history", str(good),
                                      "--format", "json", "--experiment", "live-fix"])
    assert result.exit_code == EXIT_BAD_INPUT
    report = json.loads(result.stdout)
    assert report["errors"] == [f"{empty}: the folder holds no .json history files"]
    assert report["experiments"][0]["status"] == "pass"


def test_undecodable_file_name_still_gives_valid_json(tmp_path: Path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.json"
    with open(name, "wb") as out:
        out.write((GOLDENS / "live-fix.json").read_bytes())
    result = _run("check", "--history", os.fsdecode(name), "--format", "json", "--experiment", "live-fix")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sources"] == [f"{tmp_path}/caf\ufffd.json"]
    assert report["experiments"][0]["workflow"]["source"] == f"{tmp_path}/caf\ufffd.json"


def test_json_report_refuses_a_number_with_no_json_form():
    """NaN has no JSON spelling: the renderer says so instead of printing it."""
    from grader.api import grade_histories
    from grader.errors import BadInputError
    from grader.formats import render
    from grader.engine.history import load_history_file

    report = grade_histories([load_history_file(GOLDENS / "live-fix.json")])
    report.experiments[0].score = float("nan")
    with pytest.raises(BadInputError, match="/experiments/0/score"):
        render(report, "json")
    report.experiments[0].score = 1.0
    report.sources.append("bad-\udce9.json")
    assert json.loads(render(report, "json"))["sources"][-1] == "bad-\ufffd.json"


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


@pytest.mark.parametrize("name", ["event-id-huge", "nan-literal", "nested-deeper-than-1024",
                                  "lone-surrogate-in-workflow-id"])
def test_the_standard_library_fallback_is_as_strict(monkeypatch, name: str):
    """Without orjson (it is optional), json.loads with strict hooks refuses the same files."""
    import grader.engine.history
    from grader.errors import HistoryError

    monkeypatch.setattr(grader.engine.history, "orjson", None)
    edit, _ = CRASHERS[name]
    text = edit(json.dumps(_golden_doc(), separators=(",", ":")))
    with pytest.raises(HistoryError, match="not valid JSON"):
        grader.engine.history.load_json_text(text.encode("utf-8", "surrogatepass"), source="f.json")
    assert grader.engine.history.load_json_text((GOLDENS / "live-fix.json").read_bytes(), source="g.json").events


# --- crafted histories never hang the check ---------------------------------------


def _wrong_kind_history() -> dict:
    """A real history whose first ActivityTaskCompleted became a copy of a WorkflowTaskStarted."""
    import copy

    doc = _golden_doc("sigkill-during-withdraw")
    events = doc["events"]
    started = [e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_STARTED"][-1]
    index = next(i for i, e in enumerate(events) if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED")
    events[index] = copy.deepcopy(started) | {"eventId": events[index]["eventId"],
                                              "eventTime": events[index]["eventTime"]}
    return doc


def _gap_history() -> dict:
    doc = _golden_doc("sigint-during-deposit")
    del doc["events"][3]  # event 4, a WorkflowTaskCompleted: ids now skip from 3 to 5
    return doc


@pytest.mark.parametrize("make, note", [
    (_gap_history, "not replayed: its event ids are not 1..N in order"),
    (_wrong_kind_history, "not replayed: its event sequence is malformed (bad-reference, twice)"),
])
def test_a_malformed_sequence_is_not_fed_to_the_replayer(tmp_path: Path, make, note: str):
    """The SDK's replayer panics on these and never answers: the check must finish, and say why."""
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(make()))
    result = _run("check", "--replay", "--history", str(path), "--format", "json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    entry = json.loads(result.stdout)["integrity"][0]
    assert entry["status"] == "suspect" and any(n.startswith(note) for n in entry["notes"])


def test_a_replay_that_never_answers_is_abandoned():
    """The backstop for malformed histories the rules miss: a pass gets a deadline, then a note."""
    import asyncio
    import time

    from grader.lab.replay import _run as run_replay

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer within"):
        run_replay(asyncio.sleep(30), timeout=0.5)
    assert time.monotonic() - started < 5
    assert run_replay(asyncio.sleep(0, result="done"), timeout=5) == "done"
