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
