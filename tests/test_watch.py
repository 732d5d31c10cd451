"""`grader check --watch` against the session's real dev server, with a real worker and real signals."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from temporalio.client import WorkflowFailureError

from grader.lab.app import start_worker, wait_for_poller
from grader.watch import Screen, watch

GOLDENS = Path(__file__).parent / "goldens"


def _lines(stream) -> "queue.Queue[str | None]":
    """Lines of a subprocess's pipe as they come (None at its end), read by a thread."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: "queue.Queue[str | None]", timeout: float) -> str | None:
    return lines.get(timeout=timeout)


def _watch_command(dev_server, learner: str, *extra: str, experiment: str = "crash-recovery") -> list[str]:
    return [sys.executable, "-m", "grader", "check", "--watch", "--interval", "0.5", "--learner", learner,
            "--address", dev_server.address, "--experiment", experiment, *extra]


@pytest.mark.slow
async def test_watch_goes_from_pending_to_pass_when_a_worker_finishes_the_run(
        dev_server, client, fast_settings, solution_dir, tmp_path: Path):
    learner = f"watch{uuid.uuid4().hex[:8]}"  # no "-" inside: it separates the learner id
    # Started on a task queue no worker polls yet: the run waits, pending.
    handle = await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                          "reference_id": uuid.uuid4().hex},
        id=f"{learner}-transfer", task_queue=fast_settings.task_queue)
    # Watched for compensation: the open run shows no experiment yet, so it is pending; a worker
    # whose deposit fails for good (two attempts) then makes it a compensation, which passes.
    watcher = subprocess.Popen(_watch_command(dev_server, learner, experiment="compensation"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    worker = None
    try:
        lines = _lines(watcher.stdout)
        first = await asyncio.to_thread(_next_line, lines, 60)
        assert first and "compensation PENDING" in first and "waiting:" in first, first
        # Nothing changes while no worker runs: no second line.
        with pytest.raises(queue.Empty):
            await asyncio.to_thread(_next_line, lines, 2)

        worker = start_worker(solution_dir, dataclasses.replace(fast_settings, fault="failing-deposit",
                                                                max_attempts=2))
        await wait_for_poller(client, worker)
        with pytest.raises(WorkflowFailureError):  # the refund ran, then the workflow failed: compensation
            await asyncio.wait_for(handle.result(), 60)
        code = await asyncio.to_thread(watcher.wait, 60)
        rest = []
        while (line := lines.get(timeout=5)) is not None:
            rest.append(line)
        assert code == 0, watcher.stderr.read()
        assert rest and "compensation PASS" in rest[-1]
        assert "Traceback" not in watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)
        if worker is not None:
            worker.stop()


@pytest.mark.slow
async def test_ctrl_c_stops_the_watch_cleanly(dev_server, client, fast_settings):
    learner = f"watch{uuid.uuid4().hex[:8]}"  # no "-" inside: it separates the learner id
    await client.start_workflow(
        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                          "reference_id": uuid.uuid4().hex},
        id=f"{learner}-transfer", task_queue=fast_settings.task_queue)
    watcher = subprocess.Popen(_watch_command(dev_server, learner), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = _lines(watcher.stdout)
        first = await asyncio.to_thread(_next_line, lines, 60)
        assert first and "PENDING" in first
        watcher.send_signal(signal.SIGINT)  # what Ctrl+C sends
        code = await asyncio.to_thread(watcher.wait, 30)
        err = watcher.stderr.read()
        assert code == 130
        assert err.strip().splitlines()[-1] == "grader: interrupted"
        assert "Traceback" not in err
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)


def test_no_server_at_the_start_is_exit_3():
    """In-process: a subprocess would also meet a crash at interpreter exit after any failed connect
    (an SDK thread outliving Python; seen on main with plain `grader check` too), which is not this test's subject."""
    from click.testing import CliRunner

    from grader.cli import cli
    from grader.lab.server import free_port

    result = CliRunner().invoke(cli, ["check", "--watch", "--address", f"localhost:{free_port()}"])
    assert result.exit_code == 3 and "no Temporal server" in result.stderr
    assert result.stdout == ""


def test_watch_rejects_other_formats():
    done = subprocess.run([sys.executable, "-m", "grader", "check", "--watch", "--format", "json", "--history",
                           str(GOLDENS / "live-fix.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--watch" in done.stderr


async def test_terminal_block_is_redrawn_in_place_only_on_change(tmp_path: Path):
    """On a terminal the previous block is cleared (cursor up, clear to end) before the new one."""
    from grader.api import grade_loaded
    from grader.sources.files import read_files

    history = tmp_path / "run.json"
    history.write_bytes((GOLDENS / "running.json").read_bytes())
    out = io.StringIO()
    polls = 0

    async def poll():
        nonlocal polls
        polls += 1
        if polls == 4:  # the run finished (as a crash recovery) between two reads
            history.write_bytes((GOLDENS / "sigkill-during-deposit.json").read_bytes())
        return grade_loaded(read_files([history]), experiments=["crash-recovery"])

    report = await watch(poll, what="a test file", interval=0.05, out=out, tty=True)
    assert report.passed and polls == 4
    text = out.getvalue()
    first_block, _, second_block = text.partition("\x1b[")
    assert text.count("\x1b[J") == 1, "three identical reads draw once; the change draws once more"
    assert "PENDING" in first_block and "Ctrl+C to stop" in first_block
    # Back to the first line of the previous block, clear to the end, draw the new one.
    assert second_block.startswith(f"{first_block.count(chr(10))}F\x1b[J")
    assert "PASS" in second_block and "Every experiment asked for passes." in second_block


def test_pipe_gets_one_line_per_change():
    out = io.StringIO()
    screen = Screen(out, tty=False)
    screen.show("block\n", "crash-recovery PENDING 0/10")
    screen.show("block 2\n", "crash-recovery PASS 10/10")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].endswith("crash-recovery PASS 10/10") and "\x1b" not in out.getvalue()


@pytest.mark.slow
async def test_watch_waits_through_nothing_found_with_one_line(dev_server, client, fast_settings):
    """Before the learner starts a transfer there is nothing to grade: one line, and the watch goes on."""
    learner = f"watch{uuid.uuid4().hex[:8]}"  # no "-" inside: it separates the learner id
    watcher = subprocess.Popen(_watch_command(dev_server, learner), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = _lines(watcher.stdout)
        first = await asyncio.to_thread(_next_line, lines, 60)
        assert first and f"no MoneyTransfer or PizzaOrderWorkflow workflows for learner {learner}" in first and "still watching" in first
        await client.start_workflow(
            "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                              "reference_id": uuid.uuid4().hex},
            id=f"{learner}-transfer", task_queue=fast_settings.task_queue)
        second = await asyncio.to_thread(_next_line, lines, 60)
        assert second and "crash-recovery PENDING" in second
        assert watcher.poll() is None  # still watching: pending is not the end
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(watcher.wait, 30) == 130
