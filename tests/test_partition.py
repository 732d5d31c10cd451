"""network-partition passes only on proof that the server was unreachable, never on a long gap alone.

Every history here is a recorded golden (real workers, real signals, a really
paused server). The expectations come from HISTORY-FACTS ("Silences are not
outages"): crashes, restarts, a run nobody had picked up, a slow attempt
retried and a workflow with no activities all leave long silences, and only a
frozen server lets an attempt complete past its start-to-close deadline.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.engine.checks import PROVEN, run_check
from grader.cli import cli
from grader.engine.evidence import build_evidence
from grader.engine.history import load_history_file
from grader.engine.report import grade, grade_experiment, report_schema
from grader.engine.rubric import load_rubric

GOLDENS = Path(__file__).parent / "goldens"
RUBRIC = load_rubric()
PARTITION = RUBRIC.experiment("network-partition")

#: Goldens with long silences that are not outages, and what explains their longest one.
NOT_OUTAGES = {
    "sigkill-during-withdraw": "worker changed",
    "sigkill-during-deposit": "worker changed",
    "sigterm-during-withdraw": "worker changed",
    "sigterm-during-deposit": "worker changed",
    "sigint-during-withdraw": "worker changed",
    "sigint-during-deposit": "worker changed",
    "kill-between-activities": "worker changed",
    "live-fix": "worker changed",
    "started-without-worker": "no worker had picked the run up",
    "slow-first-attempt": "failed attempt(s) and their backoff",
    "reset": "reset here",
}


def run_of(name: str):
    return build_evidence(load_history_file(GOLDENS / f"{name}.json"))


def partition(name: str, **params):
    """The network-partition checks run on one golden, with rubric params overridden, whichever
    experiment the run counts for (what the checks themselves say of its silences)."""
    spec = replace(PARTITION, params={**PARTITION.params, **params})
    experiment = grade_experiment(spec, run_of(name))
    return experiment, {c.id.split(".")[1]: c for c in experiment.checks}


def counted_partition(name: str):
    """The network-partition experiment as a whole grade gives it (one run, one experiment)."""
    (experiment,) = grade([run_of(name)], RUBRIC, experiments=["network-partition"]).experiments
    return experiment


def just_below_longest_silence(name: str) -> float:
    """A threshold the golden's longest silence clears, so only the explanation can fail it."""
    return max(run_of(name).silences[0].seconds - 0.05, 0.0)


@pytest.mark.parametrize("name", sorted(NOT_OUTAGES))
def test_a_silence_something_else_explains_does_not_pass(name: str):
    minimum = just_below_longest_silence(name)
    experiment, checks = partition(name, min_outage_seconds=minimum)
    assert experiment.status == "fail"
    assert checks["outage-gap"].status == "fail"
    assert NOT_OUTAGES[name] in checks["outage-gap"].message
    assert checks["activity-survived"].status == "fail"
    assert checks["outage-gap"].strength == ""


@pytest.mark.parametrize("name", sorted(NOT_OUTAGES) + ["fake-workflow", "no-failure", "two-workers"])
def test_nothing_but_a_paused_server_passes_the_default_rubric(name: str):
    experiment, _ = partition(name)
    assert experiment.status == "fail"
    # Graded whole, none of them shows the experiment at all (a crash, a fix, a plain transfer).
    assert counted_partition(name).status == "not-attempted"


def test_a_workflow_with_no_activities_has_no_outage_to_show():
    run = run_of("fake-workflow")
    assert run.silences and all(not s.counts for s in run.silences)
    assert all("no activities" in s.explained_by for s in run.silences)
    _, checks = partition("fake-workflow", min_outage_seconds=0)
    assert checks["outage-gap"].status == "fail"


def test_a_long_pause_passes_the_default_rubric_and_is_proven():
    experiment, checks = partition("server-paused-long")
    assert experiment.status == "pass"
    gap = checks["outage-gap"]
    assert gap.strength == PROVEN
    assert "past its 5 s start-to-close deadline" in gap.message
    # The silence and the late deposit are cited by event id.
    run = run_of("server-paused-long")
    deposit = run.activities_of("deposit")[0]
    assert {e["event_id"] for e in gap.evidence} >= {deposit.closed_event_id}
    assert checks["activity-survived"].status == "pass"
    assert checks["activity-survived"].strength == PROVEN


def test_the_short_pause_is_proven_but_shorter_than_the_default_minimum():
    experiment, checks = partition("server-paused")
    assert checks["outage-gap"].status == "fail"  # 7 s < the default 10 s
    experiment, checks = partition("server-paused", min_outage_seconds=5)
    assert experiment.status == "pass" and checks["outage-gap"].strength == PROVEN


def test_an_attempt_within_its_deadline_proves_no_outage():
    # A 0.2 s bank call is a silence with the same worker on both sides: a slow
    # call within its deadline explains it, so it proves nothing.
    run = run_of("no-failure")
    inside = [s for s in run.silences_over(0.1) if s.attempt is not None]
    assert inside and all(s.kind == "slow-attempt" and not s.proof for s in inside)
    assert all("within its 5 s start-to-close deadline" in s.explained_by for s in inside)
    _, checks = partition("no-failure", min_outage_seconds=0.1)
    assert checks["outage-gap"].status == "fail"
    assert checks["activity-survived"].status == "fail"


def test_a_timed_out_attempt_retried_by_the_same_worker_is_not_enough():
    # The old bonus passed slow-first-attempt on "timed out, same worker retried".
    run = run_of("slow-first-attempt")
    params = {**PARTITION.params, "min_outage_seconds": 1}
    assert run_check("network-partition.activity-survived", run, params).status == "fail"


def test_the_dead_workers_sticky_queue_explains_the_wait_after_a_kill():
    # After kill -9 the new worker finished the deposit (same identity on both
    # sides of the 10 s wait), but the workflow task waited on the dead
    # worker's sticky queue: that is a worker change, not an outage.
    run = run_of("sigkill-during-deposit")
    longest = run.silences[0]
    assert longest.seconds >= 9.5
    assert longest.worker_before != longest.worker_after
    assert not longest.counts


def test_a_still_running_workflow_is_pending():
    experiment, checks = partition("running")
    assert experiment.status == "pending"
    # It shows no experiment's events yet: as a whole grade it may still become any of them.
    assert counted_partition("running").status == "pending"


def test_the_short_pause_counts_for_the_partition_and_fails_it():
    # 7 s of freeze: the deposit outlived its deadline (proof), but the silence is under 10 s.
    experiment = counted_partition("server-paused")
    assert experiment.status == "fail" and experiment.score == 2
    assert counted_partition("server-paused-long").status == "pass"


def test_strength_is_in_the_json_report_and_valid(monkeypatch):
    monkeypatch.chdir(GOLDENS.parent.parent)
    result = CliRunner().invoke(cli, ["check", "--history", "tests/goldens/server-paused-long.json",
                                      "--experiment", "network-partition", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, report_schema())
    strengths = {c["id"]: c["strength"] for c in data["experiments"][0]["checks"]}
    assert strengths == {"network-partition.completed": "", "network-partition.outage-gap": "proven",
                         "network-partition.activity-survived": "proven"}


def test_the_table_marks_the_strength(monkeypatch):
    monkeypatch.chdir(GOLDENS.parent.parent)
    result = CliRunner().invoke(cli, ["check", "--history", "tests/goldens/server-paused-long.json",
                                      "--experiment", "network-partition"])
    assert result.stdout.startswith("Network partition (optional): PASS  3/3  (evidence: proven)\n")


def test_a_second_sticky_queue_under_one_fixed_identity_is_a_new_process():
    # A worker with a fixed identity keeps it across restarts; only its sticky
    # queue's suffix changes (HISTORY-FACTS). A silence before a new suffix
    # shows up is a restart, not an outage.
    from grader.engine.evidence import _new_process_after

    first, second = "lab-worker-" + "a" * 32, "lab-worker-" + "b" * 32
    queues = {first: 8, second: 20}
    assert _new_process_after(queues, "lab-worker", 14)
    assert not _new_process_after(queues, "lab-worker", 25)  # no new process after it
    assert not _new_process_after({first: 8}, "lab-worker", 14)


@pytest.mark.parametrize("policy, attempt", [
    ({"initialInterval": "1s", "backoffCoefficient": 2, "maximumInterval": "2s"}, 1_000_000_000),
    ({"initialInterval": "1s", "backoffCoefficient": 2}, 10_000),  # no cap: grows past any outage
    ({"initialInterval": "1s", "backoffCoefficient": 0.5}, 1_000_000_000),
    ({"initialInterval": "1s", "backoffCoefficient": "NaN"}, 50),
])
def test_the_retry_bound_is_quick_and_safe_for_any_policy(policy: dict, attempt: int):
    # Grading must neither hang nor crash on an absurd attempt count or policy.
    from dataclasses import replace as dc_replace

    from grader.engine.evidence import retry_time_bound

    deposit = run_of("slow-first-attempt").activities_of("deposit")[0]
    odd = dc_replace(deposit, scheduled_attrs={**deposit.scheduled_attrs, "retryPolicy": policy},
                     attempt=attempt)
    bound = retry_time_bound(odd)
    assert bound is None or bound.total_seconds() >= 5


def test_the_retry_bound_of_the_slow_first_attempt():
    from grader.engine.evidence import retry_time_bound

    deposit = run_of("slow-first-attempt").activities_of("deposit")[0]
    # One failed attempt: its 5 s start-to-close, a 1 s backoff, and 1 s of slack.
    assert retry_time_bound(deposit).total_seconds() == 7
