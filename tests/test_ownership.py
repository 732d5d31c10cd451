"""Whose work a run is: owner-mismatch (the wendy/carol hand-in) and cross-talk between learners' workers.

These build classes from the goldens (real histories) on disk; the same
thing run for real, with learners' worker processes sharing a queue on a
real server, is in tests/test_shared_server.py.
"""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import api
from grader.sources.bundles import write_bundle
from grader.classroom.gradebook import gradebook_validator
from grader.cli import cli
from grader.engine.history import load_json_text
from grader.engine.ownership import CROSS_TALK, OWNER_MISMATCH, cross_talk, owner_findings, run_workers

GOLDENS = Path(__file__).parent / "goldens"


def _doc(golden: str, learner: str, *, rename: dict[str, str] | None = None) -> dict:
    """A golden as ``learner``'s run (workflow id ``<learner>-transfer-...``), worker identities renamed."""
    text = (GOLDENS / golden).read_text()
    for old, new in (rename or {}).items():
        text = text.replace(old, new)
    doc = json.loads(text)
    doc["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"] = \
        f"{learner}-transfer-{uuid.uuid4().hex[:8]}"
    return doc


def _write(folder: Path, name: str, doc: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc))


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        return {row["learner"]: row for row in csv.DictReader(f)}


def _gradebook(out: Path) -> dict:
    document = json.loads((out / "gradebook.json").read_text())
    errors = list(gradebook_validator().iter_errors(document))
    assert not errors, errors[0].message
    return {entry["learner"]: entry for entry in document["learners"]}


def _history(doc: dict, source: str):
    return load_json_text(json.dumps(doc), source=source)


# -- the rules on their own ---------------------------------------------------------------

def test_owner_findings_name_the_other_learner():
    assert owner_findings("carol-transfer-1", "wendy", manifest_learner="carol", known=set())[0].code == OWNER_MISMATCH
    assert owner_findings("carol-transfer-1", "wendy", known={"carol", "wendy"})[0].message.startswith(
        "workflow id carol-transfer-1 names learner carol")
    assert owner_findings("carol-transfer-1", "wendy", known=None)  # check --learner wendy: any id counts
    # An id prefix nobody in the class has proves nothing (an LMS names folders its own way).
    assert owner_findings("sim-transfer-1", "wendy", known={"wendy"}) == []
    assert owner_findings("Wendy-transfer-1", "wendy", manifest_learner="WENDY", known=None) == []
    found = owner_findings("x-transfer-1", "wendy", folders=["carol-bundle"], known=set())
    assert [f.code for f in found] == [OWNER_MISMATCH] and "carol-bundle" in found[0].message


def test_cross_talk_needs_one_process_in_two_learners_runs():
    crash = _history(_doc("sigkill-during-deposit.json", "ann"), "ann.json")
    # ben's run was done by the worker that finished ann's (same pid@host, no sticky queue to tell otherwise).
    ben = _history(_doc("no-failure.json", "ben", rename={"15498@worker-host": "15551@worker-host"}), "ben.json")
    own = _history(_doc("live-fix.json", "cat"), "cat.json")
    found = cross_talk([run_workers(crash, "ann"), run_workers(ben, "ben"), run_workers(own, "cat")])
    assert [f.code for f in found[0]] == [CROSS_TALK] and [f.code for f in found[1]] == [CROSS_TALK]
    assert found[2] == []
    assert "worker process 15551@worker-host" in found[0][0].message and "runs of ben" in found[0][0].message
    assert "runs of ann" in found[1][0].message and found[0][0].event_ids == [12, 13, 17, 18]


def test_a_shared_sticky_queue_proves_one_process():
    crash = _history(_doc("sigkill-during-deposit.json", "ann"), "ann.json")
    ben = _history(_doc("no-failure.json", "ben", rename={
        "15498@worker-host-89d0b5accd4a440d97f0e219fb867675": "15502@worker-host-b54e44587527482b8a6a030fe81d0e12",
        "15498@worker-host": "15502@worker-host"}), "ben.json")
    found = cross_talk([run_workers(crash, "ann"), run_workers(ben, "ben")])
    assert "by its sticky queue" in found[0][0].message and "15502@worker-host" in found[1][0].message


@pytest.mark.parametrize("rename, why", [
    ({"15498@worker-host": "15502@worker-host"}, "same pid@host, but its sticky queue is another process's"),
    ({"15498@worker-host": "worker-1", "15502@worker-host": "worker-1"}, "a custom identity proves no process"),
])
def test_no_cross_talk_without_proof(rename, why):
    crash = _history(_doc("sigkill-during-deposit.json", "ann", rename=rename), "ann.json")
    ben = _history(_doc("no-failure.json", "ben", rename=rename), "ben.json")
    assert cross_talk([run_workers(crash, "ann"), run_workers(ben, "ben")]) == [[], []], why


def test_one_learners_runs_and_a_copied_run_are_not_cross_talk():
    a = _doc("sigkill-during-deposit.json", "ann")
    b = _doc("no-failure.json", "Ann", rename={"15498@worker-host": "15551@worker-host"})
    runs = [run_workers(_history(a, "1.json"), "ann"), run_workers(_history(b, "2.json"), "Ann")]
    assert cross_talk(runs) == [[], []]
    copy = run_workers(_history(a, "copy.json"), "ben")  # the same run id under ben: a duplicate, said elsewhere
    assert cross_talk([runs[0], copy]) == [[], []]


# -- the wendy/carol hand-in -----------------------------------------------------------------

def _carol_bundle(path: Path, *, as_zip: bool) -> None:
    runs = []
    for golden in ("sigkill-during-deposit.json", "live-fix.json", "retries-exhausted-refund.json"):
        doc = _doc(golden, "carol")
        start = doc["events"][0]["workflowExecutionStartedEventAttributes"]
        runs.append((start["workflowId"], start["originalExecutionRunId"], doc))
    write_bundle(runs, path, server_address="localhost:7233", namespace="default", learner="carol", as_zip=as_zip)


def test_wendy_hands_in_carols_bundle_and_earns_nothing(tmp_path: Path):
    download = tmp_path / "download"
    download.mkdir()
    _carol_bundle(download / "wendy.zip", as_zip=True)       # carol is not in this batch at all
    _write(download / "ada", "crash.json", _doc("sigkill-during-withdraw.json", "ada"))
    out = tmp_path / "grades"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(out), "-q",
                                      "--no-replay"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert (rows["wendy"]["status"], rows["wendy"]["score"], rows["wendy"]["flags"]) == ("graded", "0",
                                                                                         "owner-mismatch")
    assert rows["wendy"]["crash-recovery"] == rows["wendy"]["live-fix"] == rows["wendy"]["compensation"] == "fail"
    assert rows["ada"]["crash-recovery"] == "pass" and rows["ada"]["flags"] == ""
    entry = _gradebook(out)["wendy"]
    assert entry["flags"] == ["owner-mismatch"]
    assert any("owner-mismatch: the bundle's manifest says it holds learner carol's runs" in p
               for p in entry["problems"])
    assert {f["code"] for o in entry["report"]["ownership"] for f in o["findings"]} == {"owner-mismatch"}
    feedback = (out / "feedback" / "wendy.md").read_text()
    assert "owner-mismatch" in feedback and "carol" in feedback
    assert "wendy" in result.output.split("Needs a look")[1]


def test_a_folder_naming_a_classmate_is_owner_mismatch(tmp_path: Path):
    download = tmp_path / "download"
    _write(download / "wendy" / "carol", "crash.json", _doc("sigkill-during-deposit.json", "wendy"))
    _write(download / "carol", "crash.json", _doc("sigkill-during-withdraw.json", "carol"))
    out = tmp_path / "grades"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(out), "-q",
                                    "--no-replay"]).exit_code == 0
    rows = _rows(out)
    assert rows["wendy"]["flags"] == "owner-mismatch" and rows["carol"]["flags"] == ""


def test_check_grades_a_hand_in_as_the_learner_named(tmp_path: Path):
    _carol_bundle(tmp_path / "wendy.zip", as_zip=True)
    as_wendy = CliRunner().invoke(cli, ["check", "--history", str(tmp_path / "wendy.zip"), "--learner", "wendy",
                                        "--format", "json"])
    assert as_wendy.exit_code == 1
    report = json.loads(as_wendy.stdout)
    assert report["score"] == 0 and report["ownership"]
    assert "graded the files as learner wendy's work" in as_wendy.stderr
    as_carol = CliRunner().invoke(cli, ["check", "--history", str(tmp_path / "wendy.zip"), "--learner", "Carol"])
    assert as_carol.exit_code == 0, as_carol.output


# -- cross-talk in a class graded from files -----------------------------------------------------

def test_cross_talk_in_submissions_is_flagged_for_both_learners(tmp_path: Path):
    download = tmp_path / "download"
    # ann killed her worker; ben's worker (15551) finished her transfer, and did ben's own run too.
    _write(download / "ann", "crash.json", _doc("sigkill-during-deposit.json", "ann"))
    _write(download / "ben", "run.json", _doc("no-failure.json", "ben", rename={"15498@worker-host": "15551@worker-host"}))
    _write(download / "cat", "crash.json", _doc("sigkill-during-withdraw.json", "cat"))
    out = tmp_path / "grades"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(out), "-q",
                                      "--no-replay"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert (rows["ann"]["crash-recovery"], rows["ann"]["flags"]) == ("fail", "cross-talk")
    assert rows["ben"]["flags"] == "cross-talk"
    assert (rows["cat"]["crash-recovery"], rows["cat"]["flags"]) == ("pass", "")
    ann = _gradebook(out)["ann"]
    assert any("cross-talk: worker process 15551@worker-host" in p and "runs of ben" in p for p in ann["problems"])
    feedback = (out / "feedback" / "ann.md").read_text()
    assert "cross-talk" in feedback and "ben" in feedback and "task queue of its own" in feedback


def test_check_on_several_learners_files_compares_their_workers(tmp_path: Path):
    _write(tmp_path, "ann.json", _doc("sigkill-during-deposit.json", "ann"))
    _write(tmp_path, "ben.json", _doc("no-failure.json", "ben", rename={"15498@worker-host": "15551@worker-host"}))
    report = api.check_files([tmp_path], replay=False, experiments=["crash-recovery"])
    assert report.experiments[0].status == "fail"
    assert sorted(e.workflow_id.split("-")[0] for e in report.ownership) == ["ann", "ben"]
    [line] = [c for c in report.experiments[0].checks if c.id == "ownership.own-work"]
    assert line.required and line.status == "fail" and "cross-talk" in line.message


async def test_a_workflow_id_checked_as_another_learners_is_owner_mismatch(client, dev_server, task_queue):
    """Live: `check --workflow-id carol-... --learner wendy` grades carol's run as wendy's, and it earns nothing."""
    import asyncio

    handle = await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1, "reference_id": "x"},
        id=f"carol{uuid.uuid4().hex[:6]}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    try:
        result = await asyncio.to_thread(CliRunner().invoke, cli, [
            "check", "--address", dev_server.address, "--workflow-id", handle.id, "--learner", "wendy",
            "--format", "json"])
        report = json.loads(result.stdout)
        [entry] = report["ownership"]
        assert entry["workflow_id"] == handle.id
        assert entry["findings"][0]["code"] == "owner-mismatch"
        assert f"workflow id {handle.id} names learner carol" in entry["findings"][0]["message"]
        own = await asyncio.to_thread(CliRunner().invoke, cli, [
            "check", "--address", dev_server.address, "--workflow-id", handle.id, "--format", "json"])
        assert json.loads(own.stdout).get("ownership", []) == []
    finally:
        await handle.terminate("test over")
