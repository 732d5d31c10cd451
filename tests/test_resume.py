"""`grader batch --resume`: a killed batch continues where it stopped and ends with a clean run's gradebook.

The in-process tests interrupt a batch after some learners (an exception
from its ``on_result`` hook, as Ctrl+C would) and check that the resumed
batch grades exactly the others. The slow test kills a real `grader batch`
process with SIGKILL half-way and compares the resumed gradebook with a
clean run's, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom import batch_files
from grader.classroom.progress import Progress
from grader.classroom.resume import RESUME_DIR, SPOOL_NAME
from grader.cli import cli

from events import own_timings as shifted_timings

GOLDENS = Path(__file__).parent / "goldens"
SCENARIOS = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund", "server-paused", "no-failure")


def make_class(root: Path, learners: int, *, own_workers: bool = False, own_timings: bool = False) -> Path:
    """A submissions folder: one folder per learner, two goldens each, every copy with its own run id.

    Every learner's runs share the goldens' worker processes (cross-talk: each
    learner is graded again once the class is read), unless ``own_workers``:
    then only every 25th learner does, the others run workers of their own.
    The copies share the goldens' timings (copied runs, also graded again)
    unless ``own_timings``.
    """
    folder = root / "download"
    docs = [(name, (GOLDENS / f"{name}.json").read_text()) for name in SCENARIOS]
    for i in range(learners):
        mine = folder / f"learner{i:04d}"
        mine.mkdir(parents=True)
        for k in range(2):
            name, text = docs[(i + k) % len(docs)]
            if own_timings:
                text = json.dumps(shifted_timings(json.loads(text), i * 2 + k + 1))
            run_id = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]["originalExecutionRunId"]
            text = text.replace(run_id, str(uuid.uuid4()))
            if own_workers and i % 25:
                text = text.replace("@worker-host", f"@host-{i}")
            (mine / f"{name}.json").write_text(text)
    return folder


def outputs(out: Path) -> dict[str, bytes]:
    """Every file a batch leaves in ``out`` that a person reads, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


class Interrupt(Exception):
    """Stands in for Ctrl+C in the middle of a batch."""


def _interrupted(download: Path, out: Path, after: int, roster: Path | None = None) -> list[str]:
    graded: list[str] = []

    def stop_after(result) -> None:
        graded.append(result.learner)
        if len(graded) == after:
            raise Interrupt

    with pytest.raises(Interrupt):
        batch_files(download, out, on_result=stop_after, roster=roster)
    return graded


def test_a_resumed_batch_grades_only_the_rest_and_writes_the_clean_gradebook(tmp_path: Path):
    download = make_class(tmp_path, 40)
    batch_files(download, tmp_path / "clean")
    first = _interrupted(download, tmp_path / "out", after=15)
    assert (tmp_path / "out" / RESUME_DIR / SPOOL_NAME).exists()
    assert not (tmp_path / "out" / "gradebook.json").exists()
    second: list[str] = []
    result = batch_files(download, tmp_path / "out", resume=True, on_result=lambda r: second.append(r.learner))
    assert result.counts["graded"] == 40
    assert not set(first) & set(second) and len(first) + len(second) == 40
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")
    assert not (tmp_path / "out" / RESUME_DIR).exists()  # the spool goes once the gradebook is in place


def test_without_resume_an_interrupted_batch_is_started_again_and_says_so(tmp_path: Path):
    download = make_class(tmp_path, 12)
    _interrupted(download, tmp_path / "out", after=5)
    graded: list[str] = []
    lines: list[str] = []
    stream = type("S", (), {"write": lambda self, t: lines.append(t), "flush": lambda self: None})()
    batch_files(download, tmp_path / "out", on_result=lambda r: graded.append(r.learner),
                progress=Progress(stream=stream))
    assert len(graded) == 12
    assert any("held an interrupted batch (5 learners graded): starting again" in line for line in lines)


def test_resume_with_other_arguments_is_refused_and_nothing_is_lost(tmp_path: Path):
    download = make_class(tmp_path, 10)
    _interrupted(download, tmp_path / "out", after=4)
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(tmp_path / "out"),
                                      "--resume", "--no-replay", "-q"])
    assert result.exit_code == 2
    assert "run with other arguments" in result.stderr and "Traceback" not in result.stderr
    held = sqlite3.connect(tmp_path / "out" / RESUME_DIR / SPOOL_NAME)
    assert held.execute("SELECT COUNT(*) FROM learners").fetchone()[0] == 4


def test_resume_with_nothing_to_resume_grades_the_whole_class(tmp_path: Path):
    download = make_class(tmp_path, 6)
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(tmp_path / "out"),
                                      "--resume"])
    assert result.exit_code == 0, result.output
    assert "--resume: no interrupted batch in" in result.stderr
    assert "Graded 6 learners" in result.stdout


def test_progress_counts_resumed_learners_and_estimates_from_this_session():
    lines: list[str] = []
    stream = type("S", (), {"write": lambda self, t: lines.append(t), "flush": lambda self: None})()
    progress = Progress(stream=stream)
    progress.start(100, resumed=60)
    assert lines[0] == "grader: grading 100 learners (60 graded before the interruption, 40 to go)\n"
    assert "60/100 learners (60%)" in progress.line() and "ETA ?" in progress.line()
    time.sleep(0.05)
    progress.advance(10)
    line = progress.line()
    assert "70/100 learners (70%)" in line and "ETA ?" not in line


@pytest.mark.slow
def _kill_once_spooled(command: list[str], out: Path, at_least: int) -> int:
    """Start ``command`` (a batch into ``out``), SIGKILL it once its spool holds ``at_least`` learners; how many it held."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    spool = out / RESUME_DIR / SPOOL_NAME
    held = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
            held = db.execute("SELECT COUNT(*) FROM learners").fetchone()[0]
            db.close()
        except sqlite3.Error:
            held = 0
        if held >= at_least:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return held


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_batch_killed_with_sigkill_resumes_to_the_clean_run_gradebook(tmp_path: Path, jobs: str):
    """A real `grader batch` process, SIGKILLed once it has spooled some learners, then `--resume`.

    With two jobs the grading processes write most feedback files themselves:
    those the killed batch wrote go with its staging folder, and the resumed
    batch still ends with every learner's feedback, as the clean run wrote it.
    """
    # Large enough that a batch spools over several commits (COMMIT_SECONDS) before it ends: with 300
    # learners, one process graded the whole first pass before its first commit, and the poll below
    # saw 0, then all 300.
    learners = 1200
    download = make_class(tmp_path, learners, own_workers=jobs != "1")
    grader = [sys.executable, "-m", "grader", "batch", "--submissions", str(download), "--jobs", jobs]
    clean = subprocess.run([*grader, "-q", "--out", str(tmp_path / "clean")], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    held = _kill_once_spooled([*grader, "-q", "--out", str(tmp_path / "out")], tmp_path / "out", 30)
    assert 30 <= held < learners, f"the batch had {held} learners spooled when killed"
    assert not (tmp_path / "out" / "gradebook.json").exists()
    resumed = subprocess.run([*grader, "--out", str(tmp_path / "out"), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    before = int(resumed.stderr.split("(")[1].split(" graded before the interruption")[0])
    assert before >= held  # nothing it had finished was graded again
    assert f"{learners - before} to go" in resumed.stderr and "ETA" in resumed.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")


@pytest.mark.slow
def test_a_spool_that_lost_its_reports_is_one_line_and_a_fresh_batch_still_grades(tmp_path: Path):
    """The grading processes keep the reports beside the spool; with those files gone, --resume says so.

    Nothing is written in their place: exit 2 with one line that says to
    grade again without --resume, which then works.
    """
    # Runs of their own (no copies, no cross-talk) but every 25th: the final pass regrades only those.
    download = make_class(tmp_path, 1200, own_workers=True, own_timings=True)
    grader = [sys.executable, "-m", "grader", "batch", "--submissions", str(download), "--jobs", "2", "-q",
              "--out", str(tmp_path / "out")]
    held = _kill_once_spooled(grader, tmp_path / "out", 1)
    kept = sorted((tmp_path / "out" / RESUME_DIR).glob("reports-*"))
    assert held and kept, "the batch was killed before a grading process kept a report"
    for path in kept:
        path.unlink()
    resumed = subprocess.run([*grader, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 2, resumed.stderr
    assert resumed.stderr.count("\n") == 1 and "spool is damaged" in resumed.stderr
    assert "without --resume" in resumed.stderr and "Traceback" not in resumed.stderr
    assert not (tmp_path / "out" / "gradebook.json").exists()
    again = subprocess.run(grader, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert len(json.loads((tmp_path / "out" / "gradebook.json").read_text())["learners"]) == 1200


def test_reports_kept_by_grading_processes_are_copied_whole_with_or_without_copy_file_range(
        tmp_path: Path, monkeypatch):
    """gradebook.json gets each report a :class:`ReportFile` kept, the same bytes whether the kernel copies
    them or, on a file system that refuses ``copy_file_range``, they are read and written."""
    import errno

    from grader.classroom.gradebook import Gradebook, Spooled
    from grader.classroom.kept import ReportFile
    from grader.engine.rubric import load_rubric
    from grader.errors import BadInputError

    reports = [json.dumps({"n": i, "text": "\u00e9\u2713" * (i * 40000)}, ensure_ascii=False) for i in range(6)]

    def write(out: Path, *, lose: bool = False) -> bytes:
        with Gradebook(out, load_rubric(), roster_columns=[], source="test") as book:
            kept = ReportFile(book.reports_folder)
            for i, text in enumerate(reports):
                row = Spooled(i, f"l{i}", "graded", 0.0, 30.0, {}, [], {}, None if i % 2 else text, "")
                if i % 2:  # every other one as a grading process leaves it
                    row.report_at = kept.add(text)
                book.add(row, [])
            kept.close()
            if lose:
                (book.reports_folder / kept.name).unlink()
            book.finish()
        return (out / "gradebook.json").read_bytes()

    by_kernel = write(tmp_path / "kernel")
    learners = json.loads(by_kernel)["learners"]
    assert [entry["report"] for entry in learners] == [json.loads(text) for text in reports]

    def refused(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
    assert write(tmp_path / "by-hand") == by_kernel
    with pytest.raises(BadInputError, match="spool is damaged"):
        write(tmp_path / "lost", lose=True)
    assert not (tmp_path / "lost" / "gradebook.json").exists()


@pytest.mark.slow
async def test_a_live_batch_resumes_where_it_stopped(dev_server, client, tmp_path: Path):
    """Live: the runs are listed again on resume, and only the learners not yet graded are read."""
    from grader.classroom import batch_live

    tag = uuid.uuid4().hex[:6]
    names = [f"r{tag}{i}" for i in range(6)]
    for name in names:
        handle = await client.start_workflow(
            "MoneyTransfer", {"amount": 1, "source_account": "85-150", "target_account": "43-812",
                              "reference_id": name}, id=f"{name}-transfer-1", task_queue=f"idle-{tag}")
        await handle.terminate()  # closed, so every read is one call
    roster = tmp_path / "roster.csv"
    roster.write_text("learner\n" + "\n".join(names) + "\n")
    for _ in range(100):  # visibility may trail the last close by a moment
        seen = {e.id async for e in client.list_workflows(f"WorkflowId STARTS_WITH 'r{tag}'")}
        if len(seen) == len(names):
            break
        await asyncio.sleep(0.1)
    await batch_live(tmp_path / "clean", dev_server.address, roster=roster)
    first: list[str] = []

    def stop_after_two(result) -> None:
        first.append(result.learner)
        if len(first) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        await batch_live(tmp_path / "out", dev_server.address, roster=roster, concurrency=1,
                         on_result=stop_after_two)
    second: list[str] = []
    result = await batch_live(tmp_path / "out", dev_server.address, roster=roster, resume=True,
                              on_result=lambda r: second.append(r.learner))
    assert result.counts["graded"] == 6
    assert sorted(first + second) == sorted(names) and not set(first) & set(second)
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")


def test_shards_split_a_class_into_parts_that_make_up_the_whole_gradebook(tmp_path: Path):
    """--shard K/N on N machines: each learner in exactly one part, graded as in the whole class."""
    import csv

    download = make_class(tmp_path, 24)
    batch_files(download, tmp_path / "whole")

    def rows(out: Path) -> list[list[str]]:
        with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))

    whole = rows(tmp_path / "whole")
    parts = []
    for k in (1, 2, 3):
        result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out",
                                          str(tmp_path / f"part{k}"), "--shard", f"{k}/3", "-q"])
        assert result.exit_code == 0, result.output
        part = rows(tmp_path / f"part{k}")
        assert part[0] == whole[0]
        parts += part[1:]
    # Every learner in exactly one part, with the same status. (Points may differ where a rule compares
    # learners with each other, such as copied runs: each part sees only its own learners; README.)
    assert sorted(row[:2] for row in parts) == sorted(row[:2] for row in whole[1:])
    assert all(len(rows(tmp_path / f"part{k}")) > 1 for k in (1, 2, 3))
    bad = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(tmp_path / "x"),
                                   "--shard", "4/3"])
    assert bad.exit_code == 2 and "give K/N" in bad.stderr and "Traceback" not in bad.stderr
