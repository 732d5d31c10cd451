"""A class on one shared server with cross-talk, run for real.

Two learners run their own worker processes of the solution app, both on one
task queue (what every copy of the app did before queues carried the learner
id). ann's worker takes her transfer, she kills it (`kill PID`) and never
starts it again: ben's worker, polling the same queue, finishes her transfer,
then runs ben's own. cat, the control, runs her own worker on her own queue
(the apps' default now). Without cross-talk detection ann's run is a textbook
crash recovery. Graded live (batch and check) and from exported bundles, both
learners' runs are cross-talk and earn nothing; cat's are not.
"""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.lab.app import start_worker, wait_for_poller
from grader.classroom import batch_files, batch_live
from grader.cli import cli

DETAILS = {"source_account": "85-150", "target_account": "43-812", "amount": 1}


async def _started_on(client, handle, identity: str, *, timeout: float = 30.0) -> None:
    """Wait until an activity of ``handle``'s run is running on the worker ``identity``."""
    for _ in range(int(timeout / 0.05)):
        description = await handle.describe()
        if any(p.last_worker_identity == identity and p.state == 2  # PENDING_ACTIVITY_STATE_STARTED
               for p in description.raw_description.pending_activities):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no activity of {handle.id} started on {identity}")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        return {row["learner"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
async def shared_class(dev_server, solution_dir, tmp_path_factory):
    """ann and ben, one queue; ann's worker killed mid-transfer and never restarted."""
    from grader.lab.app import AppSettings
    from grader.sources.connect import connect

    client = await connect(dev_server.address, dev_server.namespace)
    tag = uuid.uuid4().hex[:5]
    ann, ben, cat = f"ann{tag}", f"ben{tag}", f"cat{tag}"
    shared = AppSettings(address=dev_server.address, namespace=dev_server.namespace,
                         task_queue=f"TRANSFER_MONEY_TASK_QUEUE-{tag}", latency=1.0)
    anns_worker = start_worker(solution_dir, shared)
    cats_worker = start_worker(solution_dir, replace(shared, task_queue=f"TRANSFER_MONEY_TASK_QUEUE-{cat}"))
    bens_worker = None
    try:
        await wait_for_poller(client, cats_worker)
        cat_run = await client.start_workflow("MoneyTransfer", {**DETAILS, "reference_id": cat},
                                              id=f"{cat}-transfer-{uuid.uuid4().hex[:8]}",
                                              task_queue=cats_worker.settings.task_queue)
        ann_identity = await wait_for_poller(client, anns_worker)
        ann_run = await client.start_workflow("MoneyTransfer", {**DETAILS, "reference_id": ann},
                                              id=f"{ann}-transfer-{uuid.uuid4().hex[:8]}", task_queue=shared.task_queue)
        await _started_on(client, ann_run, ann_identity)
        bens_worker = start_worker(solution_dir, replace(shared))
        ben_identity = await wait_for_poller(client, bens_worker)
        anns_worker.stop(sig=signal.SIGTERM)  # killed, and never restarted
        await asyncio.wait_for(ann_run.result(), 60)  # finished by ben's worker
        ben_run = await client.start_workflow("MoneyTransfer", {**DETAILS, "reference_id": ben},
                                              id=f"{ben}-transfer-{uuid.uuid4().hex[:8]}", task_queue=shared.task_queue)
        await asyncio.wait_for(asyncio.gather(ben_run.result(), cat_run.result()), 60)
        for _ in range(100):
            listed = {e.id async for e in client.list_workflows(f"TaskQueue = '{shared.task_queue}'")}
            if {ann_run.id, ben_run.id} <= listed and [e async for e in client.list_workflows(
                    f"WorkflowId = '{cat_run.id}'")]:
                break
            await asyncio.sleep(0.1)
        yield {"ann": ann, "ben": ben, "cat": cat, "ann_run": ann_run.id, "ben_run": ben_run.id,
               "ben_identity": ben_identity, "address": dev_server.address,
               "tmp": tmp_path_factory.mktemp("shared")}
    finally:
        anns_worker.stop(sig=signal.SIGKILL)
        cats_worker.stop(sig=signal.SIGKILL)
        if bens_worker is not None:
            bens_worker.stop(sig=signal.SIGKILL)


@pytest.mark.slow
async def test_live_batch_flags_both_learners_and_passes_neither(shared_class):
    c = shared_class
    roster = c["tmp"] / "roster.csv"
    roster.write_text(f"learner\n{c['ann']}\n{c['ben']}\n{c['cat']}\n")
    out = c["tmp"] / "live"
    await batch_live(out, c["address"], roster=roster)
    rows = _rows(out)
    ann, ben = rows[c["ann"]], rows[c["ben"]]
    assert (ann["crash-recovery"], ann["crash-recovery_points"], ann["flags"]) == ("fail", "0", "cross-talk")
    assert ben["flags"] == "cross-talk" and ben["score"] == "0"
    assert rows[c["cat"]]["flags"] == "" and rows[c["cat"]]["status"] == "graded"  # her own queue: no cross-talk
    learners = {e["learner"]: e for e in json.loads((out / "gradebook.json").read_text())["learners"]}
    crash = next(e for e in learners[c["ann"]]["report"]["experiments"] if e["id"] == "crash-recovery")
    # Every check of the crash passed: only whose worker did the work keeps it from passing.
    assert [(k["id"], k["status"]) for k in crash["checks"] if k["required"] and k["status"] != "pass"] == [
        ("ownership.own-work", "fail")]
    [finding] = [f for o in learners[c["ann"]]["report"]["ownership"] for f in o["findings"]]
    assert finding["code"] == "cross-talk" and c["ben_identity"] in finding["message"]
    assert f"runs of {c['ben']}" in finding["message"] and c["ben_run"] in finding["message"]
    feedback = (out / "feedback" / f"{c['ann']}.md").read_text()
    assert "cross-talk" in feedback and c["ben"] in feedback


@pytest.mark.slow
async def test_live_check_of_one_learner_looks_at_the_queue_they_shared(shared_class):
    c = shared_class
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "check", "--address", c["address"], "--learner", c["ann"], "--experiment", "crash-recovery",
        "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["experiments"][0]["status"] == "fail"
    assert report["ownership"][0]["workflow_id"] == c["ann_run"]
    assert f"runs of {c['ben']}" in report["ownership"][0]["findings"][0]["message"]
    own_queue = await asyncio.to_thread(CliRunner().invoke, cli, [
        "check", "--address", c["address"], "--learner", c["cat"], "--format", "json"])
    assert json.loads(own_queue.stdout)["ownership"] == []


@pytest.mark.slow
async def test_exported_submissions_show_the_same_cross_talk(shared_class):
    c = shared_class
    download = c["tmp"] / "download"
    download.mkdir()
    for learner in (c["ann"], c["ben"], c["cat"]):
        done = await asyncio.to_thread(CliRunner().invoke, cli, [
            "export", "--address", c["address"], "--learner", learner, "--zip", "-o", str(download / f"{learner}.zip")])
        assert done.exit_code == 0, done.output
        # export says so before anything is handed in
        assert ("cross-talk" in done.stderr) == (learner != c["cat"]), done.stderr
    out = c["tmp"] / "files"
    batch_files(download, out, replay=True)
    rows = _rows(out)
    assert rows[c["ann"]]["flags"] == rows[c["ben"]]["flags"] == "cross-talk"
    assert rows[c["ann"]]["crash-recovery"] == "fail"
    assert rows[c["cat"]]["flags"] == ""
