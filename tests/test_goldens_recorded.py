"""The golden histories are what they claim to be: complete, clean, and the scenario they name.

They are recorded by ``scripts/record_goldens.py`` from real runs; these
tests need no server. They check each file straight from its events (see
``events.py``), so a recording that missed its moment (a kill that landed
after the activity finished) is caught here, not in the checks that use it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import socket
import sys
from pathlib import Path
from typing import Callable

import pytest
from temporalio.client import WorkflowHistory

import events as ev

GOLDENS = Path(__file__).resolve().parent / "goldens"
MANIFEST = json.loads((GOLDENS.parent / "golden_manifest.json").read_text())
FILES = sorted(MANIFEST["files"])
EXPERIMENTS = {"crash-recovery", "live-fix", "compensation"}


def load(name: str) -> dict:
    return json.loads((GOLDENS / name).read_text())


def _recorder():
    path = GOLDENS.parent.parent / "scripts" / "record_goldens.py"
    spec = importlib.util.spec_from_file_location("record_goldens", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_manifest_lists_every_file_and_every_scenario() -> None:
    on_disk = {p.name for p in GOLDENS.glob("*.json")}
    assert on_disk == set(FILES)
    assert {f"{s.name}.json" for s in _recorder()._scenarios()} == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_golden_parses_and_ends_as_the_manifest_says(name: str) -> None:
    entry = MANIFEST["files"][name]
    data = load(name)
    history = WorkflowHistory.from_json(f"golden-{entry['scenario']}", data)
    assert history.events[0].HasField("workflow_execution_started_event_attributes")
    assert ev.status(data) == entry["status"]
    assert set(entry["verdicts"]) == EXPERIMENTS
    assert entry["shows"]


def _strings(value: object):
    """Every string in a JSON value, with base64 payload data decoded too."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "data" and isinstance(v, str):
                yield base64.b64decode(v).decode("utf-8", "replace")
            else:
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


MACHINE = re.compile(r"/work/|/root\b|/tmp/|/home/(?!learner)|/Users/")


@pytest.mark.parametrize("name", FILES)
def test_golden_holds_no_machine_names_or_paths(name: str) -> None:
    text = "\n".join(_strings(load(name)))
    assert not MACHINE.search(text), MACHINE.search(text)
    assert not re.search(rf"@{re.escape(socket.gethostname())}\b", text)
    for ident in re.findall(r'"identity": "([^"]*)"', json.dumps(load(name))):
        # The shared-identity scenarios' workers set their own identity, a neutral name.
        assert re.fullmatch(r"\d+@worker-host|history-service|transfer-worker", ident), ident


# What each recording must show, read straight from its events.

def _one_worker(h: dict) -> None:
    assert len(ev.worker_identities(h)) == 1, ev.worker_identities(h)
    assert all(a.attempt == 1 for a in ev.attempts(h))


def _crash(activity: str, failure: str) -> Callable[[dict], None]:
    def check(h: dict) -> None:
        first = ev.worker_identities(h)[0]
        retried = ev.last(h, activity)
        assert retried.attempt == 2 and ev.failure_kind(retried.last_failure) == failure
        assert retried.identity != first and retried.outcome == "COMPLETED"
    return check


def _kill_between(h: dict) -> None:
    assert "TIMER_STARTED" in ev.types(h)
    assert all(a.attempt == 1 for a in ev.attempts(h))
    assert ev.last(h, "withdraw").identity != ev.last(h, "deposit").identity


def _no_worker_at_start(h: dict) -> None:
    _one_worker(h)
    assert ev.longest_gap(h) >= 2.5


def _slow_first(h: dict) -> None:
    deposit = ev.last(h, "deposit")
    assert deposit.attempt == 2 and ev.failure_kind(deposit.last_failure) == "TIMEOUT_TYPE_START_TO_CLOSE"
    assert len(ev.worker_identities(h)) == 1


def _live_fix(h: dict) -> None:
    withdraw, deposit = ev.last(h, "withdraw"), ev.last(h, "deposit")
    assert withdraw.attempt == 1 and deposit.attempt >= 4
    assert ev.failure_kind(deposit.last_failure) == "ValueError"
    assert deposit.last_failure["message"] == "This deposit has failed."
    assert deposit.identity != withdraw.identity


def _refund_after(retry_state: str, kind: str) -> Callable[[dict], None]:
    def check(h: dict) -> None:
        deposit, refund = ev.last(h, "deposit"), ev.last(h, "refund")
        assert deposit.outcome == "FAILED" and deposit.closing["retryState"] == retry_state
        assert ev.failure_kind(deposit.closing["failure"]) == kind
        assert refund.outcome == "COMPLETED"
        assert ev.types(h).index("ACTIVITY_TASK_FAILED") < ev.types(h).index("WORKFLOW_EXECUTION_FAILED")
    return check


def _retries_exhausted(h: dict) -> None:
    _refund_after("RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED", "ValueError")(h)
    scheduled = [ev.attributes(e) for e in h["events"] if e["eventType"].endswith("ACTIVITY_TASK_SCHEDULED")]
    assert scheduled[1]["retryPolicy"]["maximumAttempts"] == 2


def _retries_exhausted_three(h: dict) -> None:
    _refund_after("RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED", "ValueError")(h)
    scheduled = [ev.attributes(e) for e in h["events"] if e["eventType"].endswith("ACTIVITY_TASK_SCHEDULED")]
    assert scheduled[1]["retryPolicy"]["maximumAttempts"] == 3
    assert ev.last(h, "deposit").attempt == 3


def _insufficient(h: dict) -> None:
    assert [a.activity for a in ev.attempts(h)] == ["withdraw"]
    assert ev.failure_kind(ev.last(h, "withdraw").closing["failure"]) == "InsufficientFundsError"


def _cancel(h: dict) -> None:
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in ev.types(h)
    assert ev.last(h, "deposit").outcome != "FAILED"  # a cancel is not a failed deposit


def _ends_with(h: dict, event_type: str) -> None:
    assert ev.types(h)[-1] == event_type


def _running(h: dict) -> None:
    _ends_with(h, "ACTIVITY_TASK_SCHEDULED")


def _reset(h: dict) -> None:
    failed = [ev.attributes(e) for e in h["events"] if e["eventType"].endswith("WORKFLOW_TASK_FAILED")]
    assert failed[0]["cause"] == "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW"
    assert failed[0]["identity"] == "history-service"


def _fake(h: dict) -> None:
    assert ev.attempts(h) == [] and ev.status(h) == "COMPLETED"


def _server_paused(h: dict) -> None:
    assert len(ev.worker_identities(h)) == 1
    assert ev.longest_gap(h) >= 5


def _server_paused_long(h: dict) -> None:
    # Longer than the default rubric's 10 s, and the deposit's one attempt
    # outlived its 5 s start-to-close deadline on the worker that started it.
    _server_paused(h)
    assert ev.longest_gap(h) >= 10
    deposit = ev.last(h, "deposit")
    assert deposit.attempt == 1 and deposit.outcome == "COMPLETED" and deposit.last_failure is None


def _shared_identity(h: dict) -> None:
    """Every task a worker did carries the one identity both processes set."""
    assert ev.worker_identities(h) == ["transfer-worker"], ev.worker_identities(h)


def _shared_identity_kill(h: dict) -> None:
    _shared_identity(h)
    deposit = ev.last(h, "deposit")
    assert deposit.attempt == 2 and ev.failure_kind(deposit.last_failure) == "TIMEOUT_TYPE_START_TO_CLOSE"
    # The killed process's sticky queue went unanswered until the server timed the task out.
    assert "WORKFLOW_TASK_TIMED_OUT" in ev.types(h)


def _shared_identity_live_fix(h: dict) -> None:
    _shared_identity(h)
    deposit = ev.last(h, "deposit")
    assert deposit.attempt >= 4 and ev.failure_kind(deposit.last_failure) == "ValueError"
    builds = {ev.attributes(e).get("workerVersion", {}).get("buildId") for e in h["events"]} - {None}
    assert len(builds) == 2, builds  # the buggy code's fingerprint, then the fixed code's


def _slow_within_deadline(h: dict) -> None:
    _one_worker(h)
    assert ev.longest_gap(h) >= 10
    scheduled = [ev.attributes(e) for e in h["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert {s["startToCloseTimeout"] for s in scheduled} == {"60s"}


def _server_paused_retried(h: dict) -> None:
    """The freeze's other ending: attempt 1 timed out on waking, the same worker ran attempt 2."""
    assert len(ev.worker_identities(h)) == 1, ev.worker_identities(h)
    assert ev.longest_gap(h) >= 9
    deposit = ev.last(h, "deposit")
    assert deposit.attempt == 2 and ev.failure_kind(deposit.last_failure) == "TIMEOUT_TYPE_START_TO_CLOSE", \
        "the deposit completed on attempt 1 this time (a race): record server-paused-retried again"
    assert deposit.outcome == "COMPLETED"


SIGNATURES: dict[str, Callable[[dict], None]] = {
    "no-failure": _one_worker,
    "sigkill-during-withdraw": _crash("withdraw", "TIMEOUT_TYPE_START_TO_CLOSE"),
    "sigkill-during-deposit": _crash("deposit", "TIMEOUT_TYPE_START_TO_CLOSE"),
    # The app's worker treats SIGTERM like Ctrl+C: a clean shutdown.
    "sigterm-during-withdraw": _crash("withdraw", "WorkerShutdown"),
    "sigterm-during-deposit": _crash("deposit", "WorkerShutdown"),
    "sigint-during-withdraw": _crash("withdraw", "WorkerShutdown"),
    "sigint-during-deposit": _crash("deposit", "WorkerShutdown"),
    "kill-between-activities": _kill_between,
    "started-without-worker": _no_worker_at_start,
    "slow-first-attempt": _slow_first,
    "two-workers": _one_worker,
    "live-fix": _live_fix,
    "retries-exhausted-refund": _retries_exhausted,
    "retries-exhausted-three": _retries_exhausted_three,
    "non-retryable-refund": _refund_after("RETRY_STATE_NON_RETRYABLE_FAILURE", "InvalidAccountError"),
    "insufficient-funds": _insufficient,
    "cancel": _cancel,
    "terminate": lambda h: _ends_with(h, "WORKFLOW_EXECUTION_TERMINATED"),
    "running": _running,
    "reset": _reset,
    "fake-workflow": _fake,
    "shared-identity-kill": _shared_identity_kill,
    "shared-identity-live-fix": _shared_identity_live_fix,
    "slow-within-deadline": _slow_within_deadline,
    "server-paused": _server_paused,
    "server-paused-long": _server_paused_long,
    "server-paused-retried": _server_paused_retried,
}


@pytest.mark.parametrize("name", FILES)
def test_golden_shows_its_scenario(name: str) -> None:
    scenario = MANIFEST["files"][name]["scenario"]
    SIGNATURES[scenario](load(name))


def test_every_scenario_has_a_signature() -> None:
    assert {MANIFEST["files"][f]["scenario"] for f in FILES} == set(SIGNATURES)
