"""Run the tutorial's failure experiments for real: what ``grader simulate`` does.

Each experiment drives a transfer app the way a learner would, with real
processes and real faults: it starts the app's own ``run_worker.py``, starts a
``MoneyTransfer`` from a client, kills or stops workers at the moment the
experiment calls for, and pauses the server itself for the network partition.

It never sleeps to synchronise. It watches the workflow through the client
(``describe()`` for the pending activities, the history for what finished)
every :data:`POLL_INTERVAL` seconds, tells ``progress`` what changed, and acts
when the state it waits for shows up. Every wait is bounded; running out
raises :class:`~grader.errors.SimulationError` with a sentence saying what was
happening and why it can not go on. Every process started here is stopped when
the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from temporalio.api.enums.v1 import EventType, PendingActivityState, TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from google.protobuf.json_format import MessageToDict
from temporalio.service import RPCError, RPCStatusCode

from grader import defaults
from grader.lab.app import AppSettings, WorkerProcess, start_worker, validate_app_dir, wait_for_poller
from grader.sources.connect import ConnectionSettings, Target, as_target, connect
from grader.errors import BadInputError, ServerUnavailableError, SimulationError
from grader.engine.evidence import classify_failure
from grader.engine.learner import workflow_prefix
from grader.lab.processes import tail
from grader.lab.server import DevServer, free_port, start_dev_server
# The knobs live in a module free of temporalio, so `grader --help` can show them without loading this one.
from grader.lab.simulate_options import KILL_POINTS, SIGNALS, SimulationOptions  # noqa: F401

#: The experiments, in the order they run.
EXPERIMENTS = tuple(defaults.EXPERIMENTS)
#: Seconds between two looks at the workflow.
POLL_INTERVAL = 0.1
#: The transfer every experiment starts, as the tutorial's run_workflow.py does.
SOURCE_ACCOUNT, TARGET_ACCOUNT, AMOUNT = "85-150", "43-812", 250

_STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
_SCHEDULED = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
_RPC_TIMEOUT = timedelta(seconds=5)
_STOP_GRACE = 15.0
#: Seconds without news after which a wait says what it is still waiting for.
_QUIET = 5.0


@dataclass
class ExperimentRun:
    """What one experiment did and how its workflow ended."""

    #: Experiment id, one of :data:`EXPERIMENTS`.
    experiment: str
    #: True when the workflow reached the end the experiment expects, None when skipped.
    ok: bool | None
    #: Final workflow status (COMPLETED, FAILED, RUNNING if given up) or SKIPPED.
    status: str
    workflow_id: str = ""
    run_id: str = ""
    #: Seconds from workflow start to close on the server's clock (to give-up if still open).
    duration: float | None = None
    #: Seconds the whole experiment took, worker starts and stops included.
    wall: float = 0.0
    #: The history as ``temporal workflow show --output json`` prints it: ``{"events": [...]}``.
    history: dict | None = None
    #: One sentence on what happened, or why the experiment gave up.
    note: str = ""


@dataclass
class Snapshot:
    """One look at the workflow: its status, pending activities and history so far."""

    #: RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED ... ("UNREACHABLE" if the server did not answer).
    status: str
    pending: list[PendingActivityInfo]
    events: list[HistoryEvent]

    @property
    def closed(self) -> bool:
        """True once the workflow has ended."""
        return self.status not in ("RUNNING", "UNREACHABLE")

    def activity(self, name: str) -> PendingActivityInfo | None:
        """The pending activity of type ``name``, if one is pending."""
        return next((a for a in self.pending if a.activity_type.name == name), None)

    def in_flight(self, name: str) -> bool:
        """True while a worker runs an attempt of ``name``."""
        a = self.activity(name)
        return a is not None and a.state == _STARTED

    def retrying(self, name: str) -> int:
        """Failed attempts of ``name`` while it waits for its next try (the retry backoff), else 0."""
        a = self.activity(name)
        return a.attempt - 1 if a is not None and a.state == _SCHEDULED else 0

    def finished(self, name: str) -> tuple[HistoryEvent, HistoryEvent] | None:
        """The last (ActivityTaskStarted, closing event) of activity ``name``, once it ended."""
        names, started = _activity_index(self.events)
        for e in reversed(self.events):
            sched = _closed_activity(e)
            if sched is not None and names.get(sched) == name and sched in started:
                return started[sched], e
        return None

    def outcome(self, name: str) -> str | None:
        """How activity ``name`` last ended: COMPLETED, FAILED, TIMED_OUT, CANCELED; None if it has not."""
        done = self.finished(name)
        return EventType.Name(done[1].event_type).removeprefix("EVENT_TYPE_ACTIVITY_TASK_") if done else None

    def timer_running(self) -> bool:
        """True while a workflow timer (``workflow.sleep``) runs."""
        running: set[int] = set()
        for e in self.events:
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                running.add(e.event_id)
            elif e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                running.discard(e.timer_fired_event_attributes.started_event_id)
        return bool(running)

    def doing(self) -> str:
        """What the workflow is busy with, in words, for messages."""
        if self.status == "UNREACHABLE":
            return "the server does not answer"
        if self.closed:
            return f"the workflow ended {self.status}"
        for a in self.pending:
            name = a.activity_type.name
            if a.state == _STARTED:
                return f"{name} still in flight (attempt {a.attempt}, {_worker(a.last_worker_identity)})"
            if a.attempt > 1:
                return (f"{name} still retrying (attempt {a.attempt}, "
                        f"last failure {failure_text(a.last_failure)})")
            return f"{name} still waiting for a worker"
        return ("no activity pending: the workflow waits for a worker to take its next workflow task "
                "(one left on the sticky queue of a dead worker waits there until it times out)")


class Lab:
    """One simulate session: the client, the embedded server if any, and every worker started.

    :meth:`close` stops every process the lab started; call it in ``finally``.
    """

    def __init__(
        self,
        client: Client,
        app_dir: Path,
        *,
        address: str | Target,
        server: DevServer | None = None,
        options: SimulationOptions = SimulationOptions(),
        progress: Callable[[str], None] = lambda _msg: None,
        mark: bool = True,
    ) -> None:
        self.client = client
        #: Put :data:`grader.defaults.SIMULATE_MARK` on every workflow started, so the grader can tell
        #: these runs from a learner's own (only the golden recordings, which stand for learners' runs, turn it off).
        self.mark = mark
        self.app_dir = app_dir
        #: Where workers connect, in full (TLS, API key), and its gRPC address for messages.
        self.target = as_target(address, client.namespace)
        self.address = self.target.address
        #: The embedded server, which network-partition may pause; None on a remote server.
        self.server = server
        self.options = options
        self.progress = progress
        self.workers: list[WorkerProcess] = []
        self._logs = tempfile.TemporaryDirectory(prefix="failure-lab-sim-")

    def trial(
        self,
        name: str,
        *,
        latency: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Trial:
        """A new workflow id and task queue for one experiment or scenario called ``name``.

        ``latency`` (default: the options') and ``env`` apply to every worker of the trial.
        """
        return Trial(self, name, latency=self.options.latency if latency is None else latency, env=env or {})

    async def run(self, experiment: str) -> ExperimentRun:
        """Run one of :data:`EXPERIMENTS` and report how it ended.

        An experiment that gives up is reported with a note, not raised. Raises
        :class:`AppError` when the app's worker cannot start and
        :class:`ServerUnavailableError` when the server stops answering.
        """
        try:
            return await self._run(experiment)
        except RPCError as err:
            raise ServerUnavailableError(
                f"the Temporal server at {self.address} stopped answering during {experiment}: {err}"
            ) from err

    async def _run(self, experiment: str) -> ExperimentRun:
        body = _BODIES[experiment]
        trial = self.trial(experiment)
        if experiment == "network-partition" and self.server is None:
            note = ("skipped: it pauses the server, and simulate only controls the embedded one; "
                    "run without --address to include it")
            trial.say(note)
            return ExperimentRun(experiment, ok=None, status="SKIPPED", note=note)
        try:
            ok, note = await body(trial)
        except SimulationError as err:
            ok, note = False, str(err)
            trial.say(f"gave up: {err}")
        except asyncio.CancelledError:
            # Ctrl+C or SIGTERM: the workers are about to go, so the workflow
            # would stay open on the user's server for ever, pending in every grade.
            await trial.abandon()
            raise
        # Any other exit (an app that cannot start) leaves the workers to close().
        await trial.stop_workers()
        return await trial.result(ok, note)

    def close(self) -> None:
        """Stop every worker still running and remove their logs."""
        for w in self.workers:
            if w.alive():
                self.progress(f"stopping worker {w.pid}")
                w.stop(sig=signal.SIGTERM, grace=5)
        self._logs.cleanup()


class Trial:
    """One workflow of one experiment: its id, task queue, workers and what was seen of it."""

    def __init__(self, lab: Lab, name: str, *, latency: float | None, env: Mapping[str, str]) -> None:
        self.lab = lab
        #: The experiment or golden scenario this trial runs.
        self.name = name
        self.latency = latency
        self.env = dict(env)
        self.task_queue = lab.options.task_queue or f"failure-lab-{uuid.uuid4().hex[:12]}"
        # Under a learner id, batch and check find these runs as that learner's own.
        self.workflow_id = f"{workflow_prefix(lab.options.learner or 'sim')}{name}-{uuid.uuid4().hex[:8]}"
        self.handle: WorkflowHandle | None = None
        #: Workers of this trial that are meant to be running.
        self.workers: list[WorkerProcess] = []
        self._begun = time.monotonic()
        self._seen_events = 0
        self._seen_pending: dict[str, tuple[int, int]] = {}
        self._last_said = time.monotonic()

    def say(self, message: str) -> None:
        """Report one step to the lab's progress callback."""
        self._last_said = time.monotonic()
        self.lab.progress(f"{self.name}: {message}")

    # -- workers -----------------------------------------------------------

    async def start_worker(self, *, fault: str = "", max_attempts: int | None = None) -> WorkerProcess:
        """Start the app's ``run_worker.py`` with these hooks and wait until it polls."""
        lab = self.lab
        settings = AppSettings(
            address=lab.address,
            namespace=lab.client.namespace,
            target=lab.target,
            task_queue=self.task_queue,
            latency=self.latency,
            fault=fault,
            max_attempts=max_attempts,
            extra_env=tuple(self.env.items()),
        )
        worker = start_worker(lab.app_dir, settings, log_dir=Path(lab._logs.name))
        lab.workers.append(worker)
        await self._await_poller(worker)
        self.workers.append(worker)
        hooks = ", ".join(f"{k}={v}" for k, v in settings.hooks().items())
        self.say(f"worker {worker.pid} started" + (f" ({hooks})" if hooks else ""))
        return worker

    async def _await_poller(self, worker: WorkerProcess) -> None:
        # The official tutorial app ignores TRANSFER_TASK_QUEUE: watch its own
        # queue too, and follow the worker to whichever queue it polls.
        if self.lab.options.task_queue is not None or self.task_queue == defaults.TASK_QUEUE:
            await wait_for_poller(self.lab.client, worker)
            return
        fallback = dataclasses.replace(
            worker, settings=dataclasses.replace(worker.settings, task_queue=defaults.TASK_QUEUE)
        )
        waits = {asyncio.ensure_future(wait_for_poller(self.lab.client, w)): w for w in (worker, fallback)}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        first = done.pop()
        worker.identity = first.result()
        if waits[first] is fallback:
            self.task_queue = defaults.TASK_QUEUE
            self.say(f"this app ignores TRANSFER_TASK_QUEUE: using its task queue {defaults.TASK_QUEUE}")

    async def stop_worker(self, worker: WorkerProcess, sig: int = signal.SIGINT) -> None:
        """Send ``sig`` to ``worker`` and wait until it has exited (SIGKILL after a grace period)."""
        self.workers.remove(worker)
        worker.send(sig)
        self.say(f"{signal.Signals(sig).name} sent to worker {worker.pid}")
        deadline = time.monotonic() + _STOP_GRACE
        while worker.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if worker.alive():
            worker.process.kill()
            self.say(f"worker {worker.pid} still ran {_STOP_GRACE:.0f} s after the signal: killed it")
        code = worker.wait(5)
        self.say(f"worker {worker.pid} exited ({_exit_text(code)})")

    async def stop_workers(self) -> None:
        """Stop this trial's workers that still run (at the end of the trial), all at once."""
        await asyncio.gather(*(self.stop_worker(w) for w in list(self.workers)))

    # -- the workflow ------------------------------------------------------

    async def start_transfer(self, *, amount: int = AMOUNT) -> WorkflowHandle:
        """Start a MoneyTransfer from the client, as the tutorial's ``run_workflow.py`` does."""
        details = {
            "source_account": SOURCE_ACCOUNT,
            "target_account": TARGET_ACCOUNT,
            "amount": amount,
            "reference_id": str(uuid.uuid4()),
        }
        # The memo is written into the start event, so the mark travels with every export of the run.
        memo = {defaults.SIMULATE_MARK: {"tool": "grader simulate", "experiment": self.name}} if self.lab.mark else None
        self.handle = await self.lab.client.start_workflow(
            defaults.WORKFLOW_TYPE, details, id=self.workflow_id, task_queue=self.task_queue,
            rpc_timeout=_RPC_TIMEOUT, memo=memo,
        )
        self.say(f"transfer {self.workflow_id} started on task queue {self.task_queue}")
        return self.handle

    async def look(self) -> Snapshot:
        """Describe the workflow and read its history; report what changed since the last look."""
        assert self.handle is not None, "start_transfer first"
        try:
            desc = await self.handle.describe(rpc_timeout=_RPC_TIMEOUT)
            events = [e async for e in self.handle.fetch_history_events(rpc_timeout=_RPC_TIMEOUT)]
        except RPCError:
            return Snapshot("UNREACHABLE", [], [])
        status = desc.status.name if desc.status is not None else "UNKNOWN"
        snap = Snapshot(status, list(desc.raw_description.pending_activities), events)
        self._report(snap)
        return snap

    def _report(self, snap: Snapshot) -> None:
        names, started = _activity_index(snap.events)
        for e in snap.events[self._seen_events:]:
            if line := _event_line(e, names, started):
                self.say(line)
        self._seen_events = len(snap.events)
        pending = {}
        for a in snap.pending:
            name, key = a.activity_type.name, (a.attempt, a.state)
            pending[name] = key
            if self._seen_pending.get(name) == key:
                continue
            if a.state == _STARTED:
                self.say(f"{name} in flight, attempt {a.attempt} ({_worker(a.last_worker_identity)})")
            elif a.state == _SCHEDULED and a.attempt > 1:
                # After a timeout the server leaves this interval unset (a huge number).
                wait = a.current_retry_interval.ToTimedelta().total_seconds()
                when = f" in {wait:.1f} s" if 0 < wait < 3600 else " next"
                self.say(f"{name} attempt {a.attempt - 1} failed ({failure_text(a.last_failure)}); "
                         f"attempt {a.attempt}{when}")
        self._seen_pending = pending

    async def wait(
        self,
        until: Callable[[Snapshot], bool],
        *,
        what: str,
        why: str | Callable[[Snapshot], str] = "",
        limit: float | None = None,
    ) -> Snapshot:
        """Look at the workflow until ``until`` holds; return that snapshot.

        Raises :class:`SimulationError` when ``limit`` (default: the wait limit)
        runs out, when the workflow ends first, or when one of this trial's
        workers dies by itself. ``what`` names the awaited state and ``why``
        explains, from the last snapshot, why it may never come.
        """
        limit = self.lab.options.wait_limit if limit is None else limit
        deadline = time.monotonic() + limit
        while True:
            snap = await self.look()
            if until(snap):
                return snap
            reason = why(snap) if callable(why) else why
            if snap.closed:
                raise SimulationError(f"the workflow ended {snap.status} before {what}"
                                      + (f": {reason}" if reason else ""))
            for w in self.workers:
                if not w.alive():
                    detail = tail(w.log_path, 3)
                    code = _exit_text(w.process.returncode)
                    raise SimulationError(f"worker {w.pid} exited by itself ({code}) while waiting for {what}"
                                          + (f": {detail}" if detail else ""))
            if time.monotonic() > deadline:
                raise SimulationError(f"{snap.doing()} after {limit:.0f} s, waiting for {what}"
                                      + (f": {reason}" if reason else ""))
            if time.monotonic() - self._last_said > _QUIET:
                self.say(snap.doing())
            await asyncio.sleep(POLL_INTERVAL)

    async def wait_for_end(self, *, why: str | Callable[[Snapshot], str] = "") -> Snapshot:
        """Wait until the workflow ends and report how."""
        snap = await self.wait(lambda s: s.closed, what="the end of the workflow", why=why)
        desc = await self.handle.describe(rpc_timeout=_RPC_TIMEOUT)
        self.say(f"workflow {snap.status.lower()} in {_duration(desc):.1f} s")
        return snap

    async def abandon(self) -> None:
        """Terminate this trial's workflow if it is still running, and say so (on interruption)."""
        # Interrupted inside start_transfer, the workflow may exist before its handle does.
        handle = self.handle or self.lab.client.get_workflow_handle(self.workflow_id)
        try:
            desc = await handle.describe(rpc_timeout=_RPC_TIMEOUT)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            await handle.terminate(reason="grader simulate was interrupted", rpc_timeout=_RPC_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return  # never started: nothing left behind
            self.say(f"interrupted: could not terminate workflow {self.workflow_id} ({err}); "
                     f"end it with `temporal workflow terminate -w {self.workflow_id}`")
            return
        self.say(f"interrupted: terminated workflow {self.workflow_id} so it does not stay open on the server")

    async def result(self, ok: bool, note: str, *, keep_running: bool = False) -> ExperimentRun:
        """The trial as an :class:`ExperimentRun`, with its history.

        A workflow still running is terminated first, unless ``keep_running``.
        """
        wall = time.monotonic() - self._begun
        if self.handle is None:
            return ExperimentRun(self.name, ok=ok, status="NOT STARTED", wall=wall, note=note)
        desc = await self.handle.describe(rpc_timeout=_RPC_TIMEOUT)
        if desc.status == WorkflowExecutionStatus.RUNNING and not keep_running:
            # Its workers are gone: end it rather than leave it behind on the server.
            await self.handle.terminate(reason="grader simulate gave up on this experiment",
                                        rpc_timeout=_RPC_TIMEOUT)
            desc = await self.handle.describe(rpc_timeout=_RPC_TIMEOUT)
        history = json.loads((await self.handle.fetch_history(rpc_timeout=_RPC_TIMEOUT)).to_json())
        status = desc.status.name if desc.status is not None else "UNKNOWN"
        return ExperimentRun(
            self.name, ok=ok, status=status, workflow_id=self.workflow_id,
            run_id=desc.run_id, duration=_duration(desc), wall=wall, history=history, note=note,
        )


# -- the experiments --------------------------------------------------------------


async def crash_recovery(
    trial: Trial, *, sig: str = "KILL", kill_during: str = "deposit"
) -> tuple[bool, str]:
    """Kill the worker while ``kill_during`` runs, start a new one, wait for the transfer to finish."""
    first = await trial.start_worker()
    await trial.start_transfer()
    if kill_during == "pause":
        await trial.wait(Snapshot.timer_running, what="the pause between withdraw and deposit",
                         why="this app has no timer between withdraw and deposit (TRANSFER_PAUSE_SECONDS)")
    else:
        await trial.wait(lambda s: s.in_flight(kill_during), what=f"the {kill_during} in flight",
                         why=_slow_enough)
    await trial.stop_worker(first, signal.Signals[f"SIG{sig}"])
    await trial.start_worker()
    end = await trial.wait_for_end(
        why="the server hands a dead worker's activity to another worker only when its "
            "start-to-close timeout runs out (raise --wait-limit if this app's is longer)")
    note = f"SIG{sig} to worker {first.pid} during the {kill_during}; "
    struck = "deposit" if kill_during == "pause" else kill_during
    hit = end.finished(struck)
    if hit is not None:
        attrs = hit[0].activity_task_started_event_attributes
        note += f"{struck} done on attempt {attrs.attempt} by {_worker(attrs.identity)}"
    else:
        note += f"workflow ended {end.status}"
    return end.status == "COMPLETED", note


async def live_fix(trial: Trial, *, failed_attempts: int = 3) -> tuple[bool, str]:
    """Run the deposit with the bug until it has failed ``failed_attempts`` times, then deploy the fix."""
    faulty = await trial.start_worker(fault="failing-deposit")
    await trial.start_transfer()

    def why(s: Snapshot) -> str:
        deposit = s.outcome("deposit")
        if deposit == "COMPLETED":
            return ("the deposit succeeded although BANK_FAULT=failing-deposit was set: this app has no "
                    "fault hook, so break its deposit by hand to try the live fix")
        if deposit is not None:
            return ("the deposit failed for good: this app's retry policy gives up before a fix can be "
                    "deployed (the live fix needs maximum_attempts=0, no limit)")
        return ""

    # Stop the faulty worker during the retry backoff (no attempt running):
    # an attempt cut short would record WorkerShutdown and hide the bug's ValueError.
    seen = await trial.wait(lambda s: s.retrying("deposit") >= failed_attempts,
                            what=f"{failed_attempts} failed deposit attempts", why=why)
    bug = failure_text(seen.activity("deposit").last_failure)
    await trial.stop_worker(faulty, signal.SIGINT)
    trial.say("fix deployed: the next worker runs without BANK_FAULT")
    fixed = await trial.start_worker()
    end = await trial.wait_for_end(why=why)
    done = end.finished("deposit")
    if done is None:
        return False, f"workflow ended {end.status} without a deposit"
    attrs = done[0].activity_task_started_event_attributes
    return end.status == "COMPLETED", (
        f"deposit failed {attrs.attempt - 1} times ({bug}), then worker {fixed.pid} "
        f"completed it on attempt {attrs.attempt}"
    )


async def compensation(trial: Trial, *, max_attempts: int = 2) -> tuple[bool, str]:
    """Break the deposit for good with a limited retry policy; the workflow must refund and fail."""
    await trial.start_worker(fault="failing-deposit", max_attempts=max_attempts)
    await trial.start_transfer()

    def why(s: Snapshot) -> str:
        deposit = s.activity("deposit")
        if deposit is not None and deposit.maximum_attempts == 0:
            return "this app's retry policy never gives up, so it can never compensate"
        if s.activity("refund") is not None:
            return "the refund does not finish"
        return ""

    end = await trial.wait_for_end(why=why)
    refunded = end.outcome("refund") == "COMPLETED"
    if end.status == "COMPLETED":
        note = ("the deposit never failed although BANK_FAULT=failing-deposit was set: this app has no "
                "fault hook")
    elif not refunded:
        note = f"workflow ended {end.status} with no completed refund"
    else:
        deposit = end.finished("deposit")
        tries = deposit[0].activity_task_started_event_attributes.attempt if deposit else "?"
        note = f"deposit failed for good after {tries} attempts, refund completed"
    return end.status == "FAILED" and refunded, note


async def network_partition(trial: Trial, *, outage: float = 30.0) -> tuple[bool, str]:
    """Freeze the server (SIGSTOP) for ``outage`` seconds while the deposit runs, then let it go on."""
    server = trial.lab.server
    assert server is not None, "network-partition needs the embedded server"
    worker = await trial.start_worker()
    await trial.start_transfer()
    await trial.wait(lambda s: s.in_flight("deposit"), what="the deposit in flight", why=_slow_enough)
    server.pause()
    trial.say(f"server {server.pid} paused (SIGSTOP): unreachable for {outage:g} s")
    try:
        # The outage itself, not a synchronisation: nothing can be watched meanwhile.
        resume_at = time.monotonic() + outage
        while (left := resume_at - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 10))
            if resume_at - time.monotonic() > 0.5:
                trial.say(f"server still paused, {resume_at - time.monotonic():.0f} s to go")
    finally:
        server.resume()
    trial.say(f"server {server.pid} resumed (SIGCONT)")
    end = await trial.wait_for_end()
    done = end.finished("deposit")
    who = _worker(done[0].activity_task_started_event_attributes.identity) if done else "no worker"
    note = f"server paused {outage:g} s during the deposit; deposit finished by {who}"
    if worker.alive() and who == _worker(worker.identity or ""):
        note += ", which survived the outage"
    return end.status == "COMPLETED", note


def _slow_enough(s: Snapshot) -> str:
    if s.closed or s.finished("deposit"):
        return "the bank calls are too quick to catch in flight: raise --latency (BANK_LATENCY_SECONDS)"
    return "no worker has picked it up: is the app's worker polling the task queue?"


_BODIES: dict[str, Callable[[Trial], object]] = {
    "crash-recovery": lambda t: crash_recovery(
        t, sig=t.lab.options.signal, kill_during=t.lab.options.kill_during),
    "live-fix": lambda t: live_fix(t, failed_attempts=t.lab.options.failed_attempts),
    "compensation": lambda t: compensation(t, max_attempts=t.lab.options.max_attempts),
    "network-partition": lambda t: network_partition(t, outage=t.lab.options.outage),
}


async def run_experiments(
    app_dir: Path,
    *,
    experiments: Sequence[str] = EXPERIMENTS,
    address: str | ConnectionSettings | Target | None = None,
    namespace: str | None = None,
    server: DevServer | None = None,
    options: SimulationOptions = SimulationOptions(),
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[ExperimentRun]:
    """Run ``experiments`` (in :data:`EXPERIMENTS` order) against the app in ``app_dir``.

    The server is ``server`` (an embedded one the caller owns, which
    network-partition may pause), else the one at ``address`` (an address, or
    full :class:`ConnectionSettings` with TLS and keys; network-partition is skipped), else an ephemeral embedded server started here and stopped at
    the end. ``progress`` receives one line per step. Every process started is
    stopped before this returns or raises, also when the task is cancelled.
    Raises :class:`AppError` for an app that cannot run and
    :class:`ServerUnavailableError` when no server answers; an experiment that
    gives up is reported in its :class:`ExperimentRun`, not raised.
    """
    app_dir = validate_app_dir(app_dir)
    unknown = sorted(set(experiments) - set(EXPERIMENTS))
    if unknown:
        raise BadInputError(f"unknown experiments {', '.join(unknown)}: choose from {', '.join(EXPERIMENTS)}")
    own_server = None
    lab = None
    logs = tempfile.TemporaryDirectory(prefix="failure-lab-server-")
    try:
        if server is None and address is None:
            own_server = server = start_dev_server(
                port=free_port(), ephemeral=True, headless=True, log_path=Path(logs.name) / "server.log"
            )
            progress(f"server {server.pid} started at {server.address} (in memory, stopped at the end)")
        target = as_target(server.address, server.namespace) if server is not None else as_target(address, namespace)
        client = await connect(target)
        lab = Lab(client, app_dir, address=target, server=server, options=options, progress=progress)
        return [await lab.run(name) for name in EXPERIMENTS if name in experiments]
    finally:
        if lab is not None:
            lab.close()
        if own_server is not None:
            own_server.stop()
            progress(f"server {own_server.pid} stopped")
        logs.cleanup()


def check_histories_dir(directory: Path) -> Path:
    """Make sure histories can be written to ``directory`` (created if missing), before anything runs.

    Raises :class:`BadInputError` with one line otherwise, so that a typo or a
    read-only folder is found in a second, not after the whole simulation.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".grader-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise BadInputError(f"cannot write histories to {directory}: {err.strerror or err}; "
                            "choose another folder with --save-histories") from None
    return directory


def save_histories(runs: Iterable[ExperimentRun], directory: Path) -> list[Path]:
    """Write each run's history to ``directory/<experiment>.json``; return the files written.

    Each file is written to a new temporary file in ``directory`` and renamed
    over the final name: a symlink planted there is replaced, never followed,
    so no file elsewhere is overwritten, and a reader never sees half a file.
    """
    check_histories_dir(directory)
    written = []
    for run in runs:
        if run.history is None:
            continue
        path = directory / f"{run.experiment}.json"
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{run.experiment}-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(run.history, indent=2) + "\n")
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a history is not a secret
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        written.append(path)
    return written


# -- words ------------------------------------------------------------------------


def failure_text(failure: Failure) -> str:
    """A failure in a few words: ``ValueError: This deposit has failed.`` or ``timeout START_TO_CLOSE``."""
    info = classify_failure(MessageToDict(failure))
    return info.describe() if info else "no failure recorded"


def _worker(identity: str) -> str:
    pid, _, _host = identity.partition("@")
    return f"worker {pid}" if pid.isdigit() else identity or "unknown worker"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _duration(desc: WorkflowExecutionDescription) -> float:
    end = desc.close_time or datetime.now(timezone.utc)
    return (end - desc.start_time).total_seconds()


def _activity_index(events: list[HistoryEvent]) -> tuple[dict[int, str], dict[int, HistoryEvent]]:
    """Activity type and last ActivityTaskStarted by scheduled event id (only Scheduled names the type)."""
    names: dict[int, str] = {}
    started: dict[int, HistoryEvent] = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[e.activity_task_started_event_attributes.scheduled_event_id] = e
    return names, started


def _closed_activity(event: HistoryEvent) -> int | None:
    """The scheduled event id an activity's closing event refers to, else None."""
    for attrs in ("activity_task_completed_event_attributes", "activity_task_failed_event_attributes",
                  "activity_task_timed_out_event_attributes", "activity_task_canceled_event_attributes"):
        if event.HasField(attrs):
            return getattr(event, attrs).scheduled_event_id
    return None


def _event_line(event: HistoryEvent, names: dict[int, str], started: dict[int, HistoryEvent]) -> str | None:
    """A progress line for a history event worth telling, else None."""
    t = event.event_type
    sched = _closed_activity(event)
    if sched is not None:
        name = names.get(sched, "activity")
        start = started.get(sched)
        how = ""
        if start is not None:
            attrs = start.activity_task_started_event_attributes
            how = f" on attempt {attrs.attempt} ({_worker(attrs.identity)})"
        if t == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            return f"{name} completed{how}"
        if t == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs = event.activity_task_failed_event_attributes
            return f"{name} failed for good{how}: {failure_text(attrs.failure)}"
        if t == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            return f"{name} timed out for good{how}"
        return f"{name} canceled"
    if t == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        kind = event.workflow_task_timed_out_event_attributes.timeout_type
        if kind == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
            return ("workflow task timed out on the sticky queue of a worker that is gone; "
                    "it moves to the normal task queue")
        return f"workflow task timed out ({TimeoutType.Name(kind).removeprefix('TIMEOUT_TYPE_')})"
    if t == EventType.EVENT_TYPE_TIMER_STARTED:
        seconds = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        return f"workflow timer started ({seconds:g} s)"
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        return "cancel requested"
    return None
