"""What replay adds to the integrity rules, measured on forged and honest histories.

Every forgery of ``scripts/make_forgeries.py`` plus the ones below (edits
that keep the event structure whole, so the structural rules have less to
hold on to) is graded twice, as one learner's submission: with the integrity
rules alone (``--no-replay``) and with the rules plus a replay through the
reference workflow. Then every golden is graded both ways, to count false
alarms. The script prints one row per case:

    .venv/bin/python scripts/replay_value.py            # the table
    .venv/bin/python scripts/replay_value.py --write DIR  # also write the new forgeries, one folder each

A row says whether the rules flag the case, whether replay flags it, and the
points it earns each way. The question it answers: does any forgery earn
points with the rules alone that it does not earn with replay?
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_forgeries as F  # noqa: E402  (a script beside this one)

Doc = F.Doc


def _wft(start_id: int, time: str, identity: str, queue: dict) -> list[Doc]:
    """A workflow task (scheduled, started, completed) starting at event ``start_id``."""
    return [
        F.new_event("WORKFLOW_TASK_SCHEDULED", start_id, time, {"taskQueue": queue, "startToCloseTimeout": "10s",
                                                               "attempt": 1}),
        F.new_event("WORKFLOW_TASK_STARTED", start_id + 1, time, {"scheduledEventId": str(start_id),
                                                                  "identity": identity}),
        F.new_event("WORKFLOW_TASK_COMPLETED", start_id + 2, time, {
            "scheduledEventId": str(start_id), "startedEventId": str(start_id + 1), "identity": identity}),
    ]


def _refund_tail(doc: Doc, after: int, close_time: str, *, reason: str) -> None:
    """Replace the events after ``after`` (a workflow task completed) with a refund and a failed close."""
    events = [e for e in doc["events"] if int(e["eventId"]) <= after]
    last_task = events[-1]
    worker = F.attrs(last_task)["identity"]
    deposit = F.attrs(F.find(doc, "ACTIVITY_TASK_SCHEDULED", "deposit")[0])
    queue = F.attrs(F.find(doc, "WORKFLOW_TASK_SCHEDULED")[-1])["taskQueue"]
    n = after + 1
    refund = copy.deepcopy(deposit)
    refund.update(activityId="3", activityType={"name": "refund"}, workflowTaskCompletedEventId=str(after))
    events += [
        F.new_event("ACTIVITY_TASK_SCHEDULED", n, close_time, refund),
        F.new_event("ACTIVITY_TASK_STARTED", n + 1, close_time, {"scheduledEventId": str(n), "identity": worker,
                                                                 "attempt": 1}),
        F.new_event("ACTIVITY_TASK_COMPLETED", n + 2, close_time, {
            "scheduledEventId": str(n), "startedEventId": str(n + 1), "identity": worker,
            "result": F._payload("R-refund")}),
        *_wft(n + 3, close_time, worker, queue),
        F.new_event("WORKFLOW_EXECUTION_FAILED", n + 6, close_time, {
            "failure": {"message": f"Failed to deposit money into account 43-812. Money returned to 85-150. "
                                   f"Cause: {reason}", "source": "PythonSDK",
                        "applicationFailureInfo": {"type": "ApplicationError"}},
            "retryState": "RETRY_STATE_RETRY_POLICY_NOT_SET", "workflowTaskCompletedEventId": str(n + 5)}),
    ]
    doc["events"] = events


def refund_after_success() -> dict[str, Doc]:
    """A refund run inside the workflow after a deposit that succeeded, then a failed close: whole structure."""
    doc = F.golden("no-failure")
    last_task = F.find(doc, "WORKFLOW_TASK_COMPLETED")[-1]
    _refund_tail(doc, int(last_task["eventId"]), doc["events"][-1]["eventTime"], reason="none")
    return {"refund-after-success.json": doc}


def coherent_compensation() -> dict[str, Doc]:
    """A clean run rewritten whole into compensation: the deposit fails non-retryably, the refund runs."""
    doc = F.golden("no-failure")
    completed = F.find(doc, "ACTIVITY_TASK_COMPLETED", "deposit")[0]
    a = F.attrs(completed)
    failed = F.new_event("ACTIVITY_TASK_FAILED", int(completed["eventId"]), completed["eventTime"], {
        "failure": {"message": "Account number 43-812 is invalid", "source": "PythonSDK",
                    "applicationFailureInfo": {"type": "InvalidAccountError", "nonRetryable": True}},
        "scheduledEventId": a["scheduledEventId"], "startedEventId": a["startedEventId"],
        "identity": a["identity"], "retryState": "RETRY_STATE_NON_RETRYABLE_FAILURE"})
    doc["events"][doc["events"].index(completed)] = failed
    last_task = F.find(doc, "WORKFLOW_TASK_COMPLETED")[-1]
    _refund_tail(doc, int(last_task["eventId"]), doc["events"][-1]["eventTime"], reason="InvalidAccountError")
    return {"coherent-compensation.json": doc}


def swapped_activities() -> dict[str, Doc]:
    """A crash run with the withdraw and deposit names swapped: the crash now hits the withdraw."""
    doc = F.golden("sigkill-during-deposit")
    for event in F.find(doc, "ACTIVITY_TASK_SCHEDULED"):
        name = F.attrs(event)["activityType"]
        name["name"] = {"withdraw": "deposit", "deposit": "withdraw"}.get(name["name"], name["name"])
    return {"swapped-activities.json": doc}


def activity_id_changed() -> dict[str, Doc]:
    """A crash run whose deposit carries an activity id the SDK would not have given it."""
    doc = F.golden("sigkill-during-deposit")
    F.attrs(F.find(doc, "ACTIVITY_TASK_SCHEDULED", "deposit")[0])["activityId"] = "deposit-1"
    return {"activity-id-changed.json": doc}


def no_withdraw() -> dict[str, Doc]:
    """A crash run with the withdraw and the workflow task after it cut out, ids renumbered: money from nowhere."""
    doc = F.golden("sigkill-during-deposit")
    scheduled = F.find(doc, "ACTIVITY_TASK_SCHEDULED", "withdraw")[0]
    first = int(scheduled["eventId"])
    cut = set(range(first, first + 6))  # scheduled, started, completed and the next workflow task
    doc["events"] = [e for e in doc["events"] if int(e["eventId"]) not in cut]
    deposit = F.attrs(F.find(doc, "ACTIVITY_TASK_SCHEDULED", "deposit")[0])
    deposit["workflowTaskCompletedEventId"] = str(first - 1)
    return {"no-withdraw.json": F.renumber(doc)}


def success_after_refund() -> dict[str, Doc]:
    """A compensation run that closes as completed with the success text instead of failing."""
    doc = F.golden("retries-exhausted-refund")
    close = doc["events"][-1]
    task = F.attrs(close)["workflowTaskCompletedEventId"]
    doc["events"][-1] = F.new_event("WORKFLOW_EXECUTION_COMPLETED", int(close["eventId"]), close["eventTime"], {
        "result": F._payload("Transfer complete (transaction IDs: W1, D1)"), "workflowTaskCompletedEventId": task})
    return {"success-after-refund.json": doc}


#: Forgeries made here: structure kept whole, so only their meaning is wrong.
NEW: dict[str, tuple[str, Callable[[], dict[str, Doc]]]] = {
    "refund-after-success": ("compensation with a deposit that succeeded, structure whole", refund_after_success),
    "coherent-compensation": ("a clean run rewritten whole into a non-retryable deposit + refund",
                              coherent_compensation),
    "swapped-activities": ("crash run with withdraw and deposit names swapped", swapped_activities),
    "activity-id-changed": ("crash run, deposit's activity id edited", activity_id_changed),
    "no-withdraw": ("crash run with the withdraw cut out, renumbered", no_withdraw),
    "success-after-refund": ("compensation run closed as completed", success_after_refund),
}


def _grade(folder: Path, replay: bool) -> tuple[float, list[str], list[str]]:
    """Score, passed experiments and the integrity codes found, for one folder graded as one learner."""
    from grader.api import grade_loaded
    from grader.sources.files import read_files

    report = grade_loaded(read_files([folder]), replay=replay)
    codes = sorted({f.code for entry in report.integrity for f in entry.findings})
    passed = [e.id for e in report.experiments if e.status == "pass"]
    return report.score, passed, codes


def measure(root: Path) -> list[dict]:
    """Write every case under ``root`` and grade it both ways; one dict per case."""
    cases: list[tuple[str, str, dict[str, Doc]]] = []
    for forgery in F.FORGERIES.values():
        cases.append(("forgery", forgery.name, forgery.build()))
    for name, (_, build) in NEW.items():
        cases.append(("new forgery", name, build()))
    for path in sorted(F.GOLDENS.glob("*.json")):
        cases.append(("golden", path.stem, {path.name: json.loads(path.read_text())}))
    rows = []
    for kind, name, files in cases:
        folder = root / kind.replace(" ", "-") / name
        folder.mkdir(parents=True)
        for file_name, doc in files.items():
            (folder / file_name).parent.mkdir(parents=True, exist_ok=True)  # some forgeries come in folders
            (folder / file_name).write_text(json.dumps(doc))
        rules = _grade(folder, replay=False)
        both = _grade(folder, replay=True)
        rows.append({"kind": kind, "name": name, "rules_score": rules[0], "rules_passed": rules[1],
                     "rules_codes": rules[2], "replay_score": both[0], "replay_passed": both[1],
                     "replay_codes": both[2],
                     "replay_flags": "replay-nondeterminism" in both[2]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 0 (it measures, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="DIR", help="also write the new forgeries here")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.write:
        for name, (_, build) in NEW.items():
            (args.write / name).mkdir(parents=True, exist_ok=True)
            for file_name, doc in build().items():
                (args.write / name / file_name).write_text(json.dumps(doc, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'kind':12} {'case':26} {'rules':>6} {'+replay':>8}  replay flags  rules' codes / replay's extra codes")
    for r in rows:
        extra = sorted(set(r["replay_codes"]) - set(r["rules_codes"]))
        print(f"{r['kind']:12} {r['name']:26} {r['rules_score']:6g} {r['replay_score']:8g}  "
              f"{'yes' if r['replay_flags'] else 'no':12}  {','.join(r['rules_codes']) or '-'}"
              f"{'  +' + ','.join(extra) if extra else ''}")
    forged = [r for r in rows if r["kind"] != "golden"]
    gained = [r["name"] for r in forged if r["rules_score"] > r["replay_score"]]
    only_replay = [r["name"] for r in forged if r["replay_flags"] and not r["rules_codes"]]
    alarms = [r["name"] for r in rows if r["kind"] == "golden" and r["replay_flags"]]
    print(f"\nforgeries: {len(forged)}; earn more points without replay: {gained or 'none'}; "
          f"flagged by replay alone: {only_replay or 'none'}")
    print(f"goldens: {len(rows) - len(forged)}; flagged by replay (false alarms): {alarms or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
