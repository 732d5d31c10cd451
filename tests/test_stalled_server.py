"""A live batch waits out a stalled server (bounded, with a message) and carries on.

A dedicated dev server (never the session one) is paused for real with
SIGSTOP and resumed with SIGCONT 15 s later: once before the batch even
connects (the grader as a user runs it, a child process), once in the
middle of the reads (the library, with a hook after a few learners). Both
batches finish with every learner graded and say on stderr that they waited
and for how long; neither exits 3.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from grader.classroom import batch_live
from grader.classroom.progress import Progress
from grader.sources.connect import connect
from grader.lab.server import free_port, start_dev_server

STALL = 15.0
LEARNERS = 10


async def _open_runs(address: str) -> None:
    """One open MoneyTransfer run per learner (no worker needed: an open run is graded as pending)."""
    client = await connect(address)
    ids = set()
    for i in range(LEARNERS):
        handle = await client.start_workflow(
            "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                              "reference_id": uuid.uuid4().hex},
            id=f"s{i:02d}-transfer-{uuid.uuid4().hex[:8]}", task_queue=f"idle-{uuid.uuid4().hex[:6]}")
        ids.add(handle.id)
    for _ in range(100):  # visibility may trail the starts by a moment
        if ids <= {e.id async for e in client.list_workflows("WorkflowType = 'MoneyTransfer'")}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the runs never became visible")


def _resume_later(pid: int, done: threading.Event) -> threading.Thread:
    def resume() -> None:
        time.sleep(STALL)
        os.kill(pid, signal.SIGCONT)
        done.set()

    thread = threading.Thread(target=resume, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
async def test_a_server_paused_before_the_batch_connects_is_waited_out(tmp_path: Path):
    server = start_dev_server(port=free_port(), db_path=tmp_path / "temporal.db", headless=True)
    resumed = threading.Event()
    try:
        await _open_runs(server.address)
        os.kill(server.process.pid, signal.SIGSTOP)
        _resume_later(server.process.pid, resumed)
        began = time.monotonic()
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "grader", "batch", "--address", server.address, "--out", str(tmp_path / "out"),
            "--format", "json"], capture_output=True, text=True, timeout=180)
        elapsed = time.monotonic() - began
        assert resumed.is_set()
        assert done.returncode == 0, done.stderr  # not 3: the stall was waited out
        assert "Traceback" not in done.stderr
        import json

        summary = json.loads(done.stdout)
        assert summary["counts"]["graded"] == LEARNERS and summary["counts"]["not-gradable"] == 0
        assert "grader: the server is not answering" in done.stderr and "waiting up to 30 s" in done.stderr
        assert "grader: the server answers again after" in done.stderr and "carrying on" in done.stderr
        assert elapsed >= STALL * 0.9
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@pytest.mark.slow
async def test_a_server_paused_mid_batch_is_waited_out(tmp_path: Path):
    server = start_dev_server(port=free_port(), db_path=tmp_path / "temporal.db", headless=True)
    resumed = threading.Event()
    try:
        await _open_runs(server.address)
        graded = []

        def on_result(result) -> None:
            graded.append(result.learner)
            if len(graded) == 3:  # a few learners in, the server freezes
                os.kill(server.process.pid, signal.SIGSTOP)
                _resume_later(server.process.pid, resumed)

        said = io.StringIO()
        result = await batch_live(tmp_path / "out", server.address, concurrency=1, on_result=on_result,
                                  progress=Progress(stream=said))
        assert resumed.is_set(), "the batch ended before the server was resumed"
        assert result.counts["graded"] == LEARNERS and result.exit_code == 0
        assert result.retried > 0 and result.elapsed > STALL * 0.9
        lines = said.getvalue().splitlines()
        stalled = [line for line in lines if "the server is not answering" in line]
        back = [line for line in lines if "the server answers again after" in line]
        assert stalled and back and lines.index(stalled[0]) < lines.index(back[-1])
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()
