"""Evidence primitives: the questions about a run that many exercises ask, as checks a pack composes.

A pack's ``pack.json`` lists checks as a primitive plus its arguments::

    {"id": "durable.timer-fired", "title": "The workflow slept on a durable timer",
     "primitive": "timer_fired", "args": {"min_seconds": 5}}

:func:`compose_check` registers such a check like any hand-written one.
Each primitive reads only the evidence model (never a server), says pass,
fail or pending with a finding, the events it relied on and a hint, and
names activities only as the pack's arguments name them. A pack's own
``checks.py`` calls the same functions where data cannot say what it needs.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from grader.engine.checks import (FAIL, PASS, CheckResult, activity_ev, check, closed_ev, completed_once,
                                  completed_result, ev, pending_result)
from grader.engine.evidence import ActivityEvidence, FailureInfo, RunEvidence

#: Why retrying stopped, when it stopped for good.
GAVE_UP = ("MAXIMUM_ATTEMPTS_REACHED", "NON_RETRYABLE_FAILURE", "TIMEOUT")

#: How a lost attempt shows in the next attempt's lastFailure.
LOST_KINDS = ("worker_shutdown", "canceled")


# --- plain questions, for a pack's own Python ------------------------------------


def failed_for_good(a: ActivityEvidence) -> str:
    """Why ``a`` failed for good, in words; "" when it did not (it completed, is open or will be retried).

    The history proves it when retrying stopped (its retry state), when the
    failure says it must not be retried, or when its error type is one the
    retry policy lists as non-retryable.
    """
    if a.outcome not in ("failed", "timed_out"):
        return ""
    if a.retry_state in GAVE_UP:
        return {"MAXIMUM_ATTEMPTS_REACHED": f"its {a.attempt} attempts were used up",
                "NON_RETRYABLE_FAILURE": "its error is non-retryable",
                "TIMEOUT": "its overall timeout ran out"}[a.retry_state]
    f = a.failure
    if f is not None and f.non_retryable:
        return "its failure is marked non-retryable"
    policy = a.retry_policy
    if f is not None and f.type and policy and f.type in policy.non_retryable_error_types:
        return f"its retry policy lists {f.type} as non-retryable"
    return ""


def first_final_failure(run: RunEvidence, *, among: Callable[[ActivityEvidence], bool] = lambda a: True
                        ) -> ActivityEvidence | None:
    """The first activity (by close) that failed for good, among those ``among`` accepts."""
    failed = [a for a in run.activities if among(a) and a.closed_event_id and failed_for_good(a)]
    return min(failed, key=lambda a: a.closed_event_id or 0) if failed else None


def lost_attempt(a: ActivityEvidence) -> FailureInfo | None:
    """The failure of an attempt lost with its worker (timed out or shut down) before ``a``'s final one."""
    lf = a.last_failure
    if a.attempt < 2 or lf is None:
        return None
    if lf.kind in LOST_KINDS or (lf.kind == "timeout" and lf.timeout_type in ("START_TO_CLOSE", "HEARTBEAT")):
        return lf
    return None


def same_name(name: str) -> str:
    """An activity name as SDKs may spell it: ``refund_customer``, ``refundCustomer`` and ``RefundCustomer`` agree."""
    return name.replace("_", "").lower()


def root_failure(failure: FailureInfo | None) -> str:
    """A failure's message with its innermost cause, for matching the error a step raised."""
    if failure is None:
        return ""
    return f"{failure.message} {failure.root_message or ''}"


# --- primitives a pack.json may name ----------------------------------------------

Primitive = Callable[[str, RunEvidence, Mapping[str, Any], Mapping[str, Any]], CheckResult]
#: Every primitive, by the name pack.json uses.
PRIMITIVES: dict[str, Primitive] = {}


def primitive(name: str) -> Callable[[Primitive], Primitive]:
    """Make a function available to pack.json under ``name``."""
    def register(func: Primitive) -> Primitive:
        PRIMITIVES[name] = func
        return func
    return register


def compose_check(spec: Mapping[str, Any]) -> None:
    """Register the check pack.json describes (id, title, primitive, args); ValueError when it cannot be."""
    name = spec.get("primitive")
    func = PRIMITIVES.get(name)  # type: ignore[arg-type]
    if func is None:
        raise ValueError(f"no primitive {name!r}: choose one of {', '.join(sorted(PRIMITIVES))}")
    args = dict(spec.get("args") or {})
    cid = spec["id"]

    def run(run_: RunEvidence, params: Mapping[str, Any]) -> CheckResult:
        return func(cid, run_, args, params)

    run.__doc__ = f"{name} {args}"
    check(cid, spec["title"])(run)


@primitive("workflow_completed")
def workflow_completed(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The run ended COMPLETED. args: ``hint`` (optional)."""
    return completed_result(cid, run, waiting=args.get("waiting", "it should complete"),
                            hint=args.get("hint", "let the workflow run to completion"))


@primitive("activity_completed_once")
def activity_completed_once(cid: str, run: RunEvidence, args: Mapping[str, Any],
                            params: Mapping[str, Any]) -> CheckResult:
    """``args.activity`` was scheduled once and completed: its work was done exactly once."""
    name = args["activity"]
    ok, message, evidence = completed_once(run, name)
    if ok:
        return CheckResult(cid, PASS, message, evidence=evidence)
    if run.is_open:
        return pending_result(cid, run, f"{name} should complete once")
    return CheckResult(cid, FAIL, message, evidence=evidence,
                       hint=args.get("hint", f"{name} must run to completion exactly once"))


# --- the Saga pattern: compensations owed, run once, in reverse -------------------


class SagaFacts:
    """What a run shows of a saga, for ``compensations``: compensation activity -> the step it undoes.

    A compensation is *owed* once its step was started (scheduled) before the
    failure: a step that failed half way may have taken effect, so the
    workflow must undo it anyway (the course registers each compensation
    before calling its step, so a refused card is refunded too).
    """

    def __init__(self, run: RunEvidence, compensations: Mapping[str, str]) -> None:
        self.undo = {same_name(comp): same_name(step) for comp, step in compensations.items()}
        #: How the history spells each compensation (as the pack names it when it never ran).
        self.spelled = {same_name(comp): comp for comp in compensations}
        self.spelled.update({same_name(a.activity_type): a.activity_type for a in run.activities
                             if same_name(a.activity_type) in self.undo})
        steps = set(self.undo.values())
        is_comp = lambda a: same_name(a.activity_type) in self.undo  # noqa: E731
        #: The first step that failed for good (never a compensation), or None.
        self.failure = first_final_failure(run, among=lambda a: not is_comp(a))
        failed_at = self.failure.closed_event_id if self.failure else None
        #: Steps with a compensation started up to the failure, in the order they started.
        self.owed = [a for a in run.activities if same_name(a.activity_type) in steps
                     and failed_at is not None and a.scheduled_event_id <= failed_at]
        #: Every compensation activity, in the order they were scheduled.
        self.compensations = [a for a in run.activities if is_comp(a)]
        #: Those scheduled after the failure.
        self.after = [a for a in self.compensations if failed_at is not None and a.scheduled_event_id > failed_at]

    def compensation_of(self, step: ActivityEvidence) -> str:
        """The compensation activity name a step is undone by, as the history spells it."""
        return self.spelled[next(comp for comp, s in self.undo.items() if s == same_name(step.activity_type))]


def saga_facts(run: RunEvidence, compensations: Mapping[str, str]) -> SagaFacts:
    """:class:`SagaFacts` of ``run``, built once per run and compensation map."""
    key = ("saga", tuple(sorted(compensations.items())))
    facts = run.memo.get(key)
    if facts is None:
        facts = run.memo[key] = SagaFacts(run, compensations)
    return facts


@primitive("step_failed_for_good")
def step_failed_for_good(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A step (not a compensation) failed for good. args: ``compensations``, optional ``error_types``."""
    facts = saga_facts(run, args["compensations"])
    failed = facts.failure
    if failed is None:
        if run.is_open:
            return pending_result(cid, run, "a step should fail for good")
        return CheckResult(cid, FAIL, "no step failed for good: every failure was retried away, or none happened",
                           hint=args.get("hint", "make a step fail with a non-retryable error"))
    wanted = args.get("error_types")
    kind = failed.failure.type if failed.failure else None
    message = (f"{failed.activity_type} failed for good at attempt {failed.attempt}: {failed_for_good(failed)} "
               f"({failed.failure.describe() if failed.failure else 'no failure text'})")
    if wanted and kind not in wanted:
        return CheckResult(cid, PASS, f"{message}; the exercise's own error is {' or '.join(wanted)}",
                           evidence=[activity_ev(failed)], strength="consistent")
    return CheckResult(cid, PASS, message, evidence=[activity_ev(failed)], strength="proven")


@primitive("compensated_once_after_failure")
def compensated_once_after_failure(cid: str, run: RunEvidence, args: Mapping[str, Any],
                                   params: Mapping[str, Any]) -> CheckResult:
    """Every step started before the failure was compensated exactly once, after it, to completion.

    args: ``compensations`` (compensation -> step). Fails, saying why, when
    compensations ran with no failure, when the failure came before any step
    that needs undoing, when one is missing, ran twice or ran before the failure.
    """
    facts = saga_facts(run, args["compensations"])
    failed, evidence = facts.failure, [activity_ev(a) for a in facts.compensations]
    if failed is None:
        if run.is_open:
            return pending_result(cid, run, "a step should fail for good, then be compensated")
        if facts.compensations:
            return CheckResult(cid, FAIL, f"{len(facts.compensations)} compensation(s) ran, but no step failed for "
                                          "good: a rollback without a failure undoes work that was fine",
                               hint="compensate only in the handler of a step's final failure", evidence=evidence)
        return CheckResult(cid, FAIL, "no step failed for good, so nothing was rolled back",
                           hint=args.get("hint", "make a step fail for good and let the workflow compensate"))
    evidence = [activity_ev(failed)] + evidence
    if not facts.owed:
        return CheckResult(cid, FAIL, f"{failed.activity_type} failed (event {failed.closed_event_id}) before any "
                                      "step with a compensation had started: there was nothing to undo, so this "
                                      "run shows no rollback", evidence=evidence,
                           hint="make a later step fail (the exercise refuses the card), after the inventory "
                                "was updated")
    problems = []
    early = [a for a in facts.compensations if a not in facts.after]
    if early:
        problems.append(", ".join(f"{a.activity_type} ran before the failure (event {a.scheduled_event_id})"
                                  for a in early))
    for step in facts.owed:
        comp = facts.compensation_of(step)
        done = [a for a in facts.after if same_name(a.activity_type) == same_name(comp)]
        if not done:
            problems.append(f"{step.activity_type} was started (event {step.scheduled_event_id}) but {comp} "
                            "never ran to undo it")
        elif len(done) > 1:
            problems.append(f"{comp} ran {len(done)} times")
        elif done[0].outcome != "completed":
            if run.is_open:
                return pending_result(cid, run, f"{comp} should complete")
            problems.append(f"{comp} ended {done[0].outcome}")
    owed_comps = {same_name(facts.compensation_of(s)) for s in facts.owed}
    extra = [a for a in facts.after if same_name(a.activity_type) not in owed_comps]
    if extra:
        problems.append(", ".join(f"{a.activity_type} ran although its step never started" for a in extra))
    if problems:
        if run.is_open and not early and not extra and all("never ran" in p for p in problems):
            return pending_result(cid, run, "every started step should be compensated")
        return CheckResult(cid, FAIL, "; ".join(problems), evidence=evidence,
                           hint=args.get("hint", "register each step's compensation before calling the step, "
                                                 "and run every registered one once when a step fails"))
    names = ", ".join(a.activity_type for a in facts.after)
    return CheckResult(cid, PASS, f"after {failed.activity_type} failed (event {failed.closed_event_id}), each "
                                  f"started step was compensated once: {names}", evidence=evidence)


@primitive("compensations_reversed")
def compensations_reversed(cid: str, run: RunEvidence, args: Mapping[str, Any],
                           params: Mapping[str, Any]) -> CheckResult:
    """The compensations ran in the reverse order of the steps they undo (the newest step first).

    args: ``compensations``. With one step to undo the order cannot show, so
    the check passes as "not needed".
    """
    facts = saga_facts(run, args["compensations"])
    if facts.failure is None or not facts.after:
        if run.is_open:
            return pending_result(cid, run, "the compensations should run in reverse order")
        return CheckResult(cid, FAIL, "no compensation ran after a step failed for good, so there is no order "
                                      "to check", hint="make a step fail for good and let the workflow compensate")
    evidence = [activity_ev(a) for a in facts.after]
    ran = [a.activity_type for a in facts.after]
    expected = [facts.compensation_of(s) for s in reversed(facts.owed)]
    firsts = list(dict.fromkeys(ran))
    order = [c for c in expected if c in firsts]
    if len(order) < 2:
        return CheckResult(cid, PASS, f"not needed: only {', '.join(firsts)} ran, so no order shows",
                           evidence=evidence, applies=False)
    if [c for c in firsts if c in order] == order:
        return CheckResult(cid, PASS, f"the compensations ran newest step first: {' -> '.join(order)}",
                           evidence=evidence)
    return CheckResult(cid, FAIL, f"the compensations ran {' -> '.join(firsts)}; undoing the steps in reverse "
                                  f"order is {' -> '.join(order)}", evidence=evidence,
                       hint="run the registered compensations from the last one back to the first "
                            "(reversed(compensations))")


@primitive("workflow_failed_with_step_error")
def workflow_failed_with_step_error(cid: str, run: RunEvidence, args: Mapping[str, Any],
                                    params: Mapping[str, Any]) -> CheckResult:
    """The run ended FAILED with the error of the step that failed for good. args: ``compensations``."""
    if run.is_open:
        return pending_result(cid, run, "after compensating, the workflow should fail with the step's error")
    facts = saga_facts(run, args["compensations"])
    failed = facts.failure
    if run.status != "FAILED":
        return CheckResult(cid, FAIL, f"the workflow ended {run.status}, not FAILED", evidence=closed_ev(run),
                           hint="after compensating, raise the original error again so the order fails")
    if failed is None or failed.failure is None:
        return CheckResult(cid, FAIL, "the workflow failed, but no step had failed for good", evidence=closed_ev(run),
                           hint="the workflow should fail because a step failed for good")
    text = root_failure(run.failure)
    wanted = failed.failure.message
    if wanted and wanted in text:
        return CheckResult(cid, PASS, f"the workflow failed with {failed.activity_type}'s error: "
                                      f"{failed.failure.describe()}",
                           evidence=[activity_ev(failed)] + closed_ev(run))
    return CheckResult(cid, FAIL, f"the workflow failed with {text.strip()!r}, not with {failed.activity_type}'s "
                                  f"error {wanted!r}", evidence=[activity_ev(failed)] + closed_ev(run),
                       hint="re-raise the step's error after the compensations (a bare `raise` in the handler)")


# --- a worker lost with work in flight, and another process taking over -----------


def takeover_among(run: RunEvidence, names: set[str], after_event: int = 0) -> tuple[str, str, ActivityEvidence] | None:
    """(lost identity, new identity, activity) for an activity of ``names`` scheduled after ``after_event``
    whose attempt was lost with its worker and retried by another process; else None."""
    for a in run.activities:
        if same_name(a.activity_type) not in names or a.scheduled_event_id <= after_event:
            continue
        if lost_attempt(a) and a.started_by and a.scheduled_by and a.started_by != a.scheduled_by:
            return a.scheduled_by, a.started_by, a
    return None


@primitive("worker_lost_during")
def worker_lost_during(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A worker process was lost while one of ``args.activities`` ran, and another process retried it.

    With ``args.compensations`` only the activities scheduled after a step
    failed for good count (a crash during the rollback). The proof: the
    activity's next attempt records a lost attempt (start-to-close or
    heartbeat timeout, or a worker shutdown) and ran on another identity
    than the worker whose workflow task scheduled it.
    """
    names = {same_name(n) for n in args["activities"]}
    after = 0
    if "compensations" in args:
        failed = saga_facts(run, args["compensations"]).failure
        if failed is None:
            if run.is_open:
                return pending_result(cid, run, "a step should fail, and the worker be killed during the rollback")
            return CheckResult(cid, FAIL, "no step failed for good, so no rollback ran to crash in",
                               hint="make a step fail for good first")
        after = failed.closed_event_id or 0
    found = takeover_among(run, names, after)
    if found:
        lost, new, a = found
        return CheckResult(cid, PASS, f"{a.activity_type} attempt {a.attempt - 1} was lost with worker {lost} "
                                      f"({lost_attempt(a).describe()}); worker {new} ran attempt {a.attempt}",
                           evidence=[activity_ev(a)], strength="proven")
    if run.is_open:
        return pending_result(cid, run, "the killed worker's work should be taken over by a new worker")
    return CheckResult(cid, FAIL, f"no attempt of {', '.join(sorted(names))} was lost with its worker and "
                                  "retried by another process",
                       hint=args.get("hint", "kill the worker (kill -9) while it prints that it runs one of them, "
                                             "then start a new worker"))


@primitive("finished_by_another_process")
def finished_by_another_process(cid: str, run: RunEvidence, args: Mapping[str, Any],
                                params: Mapping[str, Any]) -> CheckResult:
    """After the takeover, the lost worker did nothing more: every later activity of ``args.activities``
    completed on another process. args: ``activities``, optional ``compensations``."""
    names = {same_name(n) for n in args["activities"]}
    after = 0
    if "compensations" in args:
        failed = saga_facts(run, args["compensations"]).failure
        after = failed.closed_event_id or 0 if failed else 0
    found = takeover_among(run, names, after)
    if found is None:
        if run.is_open:
            return pending_result(cid, run, "a new worker should finish the work")
        return CheckResult(cid, FAIL, "no takeover to finish: no attempt was lost with its worker",
                           hint="kill the worker in the middle of the work, then start a new one")
    lost, _, taken = found
    later = [a for a in run.activities if same_name(a.activity_type) in names
             and a.scheduled_event_id >= taken.scheduled_event_id]
    unfinished = [a for a in later if a.outcome != "completed"]
    by_lost = [a for a in later if a.finished_by == lost]
    evidence = [activity_ev(a) for a in later]
    if unfinished:
        if run.is_open:
            return pending_result(cid, run, f"{unfinished[0].activity_type} should complete on the new worker")
        return CheckResult(cid, FAIL, f"{unfinished[0].activity_type} ended {unfinished[0].outcome}", evidence=evidence,
                           hint="keep the new worker running until the workflow ends")
    if by_lost:
        return CheckResult(cid, FAIL, f"worker {lost} still finished {by_lost[0].activity_type} after it was lost: "
                                      "it was not stopped", evidence=evidence,
                           hint="kill the worker for good (kill -9) rather than pausing it")
    return CheckResult(cid, PASS, f"after worker {lost} was lost, "
                                  f"{', '.join(sorted({a.finished_by or '?' for a in later}))} completed "
                                  f"{', '.join(a.activity_type for a in later)}", evidence=evidence)


# --- timers, signals, markers ------------------------------------------------------


def _events_of(run: RunEvidence, event_type: str) -> list[Any]:
    """The run's events of one type (the few primitives below need events the evidence model does not keep)."""
    key = ("events", event_type)
    found = run.memo.get(key)
    if found is None:
        found = run.memo[key] = [e for e in run.raw_events if e.type == event_type]
    return found


@primitive("timer_fired")
def timer_fired(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A durable timer of at least ``args.min_seconds`` (default 0) was started and fired."""
    from grader.engine.history import parse_duration

    minimum = float(args.get("min_seconds", 0))
    started = {e.id: e for e in _events_of(run, "TimerStarted")}
    for fired in _events_of(run, "TimerFired"):
        start = started.get(int(fired.attrs.get("startedEventId") or 0))
        length = parse_duration(start.attrs.get("startToFireTimeout")) if start else None
        if length is not None and length.total_seconds() >= minimum:
            return CheckResult(cid, PASS, f"a {length.total_seconds():g} s timer started at event {start.id} "
                                          f"fired at event {fired.id}",
                               evidence=[ev(start.id, "TimerStarted"), ev(fired.id, "TimerFired")])
    if run.is_open:
        return pending_result(cid, run, "the workflow's timer should fire")
    return CheckResult(cid, FAIL, f"no timer of at least {minimum:g} s fired",
                       hint=args.get("hint", "sleep in the workflow (a durable timer), not in an activity"))


@primitive("signal_received")
def signal_received(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """The run received signal ``args.name`` (case ignored)."""
    name = str(args["name"]).lower()
    for e in _events_of(run, "WorkflowExecutionSignaled"):
        if str(e.attrs.get("signalName") or "").lower() == name:
            return CheckResult(cid, PASS, f"signal {e.attrs.get('signalName')} arrived at event {e.id}",
                               evidence=[ev(e.id, "WorkflowExecutionSignaled")])
    if run.is_open:
        return pending_result(cid, run, f"signal {args['name']} should arrive")
    return CheckResult(cid, FAIL, f"no {args['name']} signal reached the workflow",
                       hint=args.get("hint", f"send the {args['name']} signal while the workflow runs"))


@primitive("marker_recorded")
def marker_recorded(cid: str, run: RunEvidence, args: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """A marker named ``args.name`` was recorded (a version patch, a side effect, a local activity)."""
    name = str(args["name"]).lower()
    for e in _events_of(run, "MarkerRecorded"):
        if str(e.attrs.get("markerName") or "").lower() == name:
            return CheckResult(cid, PASS, f"marker {e.attrs.get('markerName')} recorded at event {e.id}",
                               evidence=[ev(e.id, "MarkerRecorded")])
    if run.is_open:
        return pending_result(cid, run, f"marker {args['name']} should be recorded")
    return CheckResult(cid, FAIL, f"no {args['name']} marker was recorded",
                       hint=args.get("hint", "run the code that records it"))
