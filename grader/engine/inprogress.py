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
from typing import Mapping, Sequence

from grader.engine.checks import ANY_EXPERIMENT, Shown, experiment_shown, what_it_is_doing
from grader.engine.evidence import RunEvidence
from grader.engine.history import parse_time

@dataclass(slots=True)
class RunInProgress:
    """The newest run that had not closed when it was read."""

    workflow_id: str
    run_id: str
    #: When it started (RFC 3339, as recorded).
    start_time: str
    #: What it waits for: "deposit scheduled, attempt 3, last failure ValueError: ...".
    waiting_for: str
    #: The experiment whose defining events it already shows (at most one: one run, one experiment).
    experiments: list[str] = field(default_factory=list)
    #: The events that show it, with their ids ("... took over at event 12 (crash-recovery)").
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


def newest_open_run(runs: Sequence[RunEvidence], shown: Mapping[int, Shown] | None = None) -> RunInProgress | None:
    """The open run that started last among ``runs``, or None when every run has closed.

    Which experiment it already shows is its pack's classifier's reading
    (:func:`grader.engine.checks.experiment_shown`), the same that decides
    what the run counts for once it closes; ``shown`` holds that reading by
    ``id(run)`` when the caller has it already.
    """
    open_runs = [r for r in runs if r.is_open]
    if not open_runs:
        return None

    def started(run: RunEvidence) -> float:
        when = parse_time(run.start_time)
        return when.timestamp() if when else float("-inf")

    run = max(open_runs, key=started)
    seen = (shown or {}).get(id(run)) or experiment_shown(run)
    experiments, signs = [], []
    if seen.experiment not in (None, ANY_EXPERIMENT):
        experiments.append(seen.experiment)
        signs.append(f"{seen.why} ({seen.experiment})")
    return RunInProgress(run.workflow_id, run.run_id, run.start_time, what_it_is_doing(run), experiments, signs,
                         run.ui_link)
