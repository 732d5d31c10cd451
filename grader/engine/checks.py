"""The checks: each one reads a :class:`RunEvidence` and says pass, fail or pending, and why.

A check has a stable id (``crash-recovery.worker-replaced``) that rubrics
name, belongs to one experiment, and takes parameters from the rubric. It
returns a :class:`CheckResult` with a one-line message, the evidence it
relied on (event ids a learner can find in the Web UI) and, when it does not
pass, a hint that says what to do next without giving away more than the
tutorial does. Checks never touch a server or raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from grader.engine import catalog
from grader.engine.evidence import ActivityEvidence, RunEvidence

PASS, FAIL, PENDING, ERROR = "pass", "fail", "pending", "error"
#: An experiment (and each of its checks) that no run shows: it scores 0 and, optional, is never a failure.
NOT_ATTEMPTED = "not-attempted"


@dataclass(slots=True)
class CheckResult:
    """The outcome of one check on one run, and once graded, its line in the report."""

    #: The check's stable id, e.g. ``live-fix.deposit-retried``.
    id: str
    #: pass, fail, pending (the run is still open), error (the check could not run) or
    #: not-attempted (no run shows the check's experiment).
    status: str
    #: One line saying what was found.
    message: str
    #: What to do next; empty when the check passed.
    hint: str = ""
    #: The events relied on: dicts with event_id, event_type and detail.
    evidence: list[dict[str, Any]] = field(default_factory=list)
    #: Filled in by grading from the check's registration and the rubric:
    #: the check's title, the points earned and possible, and whether the
    #: rubric requires it. A check function leaves them at their defaults.
    title: str = ""
    score: float = 0.0
    max_score: float = 0.0
    required: bool = True
    #: How strongly the history proves what a passing check claims: "proven"
    #: (no other cause could leave these events), "consistent" (it fits, but
    #: something else could explain it), or "" where the check does not grade it.
    strength: str = ""
    #: False when the check passed only because what it looks for did not apply
    #: to this run (its message then starts with "not needed:").
    applies: bool = True
    #: Who sees this check on Gradescope, and when: ``visible``, ``after_due_date``,
    #: ``after_published`` or ``hidden`` (the rubric's ``visibility``).
    visibility: str = "visible"
    #: Who sees the hint on Gradescope, and when (the rubric's ``hint_visibility``):
    #: after the due date by default, so resubmitting cannot farm hints.
    hint_visibility: str = "after_due_date"


#: Values of :attr:`CheckResult.strength`.
PROVEN, CONSISTENT = "proven", "consistent"


@dataclass(frozen=True)
class Check:
    """A registered check: its id, experiment, title and function."""

    id: str
    experiment: str
    title: str
    func: Callable[[RunEvidence, Mapping[str, Any]], CheckResult]


#: Every check, by id, in the order experiments and checks are presented.
CHECKS: dict[str, Check] = {}

#: Experiment ids with their titles, and the parameters checks understand with their
#: defaults: both filled by the course packs as they load (see grader.engine.catalog).
EXPERIMENTS = catalog.EXPERIMENTS
DEFAULT_PARAMS = catalog.DEFAULT_PARAMS


def check(check_id: str, title: str) -> Callable[[Callable[..., CheckResult]], Callable[..., CheckResult]]:
    """Register a check function under ``check_id`` (its experiment is the id's prefix)."""
    def register(func: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        experiment = check_id.split(".", 1)[0]
        CHECKS[check_id] = Check(check_id, experiment, title, func)
        return func
    return register


def run_check(check_id: str, run: RunEvidence, params: Mapping[str, Any] | None = None,
              func: Callable[[RunEvidence, Mapping[str, Any]], CheckResult] | None = None) -> CheckResult:
    """Run one check on ``run`` with complete ``params`` (default: DEFAULT_PARAMS).

    ``func`` saves the registry lookup when the caller has it already.
    A bug in a check becomes an ``error`` result, not a crash.
    """
    # Rubrics hand over parameters already merged with the defaults.
    try:
        return (func or CHECKS[check_id].func)(run, DEFAULT_PARAMS if params is None else params)
    except Exception as err:  # noqa: BLE001 - one broken check must not hide the others
        return CheckResult(check_id, ERROR, f"the check could not run: {type(err).__name__}: {err}",
                           hint="report this to the Failure Lab maintainers with the history file")


# --- evidence helpers -------------------------------------------------------


def ev(event_id: int | None, event_type: str, detail: str = "") -> dict[str, Any]:
    """One evidence item."""
    return {"event_id": event_id, "event_type": event_type, "detail": detail}


def activity_ev(a: ActivityEvidence) -> dict[str, Any]:
    """Evidence for how an activity ended (its close event, or its start while pending).

    Built once per activity: most checks cite the deposit, and reports only read evidence.
    """
    cached = a.memo.get("evidence")
    if cached is None:
        cached = a.memo["evidence"] = _activity_ev(a)
    return cached


def _activity_ev(a: ActivityEvidence) -> dict[str, Any]:
    detail = f"{a.activity_type} attempt {a.attempt or '-'} {a.outcome}"
    if a.finished_by or a.started_by:
        detail += f" by {a.finished_by or a.started_by}"
    if a.last_failure:
        detail += f"; previous attempt failed: {a.last_failure.describe()}"
    if a.failure:
        detail += f"; failure: {a.failure.describe()}"
    if a.closed_event_id:
        etype = {"completed": "ActivityTaskCompleted", "failed": "ActivityTaskFailed",
                 "timed_out": "ActivityTaskTimedOut", "canceled": "ActivityTaskCanceled"}[a.outcome]
        return ev(a.closed_event_id, etype, detail)
    if a.started_event_id:
        return ev(a.started_event_id, "ActivityTaskStarted", detail)
    return ev(a.scheduled_event_id, "ActivityTaskScheduled", detail)


def what_it_is_doing(run: RunEvidence) -> str:
    """A sentence on what an open run waits for: from describe() when read live, else the history."""
    if run.pending:
        parts = []
        for p in run.pending:
            text = f"{p.activity_type} {p.state.lower()}, attempt {p.attempt}"
            if p.last_failure:
                text += f", last failure {p.last_failure.describe()}"
            parts.append(text)
        return "; ".join(parts)
    open_activities = [a for a in run.activities if a.outcome == "pending"]
    if open_activities:
        a = open_activities[-1]
        return f"{a.activity_type} scheduled (event {a.scheduled_event_id}) and not finished"
    if not run.workers:
        return "no worker has picked it up yet"
    return "waiting for its next workflow task"


def pending_result(check_id: str, run: RunEvidence, what: str) -> CheckResult:
    """The result for a check that can only be decided once the run closes."""
    return CheckResult(
        check_id, PENDING,
        f"the workflow is still running ({what_it_is_doing(run)})",
        hint=f"{what}; grade again once the workflow has finished",
        evidence=[ev(None, "WorkflowExecution", f"status RUNNING, {run.event_count} events so far")],
    )


def worker_ids(run: RunEvidence) -> str:
    """The worker identities, comma separated, for messages."""
    return ", ".join(run.worker_identities) or "none"


def closed_ev(run: RunEvidence) -> list[dict[str, Any]]:
    """Evidence for how the run ended (built once per run; reports only read it)."""
    cached = run.memo.get("closed")
    if cached is None:
        cached = run.memo["closed"] = _closed_ev(run)
    return cached


def _closed_ev(run: RunEvidence) -> list[dict[str, Any]]:
    if run.closed_event:
        return [ev(run.closed_event.event_id, run.closed_event.event_type, f"status {run.status}")]
    return [ev(None, "WorkflowExecution", "status RUNNING")]


def completed_result(check_id: str, run: RunEvidence, *, waiting: str, hint: str) -> CheckResult:
    """Pass when the run ended COMPLETED; pending while open (``waiting`` says for what)."""
    if run.is_open:
        return pending_result(check_id, run, waiting)
    if run.status == "COMPLETED":
        return CheckResult(check_id, PASS, "the workflow completed", evidence=closed_ev(run))
    return CheckResult(check_id, FAIL, f"the workflow ended {run.status}, not COMPLETED", hint=hint,
                       evidence=closed_ev(run))


def completed_once(run: RunEvidence, activity_type: str) -> tuple[bool, str, list[dict[str, Any]]]:
    """Whether ``activity_type`` was scheduled once and completed; a message and evidence."""
    key = ("completed-once", activity_type)
    cached = run.memo.get(key)  # withdraw-once and no-duplicate-work both ask
    if cached is not None:
        return cached
    found = run.activities_of(activity_type)
    evidence = list(map(activity_ev, found))
    if not found:
        answer = False, f"{activity_type} never ran", evidence
    elif len(found) > 1:
        answer = False, f"{activity_type} was scheduled {len(found)} times", evidence
    elif found[0].outcome != "completed":
        answer = False, f"{activity_type} did not complete ({found[0].outcome})", evidence
    else:
        answer = True, f"{activity_type} completed once (attempt {found[0].attempt})", evidence
    run.memo[key] = answer
    return answer



# --- a proven outage -------------------------------------------------------


def outage_silences(run: RunEvidence, minimum: float) -> list:
    """Silences of at least ``minimum`` seconds that fit an outage (nothing else explains them), longest first."""
    return [s for s in run.silences_over(minimum) if s.counts]


def silence_ev(s: Any) -> dict[str, Any]:
    """Evidence for one silence."""
    detail = f"{s.seconds:.1f} s without an event after event {s.before_event_id}"
    if s.explained_by:
        detail += f"; not an outage: {s.explained_by}"
    elif s.worker_before:
        detail += f"; worker {s.worker_before} on both sides"
    return ev(s.after_event_id, "silence", detail)


# --- which experiment a run shows -------------------------------------------


@dataclass(frozen=True, slots=True)
class Shown:
    """The one experiment a run counts for, and the events that say so."""

    #: An experiment id, or None for a run that shows none (a plain transfer).
    experiment: str | None
    #: One sentence naming the defining events.
    why: str


#: A pack's classifier: which one of its experiments a run shows (see :func:`experiment_shown`).
Classifier = Callable[[RunEvidence, Mapping[str, Any]], Shown]
#: Pack id -> its classifier, registered by the pack's checks (:func:`classifier`).
CLASSIFIERS: dict[str, Classifier] = {}


def classifier(pack_id: str) -> Callable[[Classifier], Classifier]:
    """Register the function that tells which of pack ``pack_id``'s experiments a run shows."""
    def register(func: Classifier) -> Classifier:
        CLASSIFIERS[pack_id] = func
        return func
    return register


#: What a run of a pack with no classifier shows: it may count for any of that pack's experiments.
ANY_EXPERIMENT = "*"


def experiment_shown(run: RunEvidence, params: Mapping[str, Any] | None = None, **overrides: Any) -> Shown:
    """The one experiment ``run``'s defining events show, as its pack's classifier reads them.

    One run, one experiment: a run counts only for what its events show. A
    pack with no classifier lets each run count for any of its experiments
    (:data:`ANY_EXPERIMENT`); a run of no known pack shows none. ``params``
    are the rubric's (default: :data:`DEFAULT_PARAMS`), ``overrides`` replace some.
    """
    kind = catalog.kind_of_workflow_type(run.workflow_type)
    if kind is None:
        return Shown(None, f"workflow type {run.workflow_type!r} belongs to no pack")
    func = CLASSIFIERS.get(kind.pack_id)
    if func is None:
        return Shown(ANY_EXPERIMENT, f"a {kind.workflow_label} run")
    return func(run, {**DEFAULT_PARAMS, **(params or {}), **overrides})
