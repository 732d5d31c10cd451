"""The run in progress: the newest open run, what it waits for, and which experiment it is becoming.

A learner in the middle of an experiment grades while the run is still
open. Each experiment is graded on the most convincing run, which is then
often an older finished one (the baseline transfer, ``FAIL 5/10`` for crash
recovery), so the table alone says nothing about the run they are watching.
:func:`newest_open_run` picks that run out, and ``grader check`` and
``--watch`` show it above the table: its id, what it waits for, and the
events of an experiment it already shows (a lost worker, a failing deposit,
a refund), read from the history so far and, live, from ``describe()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from grader.engine.checks import what_it_is_doing
from grader.engine.evidence import RunEvidence
from grader.engine.history import parse_time

#: A silence this long in an open run is worth naming (the partition check decides what it was).
_LONG_SILENCE = 10.0


@dataclass(slots=True)
class RunInProgress:
    """The newest run that had not closed when it was read."""

    workflow_id: str
    run_id: str
    #: When it started (RFC 3339, as recorded).
    start_time: str
    #: What it waits for: "deposit scheduled, attempt 3, last failure ValueError: ...".
    waiting_for: str
    #: Ids of the experiments whose events it already shows, in the order seen below.
    experiments: list[str] = field(default_factory=list)
    #: One phrase per such sign, with its event ids ("a new worker took over at event 12").
    signs: list[str] = field(default_factory=list)
    #: Its Web UI page, when read from a server whose UI is known.
    ui_link: str | None = None

    def line(self) -> str:
        """One line for a terminal: ``Run in progress: ID (run 01a2...): <what it waits for>; already shows ...``."""
        text = f"Run in progress: {self.workflow_id}"
        if self.run_id:
            text += f" (run {self.run_id[:8]})"
        text += f": {self.waiting_for}"
        if self.signs:
            text += f"; already shows {'; '.join(self.signs)}"
        else:
            text += "; no experiment's events yet"
        return text


def newest_open_run(runs: Sequence[RunEvidence]) -> RunInProgress | None:
    """The open run that started last among ``runs``, or None when every run has closed."""
    open_runs = [r for r in runs if r.is_open]
    if not open_runs:
        return None

    def started(run: RunEvidence) -> float:
        when = parse_time(run.start_time)
        return when.timestamp() if when else float("-inf")

    run = max(open_runs, key=started)
    found = signs_of(run)
    experiments: list[str] = []
    for experiment, _ in found:
        if experiment not in experiments:
            experiments.append(experiment)
    return RunInProgress(run.workflow_id, run.run_id, run.start_time, what_it_is_doing(run), experiments,
                         [f"{sign} ({experiment})" for experiment, sign in found], run.ui_link)


def signs_of(run: RunEvidence) -> list[tuple[str, str]]:
    """``(experiment id, phrase)`` for each experiment-defining event an open run already shows.

    These are signs, not verdicts: the checks decide once the run closes.
    """
    signs: list[tuple[str, str]] = []
    deposits = run.activities_of("deposit")
    for a in deposits:
        if a.outcome == "failed":
            signs.append(("compensation", f"the deposit failed for good at event {a.closed_event_id}"))
    for a in run.activities_of("refund"):
        signs.append(("compensation", f"a refund was scheduled at event {a.scheduled_event_id}"))
    failures = [(p.attempt, p.last_failure) for p in run.pending or () if p.activity_type == "deposit"]
    failures += [(a.attempt, a.last_failure) for a in deposits if a.outcome != "failed"]
    for attempt, failure in failures:
        if failure is not None and failure.kind == "application" and attempt > 1:
            signs.append(("live-fix", f"the deposit is on attempt {attempt} after {failure.describe()}"))
            break
    for handover in run.handovers:
        signs.append(("crash-recovery", f"work moved from {handover.from_identity} to {handover.to_identity} "
                                        f"at event {handover.event_id}"))
        break
    else:
        if run.lost_worker_signs:
            lost = run.lost_worker_signs[0]
            signs.append(("crash-recovery", f"a workflow task timed out on a worker's sticky queue at event "
                                            f"{lost.event_id}"))
        else:
            for p in run.pending or ():
                if p.last_failure is not None and p.last_failure.kind in ("timeout", "worker_shutdown"):
                    signs.append(("crash-recovery", f"the {p.activity_type} is retrying after "
                                                    f"{p.last_failure.describe()} (attempt {p.attempt})"))
                    break
    if run.longest_gap is not None and run.longest_gap[0] >= _LONG_SILENCE:
        seconds, before, after = run.longest_gap
        signs.append(("network-partition", f"a silence of {seconds:.0f} s between events {before} and {after}"))
    return signs
