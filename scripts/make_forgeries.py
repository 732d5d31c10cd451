"""Forge histories from the goldens, the way a learner who wants the points would.

Each forgery is an edit of a real history in ``tests/goldens`` (or, for one,
a history written from nothing) that the experiment checks alone would
grade as a pass. ``tests/test_integrity.py`` builds every one with this
module and asserts that integrity flags it and that it passes nothing.

    .venv/bin/python scripts/make_forgeries.py OUT_DIR     # write them all, one file each
    .venv/bin/python scripts/make_forgeries.py --list      # what each one fakes

As a library: ``FORGERIES`` maps a name to a :class:`Forgery` whose
``build()`` returns ``{file name: history document}`` (several files for the
forgeries that need them, such as four copies of one run).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

GOLDENS = Path(__file__).resolve().parent.parent / "tests" / "goldens"
#: A worker that never existed, in the goldens' anonymised identity form.
NEW_WORKER = "31337@worker-host"
_ENUM = "EVENT_TYPE_"
_REF_KEYS = ("scheduledEventId", "startedEventId", "workflowTaskCompletedEventId", "initiatedEventId",
             "latestCancelRequestedEventId")

Doc = dict[str, Any]


def golden(name: str) -> Doc:
    """A fresh copy of ``tests/goldens/<name>.json``."""
    return json.loads((GOLDENS / f"{name}.json").read_text())


def etype(event: Doc) -> str:
    """``ACTIVITY_TASK_STARTED`` for an event of type ``EVENT_TYPE_ACTIVITY_TASK_STARTED``."""
    return event["eventType"].removeprefix(_ENUM)


def attrs(event: Doc) -> Doc:
    """The event's ``...EventAttributes`` object."""
    return next(v for k, v in event.items() if k.endswith("EventAttributes"))


def find(doc: Doc, kind: str, activity: str | None = None) -> list[Doc]:
    """Events of one type (``ACTIVITY_TASK_STARTED``), of one activity type when given."""
    events = doc["events"]
    by_id = {int(e["eventId"]): e for e in events}
    found = []
    for event in events:
        if etype(event) != kind:
            continue
        if activity is not None:
            a = attrs(event)
            scheduled = event if kind == "ACTIVITY_TASK_SCHEDULED" else by_id[int(a["scheduledEventId"])]
            if attrs(scheduled)["activityType"]["name"] != activity:
                continue
        found.append(event)
    return found


def shift(event: Doc, seconds: float) -> None:
    """Move an event's time by ``seconds`` (keeps the nanosecond digits' form)."""
    when = datetime.fromisoformat(event["eventTime"]) + timedelta(seconds=seconds)
    event["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def event_after(doc: Doc, event_id: int) -> list[Doc]:
    """Events with an id above ``event_id``."""
    return [e for e in doc["events"] if int(e["eventId"]) > event_id]


def renumber(doc: Doc) -> Doc:
    """Give events ids 1..N in list order and rewrite references; a reference to a removed event becomes 0."""
    mapping = {int(e["eventId"]): index for index, e in enumerate(doc["events"], 1)}
    for index, event in enumerate(doc["events"], 1):
        event["eventId"] = str(index)
        a = attrs(event)
        for key in _REF_KEYS:
            if key in a:
                a[key] = str(mapping.get(int(a[key]), 0))
    return doc


def new_event(kind: str, event_id: int, time: str, attributes: Doc) -> Doc:
    """A hand-written event in the ``temporal workflow show`` JSON form."""
    key = "".join(p.capitalize() for p in kind.lower().split("_"))
    key = key[0].lower() + key[1:] + "EventAttributes"
    return {"eventId": str(event_id), "eventTime": time, "eventType": _ENUM + kind, key: attributes}


def _payload(value: Any) -> Doc:
    return {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                          "data": base64.b64encode(json.dumps(value).encode()).decode()}]}


# --- the forgeries ----------------------------------------------------------


def fake_crash() -> dict[str, Doc]:
    """Crash recovery without a crash: the deposit and everything after it re-signed by a new worker."""
    doc = golden("no-failure")
    deposit_start = find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0]
    for event in event_after(doc, int(deposit_start["eventId"]) - 1):
        if "identity" in attrs(event):
            attrs(event)["identity"] = NEW_WORKER
    return {"fake-crash.json": doc}


def fake_crash_bonus() -> dict[str, Doc]:
    """The same, plus a second deposit attempt after a pasted start-to-close timeout (the bonus)."""
    doc = fake_crash()["fake-crash.json"]
    start = attrs(find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0])
    start["attempt"] = 2
    start["lastFailure"] = {"message": "activity StartToClose timeout", "source": "Server",
                            "timeoutFailureInfo": {"timeoutType": "TIMEOUT_TYPE_START_TO_CLOSE"}}
    return {"fake-crash-bonus.json": doc}


def fake_live_fix() -> dict[str, Doc]:
    """A live fix without a bug: attempt 4 and the bug's ValueError pasted onto a clean deposit."""
    doc = fake_crash()["fake-crash.json"]
    real = attrs(find(golden("live-fix"), "ACTIVITY_TASK_STARTED", "deposit")[0])
    start = attrs(find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0])
    start["attempt"] = 4
    start["lastFailure"] = copy.deepcopy(real["lastFailure"])
    return {"fake-live-fix.json": doc}


def fake_compensation() -> dict[str, Doc]:
    """Compensation without a failure: the deposit marked failed, refund events appended after the close."""
    doc = golden("no-failure")
    events = doc["events"]
    closed = events[-1]
    completed = find(doc, "ACTIVITY_TASK_COMPLETED", "deposit")[0]
    scheduled = find(doc, "ACTIVITY_TASK_SCHEDULED", "deposit")[0]
    failed = new_event("ACTIVITY_TASK_FAILED", int(completed["eventId"]), completed["eventTime"], {
        "failure": {"message": "This deposit has failed.", "applicationFailureInfo": {"type": "ValueError"}},
        "scheduledEventId": attrs(completed)["scheduledEventId"],
        "startedEventId": attrs(completed)["startedEventId"],
        "identity": attrs(completed)["identity"],
        "retryState": "RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED",
    })
    events[events.index(completed)] = failed
    # The rubric wants retries used up under a limit of 2: claim the second attempt failed too.
    attrs(scheduled)["retryPolicy"]["maximumAttempts"] = 2
    start = attrs(find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0])
    start["attempt"] = 2
    start["lastFailure"] = copy.deepcopy(failed[next(k for k in failed if k.endswith("Attributes"))]["failure"])
    last_task = find(doc, "WORKFLOW_TASK_COMPLETED")[-1]
    worker = attrs(last_task)["identity"]
    next_id = int(closed["eventId"]) + 1
    time = closed["eventTime"]
    refund_attrs = copy.deepcopy(attrs(scheduled))
    refund_attrs.update(activityId="3", activityType={"name": "refund"},
                        workflowTaskCompletedEventId=last_task["eventId"])
    refund = new_event("ACTIVITY_TASK_SCHEDULED", next_id, time, refund_attrs)
    started = new_event("ACTIVITY_TASK_STARTED", next_id + 1, time,
                        {"scheduledEventId": str(next_id), "identity": worker, "attempt": 1})
    done = new_event("ACTIVITY_TASK_COMPLETED", next_id + 2, time,
                     {"scheduledEventId": str(next_id), "startedEventId": str(next_id + 1), "identity": worker,
                      "result": _payload("R-refund")})
    failed_run = new_event("WORKFLOW_EXECUTION_FAILED", next_id + 3, time, {
        "failure": {"message": "Failed to deposit money into account 43-812. Money returned to 85-150.",
                    "applicationFailureInfo": {"type": "ApplicationError"}},
        "retryState": "RETRY_STATE_RETRY_POLICY_NOT_SET",
        "workflowTaskCompletedEventId": last_task["eventId"]})
    events += [refund, started, done, failed_run]
    return {"fake-compensation.json": doc}


def written_from_scratch() -> dict[str, Doc]:
    """Six events typed in by hand: a crash, retries and a result, with none of the workflow tasks."""
    run_id = "6f1d2c3b-4a59-4e8f-9d7c-0b1a2c3d4e5f"  # a random (version 4) id, as a person would make one
    details = {"amount": 250, "reference_id": "r-1", "source_account": "85-150", "target_account": "43-812"}
    t = "2026-11-24T10:00:0{}.000000000Z"
    events = [
        new_event("WORKFLOW_EXECUTION_STARTED", 1, t.format(0), {
            "workflowType": {"name": "MoneyTransfer"}, "taskQueue": {"name": "TRANSFER_MONEY_TASK_QUEUE"},
            "input": _payload(details), "originalExecutionRunId": run_id, "firstExecutionRunId": run_id,
            "identity": "100@laptop", "attempt": 1, "workflowId": "mallory-transfer-00000001"}),
        new_event("ACTIVITY_TASK_SCHEDULED", 2, t.format(1), {
            "activityId": "1", "activityType": {"name": "withdraw"}, "input": _payload(details),
            "startToCloseTimeout": "5s"}),
        new_event("ACTIVITY_TASK_COMPLETED", 3, t.format(2), {
            "scheduledEventId": "2", "identity": "101@laptop", "result": _payload("W-1")}),
        new_event("ACTIVITY_TASK_SCHEDULED", 4, t.format(3), {
            "activityId": "2", "activityType": {"name": "deposit"}, "input": _payload(details),
            "startToCloseTimeout": "5s"}),
        new_event("ACTIVITY_TASK_COMPLETED", 5, t.format(4), {
            "scheduledEventId": "4", "identity": "102@laptop", "result": _payload("D-1")}),
        new_event("WORKFLOW_EXECUTION_COMPLETED", 6, t.format(5), {
            "result": _payload("Transfer complete (transaction IDs: W-1, D-1)")}),
    ]
    return {"from-scratch.json": {"events": events}}


def renamed_copy() -> dict[str, Doc]:
    """Another learner's crash run with the workflow id renamed, submitted next to the original."""
    original = golden("sigkill-during-deposit")
    copied = copy.deepcopy(original)
    attrs(copied["events"][0])["workflowId"] = "mallory-transfer-0badc0de"
    return {"alice-transfer.json": original, "mallory-transfer-0badc0de.json": copied}


def four_copies() -> dict[str, Doc]:
    """Four edited copies of one plain run, one per experiment (the 30/30 of the issue)."""
    partition = golden("no-failure")
    # A 30 s "outage": the deposit's completion and everything after it moved 30 s later.
    completed = find(partition, "ACTIVITY_TASK_COMPLETED", "deposit")[0]
    for event in event_after(partition, int(completed["eventId"]) - 1):
        shift(event, 30)
    return {
        "copy-crash.json": fake_crash()["fake-crash.json"],
        "copy-live-fix.json": fake_live_fix()["fake-live-fix.json"],
        "copy-compensation.json": fake_compensation()["fake-compensation.json"],
        "copy-partition.json": partition,
    }


def second_start() -> dict[str, Doc]:
    """A second WorkflowExecutionStarted in the middle of a run."""
    doc = golden("no-failure")
    extra = copy.deepcopy(doc["events"][0])
    doc["events"].insert(5, extra)
    return {"second-start.json": renumber(doc)}


def time_backwards() -> dict[str, Doc]:
    """The closing events dated a minute before the run began."""
    doc = golden("sigkill-during-deposit")
    for event in doc["events"][-3:]:
        shift(event, -60 - (datetime.fromisoformat(doc["events"][-1]["eventTime"])
                            - datetime.fromisoformat(doc["events"][0]["eventTime"])).total_seconds())
    return {"time-backwards.json": doc}


def completed_never_started() -> dict[str, Doc]:
    """The deposit's ActivityTaskStarted removed: it completes without having started."""
    doc = golden("sigkill-during-deposit")
    started = find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0]
    doc["events"].remove(started)
    return {"never-started.json": renumber(doc)}


def swapped_last_failure() -> dict[str, Doc]:
    """A crash run handed in as a live fix: only the deposit's ``lastFailure`` swapped for the bug's error."""
    doc = golden("sigkill-during-deposit")
    real = attrs(find(golden("live-fix"), "ACTIVITY_TASK_STARTED", "deposit")[0])
    start = attrs(find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0])
    start["lastFailure"] = copy.deepcopy(real["lastFailure"])
    return {"swapped-last-failure.json": doc}


def lowered_retry_limit() -> dict[str, Doc]:
    """Compensation under the rubric's limit: ``maximumAttempts`` 3 -> 2 and the last attempt 3 -> 2."""
    doc = golden("retries-exhausted-three")
    attrs(find(doc, "ACTIVITY_TASK_SCHEDULED", "deposit")[0])["retryPolicy"]["maximumAttempts"] = 2
    attrs(find(doc, "ACTIVITY_TASK_STARTED", "deposit")[0])["attempt"] = 2
    return {"lowered-retry-limit.json": doc}


def resigned_crash() -> dict[str, Doc]:
    """Crash recovery without a crash, re-signed with care: every identity from the first event after
    the worker's last act is a new worker's, and the sticky queues after it are that worker's too."""
    doc = golden("no-failure")
    withdraw_done = find(doc, "ACTIVITY_TASK_COMPLETED", "withdraw")[0]
    old = attrs(withdraw_done)["identity"]
    suffix = "0123456789abcdef0123456789abcdef"
    for event in event_after(doc, int(withdraw_done["eventId"]) + 1):  # the next task is on old's queue
        a = attrs(event)
        if "identity" in a:
            a["identity"] = NEW_WORKER
        queue = a.get("taskQueue")
        if isinstance(queue, dict) and queue.get("kind", "").endswith("STICKY") and \
                queue["name"].startswith(old) and int(event["eventId"]) > int(withdraw_done["eventId"]) + 1:
            queue["name"] = f"{NEW_WORKER}-{suffix}"
    return {"resigned-crash.json": doc}


def resigned_crash_earlier() -> dict[str, Doc]:
    """The same re-signing begun one event earlier, at the withdraw's completion, so that the old
    worker's last act is long before its sticky task: the withdraw then ends under another name."""
    doc = resigned_crash()["resigned-crash.json"]
    attrs(find(doc, "ACTIVITY_TASK_COMPLETED", "withdraw")[0])["identity"] = NEW_WORKER
    return {"resigned-crash-earlier.json": doc}


def _rename_ids(doc: Doc, workflow_id: str, run_id: str) -> Doc:
    """Every workflow id, run id and transfer reference in ``doc`` replaced by new ones (times kept)."""
    text = json.dumps(doc)
    first = attrs(doc["events"][0])
    for old, new in ((first["workflowId"], workflow_id), (first["originalExecutionRunId"], run_id)):
        text = text.replace(old, new)
    return json.loads(text)


def renamed_every_id() -> dict[str, Doc]:
    """Bob's crash run copied by mallory with every id renamed: a new workflow id and a new run id
    (version 7, with the start time kept in it). Only bob's original next to it gives it away.

    The files are ``<learner>/<file>``: a submissions folder with one folder per learner.
    """
    original = golden("sigkill-during-deposit")
    run_id = attrs(original["events"][0])["originalExecutionRunId"]
    # Keep the 48 time bits of a version-7 id (the run-id-time rule reads them), change the rest.
    new_run = run_id[:14] + "7bad-8bad-0badc0ffee00"
    bob = _rename_ids(original, "bob-transfer-1f00d", attrs(original["events"][0])["originalExecutionRunId"])
    mallory = _rename_ids(copy.deepcopy(original), "mallory-transfer-5ca1ab1e", new_run)
    return {"bob/bob-transfer-1f00d.json": bob, "mallory/mallory-transfer-5ca1ab1e.json": mallory}


def _simulate_mark(doc: Doc, experiment: str) -> Doc:
    """The memo ``grader simulate`` writes on the workflows it starts, as an export shows it."""
    mark = {"tool": "grader simulate", "experiment": experiment}
    attrs(doc["events"][0])["memo"] = {"fields": {"failure-lab-made-by": _payload(mark)["payloads"][0]}}
    return doc


def simulate_lazy() -> dict[str, Doc]:
    """The four histories ``grader simulate --learner lazy --save-histories`` writes, handed in as
    the learner's own (goldens with simulate's mark: the runs simulate makes are the goldens' kind)."""
    made = {}
    for experiment, name in (("crash-recovery", "sigkill-during-deposit"), ("live-fix", "live-fix"),
                             ("compensation", "retries-exhausted-refund"),
                             ("network-partition", "server-paused-long")):
        doc = golden(name)
        first = attrs(doc["events"][0])
        doc = _rename_ids(doc, f"lazy-{experiment}-{first['originalExecutionRunId'][-8:]}",
                          first["originalExecutionRunId"])
        made[f"{experiment}.json"] = _simulate_mark(doc, experiment)
    return made


@dataclass(frozen=True)
class Forgery:
    """One way of faking a grade."""

    name: str
    #: What it fakes, in a line.
    fakes: str
    build: Callable[[], dict[str, Doc]]
    #: The experiment it aims at (the checks alone pass it), or None for the plain structural edits.
    target: str | None = None
    #: How it is caught when not by the integrity rules on the learner's own files: ``copied-run``
    #: (only next to the original, in a batch) or ``simulate`` (its provenance), else None.
    caught_by: str | None = None


FORGERIES: dict[str, Forgery] = {f.name: f for f in [
    Forgery("fake-crash", "crash recovery: identity changed on the deposit's events and after", fake_crash,
            "crash-recovery"),
    Forgery("fake-crash-bonus", "crash recovery with the bonus: also attempt 2 after a pasted timeout",
            fake_crash_bonus, "crash-recovery"),
    Forgery("fake-live-fix", "live fix: deposit attempt 4 with a pasted ValueError, new identity", fake_live_fix,
            "live-fix"),
    Forgery("fake-compensation", "compensation: deposit marked failed, refund events appended",
            fake_compensation, "compensation"),
    Forgery("from-scratch", "a 6-event history written from nothing", written_from_scratch, "crash-recovery"),
    Forgery("renamed-copy", "another learner's run with the workflow id renamed", renamed_copy, "crash-recovery"),
    Forgery("four-copies", "four edited copies of one run id, one per experiment", four_copies),
    Forgery("second-start", "a second WorkflowExecutionStarted", second_start),
    Forgery("time-backwards", "the last events dated before the start", time_backwards),
    Forgery("never-started", "an activity completed that never started", completed_never_started),
    Forgery("swapped-last-failure", "live fix: a crash run with only the deposit's lastFailure swapped for "
            "the bug's error", swapped_last_failure, "live-fix"),
    Forgery("lowered-retry-limit", "compensation: maximumAttempts 3 -> 2 and the last attempt 3 -> 2",
            lowered_retry_limit, "compensation"),
    Forgery("resigned-crash", "crash recovery: identities and sticky queues re-signed after the worker's last "
            "act", resigned_crash, "crash-recovery"),
    Forgery("resigned-crash-earlier", "the same, re-signed from the withdraw's completion on",
            resigned_crash_earlier, "crash-recovery"),
    Forgery("renamed-every-id", "bob's crash run handed in by mallory with every id renamed (one folder each)",
            renamed_every_id, "crash-recovery", caught_by="copied-run"),
    Forgery("simulate-lazy", "the four histories `grader simulate --learner lazy` saved, handed in",
            simulate_lazy, None, caught_by="simulate"),
]}


def write_all(directory: Path, names: list[str] | None = None) -> list[Path]:
    """Write the named forgeries (all by default) into ``directory``, one subfolder each."""
    written = []
    for name in names or list(FORGERIES):
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, doc in FORGERIES[name].build().items():
            path = folder / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=2) + "\n")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: write forgeries to a folder, or list them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder to write into (one subfolder per forgery)")
    parser.add_argument("names", nargs="*", help="only these forgeries")
    parser.add_argument("--list", action="store_true", help="list the forgeries and what each fakes")
    args = parser.parse_args(argv)
    if args.list or args.out is None:
        width = max(len(name) for name in FORGERIES)
        for forgery in FORGERIES.values():
            print(f"{forgery.name:{width}}  {forgery.fakes}")
        return 0
    unknown = [n for n in args.names if n not in FORGERIES]
    if unknown:
        parser.error(f"unknown forgery: {', '.join(unknown)} (see --list)")
    for path in write_all(args.out, args.names or None):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
