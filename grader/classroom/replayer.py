"""The one replayer of a batch of files: each shape of the class replayed once, beside the grading.

A replay through the reference workflow needs the SDK (about 0.3 s to
import) and its runtime, and a class of thousands has a handful of shapes
(:func:`grader.lab.replay.replay_key`). So the grading processes of a batch
do not replay: each grades a history of a shape it has not seen as if it
replayed clean and says which shapes each learner relied on
(:class:`grader.lab.replay.Deferred`). The batch hands one history of each
new shape to a single replayer process, which imports the SDK while the
others grade, and keeps a learner's grade only when every shape it relied
on replayed clean. A learner who relied on a shape that did not (a
nondeterministic forgery, a replay that failed) is graded again with each
history replayed for itself, which is what a batch that replayed everywhere
would have written. Until then their grade is held in memory, never
spooled: a batch killed before the verdict grades them again on
``--resume``.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from grader.interrupts import signals_held

#: A shape's verdict while its replay is running.
PENDING = None
#: Once every learner is graded, how long the batch waits for the replayer's next verdict; past it the
#: shapes still out count as not confirmed (their learners are graded again, replaying for themselves).
#: A replay that hangs in the SDK's core gives up by itself much sooner (REPLAY_TIMEOUT_SECONDS).
LAST_VERDICTS_SECONDS = 120.0


@dataclass
class Held:
    """A learner graded on shapes not yet confirmed: their spool record and what to grade again if need be."""

    #: The plan item the learner was graded from (position, name, roster cells, submission, late hint).
    item: tuple
    record: tuple
    #: The feedback file the grading process wrote for them.
    feedback: str
    #: The shapes they relied on.
    shapes: tuple


@dataclass
class Replayer:
    """The parent's side: the verdict of every shape, and the learners waiting on one."""

    #: The batch's process id, for the replayer process to end with it.
    parent: int = field(default_factory=os.getpid)
    #: Shape -> True (replayed clean), False (did not) or PENDING.
    verdicts: dict[Any, bool | None] = field(default_factory=dict)
    #: Learners held until their shapes are confirmed.
    held: list[Held] = field(default_factory=list)
    #: Plan items of the learners to grade again with a real replay.
    again: list[tuple] = field(default_factory=list)
    #: (grading process, its number for a shape) -> the shape.
    _names: dict[tuple[int, int], Any] = field(default_factory=dict, init=False, repr=False)
    #: Replays sent and not answered yet -> their shape.
    _running: dict[Future, Any] = field(default_factory=dict, init=False, repr=False)
    _pool: Any = field(default=None, init=False, repr=False)

    def learn(self, process: int, new: dict[int, tuple[Any, Any]]) -> None:
        """Take the shapes grading process ``process`` saw first; send those new to the batch to the replayer."""
        for number, (key, history) in new.items():
            self._names[(process, number)] = key
            if key in self.verdicts:
                continue
            self.verdicts[key] = PENDING
            try:
                with signals_held():  # the first submit forks the replayer process
                    self._running[self._replayer().submit(_confirm, history)] = key
            except (BrokenProcessPool, RuntimeError, OSError):
                self.verdicts[key] = False  # no replayer: its learners replay for themselves

    def shapes_of(self, process: int, numbers: list[int]) -> tuple:
        """The shapes behind a grading process's numbers."""
        return tuple(self._names[(process, number)] for number in numbers)

    def verdict(self, shapes: tuple) -> bool | None:
        """True when every shape replayed clean, False when one did not, else PENDING."""
        pending = False
        for key in shapes:
            verdict = self.verdicts.get(key, False)
            if verdict is False:
                return False
            pending = pending or verdict is PENDING
        return PENDING if pending else True

    @property
    def running(self) -> list[Future]:
        """The replays not answered yet, for the batch to wait on with its grading."""
        return list(self._running)

    def settle(self, done: set) -> list[Held]:
        """Record the verdicts among ``done``; return the held learners now confirmed (the rest move on)."""
        settled = done & self._running.keys()
        for future in settled:
            key = self._running.pop(future)
            try:
                self.verdicts[key] = bool(future.result())
            except Exception:  # noqa: BLE001 - a replayer that died confirms nothing
                self.verdicts[key] = False
        return self._release() if settled else []

    def give_up(self) -> list[Held]:
        """Count every shape still out as not confirmed (the replayer did not answer in time)."""
        for future, key in self._running.items():
            future.cancel()
            self.verdicts[key] = False
        self._running.clear()
        return self._release()

    def close(self) -> None:
        """Stop the replayer process."""
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.kill()  # it may be stuck in the SDK's core on a malformed history
            self._pool = None

    def _release(self) -> list[Held]:
        ready, still = [], []
        for waiting in self.held:
            verdict = self.verdict(waiting.shapes)
            if verdict is PENDING:
                still.append(waiting)
            elif verdict:
                ready.append(waiting)
            else:
                self.again.append(waiting.item)
        self.held = still
        return ready

    def _replayer(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            from grader.lab.processes import die_with_parent

            self._pool = ProcessPoolExecutor(max_workers=1, initializer=die_with_parent, initargs=(self.parent,))
        return self._pool


def _confirm(history: Any) -> bool:
    """In the replayer process: whether ``history`` replays clean (see :func:`grader.lab.replay.confirm_shape`)."""
    from grader.lab.replay import confirm_shape

    return confirm_shape(history)
