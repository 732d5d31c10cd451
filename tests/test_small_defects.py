"""The smaller defects of issue 10, each with a real process, a real server or a real file.

- `grader server` restarts on its port at once after being killed (SIGKILL);
- `grader simulate --address` ends the workflow it started when it is
  interrupted (SIGINT, SIGTERM), and says so;
- `--save-histories` refuses an unwritable folder before anything runs, and
  never writes through a symlink planted in the folder;
- rubric points must be finite numbers, and a check may appear once per experiment.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from grader.sources.connect import connect
from grader.errors import EXIT_BAD_INPUT, RubricError
from grader.engine.rubric import load_rubric, rubric_from_data, rubrics_dir
from grader.lab.server import DevServer, free_port, port_is_free

GRADER = [sys.executable, "-m", "grader"]


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    """Lines of ``proc``'s stdout up to the one holding ``needle``."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not printed; got {''.join(seen)!r} and stderr {proc.stderr.read()!r}")


# --- grader server after kill -9 ------------------------------------------------


def _start_server(port: int, ui_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(GRADER + ["server", "--port", str(port), "--ui-port", str(ui_port), "--ephemeral"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
async def test_grader_server_restarts_at_once_after_sigkill():
    port, ui_port = free_port(), free_port()
    first = _start_server(port, ui_port)
    try:
        _read_until(first, "Workflows kept")
        # Real client connections: closing them from the server side leaves
        # TIME_WAIT entries on the server's port, which tripped the old probe.
        client = await connect(f"localhost:{port}")
        await client.count_workflows()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    second = _start_server(port, ui_port)
    try:
        out = _read_until(second, "Workflows kept")
        assert f"localhost:{port}" in out
        client = await connect(f"localhost:{port}")
        assert await client.count_workflows() is not None
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=30) == 0
    assert "already in use" not in second.stderr.read()


def test_a_port_in_time_wait_is_free_but_a_listening_one_is_not():
    import socket

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        peer = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the listening side closes first: its port enters TIME_WAIT
        peer.close()
    assert port_is_free(port)


# --- simulate interrupted -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_interrupted_simulate_terminates_its_workflow(dev_server: DevServer, tmp_path: Path, sig: int):
    proc = subprocess.Popen(
        GRADER + ["simulate", "--address", dev_server.address, "--experiment", "live-fix",
                  "--latency", "2", "--failed-attempts", "20", "--wait-limit", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    workflow_id = None
    lines = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "transfer sim-live-fix-" in line:
                workflow_id = line.split("transfer ", 1)[1].split()[0]
            if workflow_id and "attempt 2" in line:  # mid-run: the deposit is failing and retrying
                break
        assert workflow_id, "".join(lines)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines) + err
    assert proc.returncode == 130, err
    assert f"terminated workflow {workflow_id}" in err
    assert "Traceback" not in err
    client = await connect(dev_server.address)
    desc = await client.get_workflow_handle(workflow_id).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED


# --- --save-histories -----------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_unwritable_save_histories_stops_before_anything_runs(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    proc = subprocess.run(GRADER + ["simulate", "--save-histories", str(locked / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write histories" in lines[0], proc.stderr
    assert "server" not in proc.stderr and proc.stdout == ""  # no server, no worker was started


def test_a_save_histories_path_that_is_a_file_stops_before_anything_runs(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run(GRADER + ["simulate", "--save-histories", str(blocker)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write histories" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""  # nothing ran


def test_save_histories_never_writes_through_a_symlink(tmp_path: Path):
    from grader.lab.simulate import ExperimentRun, save_histories

    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "live-fix.json").symlink_to(target)
    history = {"events": [{"eventId": "1"}]}
    written = save_histories([ExperimentRun("live-fix", True, "COMPLETED", history=history)], out)
    assert target.read_text() == "keep me"
    assert written == [out / "live-fix.json"]
    assert not (out / "live-fix.json").is_symlink()
    assert json.loads((out / "live-fix.json").read_text()) == history


def test_the_folder_check_makes_a_missing_folder(tmp_path: Path):
    from grader.lab.simulate import check_histories_dir

    check_histories_dir(tmp_path / "new" / "deeper")
    assert (tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []  # its probe file is gone


# --- rubric numbers and duplicate checks ---------------------------------------


def _default_rubric() -> dict:
    return json.loads((rubrics_dir() / "failure-simulation.json").read_text())


@pytest.mark.parametrize("points", [math.nan, math.inf, -math.inf])
def test_rubric_points_must_be_finite(points: float):
    data = _default_rubric()
    data["experiments"][0]["checks"][1]["points"] = points
    with pytest.raises(RubricError, match="experiments/0/checks/1/points"):
        rubric_from_data(data)


@pytest.mark.parametrize("text", ["NaN", "Infinity"])
def test_a_json_rubric_with_nan_is_refused_on_the_command_line(tmp_path: Path, text: str):
    raw = (rubrics_dir() / "failure-simulation.json").read_text()
    path = tmp_path / "r.json"
    path.write_text(raw.replace('"crash-recovery.worker-replaced", "points": 5',
                                f'"crash-recovery.worker-replaced", "points": {text}'))
    proc = subprocess.run(GRADER + ["check", "--rubric", str(path), "--history",
                                    str(Path(__file__).parent / "goldens" / "no-failure.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    assert "points" in proc.stderr and "finite" in proc.stderr and "Traceback" not in proc.stderr
    assert "nan/nan" not in proc.stdout.lower()


def test_a_toml_rubric_with_nan_is_refused(tmp_path: Path):
    path = tmp_path / "r.toml"
    path.write_text('id = "r"\nversion = "1"\n[[experiments]]\nid = "crash-recovery"\n'
                    '[[experiments.checks]]\nid = "crash-recovery.completed"\npoints = nan\n')
    with pytest.raises(RubricError, match="points.*finite"):
        load_rubric(path)


def test_a_check_may_appear_once_per_experiment():
    data = _default_rubric()
    checks = data["experiments"][0]["checks"]
    checks.append(dict(checks[1]))
    with pytest.raises(RubricError, match="crash-recovery.worker-replaced.*twice"):
        rubric_from_data(data)


def test_the_bundled_rubric_still_loads():
    rubric = load_rubric()
    assert all(math.isfinite(c.points) for e in rubric.experiments for c in e.checks)
