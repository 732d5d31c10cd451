"""The sagas pack's Python: which of its experiments a run shows.

Its checks are composed from the engine's primitives in pack.json; only the
choice of experiment (one run, one experiment) needs code: a run whose
rollback lost a worker to a crash, with another process taking over, shows
``crash-survived``; any other run where a step failed for good or a
compensation ran shows ``saga-rollback``.
"""

from __future__ import annotations

from typing import Any, Mapping

from grader.engine.checks import Shown, classifier
from grader.engine.evidence import RunEvidence
from grader.engine.primitives import same_name, saga_facts, takeover_among

#: Compensation -> the step it undoes, as the course's workflow registers them.
COMPENSATIONS = {"revert_inventory": "update_inventory", "refund_customer": "process_credit_card"}


@classifier("sagas")
def experiment_shown(run: RunEvidence, params: Mapping[str, Any]) -> Shown:
    """``crash-survived`` for a rollback a crash interrupted, ``saga-rollback`` for any other rollback or failure."""
    facts = saga_facts(run, COMPENSATIONS)
    if facts.failure is not None:
        found = takeover_among(run, {same_name(c) for c in COMPENSATIONS}, facts.failure.closed_event_id or 0)
        if found is not None:
            lost, new, a = found
            return Shown("crash-survived", f"worker {lost} was lost during {a.activity_type} and {new} took over")
        return Shown("saga-rollback", f"{facts.failure.activity_type} failed for good "
                                      f"(event {facts.failure.closed_event_id})")
    if facts.compensations:
        return Shown("saga-rollback", f"{facts.compensations[0].activity_type} ran "
                                      f"(event {facts.compensations[0].scheduled_event_id})")
    return Shown(None, "no step failed for good and no compensation ran")
