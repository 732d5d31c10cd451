"""The run in progress: `check` and `--watch` show the newest open run above the table and follow it.

The open runs are real histories cut where a learner would grade mid-experiment
(the sigkill golden right after the new worker took the deposit over), and, on
the server, a real run that no worker has picked up yet.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from pathlib import Path

from click.testing import CliRunner

from grader import watch
from grader.cli import cli

GOLDENS = Path(__file__).parent / "goldens"


def _cut(golden: str, last_event: int, dest: Path) -> Path:
    """``golden`` as exported while it was still open: its events up to ``last_event``."""
    doc = json.loads((GOLDENS / golden).read_text())
    doc["events"] = [e for e in doc["events"] if int(e["eventId"]) <= last_event]
    dest.write_text(json.dumps(doc))
    return dest


def test_check_shows_the_open_run_above_an_older_finished_one(tmp_path: Path):
    shutil.copy(GOLDENS / "no-failure.json", tmp_path / "baseline.json")
    _cut("sigkill-during-deposit.json", 13, tmp_path / "crash-so-far.json")
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--experiment", "crash-recovery"])
    assert result.stdout.splitlines()[0] == (
        "Run in progress: sim-sigkill-during-deposit-ad48f60c (run 01a20f87): waiting for its next workflow "
        "task; already shows worker 15502@worker-host was lost and 15551@worker-host took over at event 12 "
        "(crash-recovery)")
    # The table below still grades the most convincing run; the line above says which run is going on.
    assert "Crash recovery: " in result.stdout
    as_json = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--format", "json"])
    in_progress = json.loads(as_json.stdout)["in_progress"]
    assert in_progress["experiments"] == ["crash-recovery"]
    assert in_progress["workflow_id"].startswith("sim-sigkill-during-deposit")


def test_an_open_run_that_refunds_shows_compensation(tmp_path: Path):
    path = _cut("retries-exhausted-refund.json", 17, tmp_path / "refunding.json")
    result = CliRunner().invoke(cli, ["check", "--history", str(path), "--format", "json"])
    in_progress = json.loads(result.stdout)["in_progress"]
    assert in_progress["experiments"] == ["compensation"]
    assert in_progress["signs"] == ["the deposit failed for good (MAXIMUM_ATTEMPTS_REACHED, event 13) (compensation)"]
    assert in_progress["waiting_for"] == "refund scheduled (event 17) and not finished"


def test_no_line_when_every_run_has_closed():
    result = CliRunner().invoke(cli, ["check", "--history", str(GOLDENS / "no-failure.json")])
    assert not result.stdout.startswith("Run in progress")


async def test_watch_follows_the_open_run_until_it_closes(tmp_path: Path):
    """A baseline that already passes does not end the watch while a newer run is open."""
    shutil.copy(GOLDENS / "sigkill-during-deposit.json", tmp_path / "earlier.json")
    path = _cut("kill-between-activities.json", 9, tmp_path / "now.json")
    out = io.StringIO()
    task = asyncio.ensure_future(watch.watch_files([tmp_path], experiments=["crash-recovery"], interval=0.2,
                                                   out=out, tty=False))
    await asyncio.sleep(1.0)
    assert not task.done(), out.getvalue()
    assert "Run in progress: sim-kill-between-activities" in out.getvalue()
    shutil.copy(GOLDENS / "kill-between-activities.json", path)  # the run closes
    report = await asyncio.wait_for(task, 10)
    assert report.passed and report.in_progress is None
    last = out.getvalue().splitlines()[-1]
    assert "Run in progress" not in last and "crash-recovery PASS" in last


async def test_check_on_a_server_shows_a_run_no_worker_has_picked_up(client, dev_server, task_queue):
    learner = f"prog{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                          "reference_id": "x"},
        id=f"{learner}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    try:
        for _ in range(100):
            if [e async for e in client.list_workflows(f"WorkflowId = '{handle.id}'")]:
                break
            await asyncio.sleep(0.05)
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["check", "--address", dev_server.address,
                                                                    "--learner", learner])
        assert result.stdout.splitlines()[0].startswith(f"Run in progress: {handle.id} (run ")
        assert "no worker has picked it up yet; no experiment's events yet" in result.stdout
    finally:
        await handle.terminate("test over")


async def test_watch_on_a_server_follows_an_open_run(client, dev_server, task_queue):
    """--watch shows the open run above the table and does not end while it is open."""
    learner = f"wat{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                          "reference_id": "x"},
        id=f"{learner}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    out = io.StringIO()
    task = asyncio.ensure_future(watch.watch_live(dev_server.address, learner=learner, interval=0.2, out=out,
                                                  tty=False))
    try:
        for _ in range(100):
            if f"Run in progress: {handle.id}" in out.getvalue():
                break
            await asyncio.sleep(0.1)
        assert f"Run in progress: {handle.id}" in out.getvalue()
        assert "no worker has picked it up yet" in out.getvalue()
        assert not task.done()
    finally:
        task.cancel()
        await handle.terminate("test over")
