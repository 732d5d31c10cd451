"""Integrity: genuine histories stay consistent, every forgery is flagged and passes nothing.

False alarms are measured as carefully as catches: every golden, and every
golden rewritten the way other exporters and other languages' apps write
it, must come out ``consistent``. The forgeries come from
``scripts/make_forgeries.py``, the same library a reviewer can run by hand.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.api import check_files, grade_histories
from grader.cli import cli
from grader.engine.evidence import build_evidence
from grader.formats import render
from grader.engine.history import History, load_history_file, load_json_text
from grader.engine.integrity import CONSISTENT, SUSPECT, assess, inspect_history
from grader.engine.report import INTEGRITY_CHECK, grade, report_schema
from grader.engine.rubric import load_rubric
from test_foreign_histories import camel_keys, map_payloads

GOLDENS = Path(__file__).parent / "goldens"
GOLDEN_NAMES = sorted(p.stem for p in GOLDENS.glob("*.json"))
RUBRIC = load_rubric()


def _forgeries():
    path = Path(__file__).resolve().parent.parent / "scripts" / "make_forgeries.py"
    spec = importlib.util.spec_from_file_location("make_forgeries", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FORGE = _forgeries()


def histories_of(docs: dict[str, dict]) -> list[History]:
    return [load_json_text(json.dumps(doc), source=name) for name, doc in docs.items()]


def doc(name: str) -> dict:
    return json.loads((GOLDENS / f"{name}.json").read_text())


# --- genuine histories: never flagged ----------------------------------------


def test_every_golden_is_consistent_alone_and_together():
    histories = [load_history_file(GOLDENS / f"{name}.json") for name in GOLDEN_NAMES]
    entries = assess(histories)
    # Every golden the recording script lists, none left out by the glob.
    manifest = json.loads((GOLDENS.parent / "golden_manifest.json").read_text())
    assert len(entries) == len(GOLDEN_NAMES) == len(manifest["files"])
    flagged = {e.source: [f.message for f in e.findings] for e in entries if e.status != CONSISTENT}
    assert flagged == {}


def _go_style(name: str) -> dict:
    text = (GOLDENS / f"{name}.json").read_text()
    text = re.sub(r'"name": "(withdraw|deposit|refund)"', lambda m: f'"name": "{m[1].capitalize()}"', text)
    text = re.sub(r"(\d+)@worker-host", r"\1@go-host@", text)
    return map_payloads(json.loads(text), camel_keys)


def _pascal(name: str) -> dict:
    d = copy.deepcopy(doc(name))
    for event in d["events"]:
        event["eventType"] = "".join(p.capitalize() for p in event["eventType"].removeprefix("EVENT_TYPE_").split("_"))
        event["eventId"] = int(event["eventId"])
    return d


def _typescript(name: str) -> dict:
    d = copy.deepcopy(doc(name))
    d["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "moneyTransfer"
    return d


REWRITES = {
    "newest-first": lambda name: {"events": list(reversed(doc(name)["events"]))},
    "pascal-case": _pascal,
    "go-style": _go_style,
    "typescript-type": _typescript,
}


def _plain_metadata(name: str) -> dict:
    """Payload metadata written decoded (``"encoding": "json/plain"``), as some exporters do."""
    b64 = base64.b64encode(b"json/plain").decode()

    def walk(node):
        if isinstance(node, dict):
            if node.get("metadata", {}).get("encoding") == b64:
                return {**node, "metadata": {"encoding": "json/plain"}}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(doc(name))


REWRITES["plain-metadata"] = _plain_metadata


@pytest.mark.parametrize("style", sorted(REWRITES))
def test_foreign_spellings_of_every_golden_are_consistent(style: str):
    """Rules, agreement and replay together: no false alarm on any golden in any spelling."""
    from grader.api import check_integrity
    from grader.sources.loaded import Loaded

    histories = [load_json_text(json.dumps(REWRITES[style](name)), source=f"{name}.json") for name in GOLDEN_NAMES]
    entries = check_integrity(Loaded(histories=histories))
    flagged = {e.source: [f.message for f in e.findings] for e in entries if e.status != CONSISTENT}
    assert flagged == {}


def test_one_run_in_two_export_spellings_is_no_conflict():
    histories = histories_of({"a.json": doc("live-fix"), "b.json": _pascal("live-fix"),
                              "c.json": {"events": list(reversed(doc("live-fix")["events"]))}})
    entries = assess(histories)
    assert [e.status for e in entries] == [CONSISTENT] * 3


def test_an_earlier_export_of_an_open_run_is_a_prefix_not_a_conflict():
    full = doc("sigkill-during-deposit")
    early = {"events": full["events"][:12]}  # read while the deposit was still running
    entries = assess(histories_of({"early.json": early, "late.json": full}))
    assert [e.status for e in entries] == [CONSISTENT, CONSISTENT]


def test_a_reset_run_and_its_parent_share_a_run_id_without_conflict():
    reset = doc("reset")
    parent_early = {"events": reset["events"][:3]}  # the parent as exported before the reset point
    entries = assess(histories_of({"parent.json": parent_early, "reset.json": reset}))
    assert [e.status for e in entries] == [CONSISTENT, CONSISTENT]


def test_a_closed_copy_that_goes_on_is_a_conflict():
    full = doc("no-failure")
    longer = FORGE.fake_compensation()["fake-compensation.json"]
    entries = assess(histories_of({"a.json": full, "b.json": longer}))
    assert all(e.status == SUSPECT for e in entries)
    assert any(f.code == "run-id-conflict" for f in entries[0].findings)


# --- forgeries: always flagged, never passing ----------------------------------


#: Forgeries caught by the integrity rules on the learner's own files (the others: see test_provenance.py).
BY_RULES = sorted(n for n, f in FORGE.FORGERIES.items() if f.caught_by is None)


@pytest.mark.parametrize("name", BY_RULES)
def test_every_forgery_is_flagged_and_passes_nothing(name: str):
    forgery = FORGE.FORGERIES[name]
    histories = histories_of(forgery.build())
    report = grade_histories(histories)
    assert [e.status for e in report.integrity] == [SUSPECT] * len(histories)
    assert all(e.findings for e in report.integrity)
    assert [x.id for x in report.experiments if x.status == "pass"] == []
    assert report.score == 0
    for experiment in report.experiments:
        if experiment.status == "not-attempted":  # no run shows it: nothing to gate
            assert experiment.workflow is None and experiment.score == 0
            continue
        gate_line = experiment.checks[-1]
        assert (gate_line.id, gate_line.status, gate_line.required) == (INTEGRITY_CHECK, "fail", True)
        assert all(c.score == 0 for c in experiment.checks)


@pytest.mark.parametrize("name", sorted(n for n, f in FORGE.FORGERIES.items() if f.target))
def test_each_targeted_forgery_would_fool_the_checks_alone(name: str):
    """Without integrity the forgery passes what it aims at: the catch above is what stops it."""
    forgery = FORGE.FORGERIES[name]
    runs = [build_evidence(h) for h in histories_of(forgery.build())]
    statuses = {e.id: e.status for e in grade(runs, RUBRIC).experiments}
    assert statuses[forgery.target] == "pass"


EXPECTED_CODES = {
    "fake-crash": {"eager-start-identity"},
    "fake-crash-bonus": {"retry-too-soon"},
    "fake-live-fix": {"retry-too-soon"},
    "fake-compensation": {"after-close", "retry-too-soon"},
    "from-scratch": {"bad-reference"},
    "renamed-copy": {"run-id-conflict"},
    "four-copies": {"run-id-conflict"},
    "second-start": {"second-start"},
    "time-backwards": {"time-backwards"},
    "never-started": {"bad-reference"},
    "swapped-last-failure": {"retry-timed-like-timeout"},
    "lowered-retry-limit": {"retry-gap-unexplained"},
    "resigned-crash": {"sticky-taken-from-live-worker"},
    "resigned-crash-earlier": {"task-closed-by-another"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_each_forgery_is_caught_by_the_rule_meant_for_it(name: str):
    entries = assess(histories_of(FORGE.FORGERIES[name].build()))
    codes = {f.code for e in entries for f in e.findings}
    assert EXPECTED_CODES[name] <= codes


def test_the_expected_codes_cover_every_forgery():
    assert set(EXPECTED_CODES) == set(BY_RULES)


@pytest.mark.parametrize("name", ["swapped-last-failure", "lowered-retry-limit", "resigned-crash",
                                  "resigned-crash-earlier"])
def test_each_new_rule_is_the_only_thing_that_catches_its_forgery(name: str):
    """Each of these edits breaks no older rule: the rule written for it is what stops it."""
    entries = assess(histories_of(FORGE.FORGERIES[name].build()))
    assert {f.code for e in entries for f in e.findings} == EXPECTED_CODES[name]


def test_a_swap_between_two_application_failures_is_not_provable():
    """A Ctrl+C crash's WorkerShutdown swapped for the bug's error leaves no timing to contradict it."""
    d = doc("sigint-during-deposit")
    real = next(e for e in doc("live-fix")["events"] if e.get("activityTaskStartedEventAttributes", {})
                .get("lastFailure"))["activityTaskStartedEventAttributes"]["lastFailure"]
    for event in d["events"]:
        started = event.get("activityTaskStartedEventAttributes")
        if started and started.get("lastFailure"):
            started["lastFailure"] = copy.deepcopy(real)
    assert assess(histories_of({"swapped.json": d}))[0].status == CONSISTENT


def test_a_retry_limit_lowered_by_one_attempt_on_a_restarted_worker_is_not_provable():
    """Without one process living through the retries, the missing attempt's time may be a restart."""
    d = FORGE.lowered_retry_limit()["lowered-retry-limit.json"]
    for event in d["events"]:
        queue = next(iter(v for k, v in event.items() if k.endswith("Attributes")), {}).get("taskQueue", {})
        if queue.get("kind", "").endswith("STICKY") and int(event["eventId"]) > 12:
            queue["name"] = queue["name"][:-32] + "f" * 32  # another process after the deposit
    assert "retry-gap-unexplained" not in {f.code for f in inspect_history(histories_of({"x.json": d})[0])}


def test_four_copies_of_one_run_score_nothing_but_each_alone_fools_a_rule_set():
    """The partition copy alone breaks no single-history rule: only the other copies give it away."""
    copies = FORGE.four_copies()
    alone = inspect_history(histories_of({"p.json": copies["copy-partition.json"]})[0])
    assert alone == []
    report = grade_histories(histories_of(copies))
    assert (report.score, report.status) == (0, "fail")


def test_a_renamed_copy_alone_is_not_provable():
    """A renamed run names no one inside: it is caught only next to the original (see the README)."""
    copied = FORGE.renamed_copy()["mallory-transfer-0badc0de.json"]
    assert assess(histories_of({"m.json": copied}))[0].status == CONSISTENT


def test_an_honest_run_beats_a_suspect_one_for_the_same_experiment():
    histories = histories_of({"forged.json": FORGE.fake_crash()["fake-crash.json"],
                              "honest.json": doc("sigkill-during-deposit")})
    crash = next(e for e in grade_histories(histories).experiments if e.id == "crash-recovery")
    assert (crash.status, crash.workflow.source) == ("pass", "honest.json")


def test_each_single_rule_on_a_small_edit():
    """Edits of one field, each caught by its own rule."""
    base = doc("retries-exhausted-refund")

    def codes(edit) -> set[str]:
        d = copy.deepcopy(base)
        edit(d["events"])
        return {f.code for f in inspect_history(load_json_text(json.dumps(d), source="x.json"))}

    def gap(events):
        events[5]["eventId"] = "40"
    assert "event-ids" in codes(gap)

    def sticky_of_another(events):
        q = events[7]["workflowTaskScheduledEventAttributes"]["taskQueue"]
        q["name"] = q["name"].replace("15718@", "4242@")
    assert "sticky-queue-owner" in codes(sticky_of_another)

    def retries_left(events):
        events[10]["activityTaskScheduledEventAttributes"]["retryPolicy"]["maximumAttempts"] = 5
    assert "retries-not-used-up" in codes(retries_left)

    def over_maximum(events):
        events[11]["activityTaskStartedEventAttributes"]["attempt"] = 3
    assert "attempt-over-maximum" in codes(over_maximum)

    def wrong_kind(events):
        events[12]["activityTaskFailedEventAttributes"]["startedEventId"] = "9"
    assert {"bad-reference"} <= codes(wrong_kind)

    def claimed_non_retryable(events):
        failed = events[12]["activityTaskFailedEventAttributes"]
        failed["retryState"] = "RETRY_STATE_NON_RETRYABLE_FAILURE"
    assert "non-retryable-claim" in codes(claimed_non_retryable)

    def run_id_moved(events):
        events[0]["eventTime"] = "2026-11-20T10:00:00.000000000Z"
    assert "run-id-time" in codes(run_id_moved)


def test_sticky_suffix_under_two_identities():
    d = copy.deepcopy(doc("sigkill-during-deposit"))
    events = d["events"]
    # The new worker's task lands on the old process's sticky queue under the new name: one process, two names.
    sticky = events[7]["workflowTaskScheduledEventAttributes"]["taskQueue"]["name"]
    suffix = sticky.rsplit("-", 1)[1]
    events[15]["workflowTaskScheduledEventAttributes"]["taskQueue"] = {
        "name": f"15551@worker-host-{suffix}", "kind": "TASK_QUEUE_KIND_STICKY"}
    codes = {f.code for f in inspect_history(load_json_text(json.dumps(d), source="x.json"))}
    assert "sticky-queue-identity" in codes


# --- the report -------------------------------------------------------------


def test_json_report_with_suspect_histories_matches_the_schema(tmp_path: Path):
    FORGE.write_all(tmp_path, ["four-copies", "fake-crash"])
    report = check_files([tmp_path / "four-copies", tmp_path / "fake-crash", GOLDENS / "live-fix.json"])
    data = json.loads(render(report, "json"))
    jsonschema.validate(data, report_schema())
    statuses = [(Path(e["source"]).name, e["status"]) for e in data["integrity"]]
    assert ("live-fix.json", "consistent") in statuses
    assert sum(s == "suspect" for _, s in statuses) == 5
    assert set(data["integrity"][0]) == {"source", "workflow_id", "run_id", "status", "findings", "notes"}
    # The honest live fix still passes its experiment next to the forgeries.
    live = next(e for e in data["experiments"] if e["id"] == "live-fix")
    assert live["status"] == "pass" and live["workflow"]["source"].endswith("live-fix.json")


def test_table_lists_suspect_histories_with_findings(tmp_path: Path):
    FORGE.write_all(tmp_path, ["fake-live-fix"])
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path / "fake-live-fix")])
    assert result.exit_code == 1
    assert "Suspect histories: 1 of 1 (no experiment passes on them)" in result.output
    assert "    retry-too-soon: deposit attempt 4 started" in result.output
    assert "FAIL  The history is as the server recorded it" in result.output


def test_consistent_histories_add_no_lines_to_the_table():
    result = CliRunner().invoke(cli, ["check", "--history", str(GOLDENS / "live-fix.json")])
    assert "Suspect" not in result.output and "recorded it" not in result.output


# --- replay through the reference workflow -------------------------------------


def test_every_golden_replays_through_the_reference_or_says_why_not():
    from grader.api import check_integrity
    from grader.sources.loaded import Loaded

    histories = [load_history_file(GOLDENS / f"{name}.json") for name in GOLDEN_NAMES]
    entries = check_integrity(Loaded(histories=histories))
    assert [e.source for e in entries if e.status != CONSISTENT] == []
    notes = {Path(e.source).stem: e.notes for e in entries}
    # The fake workflow runs no activity: not the reference's shape, so not replayed, and no finding.
    assert notes["fake-workflow"] == ["not replayed: the run scheduled no activity, so it is not the "
                                      "reference app's shape"]
    replayed = [n for n, v in notes.items() if v == ["replayed through the reference MoneyTransfer: deterministic"]]
    assert len(replayed) == len(GOLDEN_NAMES) - 1  # all but the fake; the timer of kill-between-activities replays with the pause it was recorded with


@pytest.mark.parametrize("style, note", [
    ("go-style", "not replayed: activity 'Withdraw' is not one of the reference app's"),
    ("typescript-type", "not replayed: workflow type 'moneyTransfer' is another app's"),
    ("pascal-case", "replayed through the reference MoneyTransfer: deterministic"),
])
def test_other_apps_are_not_replayed_and_that_is_no_finding(style: str, note: str):
    from grader.api import check_integrity
    from grader.sources.loaded import Loaded

    history = load_json_text(json.dumps(REWRITES[style]("live-fix")), source="x.json")
    (entry,) = check_integrity(Loaded(histories=[history]))
    assert entry.status == CONSISTENT
    assert entry.notes[0].startswith(note)


def test_replay_catches_a_refund_after_a_successful_deposit():
    """A compensation forged *inside* the run (no event after the close) breaks no structural rule
    about closes; the reference code, which refunds only after a failed deposit, does not replay it."""
    from grader.lab.replay import replay_histories

    d = doc("no-failure")
    events = d["events"]
    # The workflow task after the deposit schedules a refund instead of completing the run.
    close = events[-1]
    refund = FORGE.new_event("ACTIVITY_TASK_SCHEDULED", int(close["eventId"]), close["eventTime"], {
        **copy.deepcopy(FORGE.attrs(FORGE.find(d, "ACTIVITY_TASK_SCHEDULED", "deposit")[0])),
        "activityId": "3", "activityType": {"name": "refund"},
        "workflowTaskCompletedEventId": close["workflowExecutionCompletedEventAttributes"]["workflowTaskCompletedEventId"]})
    events[-1] = refund
    history = load_json_text(json.dumps(d), source="refund.json")
    outcome = replay_histories([history])
    ((finding,),) = outcome.findings
    assert finding.code == "replay-nondeterminism"
    assert finding.event_ids  # the SDK names the event it could not match


def test_go_and_java_sticky_queue_names_are_not_read_as_identities():
    """The Go SDK names sticky queues host:uuid: no identity in them, so no sticky finding."""
    d = _go_style("sigint-during-deposit")
    for event in d["events"]:
        queue = event.get("workflowTaskScheduledEventAttributes", {}).get("taskQueue", {})
        if queue.get("kind") == "TASK_QUEUE_KIND_STICKY":
            queue["name"] = "go-host:6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    history = load_json_text(json.dumps(d), source="go.json")
    assert inspect_history(history) == []


def test_a_retry_delay_set_by_the_application_is_not_too_soon():
    d = copy.deepcopy(doc("retries-exhausted-refund"))
    start = d["events"][11]["activityTaskStartedEventAttributes"]
    start["lastFailure"]["applicationFailureInfo"]["nextRetryDelay"] = "0.001s"
    d["events"][11]["eventTime"] = d["events"][10]["eventTime"]  # retried at once, as the failure asked
    history = load_json_text(json.dumps(d), source="x.json")
    assert [f.code for f in inspect_history(history)] == []


# --- odd input never crashes the integrity layer -----------------------------------

JUNK = [None, 5, -1, 0, 1e308, float("inf"), "x", [], {}, "1e999", "9" * 30, True, "", "0s", "1e400s", "-3s",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-11-24T21:48:01", {"name": 5},
        {"kind": "TASK_QUEUE_KIND_STICKY", "name": "a-" + "f" * 32}, ["w"], "ffffffff-ffff-7fff-8fff-ffffffffffff"]


def _mutants(seed: int, count: int):
    import random

    rng = random.Random(seed)
    originals = [doc(name) for name in GOLDEN_NAMES]
    for _ in range(count):
        d = copy.deepcopy(rng.choice(originals))
        for _ in range(rng.randint(1, 3)):
            event = rng.choice(d["events"])
            attrs = next((v for k, v in event.items() if k.endswith("Attributes")), None)
            roll = rng.random()
            if roll < 0.15:
                event["eventTime"] = rng.choice(JUNK)
            elif roll < 0.25:
                event["eventId"] = rng.choice(["1", "7", "40", 3, "1e3"])
            elif roll < 0.3:
                d["events"].remove(event)
            elif attrs:
                key = rng.choice(list(attrs) + ["scheduledEventId", "startedEventId", "attempt",
                                                "workflowTaskCompletedEventId", "retryPolicy", "lastFailure"])
                attrs[key] = rng.choice(JUNK) if rng.random() < 0.8 else {
                    "initialInterval": rng.choice(JUNK), "backoffCoefficient": rng.choice(JUNK),
                    "maximumInterval": rng.choice(JUNK), "maximumAttempts": rng.choice(JUNK)}
        yield d


def test_integrity_never_crashes_on_mutated_histories():
    histories, read = [], 0
    for d in _mutants(seed=10, count=1500):
        try:
            history = load_json_text(json.dumps(d), source=f"m{read}.json")
        except Exception:  # noqa: BLE001 - refusing input is the reader's job (and its tests'), not integrity's
            continue
        read += 1
        histories.append(history)
        inspect_history(history)
    assert read > 500  # the reader refuses ill-typed fields itself (grader.engine.history.FIELD_RULES)
    entries = assess(histories)  # every mutant next to the others: many share a run id
    assert len(entries) == len(histories)
    assert sum(e.status == SUSPECT for e in entries) > read // 2


def test_replay_never_crashes_on_mutated_histories():
    from grader.lab.replay import replay_histories

    histories = []
    for index, d in enumerate(_mutants(seed=11, count=60)):
        try:
            histories.append(load_json_text(json.dumps(d), source=f"r{index}.json"))
        except Exception:  # noqa: BLE001 - the reader's job, as above
            continue
    outcome = replay_histories(histories)
    assert len(outcome.notes) == len(outcome.findings) == len(histories)
    assert all(notes or findings for notes, findings in zip(outcome.notes, outcome.findings))


def test_histories_sharing_one_source_keep_their_own_verdicts():
    """Everything read live from one server has one source: verdicts go by position, not by source."""
    from grader.api import check_integrity
    from grader.sources.loaded import Loaded

    forged = FORGE.fake_compensation()["fake-compensation.json"]
    histories = [load_json_text(json.dumps(d), source="server localhost:7233/default")
                 for d in (doc("live-fix"), forged, doc("cancel"))]
    entries = check_integrity(Loaded(histories=histories))
    assert [e.status for e in entries] == [CONSISTENT, SUSPECT, CONSISTENT]
    assert "replay-nondeterminism" in {f.code for f in entries[1].findings}
    assert entries[0].notes == entries[2].notes == ["replayed through the reference MoneyTransfer: deterministic"]


def test_a_reset_run_read_under_its_own_newer_id_is_consistent():
    """Live, a reset run is read under its own run id, made at the reset, long after the copied start event."""
    history = load_history_file(GOLDENS / "reset.json")
    history.run_id = "01a2ffff-0000-7000-8000-000000000000"  # a version-7 id from days later
    assert inspect_history(history) == []


def test_two_exports_of_one_run_under_two_file_names_without_a_recorded_id_agree():
    """Older servers write no workflowId into the start event: the file name is no claim."""
    d = copy.deepcopy(doc("live-fix"))
    del d["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    entries = assess(histories_of({"exports/first.json": d, "exports/again.json": copy.deepcopy(d)}))
    assert [e.status for e in entries] == [CONSISTENT, CONSISTENT]
