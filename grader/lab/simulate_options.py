"""The knobs of ``grader simulate``: its signals, kill points and option defaults.

They live apart from :mod:`grader.lab.simulate` so that the command line can show
its choices and defaults without importing temporalio (``grader --help`` and
offline grading stay fast). :mod:`grader.lab.simulate` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.errors import BadInputError
from grader.engine.learner import validate_learner_id

#: Signals the crash-recovery experiment can send, by the name ``kill -s`` uses
#: (``signal.Signals["SIG" + name]`` is the number; the module is not imported
#: here, to keep offline grading's start-up short).
SIGNALS = ("KILL", "INT", "TERM")
#: Where crash-recovery can strike. ``pause`` (the workflow timer between the
#: two activities, TRANSFER_PAUSE_SECONDS) is for the golden recordings.
KILL_POINTS = ("withdraw", "deposit")


@dataclass(frozen=True)
class SimulationOptions:
    """The knobs of the experiments; the CLI takes its defaults from here."""

    #: Signal crash-recovery sends to the worker: KILL, INT or TERM.
    signal: str = "KILL"
    #: Activity crash-recovery strikes during: withdraw or deposit.
    kill_during: str = "deposit"
    #: Failed deposit attempts live-fix waits for before it deploys the fix.
    failed_attempts: int = 3
    #: Retry limit compensation gives the app (TRANSFER_MAX_ATTEMPTS).
    max_attempts: int = 2
    #: Seconds network-partition keeps the server paused.
    outage: float = 30.0
    #: Seconds each bank call takes (BANK_LATENCY_SECONDS); None keeps the app's own (3 s).
    latency: float | None = None
    #: Seconds any single wait may last before the experiment gives up.
    wait_limit: float = 60.0
    #: Task queue for every experiment; None gives each its own queue (TRANSFER_TASK_QUEUE),
    #: or the app's default queue if the app ignores that variable.
    task_queue: str | None = None
    #: Learner id the workflows are made under (``<learner>-<experiment>-<hex>``); None gives ``sim-...``.
    learner: str | None = None

    def __post_init__(self) -> None:
        if self.learner is not None:
            validate_learner_id(self.learner, what="learner")
        if self.signal not in SIGNALS:
            raise BadInputError(f"signal {self.signal!r} is not one of {', '.join(SIGNALS)}")
        if self.kill_during not in (*KILL_POINTS, "pause"):
            raise BadInputError(f"kill_during {self.kill_during!r} is not one of {', '.join(KILL_POINTS)}")
