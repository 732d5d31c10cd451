"""``grader batch --out DIR`` under faults: all or nothing, one batch at a time, a full disk, kill -9.

Real processes and real signals: a second process holding DIR's lock, a
batch run under a file-size limit (the way a full disk looks to a process),
and a batch killed with SIGKILL and SIGTERM while its grading processes work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom import batch_files
from grader.classroom.gradebook import gradebook_validator
from grader.cli import cli

GOLDENS = Path(__file__).parent / "goldens"


def _class(root: Path, learners: int, golden: str = "live-fix") -> Path:
    root.mkdir(parents=True)
    data = (GOLDENS / f"{golden}.json").read_bytes()
    for i in range(learners):
        (root / f"l{i:04d}").mkdir()
        (root / f"l{i:04d}" / "run.json").write_bytes(data)
    return root


def _agrees(out: Path) -> dict:
    """gradebook.json, checked against its schema and against the feedback folder beside it."""
    document = json.loads((out / "gradebook.json").read_text())
    assert not list(gradebook_validator().iter_errors(document))
    named = sorted(entry["feedback"].split("/", 1)[1] for entry in document["learners"])
    assert sorted(p.name for p in (out / "feedback").iterdir()) == named
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging, no spool
    return document


def _batch(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader", "batch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_second_batch_on_the_same_out_is_refused(tmp_path: Path):
    subs = _class(tmp_path / "subs", 2)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out)!r}, os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        outcome = CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(subs),
                                           "--out", str(out)])
    finally:
        holder.kill()
        holder.wait()
    assert outcome.exit_code == 5
    assert outcome.stderr == (f"grader: error: --out {out}: another grader batch is writing there now: wait "
                              "for it to finish, or choose another --out\n")
    assert list(out.iterdir()) == []
    # Once the other one is gone, DIR is free again.
    assert CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(subs),
                                    "--out", str(out)]).exit_code == 0


def test_a_full_disk_is_one_line_and_exit_4_and_the_old_gradebook_stays(tmp_path: Path):
    subs = _class(tmp_path / "subs", 3)
    out = tmp_path / "out"
    batch_files(subs, out, jobs=1)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert not (out / ".grader-resume").exists()
    for i in range(3, 40):
        shutil.copytree(subs / "l0000", subs / f"l{i:04d}")
    # A process over its file-size limit gets EFBIG on the write that crosses it, as on a full disk.
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024)); "
    done = subprocess.run([sys.executable, "-c", limit + "from grader.__main__ import main; main()", "batch",
                           "-q", "--no-replay", "--submissions", str(subs), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"grader: error: --out {out}: ")
    assert done.stderr.endswith("free some space or choose another --out (nothing there was replaced)\n")
    # The learners graded before the disk filled stay in the --resume spool, for a resume once there is room.
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".grader-resume" not in p.parts} \
        == before
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".grader-resume"]


def test_a_grading_process_that_fills_the_disk_is_one_line_and_exit_4(tmp_path: Path):
    """The grading processes write feedback and keep reports beside the spool: their full disk reads as the parent's."""
    subs = _class(tmp_path / "subs", 150)  # enough for two grading processes
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024)); "
    done = subprocess.run([sys.executable, "-c", limit + "from grader.__main__ import main; main()", "batch",
                           "-q", "--jobs", "2", "--submissions", str(subs), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "free some space or choose another --out" in done.stderr
    assert not (tmp_path / "out" / "gradebook.json").exists()


def test_killed_between_the_commit_mark_and_the_renames_the_next_batch_finishes_them(tmp_path: Path, monkeypatch):
    """The staging folder is committed, then the process dies (here: the renames fail): DIR is completed later."""
    from grader.classroom import gradebook

    subs = _class(tmp_path / "subs", 3)
    out = tmp_path / "out"
    batch_files(subs, out, jobs=1)
    shutil.copy(GOLDENS / "no-failure.json", subs / "l0001" / "more.json")
    (subs / "late").mkdir()
    shutil.copy(GOLDENS / "no-failure.json", subs / "late" / "run.json")
    real_replace = os.replace

    def die(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(gradebook.os, "replace", die)
    with pytest.raises(OSError):
        batch_files(subs, out, jobs=1)
    # Half-way: the new feedback folder is in place, the gradebook files are not yet.
    assert (out / "feedback" / "late.md").exists()
    assert "\nlate," not in (out / "gradebook.csv").read_text()  # no row for the learner named late yet
    monkeypatch.setattr(gradebook.os, "replace", real_replace)
    gradebook.recover(out)  # what the next batch on DIR does first, with its lock held
    document = _agrees(out)
    assert [e["learner"] for e in document["learners"]] == ["l0000", "l0001", "l0002", "late"]


def test_the_instructors_own_files_in_feedback_survive_the_swap(tmp_path: Path):
    subs = _class(tmp_path / "subs", 2)
    out = tmp_path / "out"
    batch_files(subs, out, jobs=1)
    (out / "feedback" / "notes.txt").write_text("mine\n")
    batch_files(subs, out, jobs=1)
    assert (out / "feedback" / "notes.txt").read_text() == "mine\n"


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found |= {int(c) for c in text.split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_grading_processes_die_with_a_killed_batch(tmp_path: Path, sig: int):
    subs = _class(tmp_path / "subs", 1500)
    out = tmp_path / "out"
    process = _batch("--submissions", str(subs), "--out", str(out), "--jobs", "2")
    try:
        assert process.stderr.readline().startswith("grader: grading 1500 learners")
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = _children(process.pid)
            time.sleep(0.05)
        assert len(workers) == 2, "the pool never started"
        os.kill(process.pid, sig)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], "grading processes outlived the batch"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if sig == signal.SIGTERM:
        assert process.returncode == 130
        assert process.stderr.read().strip().splitlines()[-1] == "grader: interrupted"
        # Its staging folder removed on the way out; what it had graded stays for `--resume`.
        assert [p.name for p in out.iterdir()] == [".grader-resume"]
    else:
        assert process.returncode == -signal.SIGKILL
        assert [p.name for p in out.iterdir() if p.name.startswith(".staging-")]  # nobody left to clean
        (subs / "l0000").rename(subs / "zz")  # a smaller class for the next batch
        for extra in list(subs.iterdir())[20:]:
            shutil.rmtree(extra)
        assert CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(subs),
                                        "--out", str(out)]).exit_code == 0
        _agrees(out)  # the next batch cleared what the killed one left


@pytest.mark.slow
def test_the_sdk_never_writes_to_stdout_when_the_server_goes_away(tmp_path: Path):
    """A client the grader made, its server killed under it: the SDK's retry warnings go to stderr."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import asyncio\n"
        "from grader.sources.connect import connect\n"
        "from grader.lab.server import free_port, start_dev_server\n"
        "async def main():\n"
        "    with start_dev_server(port=free_port(), ephemeral=True, headless=True) as server:\n"
        "        client = await connect(server.address)\n"
        "    for _ in range(2):  # the server is gone: the SDK retries, and says so\n"
        "        try:\n"
        "            await asyncio.wait_for(client.count_workflows(), 3)\n"
        "        except Exception:\n"
        "            pass\n"
        "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "grader: sdk: WARNING" in done.stderr and "retried" in done.stderr


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 256 KiB file system (tmpfs), where this machine lets the tests mount one (root, Linux)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the file-size-limit test covers the same path")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_really_full_disk_is_one_line_and_exit_4(tmp_path: Path, small_disk: Path):
    subs = _class(tmp_path / "subs", 40)
    done = subprocess.run([sys.executable, "-m", "grader", "batch", "-q", "--no-replay", "--submissions", str(subs),
                           "--out", str(small_disk / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "free some space or choose another --out" in done.stderr
    assert not (small_disk / "out" / "gradebook.json").exists()
    assert not [p for p in (small_disk / "out").iterdir() if p.name.startswith(".staging-")]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc (Linux)")
def test_a_grading_process_killed_mid_batch_costs_no_learner_their_grade(tmp_path: Path):
    """The kernel's OOM killer or a stray kill -9 takes one grading process: its learners are graded again."""
    subs = _class(tmp_path / "subs", 800)
    out = tmp_path / "out"
    process = _batch("--submissions", str(subs), "--out", str(out), "--jobs", "2", "--format", "json",
                     "--no-replay")
    try:
        assert process.stderr.readline().startswith("grader: grading 800 learners")
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = _children(process.pid)
            time.sleep(0.05)
        assert len(workers) == 2, "the pool never started"
        os.kill(min(workers), signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["counts"]["graded"] == 800
    document = _agrees(out)
    assert all(entry["status"] == "graded" for entry in document["learners"])


def test_an_interrupt_while_forking_waits_for_the_fork_then_ends_the_batch():
    """os.fork runs Python callbacks (logging takes its lock before and releases it after); a
    KeyboardInterrupt raised inside one is dropped and leaves the lock taken. The batch's handler holds
    Ctrl+C and SIGTERM back while it forks and raises once the fork is done."""
    import logging

    from grader.interrupts import interrupt, signals_held

    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            interrupt(signal.SIGTERM, None)  # arrives mid-fork: noted, not raised
            with signals_held():  # nested: the outer one decides
                pass
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            logging.getLogger("grader-test").debug("the logging lock is free")
    with pytest.raises(KeyboardInterrupt):
        interrupt(signal.SIGINT, None)  # outside a fork: at once
    with signals_held():
        pass  # nothing arrived: nothing raised
