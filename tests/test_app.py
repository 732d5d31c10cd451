"""The transfer app (solution/ and exercise/) as a learner runs it: real workers, real signals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from grader.lab.app import AppSettings, WorkerProcess, bundled_app, start_worker, wait_for_poller

# Every test here starts real worker processes: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

TRANSFER = {"source_account": "85-150", "target_account": "43-812", "amount": 250}


async def start_transfer(client: Client, settings: AppSettings, **overrides) -> WorkflowHandle:
    return await client.start_workflow(
        "MoneyTransfer", {**TRANSFER, "reference_id": uuid.uuid4().hex, **overrides},
        id=f"test-{uuid.uuid4().hex[:10]}", task_queue=settings.task_queue,
    )


async def running_worker(client: Client, app: Path, settings: AppSettings, started: list) -> WorkerProcess:
    worker = start_worker(app, settings)
    started.append(worker)
    await wait_for_poller(client, worker)
    return worker


@pytest.fixture
def workers():
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop(sig=signal.SIGKILL, grace=5)


def events_of(history) -> list[dict]:
    return history.to_json_dict()["events"]


def activity_events(events: list[dict], activity: str) -> dict[str, list[dict]]:
    """ActivityTask* events of one activity type, by event type (short name)."""
    scheduled = {e["eventId"] for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
                 and e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == activity}
    found: dict[str, list[dict]] = {"scheduled": [], "started": [], "completed": [], "failed": []}
    for e in events:
        kind = e["eventType"].removeprefix("EVENT_TYPE_ACTIVITY_TASK_").lower()
        if kind not in found:
            continue
        attrs = next(v for k, v in e.items() if k.endswith("EventAttributes"))
        if e["eventId"] in scheduled or attrs.get("scheduledEventId") in scheduled:
            found[kind].append(attrs)
    return found


async def wait_pending(handle: WorkflowHandle, activity: str, *, state: str | None = None,
                       min_attempt: int = 1, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = await handle.describe()
        for p in desc.raw_description.pending_activities:
            state_name = PendingActivityState.Name(p.state)
            if p.activity_type.name == activity and p.attempt >= min_attempt and (
                    state is None or state_name.endswith(state)):
                return p
        await asyncio.sleep(0.05)
    raise AssertionError(f"{activity} never pending (state {state}, attempt >= {min_attempt})")


@pytest.mark.parametrize("app_name", ["solution", "exercise"])
async def test_transfer_completes_with_worker_started_like_a_learner(client, fast_settings, workers, app_name):
    await running_worker(client, bundled_app(app_name), fast_settings, workers)
    handle = await start_transfer(client, fast_settings)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.startswith("Transfer complete")
    events = events_of(await handle.fetch_history())
    w, d = activity_events(events, "withdraw"), activity_events(events, "deposit")
    assert [a["attempt"] for a in w["started"]] == [1] and [a["attempt"] for a in d["started"]] == [1]
    assert activity_events(events, "refund")["scheduled"] == []


async def test_run_workflow_script_prints_id_link_and_result(client, fast_settings, workers, solution_dir):
    await running_worker(client, solution_dir, fast_settings, workers)
    env = fast_settings.environment()
    env.update(LEARNER_ID="ada", TEMPORAL_UI_URL="http://127.0.0.1:18233/")
    proc = subprocess.run([sys.executable, "run_workflow.py"], cwd=solution_dir, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ada-transfer-" in proc.stdout
    assert "Web UI: http://127.0.0.1:18233/namespaces/default/workflows/ada-transfer-" in proc.stdout
    assert "Transfer complete" in proc.stdout
    # On a server whose UI nobody named (not the local default), no guessed link.
    del env["TEMPORAL_UI_URL"]
    proc = subprocess.run([sys.executable, "run_workflow.py"], cwd=solution_dir, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Web UI:" not in proc.stdout and "Transfer complete" in proc.stdout


async def test_sigkill_during_deposit_then_new_worker_completes(client, fast_settings, workers, solution_dir):
    settings = replace(fast_settings, latency=2.0)
    first = await running_worker(client, solution_dir, settings, workers)
    handle = await start_transfer(client, settings)
    await wait_pending(handle, "deposit", state="STARTED")
    first.send(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    second = await running_worker(client, solution_dir, settings, workers)
    assert second.identity != first.identity

    result = await asyncio.wait_for(handle.result(), 60)
    assert result.startswith("Transfer complete")
    events = events_of(await handle.fetch_history())
    deposit, withdraw = activity_events(events, "deposit"), activity_events(events, "withdraw")
    assert deposit["started"][-1]["attempt"] >= 2
    assert deposit["started"][-1]["lastFailure"]["timeoutFailureInfo"]["timeoutType"] == "TIMEOUT_TYPE_START_TO_CLOSE"
    assert deposit["completed"][0]["identity"] == second.identity
    assert len(withdraw["scheduled"]) == 1 and len(withdraw["completed"]) == 1
    identities = {a["identity"] for k in ("started", "completed") for a in withdraw[k] + deposit[k]}
    assert identities == {first.identity, second.identity}


async def test_failing_deposit_retries_until_the_fault_is_removed(client, fast_settings, workers, solution_dir):
    faulty = await running_worker(client, solution_dir, replace(fast_settings, fault="failing-deposit"), workers)
    handle = await start_transfer(client, fast_settings)
    pending = await wait_pending(handle, "deposit", state="SCHEDULED", min_attempt=3)
    assert pending.last_failure.message == "This deposit has failed."
    assert pending.last_failure.application_failure_info.type == "ValueError"
    faulty.stop(sig=signal.SIGINT)
    fixed = await running_worker(client, solution_dir, fast_settings, workers)

    assert (await asyncio.wait_for(handle.result(), 30)).startswith("Transfer complete")
    deposit = activity_events(events_of(await handle.fetch_history()), "deposit")
    last = deposit["started"][-1]
    assert last["attempt"] >= 3
    assert last["lastFailure"]["applicationFailureInfo"]["type"] == "ValueError"
    assert deposit["completed"][0]["identity"] == fixed.identity


async def test_permanent_fault_refunds_and_fails(client, fast_settings, workers, solution_dir):
    await running_worker(client, solution_dir, replace(fast_settings, fault="closed-account"), workers)
    handle = await start_transfer(client, fast_settings)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 30)
    assert "Failed to deposit" in str(failure.value.cause)
    events = events_of(await handle.fetch_history())
    deposit, refund = activity_events(events, "deposit"), activity_events(events, "refund")
    assert deposit["failed"][0]["retryState"] == "RETRY_STATE_NON_RETRYABLE_FAILURE"
    assert len(refund["completed"]) == 1
    assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"


async def test_limited_retries_compensate(client, fast_settings, workers, solution_dir):
    settings = replace(fast_settings, fault="failing-deposit", max_attempts=2)
    await running_worker(client, solution_dir, settings, workers)
    handle = await start_transfer(client, settings)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 30)
    events = events_of(await handle.fetch_history())
    deposit, refund = activity_events(events, "deposit"), activity_events(events, "refund")
    assert deposit["scheduled"][0]["retryPolicy"]["maximumAttempts"] == 2
    assert deposit["failed"][0]["retryState"] == "RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED"
    assert len(refund["completed"]) == 1


async def test_insufficient_funds_fails_without_refund(client, fast_settings, workers, solution_dir):
    await running_worker(client, solution_dir, fast_settings, workers)
    handle = await start_transfer(client, fast_settings, amount=5000)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 30)
    events = events_of(await handle.fetch_history())
    withdraw = activity_events(events, "withdraw")
    assert withdraw["failed"][0]["failure"]["applicationFailureInfo"]["type"] == "InsufficientFundsError"
    assert activity_events(events, "refund")["scheduled"] == []
