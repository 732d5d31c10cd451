"""The timeline: exact lines for small crafted histories, key markers for real ones.

The crafted histories are written here in the form ``temporal workflow show
--output json`` prints (camelCase fields, ``EVENT_TYPE_`` enums, int64 as
strings, base64 ``json/plain`` payloads), so these tests need no server.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from grader.engine.evidence import build_evidence
from grader.engine.history import History, load_history_file, load_json_text
from grader.engine.timeline import LINE_WIDTH, render_timeline

GOLDENS = Path(__file__).resolve().parent / "goldens"
T0 = datetime(2026, 11, 24, 21, 16, 4, 866123, tzinfo=timezone.utc)
PAYMENT = {"amount": 250, "reference_id": "r1", "source_account": "85-150", "target_account": "43-812"}
POLICY = {"initialInterval": "1s", "backoffCoefficient": 2.0, "maximumInterval": "2s",
          "nonRetryableErrorTypes": ["InvalidAccountError", "InsufficientFundsError"]}


# --- building histories in the CLI's JSON form ------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def payloads(value: Any) -> dict[str, Any]:
    return {"payloads": [{"metadata": {"encoding": b64("json/plain")},
                          "data": b64(json.dumps(value, separators=(",", ":")))}]}


def event(event_id: int, seconds: float, pascal_type: str, **attrs: Any) -> dict[str, Any]:
    """One event at ``seconds`` after T0, e.g. ``event(5, 0.1, "ActivityTaskScheduled", ...)``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", pascal_type).upper()
    stamp = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    key = pascal_type[0].lower() + pascal_type[1:] + "EventAttributes"
    return {"eventId": str(event_id), "eventTime": stamp, "eventType": f"EVENT_TYPE_{snake}",
            "taskId": str(1048576 + event_id), key: attrs}


def started(seconds: float = 0.0, *, starter: str = "3980@host") -> dict[str, Any]:
    return event(1, seconds, "WorkflowExecutionStarted",
                 workflowType={"name": "MoneyTransfer"},
                 taskQueue={"name": "q-test", "kind": "TASK_QUEUE_KIND_NORMAL"},
                 input=payloads(PAYMENT), workflowTaskTimeout="10s",
                 originalExecutionRunId="run-1", identity=starter,
                 firstExecutionRunId="run-1", attempt=1, workflowId="wf-test")


def workflow_task(first_id: int, seconds: float, identity: str, *, sticky: str | None = None) -> list[dict[str, Any]]:
    """WorkflowTaskScheduled, Started and Completed: the bookkeeping the timeline hides."""
    queue = ({"name": sticky, "kind": "TASK_QUEUE_KIND_STICKY", "normalName": "q-test"} if sticky
             else {"name": "q-test", "kind": "TASK_QUEUE_KIND_NORMAL"})
    return [
        event(first_id, seconds, "WorkflowTaskScheduled", taskQueue=queue, startToCloseTimeout="10s", attempt=1),
        event(first_id + 1, seconds + 0.003, "WorkflowTaskStarted", scheduledEventId=str(first_id),
              identity=identity, requestId="req", historySizeBytes="332"),
        event(first_id + 2, seconds + 0.01, "WorkflowTaskCompleted", scheduledEventId=str(first_id),
              startedEventId=str(first_id + 1), identity=identity),
    ]


def scheduled(event_id: int, seconds: float, name: str, after_task: int) -> dict[str, Any]:
    return event(event_id, seconds, "ActivityTaskScheduled", activityId=str(event_id),
                 activityType={"name": name},
                 taskQueue={"name": "q-test", "kind": "TASK_QUEUE_KIND_NORMAL"},
                 input=payloads(PAYMENT), scheduleToCloseTimeout="0s", startToCloseTimeout="5s",
                 workflowTaskCompletedEventId=str(after_task), retryPolicy=POLICY)


def activity_started(event_id: int, seconds: float, scheduled_id: int, identity: str,
                     attempt: int = 1, last_failure: dict[str, Any] | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"scheduledEventId": str(scheduled_id), "identity": identity,
                             "requestId": "req", "attempt": attempt}
    if last_failure:
        attrs["lastFailure"] = last_failure
    return event(event_id, seconds, "ActivityTaskStarted", **attrs)


def completed(event_id: int, seconds: float, scheduled_id: int, identity: str, result: Any) -> dict[str, Any]:
    return event(event_id, seconds, "ActivityTaskCompleted", result=payloads(result),
                 scheduledEventId=str(scheduled_id), startedEventId=str(event_id - 1), identity=identity)


def load(events: list[dict[str, Any]], name: str) -> History:
    """Read the events the way a file is read: JSON text through load_json_text."""
    return load_json_text(json.dumps({"events": events}), source=name)


# --- crafted histories ----------------------------------------------------------


def ok_history() -> History:
    """A transfer with no failure, like the tutorial's first run."""
    w = "3993@host"
    return load([
        started(),
        *workflow_task(2, 0.0002, w),
        scheduled(5, 0.018, "withdraw", 4),
        activity_started(6, 0.0186, 5, w),
        completed(7, 0.3247, 5, w, "W56b260c06d"),
        *workflow_task(8, 0.3249, w, sticky=f"{w}-548a2058a00f421d88cd646738d7b5b3"),
        scheduled(11, 0.335, "deposit", 10),
        activity_started(12, 0.3351, 11, w),
        completed(13, 0.641, 11, w, "D05da6fb221"),
        *workflow_task(14, 0.6411, w, sticky=f"{w}-548a2058a00f421d88cd646738d7b5b3"),
        event(17, 0.652, "WorkflowExecutionCompleted",
              result=payloads("Transfer complete (transaction IDs: W56b260c06d, D05da6fb221)"),
              workflowTaskCompletedEventId="16"),
    ], "crafted-ok.json")


def kill_history() -> History:
    """SIGKILL of the worker mid-deposit: a timeout, a new worker, a lost sticky queue."""
    old, new = "4211@host", "4302@host"
    sticky = f"{old}-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    timeout = {"message": "activity StartToClose timeout",
               "timeoutFailureInfo": {"timeoutType": "TIMEOUT_TYPE_START_TO_CLOSE"}}
    return load([
        started(starter="temporal-cli:alice@host"),
        *workflow_task(2, 0.001, old),
        scheduled(5, 0.02, "withdraw", 4),
        activity_started(6, 0.021, 5, old),
        completed(7, 3.02, 5, old, "W1"),
        *workflow_task(8, 3.021, old, sticky=sticky),
        scheduled(11, 3.03, "deposit", 10),
        # Written when the retry ended, stamped with the retry's start: 6.1 s later.
        activity_started(12, 9.13, 11, new, attempt=2, last_failure=timeout),
        completed(13, 12.14, 11, new, "D1"),
        event(14, 12.15, "WorkflowTaskScheduled",
              taskQueue={"name": sticky, "kind": "TASK_QUEUE_KIND_STICKY", "normalName": "q-test"},
              startToCloseTimeout="10s", attempt=1),
        event(15, 22.15, "WorkflowTaskTimedOut", scheduledEventId="14",
              timeoutType="TIMEOUT_TYPE_SCHEDULE_TO_START"),
        *workflow_task(16, 22.16, new),
        event(19, 22.18, "WorkflowExecutionCompleted", result=payloads("Transfer complete (transaction IDs: W1, D1)"),
              workflowTaskCompletedEventId="18"),
    ], "crafted-kill.json")


def exhausted_history() -> History:
    """A failing deposit that runs out of attempts, a refund, then cancel-free FAILED."""
    w = "4020@host"
    bug = {"message": "This deposit has failed.", "applicationFailureInfo": {"type": "ValueError"}}
    return load([
        started(),
        *workflow_task(2, 0.001, w),
        scheduled(5, 0.02, "withdraw", 4),
        activity_started(6, 0.021, 5, w),
        completed(7, 0.32, 5, w, "W2"),
        *workflow_task(8, 0.33, w),
        scheduled(11, 0.34, "deposit", 10),
        activity_started(12, 1.35, 11, w, attempt=2, last_failure=bug),
        event(13, 1.36, "ActivityTaskFailed", failure=bug, scheduledEventId="11", startedEventId="12",
              identity=w, retryState="RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED"),
        *workflow_task(14, 1.37, w),
        scheduled(17, 1.38, "refund", 16),
        activity_started(18, 1.39, 17, w),
        completed(19, 1.69, 17, w, "R3"),
        *workflow_task(20, 1.70, w),
        event(23, 1.71, "WorkflowExecutionFailed", workflowTaskCompletedEventId="22", failure={
            "message": "Failed to deposit money into account 43-812. Money returned to 85-150. "
                       "Cause: Activity task failed",
            "cause": {"message": "Activity task failed", "cause": bug,
                      "activityFailureInfo": {"scheduledEventId": "11", "activityType": {"name": "deposit"}}},
            "applicationFailureInfo": {}}),
    ], "crafted-exhausted.json")


# --- exact output -----------------------------------------------------------------


def test_ok_history_exact() -> None:
    assert render_timeline(ok_history()).splitlines() == [
        "Workflow wf-test  run run-1  COMPLETED  source crafted-ok.json",
        "  +0.0s   #1  started by 3980@host: $250 from 85-150 to 43-812",
        "  +0.0s   #3  worker 3993@host picked up its first workflow task",
        "  +0.0s   #5  withdraw scheduled",
        "  +0.0s   #6  withdraw attempt 1 on 3993@host",
        '  +0.3s   #7  withdraw completed -> "W56b260c06d"',
        "  +0.3s  #11  deposit scheduled",
        "  +0.3s  #12  deposit attempt 1 on 3993@host",
        '  +0.6s  #13  deposit completed -> "D05da6fb221"',
        '  +0.7s  #17  workflow COMPLETED -> "Transfer complete (transaction IDs: W56b260c06d, D05da6fb221)"',
    ]


def test_kill_history_exact() -> None:
    assert render_timeline(kill_history()).splitlines() == [
        "Workflow wf-test  run run-1  COMPLETED  source crafted-kill.json",
        "  +0.0s   #1  started by temporal-cli:alice@host: $250 from 85-150 to 43-812",
        "  +0.0s   #3  worker 4211@host picked up its first workflow task",
        "  +0.0s   #5  withdraw scheduled",
        "  +0.0s   #6  withdraw attempt 1 on 4211@host",
        '  +3.0s   #7  withdraw completed -> "W1"',
        "  +3.0s  #11  deposit scheduled",
        "              ... 6.1 s of silence (waiting for a timeout)",
        "              !! worker 4211@host lost; 4302@host took over",
        "  +9.1s  #12  deposit attempt 2 on 4302@host, retry after timeout START_TO_CLOSE",
        ' +12.1s  #13  deposit completed -> "D1"',
        "              ... 10.0 s of silence (waiting for a timeout)",
        " +22.1s  #15  workflow task timed out (SCHEDULE_TO_START): 4211@host did not answer (lost worker?)",
        " +22.2s  #17  worker 4302@host picked up its first workflow task",
        ' +22.2s  #19  workflow COMPLETED -> "Transfer complete (transaction IDs: W1, D1)"',
    ]


def test_exhausted_history_exact() -> None:
    assert render_timeline(exhausted_history()).splitlines() == [
        "Workflow wf-test  run run-1  FAILED  source crafted-exhausted.json",
        "  +0.0s   #1  started by 3980@host: $250 from 85-150 to 43-812",
        "  +0.0s   #3  worker 4020@host picked up its first workflow task",
        "  +0.0s   #5  withdraw scheduled",
        "  +0.0s   #6  withdraw attempt 1 on 4020@host",
        '  +0.3s   #7  withdraw completed -> "W2"',
        "  +0.3s  #11  deposit scheduled",
        "  +1.4s  #12  deposit attempt 2 on 4020@host, retry after ValueError: This deposit has failed.",
        "  +1.4s  #13  deposit failed: ValueError: This deposit has failed. (MAXIMUM_ATTEMPTS_REACHED)",
        "  +1.4s  #17  refund scheduled",
        "  +1.4s  #18  refund attempt 1 on 4020@host",
        '  +1.7s  #19  refund completed -> "R3"',
        "  +1.7s  #23  workflow FAILED: Failed to deposit money into account 43-812. Money returned to",
        "              85-150. Cause: Activity task failed",
    ]


def test_evidence_passed_in_is_used_and_output_ends_with_newline() -> None:
    history = kill_history()
    text = render_timeline(history, build_evidence(history))
    assert text == render_timeline(history)
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_cancel_terminate_and_open_run() -> None:
    w = "4020@host"
    history = load([
        started(),
        *workflow_task(2, 0.001, w),
        scheduled(5, 0.02, "withdraw", 4),
        event(6, 40.0, "WorkflowExecutionCancelRequested", identity="temporal-cli:alice@host"),
        event(7, 41.0, "WorkflowExecutionTerminated", reason="stuck", identity="temporal-cli:alice@host"),
    ], "crafted-terminated.json")
    lines = render_timeline(history).splitlines()
    assert lines[0] == "Workflow wf-test  run run-1  TERMINATED  source crafted-terminated.json"
    assert lines[-3:] == [
        "              ... 40.0 s of silence (not an outage: no worker worked after it)",
        " +40.0s   #6  cancel requested by temporal-cli:alice@host",
        " +41.0s   #7  workflow TERMINATED by temporal-cli:alice@host: stuck",
    ]

    open_run = load([started(), *workflow_task(2, 0.001, w), scheduled(5, 0.02, "withdraw", 4)], "live")
    open_run.pending_activities = [{"activityType": {"name": "withdraw"}, "state": "PENDING_ACTIVITY_STATE_SCHEDULED",
                                    "attempt": 3, "lastWorkerIdentity": w,
                                    "lastFailure": {"message": "boom", "applicationFailureInfo": {"type": "ValueError"}}}]
    assert render_timeline(open_run).splitlines()[-2:] == [
        "              still open: withdraw scheduled, attempt 3, last failure ValueError: boom, last worker",
        "              4020@host",
    ]


def test_late_first_worker_and_reset() -> None:
    task = workflow_task(2, 0.0002, "4020@host")
    # No worker polled for 12.5 s: the first task is scheduled at once but started late.
    task[1]["eventTime"] = task[2]["eventTime"] = event(0, 12.5, "WorkflowTaskStarted")["eventTime"]
    history = load([
        started(),
        *task,
        event(5, 13.0, "WorkflowTaskFailed", scheduledEventId="2", startedEventId="3",
              cause="WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW", identity="history-service"),
    ], "crafted-reset.json")
    lines = render_timeline(history).splitlines()
    assert lines[1:] == [
        "  +0.0s   #1  started by 3980@host: $250 from 85-150 to 43-812",
        "              ... 12.5 s of silence (no worker running?)",
        " +12.5s   #3  worker 4020@host picked up its first workflow task",
        " +13.0s   #5  == run reset here by history-service: events above are copies of the old run",
    ]


# --- real histories -------------------------------------------------------------------


def _goldens() -> list[Path]:
    """The recorded histories."""
    return sorted(p for p in GOLDENS.glob("*.json")) if GOLDENS.is_dir() else []


@pytest.mark.parametrize("path", _goldens() or [pytest.param(None, marks=pytest.mark.skip("no goldens yet"))],
                         ids=lambda p: p.stem if p else "none")
def test_golden_renders_every_activity_in_event_order(path: Path) -> None:
    history = load_history_file(path)
    run = build_evidence(history)
    lines = render_timeline(history, run).splitlines()
    assert lines[0].startswith(f"Workflow {run.workflow_id}  run {run.run_id}  {run.status}  source ")
    ids = [int(m.group(1)) for line in lines[1:] if (m := re.match(r"\s*[+-][\d.]+s\s+#(\d+)", line))]
    assert ids == sorted(ids) and ids[0] == 1
    for activity in run.activities:
        assert f"#{activity.scheduled_event_id}  {activity.activity_type} scheduled" in "\n".join(lines)
    assert all(len(line) <= LINE_WIDTH for line in lines[1:])


def test_golden_with_a_kill_marks_the_lost_worker() -> None:
    killed = []
    for path in _goldens():
        history = load_history_file(path)
        run = build_evidence(history)
        if any(h.final for h in run.handovers):
            killed.append((history, run))
    if not killed:
        pytest.skip("no golden history with a worker handover in tests/goldens")
    for history, run in killed:
        text = render_timeline(history, run)
        handover = next(h for h in run.handovers if h.final)
        assert f"!! worker {handover.from_identity} lost; {handover.to_identity} took over" in text
        retried = [a for a in run.activities if a.attempt > 1 and a.last_failure]
        for activity in retried:
            assert f"{activity.activity_type} attempt {activity.attempt} on {activity.started_by}, retry after" in text
        for sign in run.lost_worker_signs:
            assert re.search(rf"#{sign.event_id}  workflow task timed out", text)
