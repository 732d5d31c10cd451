"""The money-transfer pack's checks: the tutorial's four experiments, read from a run's evidence.

Crash recovery, live bug fix, compensation and network partition, as
Temporal's money-transfer tutorial teaches them (``withdraw``, ``deposit``,
``refund``), and which of them a run shows (:func:`experiment_shown`). They
are built on the engine's evidence and its check helpers
(:mod:`grader.engine.checks`); loading this module registers them, which the
pack registry (:mod:`grader.packs`) does when it finds the pack.
"""

from __future__ import annotations

from typing import Any, Mapping

from grader import defaults
from grader.engine.checks import (CONSISTENT, ERROR, FAIL, PASS, PENDING, PROVEN, CheckResult, Shown, activity_ev,
                                  check, classifier, closed_ev, completed_once, completed_result, ev,
                                  outage_silences, pending_result, silence_ev, worker_ids)
from grader.engine.evidence import ActivityEvidence, RunEvidence, late_attempt_text, outlived_deadline, payment_field

#: The tutorial's activity names (the TypeScript app spells them the same).
W, D, R = "withdraw", "deposit", "refund"


# --- crash recovery ---------------------------------------------------------


@check("crash-recovery.completed", "The transfer completed")
def crash_completed(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The run ended COMPLETED."""
    return completed_result("crash-recovery.completed", run, waiting="a restarted worker should finish it",
                            hint="start a fresh transfer, kill the worker while it runs, "
                                 "then start the worker again and let the transfer finish")


@check("crash-recovery.worker-replaced", "A new worker process took over")
def crash_worker_replaced(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """While the run was open, work moved for good from one worker process to another."""
    cid = "crash-recovery.worker-replaced"
    final = [h for h in run.handovers if h.final]
    if final:
        h = final[0]
        return CheckResult(cid, PASS, f"work moved from worker {h.from_identity} to {h.to_identity} "
                                      f"at event {h.event_id} and never went back",
                           evidence=[ev(h.event_id, "handover", f"{h.from_identity} -> {h.to_identity}")])
    if run.process_changes:
        c = run.process_changes[0]
        return CheckResult(cid, PASS, c.describe(),
                           evidence=[ev(i, "process change", c.how) for i in c.event_ids])
    restarted = [w for w in run.workers if len(w.sticky_queues) > 1]
    if restarted:
        w = restarted[0]
        return CheckResult(cid, PASS, f"worker identity {w.identity} is fixed, but its sticky queues show "
                                      f"{len(w.sticky_queues)} different processes",
                           evidence=[ev(None, "WorkflowTaskScheduled", q) for q in w.sticky_queues])
    if run.is_open and len(run.workers) <= 1:
        return pending_result(cid, run, "kill the worker while an activity runs and start a new one")
    if run.identity_looks_fixed:
        return CheckResult(cid, FAIL, f"every task ran under the fixed identity {worker_ids(run)}, and its "
                                      "sticky queue never went unanswered nor changed: no worker process was lost",
                           hint="kill the worker while the withdraw or deposit is running, then start it "
                                "again and let the transfer finish")
    if run.handovers:
        return CheckResult(cid, FAIL, f"workers {worker_ids(run)} shared the work, but none stopped "
                                      "while the transfer ran: that is load sharing, not a crash",
                           hint="run a single worker, kill it mid-transfer, then start a new one",
                           evidence=[ev(h.event_id, "handover", f"{h.from_identity} -> {h.to_identity}")
                                     for h in run.handovers])
    hint = "kill the worker while the withdraw or deposit is running, then start it again"
    if not run.workers:
        return CheckResult(cid, FAIL, "no worker ever picked up this workflow", hint=hint)
    retried = [a for a in run.activities if a.attempt > 1 and a.last_failure
               and a.last_failure.kind == "timeout"]
    detail = (f"; {retried[0].activity_type} was retried after a timeout on the same worker (a slow "
              "activity or a server restart, not a crash)") if retried else ""
    return CheckResult(cid, FAIL, f"one worker process ({worker_ids(run)}) did all the work{detail}",
                       hint=hint, evidence=[activity_ev(a) for a in retried])


@check("crash-recovery.no-duplicate-work", "Withdraw and deposit each ran to completion once")
def crash_no_duplicates(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """withdraw and deposit were each scheduled once and completed; nothing was refunded."""
    cid = "crash-recovery.no-duplicate-work"
    w_ok, w_msg, w_ev = completed_once(run, W)
    d_ok, d_msg, d_ev = completed_once(run, D)
    evidence = w_ev + d_ev
    refunds = run.activities_of(R)
    if run.is_open and not (w_ok and d_ok):
        return pending_result(cid, run, "withdraw and deposit should each complete once")
    bad = [msg for ok, msg in ((w_ok, w_msg), (d_ok, d_msg)) if not ok]
    if refunds:
        bad.append("a refund ran")
        evidence += map(activity_ev, refunds)
    if bad:
        return CheckResult(cid, FAIL, "; ".join(bad),
                           hint="a recovered transfer withdraws once and deposits once: restore the "
                                "working deposit and run the experiment on a fresh transfer",
                           evidence=evidence)
    return CheckResult(cid, PASS, f"{w_msg}; {d_msg}", evidence=evidence)


@check("crash-recovery.result-matches", "The result names the real transactions")
def crash_result_matches(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The workflow's result contains the withdraw's and the deposit's results."""
    cid = "crash-recovery.result-matches"
    if run.is_open:
        return pending_result(cid, run, "its result should name both transactions")
    if run.status != "COMPLETED":
        return CheckResult(cid, FAIL, f"there is no result: the workflow ended {run.status}",
                           hint="let the transfer complete", evidence=closed_ev(run))
    text = run.result if isinstance(run.result, str) else str(run.result)
    missing = []
    evidence = list(closed_ev(run))
    for activity_type in (W, D):
        mentioned = False
        for a in run.activities_of(activity_type):
            evidence.append(activity_ev(a))
            if a.outcome == "completed" and _mentions(text, a.result):
                mentioned = True
        if not mentioned:
            missing.append(activity_type)
    if missing:
        return CheckResult(cid, FAIL, f"the result {_short(text)} does not contain the "
                                      f"{' and '.join(missing)} result: it is not backed by the activities",
                           hint="the workflow must return what withdraw and deposit returned",
                           evidence=evidence)
    return CheckResult(cid, PASS, f"the result {_short(text)} names both transactions", evidence=evidence)


@check("crash-recovery.interrupted-activity", "The crash hit an activity in flight")
def crash_interrupted_activity(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """An activity was retried after a timeout or worker shutdown, and the retry ran on a new worker."""
    cid = "crash-recovery.interrupted-activity"
    for a in run.activities:
        lf = a.last_failure
        if a.attempt < 2 or lf is None:
            continue
        # A canceled attempt that was retried was canceled by its worker shutting
        # down (a workflow's cancel request ends the retries instead).
        lost = lf.kind in ("worker_shutdown", "canceled") or (
            lf.kind == "timeout" and lf.timeout_type in ("START_TO_CLOSE", "HEARTBEAT"))
        if lost and a.started_by and a.scheduled_by and a.started_by != a.scheduled_by:
            return CheckResult(cid, PASS, f"{a.activity_type} attempt {a.attempt} ran on {a.started_by} "
                                          f"after attempt {a.attempt - 1} was lost ({lf.describe()}) "
                                          f"on {a.scheduled_by}",
                               evidence=[activity_ev(a)])
        # One identity shared by two processes: the process that scheduled the
        # activity is shown gone after it, and no other process change came between.
        change = next((c for c in run.process_changes if c.identity == a.started_by == a.scheduled_by
                       and c.last_old_event_id >= a.scheduled_event_id), None)
        if lost and change is not None:
            return CheckResult(cid, PASS, f"{a.activity_type} attempt {a.attempt} was retried after attempt "
                                          f"{a.attempt - 1} was lost ({lf.describe()}), and the process that "
                                          f"ran it is gone: {change.describe()}",
                               evidence=[activity_ev(a)] + [ev(i, "process change", change.how)
                                                            for i in change.event_ids])
    if run.is_open:
        return pending_result(cid, run, "an interrupted activity should be retried on the new worker")
    return CheckResult(cid, FAIL, "no activity shows an attempt lost with its worker: the worker was "
                                  "not killed while an activity ran",
                       hint="kill the worker while it prints that it is withdrawing or depositing")


# --- live fix ---------------------------------------------------------------


def _deposit(run: RunEvidence) -> ActivityEvidence | None:
    deposits = run.activities_of(D)
    return deposits[-1] if deposits else None


@check("live-fix.deposit-retried", "The deposit failed and Temporal retried it")
def fix_deposit_retried(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The deposit's recorded failure is an application error and it reached the minimum attempt."""
    cid = "live-fix.deposit-retried"
    minimum = int(params["min_deposit_attempts"])
    dep = _deposit(run)
    if run.pending:
        live = [p for p in run.pending if p.activity_type.lower() == D]
        if live and live[0].last_failure and live[0].last_failure.kind == "application":
            p = live[0]
            status = PASS if p.attempt >= minimum else PENDING
            return CheckResult(cid, status, f"the deposit is failing and being retried (attempt {p.attempt}, "
                                            f"{p.last_failure.describe()})",
                               hint="" if status == PASS else "let Temporal retry it a few times",
                               evidence=[ev(None, "PendingActivity", f"deposit attempt {p.attempt} "
                                                                     f"{p.state.lower()}")])
    if dep is None or dep.attempt == 0:
        if run.is_open:
            return pending_result(cid, run, "the deposit should fail and be retried")
        return CheckResult(cid, FAIL, "the deposit never ran",
                           hint="swap in the failing deposit line and start a transfer")
    lf = dep.last_failure
    if lf is None or dep.attempt < 2:
        return CheckResult(cid, FAIL, f"the deposit succeeded at attempt {dep.attempt}: it never failed",
                           hint="swap in the failing deposit line, restart the worker and start a "
                                "transfer", evidence=[activity_ev(dep)])
    if lf.kind != "application":
        why = ("the recorded failure is a worker shutdown: the worker was stopped while an attempt "
               "ran, which hides the bug's error") if lf.kind == "worker_shutdown" else (
               f"the recorded failure is a {lf.describe()}, not the bug's error")
        return CheckResult(cid, FAIL, f"deposit attempt {dep.attempt}: {why}",
                           hint="stop the faulty worker while the deposit waits to be retried "
                                "(between two error lines), not while an attempt runs",
                           evidence=[activity_ev(dep)])
    if dep.attempt < minimum:
        return CheckResult(cid, FAIL, f"the deposit reached attempt {dep.attempt}; the rubric asks for "
                                      f"at least {minimum}",
                           hint="let Temporal retry the failing deposit a few times before fixing it",
                           evidence=[activity_ev(dep)])
    return CheckResult(cid, PASS, f"the deposit failed with {lf.describe()} and was retried up to "
                                  f"attempt {dep.attempt}", evidence=[activity_ev(dep)])


@check("live-fix.fixed-by-restart", "A restarted worker with the fix finished the deposit")
def fix_by_restart(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The deposit completed on a different worker process than the one that scheduled it."""
    cid = "live-fix.fixed-by-restart"
    dep = _deposit(run)
    if dep is None or dep.outcome == "pending":
        if run.is_open:
            return pending_result(cid, run, "fix the deposit and restart the worker")
        return CheckResult(cid, FAIL, "the deposit never completed",
                           hint="fix the deposit line, restart the worker and let the retry succeed")
    if dep.outcome != "completed":
        return CheckResult(cid, FAIL, f"the deposit ended {dep.outcome}, so the fix never ran",
                           hint="the retry policy gave up before the fix: keep retrying (no attempt "
                                "limit) while you fix the code", evidence=[activity_ev(dep)])
    if dep.finished_by and dep.scheduled_by and dep.finished_by != dep.scheduled_by:
        return _fix_deployed(cid, dep, f"the deposit completed on {dep.finished_by}, a different worker from "
                                       f"{dep.scheduled_by} that scheduled it")
    restart = next((c for c in run.process_changes if c.event_id > dep.scheduled_event_id
                    or c.last_old_event_id >= dep.scheduled_event_id), None)
    if restart is not None:
        return _fix_deployed(cid, dep, f"the deposit completed after the worker was restarted ({restart.describe()})")
    if _fingerprints(dep) and dep.scheduled_build_id != dep.started_build_id:
        return _fix_deployed(cid, dep, f"the deposit completed on a worker running other code than the one "
                                       f"that scheduled it (identity {dep.finished_by} is shared)")
    if run.identity_looks_fixed:
        return CheckResult(cid, FAIL, f"the worker identity {dep.finished_by} is fixed, and nothing in the "
                                      "history shows a new process or new code finished the deposit",
                           hint="stop the worker, fix the deposit, start the worker again",
                           evidence=[activity_ev(dep)])
    return CheckResult(cid, FAIL, f"the deposit completed on {dep.finished_by or 'an unknown worker'}, "
                                  "the same worker that scheduled it: the worker was never restarted",
                       hint="a worker only loads new code when it starts: stop it, fix the code, start it",
                       evidence=[activity_ev(dep)])


def _fingerprints(dep: ActivityEvidence) -> bool:
    """True when both the task that scheduled the deposit and its final attempt carry this project's
    code fingerprint as their build id."""
    return all(b and b.startswith(defaults.FINGERPRINT_PREFIX)
               for b in (dep.scheduled_build_id, dep.started_build_id))


def _fix_deployed(cid: str, dep: ActivityEvidence, moved: str) -> CheckResult:
    """A new worker process finished the deposit: did its code differ from the buggy worker's?

    This project's workers stamp a fingerprint of their code as the build id
    (``failure-lab-<hex>``), which the server records on the task that
    scheduled the deposit and on the deposit's final attempt. A restart with
    the same fingerprint deployed no change, so it did not fix anything: the
    check fails rather than pass with a finding that says the opposite. Other
    apps record the SDK's automatic build id, which does not change when only
    an activity's body changes, so it can neither prove nor disprove a fix.
    """
    before, after = dep.scheduled_build_id, dep.started_build_id
    if _fingerprints(dep) and before != after:
        return CheckResult(cid, PASS, f"{moved}, running changed code ({before} -> {after})",
                           evidence=[activity_ev(dep)], strength=PROVEN)
    if _fingerprints(dep):
        return CheckResult(cid, FAIL, f"{moved}, but with the same code ({after}): the restart deployed no "
                                      "change, so it did not fix the deposit",
                           hint="fix the deposit line and save the file before you restart the worker",
                           evidence=[activity_ev(dep)])
    return CheckResult(cid, PASS, f"{moved} (the history's build ids cannot show whether the code changed)",
                       evidence=[activity_ev(dep)], strength=CONSISTENT)


@check("live-fix.withdraw-once", "The withdrawal was not repeated")
def fix_withdraw_once(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """withdraw was scheduled once and completed at its first attempt."""
    cid = "live-fix.withdraw-once"
    ok, msg, evidence = completed_once(run, W)
    if not ok:
        if run.is_open and not run.activities_of(W):
            return pending_result(cid, run, "the withdrawal should run once")
        return CheckResult(cid, FAIL, msg, hint="only the deposit should be retried", evidence=evidence)
    withdraw = run.activities_of(W)[0]
    if withdraw.attempt != 1:
        return CheckResult(cid, FAIL, f"withdraw needed {withdraw.attempt} attempts", evidence=evidence,
                           hint="only the deposit should fail in this experiment")
    return CheckResult(cid, PASS, "withdraw ran once, at its first attempt", evidence=evidence)


@check("live-fix.same-run-completed", "The same workflow run finished")
def fix_same_run(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The run completed without a reset (the original run, not a restart of the transfer)."""
    cid = "live-fix.same-run-completed"
    if run.resets:
        r = run.resets[-1]
        return CheckResult(cid, FAIL, f"the run was reset at event {r.event_id}: the original run did not "
                                      "continue",
                           hint="fix the code and restart the worker; no reset is needed",
                           evidence=[ev(r.event_id, r.event_type, "reset")])
    if run.is_open:
        return pending_result(cid, run, "the same run should complete")
    if run.status != "COMPLETED":
        return CheckResult(cid, FAIL, f"the workflow ended {run.status}",
                           hint="keep the workflow running while you fix the code", evidence=closed_ev(run))
    return CheckResult(cid, PASS, "the original run completed, with no reset", evidence=closed_ev(run))


# --- compensation -----------------------------------------------------------

_GAVE_UP = ("MAXIMUM_ATTEMPTS_REACHED", "NON_RETRYABLE_FAILURE", "TIMEOUT")


@check("compensation.deposit-failed", "The deposit failed for good")
def comp_deposit_failed(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The deposit ended failed (or timed out) with retrying over: exhausted or non-retryable."""
    cid = "compensation.deposit-failed"
    dep = _deposit(run)
    if dep is None or dep.outcome in ("pending", "completed"):
        if run.is_open:
            return pending_result(cid, run, "with a retry limit the deposit gives up and the refund runs "
                                            "(an unlimited policy never gives up)")
        return CheckResult(cid, FAIL, "the deposit " + ("never ran" if dep is None else "succeeded"),
                           hint="limit the retries and make the deposit fail every time",
                           evidence=[activity_ev(dep)] if dep else [])
    if dep.outcome not in ("failed", "timed_out") or dep.retry_state not in _GAVE_UP:
        return CheckResult(cid, FAIL, f"the deposit ended {dep.outcome} ({dep.retry_state or 'no retry state'}), "
                                      "which is not a failure for good",
                           hint="make the deposit fail until its retries are used up",
                           evidence=[activity_ev(dep)])
    why = {"MAXIMUM_ATTEMPTS_REACHED": f"its {dep.attempt} attempts were used up",
           "NON_RETRYABLE_FAILURE": "the error is non-retryable",
           "TIMEOUT": "its overall timeout ran out"}[dep.retry_state]
    return CheckResult(cid, PASS, f"the deposit failed for good: {why} "
                                  f"({dep.failure.describe() if dep.failure else 'no failure text'})",
                       evidence=[activity_ev(dep)])


@check("compensation.refund-completed", "The withdrawal was refunded")
def comp_refund(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """After the failed deposit, a refund of the same amount to the source account completed."""
    cid = "compensation.refund-completed"
    dep = _deposit(run)
    failed_at = dep.closed_event_id if dep and dep.outcome in ("failed", "timed_out") else None
    refunds = run.activities_of(R)
    cancel = run.cancel_requested
    if cancel and (failed_at is None or cancel.event_id < failed_at):
        return CheckResult(cid, FAIL, f"the workflow was canceled at event {cancel.event_id}: "
                                      "a refund after a cancel is not compensation for a failed deposit",
                           hint="let the deposit fail by itself instead of canceling the workflow",
                           evidence=[ev(cancel.event_id, cancel.event_type)] + [activity_ev(a) for a in refunds])
    if failed_at is None:
        if run.is_open:
            return pending_result(cid, run, "a refund should follow the failed deposit")
        return CheckResult(cid, FAIL, "no failed deposit, so nothing to compensate",
                           hint="make the deposit fail for good first",
                           evidence=[activity_ev(a) for a in refunds])
    after = [a for a in refunds if a.scheduled_event_id > failed_at]
    if not after:
        if run.is_open:
            return pending_result(cid, run, "a refund should follow the failed deposit")
        return CheckResult(cid, FAIL, f"no refund was scheduled after the deposit failed (event {failed_at})",
                           hint="the workflow must catch the deposit's failure and run refund",
                           evidence=[activity_ev(dep)])
    refund = after[0]
    expected = run.input if isinstance(run.input, dict) else (dep.first_input or {})
    got = refund.first_input if isinstance(refund.first_input, dict) else None
    evidence = [activity_ev(dep), activity_ev(refund)]
    if got is None:
        return CheckResult(cid, ERROR, "the refund's input is not plain JSON, so its account and amount "
                                       "cannot be checked", evidence=evidence,
                           hint="grade a history whose payloads are not encrypted")
    wrong = [k for k in ("source_account", "amount") if payment_field(got, k) != payment_field(expected, k)]
    if wrong:
        return CheckResult(cid, FAIL, "the refund does not return the withdrawal: " + ", ".join(
            f"{k} {payment_field(got, k)!r} instead of {payment_field(expected, k)!r}" for k in wrong),
                           hint="refund the same amount to the account the money came from",
                           evidence=evidence)
    if refund.outcome != "completed":
        if run.is_open:
            return pending_result(cid, run, "the refund should complete")
        return CheckResult(cid, FAIL, f"the refund ended {refund.outcome}", evidence=evidence,
                           hint="the refund itself must succeed")
    return CheckResult(cid, PASS, f"refund of {payment_field(got, 'amount')} to {payment_field(got, 'source_account')} completed "
                                  f"(event {refund.closed_event_id}) after the deposit failed",
                       evidence=evidence)


@check("compensation.workflow-failed", "The workflow failed with the deposit's failure")
def comp_workflow_failed(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The run ended FAILED after its deposit failed, with no cancel (nor terminate) involved."""
    cid = "compensation.workflow-failed"
    if run.is_open:
        return pending_result(cid, run, "after the refund the workflow should fail with the deposit's error")
    dep = _deposit(run)
    deposit_failed = dep is not None and dep.outcome in ("failed", "timed_out")
    if run.status == "FAILED" and deposit_failed and not run.cancel_requested:
        text = run.failure.message if run.failure else ""
        return CheckResult(cid, PASS, f"the workflow failed after the deposit did: {_short(text)}",
                           evidence=[activity_ev(dep)] + closed_ev(run))
    if run.status == "FAILED":
        why = ("it was canceled first" if run.cancel_requested
               else "the deposit never failed, so this failure is not the deposit's")
        return CheckResult(cid, FAIL, f"the workflow ended FAILED, but {why}", evidence=closed_ev(run),
                           hint="the workflow should fail because the deposit failed for good")
    hint = {"CANCELED": "let the deposit fail by itself; do not cancel the workflow",
            "TERMINATED": "let the deposit fail by itself; do not terminate the workflow",
            "COMPLETED": "make the deposit fail for good, so that the transfer cannot complete"}
    return CheckResult(cid, FAIL, f"the workflow ended {run.status}, not FAILED",
                       hint=hint.get(run.status, "the workflow should fail after refunding"),
                       evidence=closed_ev(run))


@check("compensation.retry-limit", "The retry policy was limited as the challenge asks")
def comp_retry_limit(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """When the deposit gave up because attempts ran out, its maximum_attempts is one the rubric allows."""
    cid = "compensation.retry-limit"
    allowed = [int(x) for x in params["allowed_maximum_attempts"]]
    dep = _deposit(run)
    if dep is None or dep.outcome in ("pending",):
        if run.is_open:
            return pending_result(cid, run, "the deposit should give up")
        return CheckResult(cid, FAIL, "the deposit never ran")
    limit = dep.maximum_attempts
    shown = f"maximum_attempts {limit or 'unlimited'}"
    if dep.retry_state == "NON_RETRYABLE_FAILURE":
        return CheckResult(cid, PASS, f"not needed: the deposit's error was non-retryable, so it gave up "
                                      f"without retries whatever the limit ({shown})",
                           evidence=[activity_ev(dep)], applies=False)
    if limit in allowed:
        return CheckResult(cid, PASS, f"the deposit was scheduled with {shown}", evidence=[activity_ev(dep)])
    return CheckResult(cid, FAIL, f"the deposit was scheduled with {shown}; the challenge asks for "
                                  f"{' or '.join(map(str, allowed))}",
                       hint="change the retry policy in workflows.py so the deposit is retried only once",
                       evidence=[activity_ev(dep)])


# --- network partition ------------------------------------------------------


@check("network-partition.completed", "The transfer completed after the outage")
def part_completed(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """The run ended COMPLETED."""
    return completed_result("network-partition.completed", run,
                            waiting="resume the server and let the transfer finish",
                            hint="pause the server while a transfer runs, resume it and let it finish")


@check("network-partition.outage-gap", "The history proves the server was unreachable")
def part_gap(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """A silence of at least ``min_outage_seconds`` that only an outage explains, with proof of it.

    A silence counts only with the same worker process on both sides and
    nothing else to account for it (see :func:`grader.engine.evidence.find_silences`):
    crashes, restarts, a run nobody had picked up, retries, timers, slow calls
    and runs with no activities all leave silences too. A long gap alone is no
    proof: the check passes only when the history shows the server was
    unreachable, an attempt that completed past its start-to-close deadline
    on the same worker, or a timer or timeout the server recorded well after
    it was due (:attr:`grader.engine.evidence.Silence.proof`).
    """
    cid = "network-partition.outage-gap"
    minimum = float(params["min_outage_seconds"])
    hint = ("pause the server (or cut the network) for about 30 s while the deposit runs, and keep the worker "
            "running: longer than the activity's start-to-close timeout, so that the attempt still completing "
            "after its deadline proves the server was away")
    if run.longest_gap is None:
        if run.is_open:
            return pending_result(cid, run, "the outage should leave a silence in the history")
        return CheckResult(cid, FAIL, "the history has no event times to measure a silence",
                           hint="grade a history exported with its event times")
    counted = outage_silences(run, minimum)
    proven = [s for s in counted if s.proof]
    if proven:
        best = proven[0]
        return CheckResult(cid, PASS, f"{best.seconds:.1f} s passed between events {best.before_event_id} and "
                                      f"{best.after_event_id} with worker {best.worker_before} on both sides; "
                                      f"{best.proof}",
                           evidence=[silence_ev(best)] + ([activity_ev(best.attempt)] if best.attempt else []),
                           strength=PROVEN)
    if run.is_open:
        return pending_result(cid, run, "the outage should leave a silence the history can prove")
    if counted:
        s = counted[0]
        return CheckResult(cid, FAIL, f"{s.seconds:.1f} s passed between events {s.before_event_id} and "
                                      f"{s.after_event_id} with worker {s.worker_before} on both sides, but "
                                      "nothing proves the server was unreachable: a long gap alone is not an "
                                      "outage", hint=hint, evidence=[silence_ev(s)])
    long_enough = run.silences_over(minimum)
    if long_enough:
        s = long_enough[0]
        return CheckResult(cid, FAIL, f"the {s.seconds:.1f} s silence after event {s.before_event_id} is not an "
                                      f"outage: {s.explained_by}", hint=hint,
                           evidence=[silence_ev(x) for x in long_enough[:3]])
    seconds, before, after = run.longest_gap
    return CheckResult(cid, FAIL, f"the longest silence is {seconds:.1f} s; an outage of at least "
                                  f"{minimum:g} s should show", hint=hint,
                       evidence=[ev(after, "silence", f"{seconds:.1f} s without an event after event {before}")])


@check("network-partition.activity-survived", "An activity caught by the outage finished on the same worker")
def part_activity_survived(run: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
    """An activity attempt was under way through a proven outage and the worker that ran it completed it.

    Two measured signatures, both proven. The attempt completed past its
    start-to-close deadline on the same worker (a frozen server fires no
    timeout); or, the other ending of the same freeze, the server timed the
    attempt out only on waking, long after it was due, and the same worker
    completed the retry (a proven silence ending at that retry). A retry
    after an on-time timeout, or an attempt that merely spans a long gap, is
    not enough: a slow call leaves that too.
    """
    cid = "network-partition.activity-survived"
    for a in run.activities:
        if outlived_deadline(a):
            return CheckResult(cid, PASS, late_attempt_text(a), evidence=[activity_ev(a)], strength=PROVEN)
    for s in outage_silences(run, float(params["min_outage_seconds"])):
        a = next((x for x in run.activities if x.started_event_id == s.after_event_id), None)
        if (s.proof and a is not None and a.outcome == "completed" and a.attempt > 1
                and s.worker_before and a.started_by == a.finished_by == s.worker_before):
            return CheckResult(cid, PASS, f"{a.activity_type} attempt {a.attempt - 1} was caught by the outage and "
                                          f"timed out only when the server woke; worker {a.finished_by} completed "
                                          f"attempt {a.attempt}",
                               evidence=[silence_ev(s), activity_ev(a)], strength=PROVEN)
    if run.is_open:
        return pending_result(cid, run, "the activity running during the outage should complete after it")
    return CheckResult(cid, FAIL, "no activity attempt outlived its start-to-close deadline on the same worker: "
                                  "no outage is shown to have caught an activity",
                       hint="pause the server while the deposit is running, for longer than its "
                            "start-to-close timeout")


# --- small helpers ----------------------------------------------------------


def _mentions(text: str, value: Any) -> bool:
    if value is None:
        return False
    needle = value if isinstance(value, str) else str(value)
    return bool(needle) and needle in text


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# --- which experiment a run shows -------------------------------------------


@classifier("money-transfer")
def experiment_shown(run: RunEvidence, params: Mapping[str, Any]) -> Shown:
    """The one experiment ``run``'s defining events show, first match wins.

    1. compensation: the deposit failed for good (retries used up, a
       non-retryable error, or its overall timeout);
    2. live-fix: the deposit failed with the app's own error (not a timeout,
       not the SDK's worker-shutdown failure) and was retried;
    3. crash-recovery: a worker process was lost while the run was open and
       another process took over (a new identity, or a shared identity whose
       sticky queue shows the new process: :class:`grader.engine.evidence.ProcessChange`);
    4. network-partition: a silence of at least ``min_outage_seconds`` with
       the same worker process on both sides, or an attempt that outlived its
       deadline on one worker.

    A run that shows none counts for no experiment. A run still open counts
    for what its events show so far (a failing deposit seen in ``describe()``
    included), so its checks are pending until it closes.
    """
    min_outage_seconds = float(params["min_outage_seconds"])
    dep = _deposit(run)
    if dep is not None and dep.outcome in ("failed", "timed_out") and dep.retry_state in _GAVE_UP:
        return Shown("compensation", f"the deposit failed for good ({dep.retry_state}, event {dep.closed_event_id})")
    if dep is not None and dep.attempt >= 2 and dep.last_failure and dep.last_failure.kind == "application":
        return Shown("live-fix", f"the deposit failed with {dep.last_failure.describe()} and was retried "
                                 f"(attempt {dep.attempt}, event {dep.started_event_id})")
    for p in run.pending or ():
        if p.activity_type.lower() == D and p.last_failure and p.last_failure.kind == "application" and p.attempt >= 2:
            return Shown("live-fix", f"the deposit is failing with {p.last_failure.describe()} and being "
                                     f"retried (attempt {p.attempt})")
    final = next((h for h in run.handovers if h.final), None)
    if final is not None:
        return Shown("crash-recovery", f"worker {final.from_identity} was lost and {final.to_identity} took over "
                                       f"at event {final.event_id}")
    if run.process_changes:
        return Shown("crash-recovery", run.process_changes[0].describe())
    restarted = next((w for w in run.workers if len(w.sticky_queues) > 1), None)
    if restarted is not None:
        return Shown("crash-recovery", f"worker identity {restarted.identity} polled {len(restarted.sticky_queues)} "
                                       "sticky queues, one per process")
    late = next((a for a in run.activities if outlived_deadline(a)), None)
    if late is not None:
        return Shown("network-partition", late_attempt_text(late))
    silence = next((s for s in run.silences_over(min_outage_seconds) if s.same_worker), None)
    if silence is not None:
        return Shown("network-partition", f"{silence.seconds:.1f} s without an event after event "
                                          f"{silence.before_event_id}, worker {silence.worker_before} on both sides")
    return Shown(None, "no experiment's defining events")
