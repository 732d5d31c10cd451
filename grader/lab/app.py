"""A transfer app on disk (``exercise/``, ``solution/`` or a learner's copy) and its worker processes.

The worker is always the app's own ``run_worker.py``, started the way a
learner starts it, so what the grader sees is what the learner would see.
The environment variables set here are the app's fault and speed hooks;
an app that ignores them (the official tutorial app) still runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from grader import defaults
from grader.sources.connect import Target, as_target, isolated_environment
from grader.errors import AppError
from grader.lab.processes import spawn, stop_process, tail

#: Files every transfer app folder has.
APP_FILES = ("run_worker.py", "workflows.py", "activities.py")


def bundled_app(name: str = "solution") -> Path:
    """The packaged ``solution`` or ``exercise`` app folder (see :mod:`grader.resources`)."""
    from grader.resources import data_dir

    path = data_dir(name)
    if not (path / "run_worker.py").exists():
        raise AppError(
            f"the bundled {name} app is missing from this install ({path}): reinstall failure-lab, "
            "or pass the app folder explicitly"
        )
    return path


def validate_app_dir(path: Path) -> Path:
    """Return ``path`` resolved if it looks like a transfer app, else raise :class:`AppError`."""
    path = Path(path)
    if not path.is_dir():
        raise AppError(f"app folder {path} does not exist: pass the folder that holds run_worker.py")
    missing = [f for f in APP_FILES if not (path / f).is_file()]
    if missing:
        raise AppError(
            f"{path} is not a transfer app (missing {', '.join(missing)}): pass the folder "
            "that holds run_worker.py, workflows.py and activities.py"
        )
    text = (path / "workflows.py").read_text(errors="replace")
    if defaults.WORKFLOW_TYPE not in text:
        raise AppError(f"{path / 'workflows.py'} defines no {defaults.WORKFLOW_TYPE} workflow")
    return path.resolve()


@dataclass(frozen=True)
class AppSettings:
    """How a worker of the app is configured through its environment hooks."""

    address: str = defaults.DEFAULT_ADDRESS
    namespace: str = defaults.DEFAULT_NAMESPACE
    task_queue: str = defaults.TASK_QUEUE
    #: Seconds each simulated bank call takes (BANK_LATENCY_SECONDS).
    latency: float | None = None
    #: Fault to inject (BANK_FAULT): "", "failing-deposit" or "closed-account".
    fault: str = ""
    #: Retry limit of the app's policy (TRANSFER_MAX_ATTEMPTS); None keeps the app's default.
    max_attempts: int | None = None
    #: Further hook variables some scenarios use, e.g. (("TRANSFER_PAUSE_SECONDS", "3"),).
    extra_env: tuple[tuple[str, str], ...] = ()
    #: The full connection (TLS, API key) when the server needs more than an address; it wins over
    #: ``address`` and ``namespace``.
    target: Target | None = None

    def hooks(self) -> dict[str, str]:
        """The app's fault and speed hooks that this worker gets (unset ones left out)."""
        found = {"BANK_FAULT": self.fault, "BANK_LATENCY_SECONDS": self.latency,
                 "TRANSFER_MAX_ATTEMPTS": self.max_attempts, **dict(self.extra_env)}
        return {k: str(v) for k, v in found.items() if v not in (None, "")}

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a worker of the app runs with.

        Its connection is spelled out in ``TEMPORAL_*`` variables and nothing
        else: a ``TEMPORAL_PROFILE`` or ``temporal.toml`` of the caller's must not
        send the worker to another server than the one it is graded on.
        """
        target = self.target or as_target(self.address, self.namespace)
        env = isolated_environment(os.environ if base is None else base, target)
        # Workers never name workflows; a LEARNER_ID the app would refuse must not stop them.
        env.pop("LEARNER_ID", None)
        env.update(
            TRANSFER_TASK_QUEUE=self.task_queue,
            BANK_FAULT="",  # a fault set in the caller's shell must not leak into a clean worker
            PYTHONUNBUFFERED="1",
        )
        env.update(self.hooks())
        return env


@dataclass
class WorkerProcess:
    """One running ``run_worker.py`` of an app."""

    process: subprocess.Popen[bytes]
    log_path: Path
    settings: AppSettings
    #: Identity the worker polls with (``pid@host``), once seen by the server.
    identity: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: The same moment by the wall clock, to compare with the server's poller times.
    started_wall: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        """Process id of the worker."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def send(self, sig: int) -> None:
        """Deliver ``sig`` (SIGKILL, SIGINT, SIGTERM ...) to the worker."""
        if self.alive():
            self.process.send_signal(sig)

    def stop(self, *, sig: int = signal.SIGINT, grace: float = 15.0) -> int | None:
        """Stop the worker (Ctrl+C by default), by force after ``grace`` seconds."""
        return stop_process(self.process, sig=sig, grace=grace)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end; its exit code or None."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_worker(app_dir: Path, settings: AppSettings, *, log_dir: Path | None = None) -> WorkerProcess:
    """Start the app's ``run_worker.py`` with ``settings`` as a child process.

    Does not wait for it to poll: see :func:`wait_for_poller`.
    """
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="failure-lab-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="worker-", suffix=".log", dir=log_dir)
    with os.fdopen(fd, "wb") as out:
        process = spawn(
            [sys.executable, "run_worker.py"],
            cwd=app_dir,
            env=settings.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process=process, log_path=Path(name), settings=settings)


async def task_queue_pollers(client: Client, task_queue: str) -> list[str]:
    """Identities currently polling ``task_queue`` for workflow or activity tasks."""
    return [identity for identity, _ in await task_queue_poller_times(client, task_queue)]


async def task_queue_poller_times(client: Client, task_queue: str) -> list[tuple[str, float]]:
    """Each poller of ``task_queue`` (workflow and activity) and when it last polled (Unix seconds)."""
    pollers: list[tuple[str, float]] = []
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=kind,
            )
        )
        pollers += [(p.identity, p.last_access_time.ToSeconds() + p.last_access_time.nanos / 1e9)
                    for p in resp.pollers]
    return pollers


async def wait_for_poller(client: Client, worker: WorkerProcess, *, timeout: float = 30.0) -> str:
    """Wait until ``worker`` polls its task queue; return its identity.

    The server, not the worker's output, says when a worker is ready: that
    works for any app. Raises :class:`AppError` if the worker exits first.
    """
    deadline = time.monotonic() + timeout
    prefix = f"{worker.pid}@"
    while True:
        if not worker.alive():
            raise AppError(
                f"the app's worker exited at start with code {worker.process.returncode}"
                + (f": {tail(worker.log_path, 3)}" if tail(worker.log_path) else "")
            )
        pollers = await task_queue_poller_times(client, worker.settings.task_queue)
        for ident, _ in pollers:
            if ident.startswith(prefix):
                worker.identity = ident
                return ident
        for ident, polled in pollers:
            # An app that sets Worker(identity=...) polls under a name without its pid (and a
            # restarted worker under the name of the one it replaces): a poll that is not
            # another process's pid@host, made after this process started, is this one's.
            pid, at, _ = ident.partition("@")
            if not (at and pid.isdigit()) and polled > worker.started_wall:
                worker.identity = ident
                return ident
        if time.monotonic() > deadline:
            raise AppError(
                f"the app's worker (pid {worker.pid}) did not poll task queue "
                f"{worker.settings.task_queue!r} within {timeout:.0f} s: does run_worker.py "
                "use that task queue?"
            )
        await asyncio.sleep(0.1)
