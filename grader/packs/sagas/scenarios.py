"""``grader simulate --pack sagas``: both experiments performed for real.

- ``saga-rollback``: a worker with the card broken (``PIZZA_FAULT=bad-card``)
  takes an order; the charge is refused for good and the workflow rolls back.
- ``crash-survived``: the same, with slow compensations; the worker is killed
  (SIGKILL by default) as soon as it says a compensation is running, and a new
  worker process finishes the rollback.

Real worker processes started from the app's ``run_worker.py``, a real
signal, a real server (a throwaway in-memory one unless an address is
given). Every wait is bounded and every process started is stopped before
the function returns. ``scripts/record_pack_goldens.py`` records the pack's
golden histories with the same code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from grader import defaults
from grader.errors import BadInputError, GraderError
from grader.lab.processes import spawn, stop_process, tail
from grader.lab.server import free_port, start_dev_server
from grader.lab.simulate import ExperimentRun
from grader.sources.connect import as_target, connect

EXPERIMENTS = ("saga-rollback", "crash-survived")
#: How long each compensation takes in the crash experiment: time for the kill to land inside one.
CRASH_COMPENSATION_SECONDS = 3.0
#: What the app's worker prints when a compensation starts (see its activities.py).
COMPENSATION_LINES = ("Refunding the customer", "Reverting the inventory")


#: The course's test card with its last digit deleted: what the exercise asks learners to do.
BAD_CARD = "424242424242424"


def sample_order(order_number: str, card: str = BAD_CARD) -> dict[str, Any]:
    """The order the app's starter places, as JSON (the app's dataclasses read it back), paid with ``card``."""
    return {
        "order_number": order_number,
        "customer": {"customer_id": 12983, "name": "Maria Garcia", "email": "maria@example.com",
                     "phone": "415-555-7418", "credit_card_number": card},
        "items": [{"description": "Large, with mushrooms and onions", "price": 1500},
                  {"description": "Small, with pepperoni", "price": 1200}],
        "is_delivery": True,
        "address": {"line1": "701 Mission Street", "city": "San Francisco", "postal_code": "94103"},
    }


class _Worker:
    """One worker process of the app, its output in a log file."""

    def __init__(self, app_dir: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.process: subprocess.Popen[bytes] = spawn([sys.executable, "-u", "run_worker.py"], cwd=app_dir, env=env,
                                                      stdout=self._out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def text(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (at once with SIGKILL) and close its log."""
        if sig == signal.SIGKILL and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        else:
            stop_process(self.process, sig=sig, grace=10)
        self._out.close()


async def _until(what: str, test: Callable[[], Any], *, limit: float, worker: _Worker | None = None) -> Any:
    """Poll ``test`` until it returns something true; GraderError naming ``what`` after ``limit`` seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = test()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            raise GraderError(f"the worker exited ({worker.process.returncode}) while waiting for {what}: "
                              f"{tail(worker.log)}")
        await asyncio.sleep(0.1)
    raise GraderError(f"gave up after {limit:g} s waiting for {what}")


async def run_scenarios(app_dir: Path, *, experiments: Sequence[str] = EXPERIMENTS, address: str | None = None,
                        namespace: str = defaults.DEFAULT_NAMESPACE, learner: str = "sim",
                        kill_signal: str = "KILL", wait_limit: float = 60.0, mark: bool = True,
                        progress: Callable[[str], None] = lambda _m: None) -> list[ExperimentRun]:
    """Perform ``experiments`` against the sagas app in ``app_dir``; one :class:`ExperimentRun` each."""
    unknown = sorted(set(experiments) - set(EXPERIMENTS))
    if unknown:
        raise BadInputError(f"unknown experiments {', '.join(unknown)} for pack sagas: choose from "
                            f"{', '.join(EXPERIMENTS)}")
    if not (Path(app_dir) / "run_worker.py").is_file():
        raise BadInputError(f"{app_dir} has no run_worker.py: pass the sagas app's folder")
    sig = getattr(signal, f"SIG{kill_signal.upper().removeprefix('SIG')}", None)
    if sig is None:
        raise BadInputError(f"--signal {kill_signal}: use KILL, INT or TERM")
    logs = tempfile.TemporaryDirectory(prefix="failure-lab-sagas-")
    server = None
    try:
        if address is None:
            server = start_dev_server(port=free_port(), ephemeral=True, headless=True,
                                      log_path=Path(logs.name) / "server.log")
            address = server.address
            progress(f"server {server.pid} started at {address} (in memory, stopped at the end)")
        client = await connect(as_target(address, namespace))
        runs = []
        for name in EXPERIMENTS:
            if name in experiments:
                runs.append(await _perform(name, client, Path(app_dir), address=address, namespace=namespace,
                                           learner=learner, sig=sig, wait_limit=wait_limit, mark=mark,
                                           logs=Path(logs.name), progress=progress))
        return runs
    finally:
        if server is not None:
            server.stop()
            progress(f"server {server.pid} stopped")
        logs.cleanup()


async def _perform(name: str, client: Any, app_dir: Path, *, address: str, namespace: str, learner: str,
                   sig: int, wait_limit: float, mark: bool, logs: Path,
                   progress: Callable[[str], None]) -> ExperimentRun:
    began = time.monotonic()
    queue = f"pizza-tasks-{learner.lower()}-{uuid.uuid4().hex[:8]}"
    crash = name == "crash-survived"
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": namespace, "LEARNER_ID": learner,
           "PIZZA_TASK_QUEUE": queue, "PIZZA_FAULT": "",
           "COMPENSATION_SECONDS": str(CRASH_COMPENSATION_SECONDS if crash else 0.5)}
    for key in ("TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"):
        env.pop(key, None)  # the workers talk to the server chosen here, nothing a shell left behind
    workers = [_Worker(app_dir, env, logs / f"{name}-worker-1.log")]
    progress(f"{name}: worker {workers[0].pid} started")
    workflow_id = f"{learner}-pizza-xd001-{uuid.uuid4().hex[:8]}"
    run = ExperimentRun(name, False, "RUNNING", workflow_id=workflow_id)
    try:
        await _until("the worker to start", lambda: "started on task queue" in workers[0].text(), limit=wait_limit,
                     worker=workers[0])
        memo = {defaults.SIMULATE_MARK: {"tool": "grader simulate", "pack": "sagas", "experiment": name}} \
            if mark else None
        handle = await client.start_workflow("PizzaOrderWorkflow", sample_order("XD001"), id=workflow_id,
                                             task_queue=queue, memo=memo)
        run.run_id = handle.result_run_id or ""
        progress(f"{name}: order started with a broken card number, workflow {workflow_id}")
        if crash:
            line = await _until("a compensation to start",
                                lambda: next((w for w in COMPENSATION_LINES if w in workers[0].text()), None),
                                limit=wait_limit, worker=workers[0])
            progress(f"{name}: '{line}' printed: compensation in flight")
            workers[0].stop(sig)
            progress(f"{name}: SIG{signal.Signals(sig).name.removeprefix('SIG')} sent to worker {workers[0].pid}")
            workers.append(_Worker(app_dir, env, logs / f"{name}-worker-2.log"))
            progress(f"{name}: worker {workers[1].pid} started")
        try:
            await asyncio.wait_for(handle.result(), timeout=wait_limit)
        except asyncio.TimeoutError:
            run.note = f"the workflow was still open after {wait_limit:g} s"
            await handle.terminate("grader simulate gave up waiting")
        except Exception:  # noqa: BLE001 - the rollback ends the workflow FAILED: the expected end
            pass
        description = await handle.describe()
        run.status = description.status.name if description.status else "UNKNOWN"
        if description.close_time and description.start_time:
            run.duration = (description.close_time - description.start_time).total_seconds()
        run.history = (await handle.fetch_history()).to_json_dict()
        run.ok = run.status == "FAILED"
        run.note = run.note or ("the card was refused and the order rolled back"
                                + (", the rollback finished by a new worker" if crash else ""))
        progress(f"{name}: workflow {run.status}")
        return run
    except GraderError as err:
        run.note = str(err)
        try:  # leave no order open on the server
            await client.get_workflow_handle(workflow_id).terminate("grader simulate gave up")
        except Exception:  # noqa: BLE001 - never started, or already closed
            pass
        return run
    finally:
        for worker in workers:
            if worker.process.poll() is None or not worker._out.closed:
                worker.stop()
        run.wall = time.monotonic() - began
