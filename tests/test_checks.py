"""Every check on the golden histories: real runs, positive and negative.

The expectations here are written from HISTORY-FACTS (what each scenario
proves), not copied from the grader's output.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from grader.api import grade_histories
from grader.engine.checks import experiment_shown, run_check
from grader.engine.evidence import build_evidence
from grader.engine.history import History, load_history_file, load_json_text
from grader.engine.report import grade
from grader.engine.rubric import load_rubric

GOLDENS = Path(__file__).parent / "goldens"
MANIFEST = json.loads((GOLDENS.parent / "golden_manifest.json").read_text())["files"]
RUBRIC = load_rubric()


def golden(name: str) -> History:
    return load_history_file(GOLDENS / f"{name}.json")


def check(name: str, check_id: str, **params):
    run = build_evidence(golden(name))
    experiment = RUBRIC.experiment(check_id.split(".")[0])
    return run_check(check_id, run, {**experiment.params, **params})


@pytest.mark.parametrize("file", sorted(MANIFEST), ids=lambda f: f.removesuffix(".json"))
def test_each_golden_gets_the_verdicts_its_scenario_deserves(file: str):
    entry = MANIFEST[file]
    report = grade([build_evidence(load_history_file(GOLDENS / file))], RUBRIC)
    statuses = {e.id: e.status for e in report.experiments}
    for experiment, should_pass in entry["verdicts"].items():
        if entry["status"] == "RUNNING":
            # Still open and showing no experiment's events yet: it may still become any of them.
            assert statuses[experiment] == "pending", experiment
        else:
            assert (statuses[experiment] == "pass") == should_pass, (experiment, statuses[experiment])


# --- crash recovery ----------------------------------------------------------

@pytest.mark.parametrize("name", ["sigkill-during-withdraw", "sigkill-during-deposit",
                                  "sigterm-during-withdraw", "sigterm-during-deposit",
                                  "sigint-during-withdraw", "sigint-during-deposit"])
def test_a_kill_mid_activity_is_proven_and_the_lost_attempt_is_named(name: str):
    replaced = check(name, "crash-recovery.worker-replaced")
    assert replaced.status == "pass" and "never went back" in replaced.message
    hit = check(name, "crash-recovery.interrupted-activity")
    assert hit.status == "pass"
    activity = "withdraw" if "withdraw" in name else "deposit"
    assert hit.message.startswith(f"{activity} attempt 2 ran on ")
    if name.startswith("sigkill"):
        assert "timeout START_TO_CLOSE" in hit.message
    else:
        # SIGINT and SIGTERM let the Python worker shut down and report the attempt lost.
        assert "WorkerShutdown" in hit.message or "timeout START_TO_CLOSE" in hit.message
    assert check(name, "crash-recovery.no-duplicate-work").status == "pass"
    assert check(name, "crash-recovery.result-matches").status == "pass"


def test_kill_between_activities_proves_the_restart_but_no_activity_was_hit():
    assert check("kill-between-activities", "crash-recovery.worker-replaced").status == "pass"
    assert check("kill-between-activities", "crash-recovery.interrupted-activity").status == "fail"


@pytest.mark.parametrize("name, words", [
    ("slow-first-attempt", "retried after a timeout on the same worker"),
    ("started-without-worker", "did all the work"),
    ("two-workers", "did all the work"),
    ("no-failure", "did all the work"),
])
def test_no_crash_no_credit_for_worker_replacement(name: str, words: str):
    result = check(name, "crash-recovery.worker-replaced")
    assert result.status == "fail" and words in result.message
    assert result.hint


def test_a_success_text_without_activities_is_not_a_transfer():
    assert check("fake-workflow", "crash-recovery.completed").status == "pass"
    duplicates = check("fake-workflow", "crash-recovery.no-duplicate-work")
    assert duplicates.status == "fail" and "withdraw never ran" in duplicates.message
    result = check("fake-workflow", "crash-recovery.result-matches")
    assert result.status == "fail" and "not backed by the activities" in result.message


def test_a_reset_is_not_a_crash_nor_the_same_run():
    assert check("reset", "crash-recovery.worker-replaced").status == "fail"
    same = check("reset", "live-fix.same-run-completed")
    assert same.status == "fail" and "reset at event" in same.message


def test_fixed_identity_is_said_not_failed_silently():
    """Rewrite a real crash history as a fixed-identity worker would have recorded it."""
    text = (GOLDENS / "sigkill-during-deposit.json").read_text()
    fixed = re.sub(r"\b\d+@worker-host\b", "transfer-worker", text)
    run = build_evidence(load_json_text(fixed, source="fixed.json"))
    assert run.identity_looks_fixed and not run.handovers
    # The dead process's sticky queue went unanswered until the server timed it out, and the
    # same identity went on from the normal queue: another process.
    result = run_check("crash-recovery.worker-replaced", run)
    assert result.status == "pass", result.message
    assert "shared by two processes" in result.message and "went unanswered" in result.message
    assert run_check("crash-recovery.interrupted-activity", run).status == "pass"
    assert experiment_shown(run).experiment == "crash-recovery"
    # The wait on the dead sticky queue is the crash, not an outage.
    assert not [s for s in run.silences_over(9) if s.counts]


# --- live fix ------------------------------------------------------------------

def test_live_fix_golden_passes_every_check():
    for check_id in ("live-fix.deposit-retried", "live-fix.fixed-by-restart", "live-fix.withdraw-once",
                     "live-fix.same-run-completed"):
        assert check("live-fix", check_id).status == "pass", check_id
    assert "ValueError: This deposit has failed." in check("live-fix", "live-fix.deposit-retried").message


def test_live_fix_minimum_attempts_comes_from_the_rubric():
    run = build_evidence(golden("live-fix"))
    attempts = run.activities_of("deposit")[0].attempt
    strict = run_check("live-fix.deposit-retried", run, {**RUBRIC.experiment("live-fix").params,
                                                         "min_deposit_attempts": attempts + 1})
    assert strict.status == "fail" and f"at least {attempts + 1}" in strict.message


def test_a_crash_is_not_a_bug_fix():
    result = check("sigint-during-deposit", "live-fix.deposit-retried")
    assert result.status == "fail" and "worker shutdown" in result.message
    assert "between two error lines" in result.hint
    assert check("sigkill-during-deposit", "live-fix.deposit-retried").status == "fail"


def test_retries_that_gave_up_never_saw_the_fix():
    result = check("retries-exhausted-refund", "live-fix.fixed-by-restart")
    assert result.status == "fail" and "ended failed" in result.message


# --- compensation --------------------------------------------------------------

@pytest.mark.parametrize("name, why", [("retries-exhausted-refund", "attempts were used up"),
                                       ("non-retryable-refund", "non-retryable")])
def test_compensation_goldens(name: str, why: str):
    assert why in check(name, "compensation.deposit-failed").message
    refund = check(name, "compensation.refund-completed")
    assert refund.status == "pass" and "refund of 250 to 85-150 completed" in refund.message
    assert check(name, "compensation.workflow-failed").status == "pass"


def test_retry_limit_is_reported_and_checked_against_the_rubric():
    ok = check("retries-exhausted-refund", "compensation.retry-limit")
    assert ok.status == "pass" and "maximum_attempts 2" in ok.message
    other = check("retries-exhausted-refund", "compensation.retry-limit", allowed_maximum_attempts=[3])
    assert other.status == "fail" and "asks for 3" in other.message


def test_cancel_is_not_compensation():
    refund = check("cancel", "compensation.refund-completed")
    assert refund.status == "fail" and "canceled" in refund.message


def test_the_refund_must_return_the_same_money():
    history = golden("retries-exhausted-refund")
    run = build_evidence(history)
    refund = run.activities_of("refund")[0]
    tampered = replace(refund, scheduled_attrs={**refund.scheduled_attrs,
                                                "input": [{**refund.input[0], "amount": 25}]})
    run.activities = [tampered if a is refund else a for a in run.activities]
    run.__dict__.pop("_by_type", None)
    result = run_check("compensation.refund-completed", run)
    assert result.status == "fail" and "amount 25 instead of 250" in result.message


@pytest.mark.parametrize("name", ["insufficient-funds", "terminate", "no-failure"])
def test_no_failed_deposit_no_compensation(name: str):
    for check_id in ("compensation.deposit-failed", "compensation.refund-completed",
                     "compensation.workflow-failed"):
        assert check(name, check_id).status == "fail", check_id


# --- network partition -----------------------------------------------------------

def test_paused_server_leaves_its_marks():
    assert check("server-paused", "network-partition.completed").status == "pass"
    assert check("server-paused", "network-partition.activity-survived").status == "pass"
    gap = check("server-paused", "network-partition.outage-gap", min_outage_seconds=5)
    assert gap.status == "pass"
    assert check("no-failure", "network-partition.outage-gap", min_outage_seconds=5).status == "fail"
    assert check("no-failure", "network-partition.activity-survived").status == "fail"


def test_partition_is_optional_in_the_default_rubric():
    report = grade([build_evidence(golden("live-fix"))], RUBRIC)
    partition = next(e for e in report.experiments if e.id == "network-partition")
    assert partition.status == "not-attempted" and not partition.required
    assert report.max_score == sum(e.max_score for e in report.experiments if e.required)


# --- open runs and several runs ---------------------------------------------------

def test_a_running_workflow_is_pending_and_says_what_it_waits_for():
    result = check("running", "crash-recovery.completed")
    assert result.status == "pending"
    assert "still running (deposit scheduled" in result.message or "still running (" in result.message
    assert result.hint.endswith("grade again once the workflow has finished")


def test_several_runs_each_experiment_graded_on_its_best_run():
    histories = [load_history_file(GOLDENS / f) for f in sorted(MANIFEST)]
    report = grade_histories(histories, rubric=RUBRIC)
    by_id = {e.id: e for e in report.experiments}
    shown = [experiment_shown(build_evidence(h)).experiment for h in histories]
    for experiment in ("crash-recovery", "live-fix", "compensation"):
        assert by_id[experiment].status == "pass"
        # One run, one experiment: only the runs that show it are candidates.
        assert by_id[experiment].candidates == shown.count(experiment) >= 1
    assert by_id["live-fix"].workflow.source.endswith("live-fix.json")
    assert Path(by_id["compensation"].workflow.source).stem in ("retries-exhausted-refund",
                                                                 "non-retryable-refund")
    assert report.status == "pass" and report.score == report.max_score


def test_unrun_check_lines_carry_the_rubric_fields_by_name():
    """The lines of checks that did not run are built positionally (for speed): each field lands in its place."""
    from grader.engine.checks import NOT_ATTEMPTED, CheckResult
    from grader.engine.report import not_attempted_experiment

    spec = load_rubric().experiments[0]
    report = not_attempted_experiment(spec, "do it")
    for rc, line in zip(spec.checks, report.checks, strict=True):
        assert line == CheckResult(rc.id, NOT_ATTEMPTED, "not attempted: do it", title=rc.check.title,
                                   max_score=rc.points, required=rc.required, visibility=rc.visibility,
                                   hint_visibility=rc.hint_visibility)
    assert report.max_score == sum(rc.points for rc in spec.checks)
    assert len({id(line.evidence) for line in report.checks}) == len(report.checks)  # never shared
