"""Histories this repo did not make: the same real runs as other apps and tools would record them.

Each test rewrites a real golden the way another exporter or another
language's tutorial app writes it, and expects the same grade: the grader
must decide from what a history proves, not from our app's spelling.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from grader.api import grade_histories
from grader.engine.history import load_json_text

GOLDENS = Path(__file__).parent / "goldens"
SCENARIOS = ["sigkill-during-deposit", "sigint-during-withdraw", "live-fix", "retries-exhausted-refund",
             "non-retryable-refund", "cancel", "no-failure", "running"]


def load(name: str) -> dict:
    return json.loads((GOLDENS / f"{name}.json").read_text())


def verdicts(doc: Any, name: str = "x.json") -> dict[str, tuple[str, float]]:
    text = json.dumps(doc)
    report = grade_histories([load_json_text(text, source=name)])
    return {e.id: (e.status, e.score) for e in report.experiments}


def map_payloads(node: Any, change: Callable[[Any], Any]) -> Any:
    """Rewrite every json/plain payload's decoded value with ``change``."""
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            value = json.loads(base64.b64decode(node["data"]))
            node = {**node, "data": base64.b64encode(json.dumps(change(value)).encode()).decode()}
            return node
        return {k: map_payloads(v, change) for k, v in node.items()}
    if isinstance(node, list):
        return [map_payloads(v, change) for v in node]
    return node


def camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {"".join(p.capitalize() for p in k.split("_")): v for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", SCENARIOS)
def test_newest_first_order_grades_the_same(name: str):
    doc = load(name)
    flipped = {"events": list(reversed(doc["events"]))}
    assert verdicts(flipped) == verdicts(doc)


@pytest.mark.parametrize("name", SCENARIOS)
def test_old_pascal_case_event_types_grade_the_same(name: str):
    doc = copy.deepcopy(load(name))
    for event in doc["events"]:
        event["eventType"] = "".join(p.capitalize() for p in
                                     event["eventType"].removeprefix("EVENT_TYPE_").split("_"))
        event["eventId"] = int(event["eventId"])
    assert verdicts(doc) == verdicts(load(name))


@pytest.mark.parametrize("name", SCENARIOS)
def test_go_style_app_grades_the_same(name: str):
    """The Go tutorial: Withdraw/Deposit/Refund, PaymentDetails with Go field names, pid@host@ identities."""
    text = (GOLDENS / f"{name}.json").read_text()
    text = re.sub(r'"name": "(withdraw|deposit|refund)"', lambda m: f'"name": "{m[1].capitalize()}"', text)
    text = re.sub(r"(\d+)@worker-host", r"\1@go-host@", text)
    doc = map_payloads(json.loads(text), camel_keys)
    assert verdicts(doc) == verdicts(load(name))


def test_typescript_workflow_type_is_accepted():
    doc = copy.deepcopy(load("live-fix"))
    doc["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "moneyTransfer"
    assert verdicts(doc) == verdicts(load("live-fix"))


def test_a_refund_of_another_amount_is_caught_in_any_spelling():
    doc = load("retries-exhausted-refund")
    events = doc["events"]
    refund_id = next(e["eventId"] for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
                     and e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "refund")
    for event in events:
        if event["eventId"] == refund_id:
            attrs = event["activityTaskScheduledEventAttributes"]
            attrs["input"] = map_payloads(attrs["input"], lambda v: {**camel_keys(v), "Amount": 25})
    status, _ = verdicts(doc)["compensation"]
    assert status == "fail"


def test_payload_metadata_written_decoded_still_reads():
    doc = copy.deepcopy(load("retries-exhausted-refund"))

    def plain_meta(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("metadata", {}).get("encoding") == base64.b64encode(b"json/plain").decode():
                return {**node, "metadata": {"encoding": "json/plain"}}
            return {k: plain_meta(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain_meta(v) for v in node]
        return node

    assert verdicts(plain_meta(doc)) == verdicts(load("retries-exhausted-refund"))


def test_duplicate_event_ids_are_refused():
    from grader.errors import HistoryError

    doc = load("no-failure")
    doc["events"].append(doc["events"][-1])
    with pytest.raises(HistoryError, match="appears twice"):
        load_json_text(json.dumps(doc), source="dup.json")


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_fixed_worker_identity_grades_the_same(name: str):
    """Learners set Worker(identity=...): every process then shows one name. The grade must not change."""
    text = re.sub(r"\b\d+@worker-host\b", "my-worker", (GOLDENS / f"{name}.json").read_text())
    assert verdicts(json.loads(text)) == verdicts(load(name))


@pytest.mark.parametrize("name", ["sigkill-during-deposit", "live-fix", "no-failure"])
def test_typescript_style_app_with_one_identity_grades_the_same(name: str):
    """The TypeScript tutorial's spelling (workflow type moneyTransfer, camelCase details, the bug as a
    plain Error without a full stop) on top of a fixed identity."""
    text = re.sub(r"\b\d+@worker-host\b", "ts-worker", (GOLDENS / f"{name}.json").read_text())
    doc = map_payloads(json.loads(text), lambda v: {re.sub(r"_(\w)", lambda m: m[1].upper(), k): x
                                                     for k, x in v.items()} if isinstance(v, dict) else v)
    doc["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "moneyTransfer"
    for event in doc["events"]:
        failure = event.get("activityTaskStartedEventAttributes", {}).get("lastFailure")
        if failure and "applicationFailureInfo" in failure:
            failure["message"] = "This deposit has failed"
            failure["applicationFailureInfo"]["type"] = "Error"
    assert verdicts(doc) == verdicts(load(name))
