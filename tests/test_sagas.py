"""The sagas pack (issue 15 item 3): its goldens, recorded from real runs, grade as their manifest says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.api import check_files
from grader.packs import get_pack

PACK = get_pack("sagas")
GOLDENS = PACK.folder / "goldens"
MANIFEST = json.loads((PACK.folder / "goldens.json").read_text())


def _grade(name: str):
    report = check_files([GOLDENS / f"{name}.json"], rubric=PACK.rubric_path, replay=False)
    return {e.id: e for e in report.experiments}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_golden_grades_as_its_manifest_says(name: str):
    experiments = _grade(name)
    got = {exp_id: experiments[exp_id].status == "pass" for exp_id in MANIFEST[name]["verdicts"]}
    assert got == MANIFEST[name]["verdicts"], [(c.id, c.status, c.message) for e in experiments.values()
                                               for c in e.checks]


def _finding(name: str, check_id: str) -> str:
    experiments = _grade(name)
    return next(c.message for e in experiments.values() for c in e.checks if c.id == check_id)


@pytest.mark.parametrize(("name", "check_id", "says"), [
    ("practice-copy", "saga-rollback.compensated-once", "refund_customer never ran to undo it"),
    ("forward-order", "saga-rollback.reverse-order", "ran revert_inventory -> refund_customer"),
    ("compensated-twice", "saga-rollback.compensated-once", "revert_inventory ran 2 times"),
    ("compensations-without-failure", "saga-rollback.compensated-once", "but no step failed for good"),
    ("failure-before-steps", "saga-rollback.compensated-once", "there was nothing to undo"),
    ("saga-rollback", "saga-rollback.compensated-once", "refund_customer, revert_inventory"),
    ("crash-survived", "crash-survived.worker-lost", "refund_customer attempt 1 was lost with worker"),
])
def test_each_wrong_rollback_says_why(name: str, check_id: str, says: str):
    assert says in _finding(name, check_id)


def test_the_goldens_are_the_pack_s_workflow_and_ran_the_course_s_activities():
    doc = json.loads((GOLDENS / "saga-rollback.json").read_text())
    first = doc["events"][0]["workflowExecutionStartedEventAttributes"]
    assert first["workflowType"]["name"] == "PizzaOrderWorkflow"
    assert first["workflowId"].startswith("golden-pizza-")
    names = {e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
             for e in doc["events"] if "activityTaskScheduledEventAttributes" in e}
    assert names == {"get_distance", "update_inventory", "process_credit_card", "refund_customer", "revert_inventory"}


def test_the_practice_copy_lacks_exactly_the_refund_compensation():
    practice = (PACK.exercise_dir / "workflows.py").read_text()
    solution = (PACK.solution_dir / "workflows.py").read_text()
    assert "TODO" in practice and "compensations.append((PizzaOrderActivities.refund_customer" not in practice
    assert "compensations.append((PizzaOrderActivities.refund_customer, bill))" in solution
    for name in ("activities.py", "shared.py", "run_worker.py", "run_workflow.py"):
        assert (PACK.exercise_dir / name).read_text() == (PACK.solution_dir / name).read_text()


def test_the_typescript_spellings_of_the_activities_grade_the_same(tmp_path: Path):
    """An SDK that names activities in camelCase (refundCustomer) is graded like the Python app."""
    text = (GOLDENS / "crash-survived.json").read_text()
    for name in ("get_distance", "update_inventory", "process_credit_card", "refund_customer", "revert_inventory"):
        head, *rest = name.split("_")
        text = text.replace(f'"{name}"', '"' + head + "".join(r.title() for r in rest) + '"')
    assert '"refundCustomer"' in text
    path = tmp_path / "camel.json"
    path.write_text(text)
    report = check_files([path], rubric=PACK.rubric_path, replay=False)
    assert {e.id: e.status for e in report.experiments} == {"saga-rollback": "not-attempted", "crash-survived": "pass"}


def test_the_goldens_hold_no_host_name_nor_path_of_the_recording_machine():
    import socket

    names = {socket.gethostname(), socket.getfqdn()} - {"", "localhost"}
    for path in sorted(GOLDENS.glob("*.json")):
        text = path.read_text()
        assert "@worker-host" in text, path.name
        assert not any(f"@{name}" in text for name in names), path.name
        assert str(Path.home()) + "/" not in text and "site-packages" not in text.replace("/python/site-packages", "")
