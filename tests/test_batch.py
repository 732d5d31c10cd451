"""`grader batch` against the real dev server and real submissions folders.

The live class is made of real runs of the bundled solution app (real worker
processes): a prefix pair of learners, a learner whose only run is still
open, a roster learner with no runs, a learner with two runs of which only
the second passes compensation, and one who fixes a run between two batches.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from events import own_timings
from grader.lab.app import AppSettings, start_worker, wait_for_poller
from grader.classroom import batch_live
from grader.classroom.gradebook import gradebook_validator
from grader.cli import cli
from grader.sources.connect import connect
from grader.lab.server import free_port, start_dev_server

GOLDENS = Path(__file__).parent / "goldens"
OUTAGE = 12.0
DETAILS = {"source_account": "85-150", "target_account": "43-812", "amount": 1}


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        return {row["learner"]: row for row in csv.DictReader(f)}


def _gradebook(out: Path) -> dict:
    document = json.loads((out / "gradebook.json").read_text())
    errors = list(gradebook_validator().iter_errors(document))
    assert not errors, errors[0].message
    return document


async def _transfer(client, learner: str, task_queue: str, *, wait: bool = True):
    handle = await client.start_workflow(
        "MoneyTransfer", {**DETAILS, "reference_id": uuid.uuid4().hex},
        id=f"{learner}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    if wait:
        try:
            await asyncio.wait_for(handle.result(), 60)
        except asyncio.TimeoutError:
            raise
        except Exception:  # a compensated transfer ends FAILED, which is the point
            pass
    return handle


async def _visible(client, workflow_ids: set[str]) -> None:
    """Wait until visibility lists every one of ``workflow_ids`` (it may trail a close by a moment)."""
    for _ in range(100):
        seen = {e.id async for e in client.list_workflows("WorkflowType = 'MoneyTransfer'")}
        if workflow_ids <= seen:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not listed: {workflow_ids - seen}")


class Workers:
    """Per learner, a clean worker and a worker whose deposits hit a closed account, each on its own queue.

    One worker process per learner and kind, as on a shared server where every
    learner runs their own: a process that did work for two learners is
    cross-talk, and no experiment passes on it (grader.engine.ownership).
    """

    def __init__(self, client, settings: AppSettings, solution_dir: Path) -> None:
        self.client, self.settings, self.solution_dir = client, settings, solution_dir
        self.processes = []
        self.queues: dict[tuple[str, str], str] = {}

    async def queue(self, learner: str, kind: str = "clean") -> str:
        """The task queue of ``learner``'s ``clean`` or ``broken`` worker, started on first use."""
        if (learner, kind) not in self.queues:
            settings = replace(self.settings, task_queue=f"{kind}-{learner}-{uuid.uuid4().hex[:6]}", latency=0.0,
                               fault="closed-account" if kind == "broken" else "")
            worker = start_worker(self.solution_dir, settings)
            self.processes.append(worker)
            await wait_for_poller(self.client, worker)
            self.queues[(learner, kind)] = settings.task_queue
        return self.queues[(learner, kind)]

    def stop(self) -> None:
        for worker in self.processes:
            worker.stop(sig=signal.SIGKILL)


@pytest.fixture(scope="module")
async def klass(dev_server, solution_dir):
    """The live class on the session server; learner ids carry a tag so other tests' runs stay out."""
    client = await connect(dev_server.address, dev_server.namespace)
    tag = uuid.uuid4().hex[:5]
    names = {k: f"{k}{tag}" for k in ("ada", "pat", "carol", "zoe", "dave")}
    names["adam"] = names["ada"] + "m"  # a prefix pair: ada's id is the start of adam's
    settings = AppSettings(address=dev_server.address, namespace=dev_server.namespace)
    workers = Workers(client, settings, solution_dir)
    try:
        runs = {
            "ada": [await _transfer(client, names["ada"], await workers.queue("ada"))],
            "adam": [await _transfer(client, names["adam"], await workers.queue("adam", "broken"))],
            "carol": [await _transfer(client, names["carol"], await workers.queue("carol")),
                      await _transfer(client, names["carol"], await workers.queue("carol", "broken"))],
            "dave": [await _transfer(client, names["dave"], await workers.queue("dave"))],
            # No worker polls this queue: the run stays open, so pat's grade is pending.
            "pat": [await _transfer(client, names["pat"], f"idle-{tag}", wait=False)],
        }
        await _visible(client, {h.id for hs in runs.values() for h in hs})
        yield {"client": client, "names": names, "runs": runs, "workers": workers,
               "address": dev_server.address}
    finally:
        workers.stop()
        await runs["pat"][0].terminate("test over")


def _roster(path: Path, names: dict[str, str]) -> Path:
    order = ["ada", "adam", "pat", "carol", "zoe", "dave"]
    path.write_text("learner,name,email\n" + "".join(
        f"{names[k]},{k.title()} Example,{k}@example.org\n" for k in order))
    return path


@pytest.mark.slow
async def test_live_class_gets_one_row_per_roster_learner(klass, tmp_path: Path):
    names, runs = klass["names"], klass["runs"]
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--address", klass["address"], "--roster",
                                      str(_roster(tmp_path / "roster.csv", names)), "--out", str(out),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"graded": 5, "missing": 1, "not-gradable": 0, "unreadable-files": 0}
    rows = _rows(out)
    assert list(rows) == [names[k] for k in ("ada", "adam", "pat", "carol", "zoe", "dave")]
    ada, adam, pat, carol, zoe = (rows[names[k]] for k in ("ada", "adam", "pat", "carol", "zoe"))
    assert ada["name"] == "Ada Example" and ada["email"] == "ada@example.org"
    # The prefix pair: ada's one clean run is not adam's compensated one, and the other way round.
    # A plain transfer shows no experiment: nothing attempted, nothing failed.
    assert (ada["status"], ada["compensation"], ada["crash-recovery"]) == ("graded", "not-attempted", "not-attempted")
    assert (adam["compensation"], adam["compensation_points"]) == ("pass", "10")
    assert pat["status"] == "graded" and pat["crash-recovery"] == "pending"
    assert (zoe["status"], zoe["score"], zoe["compensation"]) == ("missing", "", "not-attempted")
    assert carol["compensation"] == "pass"

    document = _gradebook(out)
    by_name = {entry["learner"]: entry for entry in document["learners"]}
    ada_workflows = {e["workflow_id"] for e in by_name[names["ada"]]["report"]["integrity"]}
    assert ada_workflows == {runs["ada"][0].id}
    carol_compensation = next(e for e in by_name[names["carol"]]["report"]["experiments"]
                              if e["id"] == "compensation")
    assert carol_compensation["candidates"] == 1  # her clean run shows no experiment: no candidate
    assert carol_compensation["workflow"]["workflow_id"] == runs["carol"][1].id  # the second run passed
    assert by_name[names["zoe"]]["report"] is None and by_name[names["zoe"]]["score"] is None
    assert "no MoneyTransfer workflow" in by_name[names["zoe"]]["problems"][0]
    assert sorted(p.name for p in (out / "feedback").iterdir()) == sorted(f"{n}.md" for n in rows)
    assert "This is not a failed attempt" in (out / "feedback" / f"{names['zoe']}.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no spool or temporary file left


@pytest.mark.slow
async def test_live_class_from_a_canvas_export_writes_the_canvas_import(klass, tmp_path: Path):
    """A Canvas gradebook export as the live roster: SIS Login IDs are the learner ids, scores go back."""
    names = klass["names"]
    export = tmp_path / "export.csv"
    order = ["ada", "carol", "zoe"]
    export.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Failure Lab (77)\n"
                      "    Points Possible,,,,,30.00\n" + "".join(
                          f'"{k.title()}, Example",{100 + i},S{i},{names[k]}@uni.example,A,\n'
                          for i, k in enumerate(order)), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--address", klass["address"], "--roster", str(export),
                                      "--out", str(out), "--due", "2000-01-01T00:00Z", "-q"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert list(rows) == [names[k] for k in order]
    assert rows[names["carol"]]["late"] == "yes"  # its runs closed long after a due date in 2000
    assert rows[names["zoe"]]["status"] == "missing" and rows[names["zoe"]]["late"] == ""
    with (out / "canvas-import.csv").open(newline="", encoding="utf-8") as f:
        filled = {row["SIS Login ID"]: row["Failure Lab (77)"] for row in csv.DictReader(f)
                  if row["Student"] != "    Points Possible"}
    assert filled == {f"{names['ada']}@uni.example": rows[names["ada"]]["score"],
                      f"{names['carol']}@uni.example": rows[names["carol"]]["score"],
                      f"{names['zoe']}@uni.example": ""}


@pytest.mark.slow
async def test_live_class_without_roster_finds_every_learner_id(klass, tmp_path: Path):
    names = klass["names"]
    result = await batch_live(tmp_path / "out", klass["address"])
    rows = _rows(tmp_path / "out")
    mine = {names[k] for k in ("ada", "adam", "pat", "carol", "dave")}
    assert mine <= set(rows)
    assert names["zoe"] not in rows  # no runs and no roster: nobody knows of zoe
    assert all(rows[n]["status"] == "graded" for n in mine)
    assert result.exit_code == 0


@pytest.mark.slow
async def test_regrade_diff_after_a_learner_fixes_a_run(klass, tmp_path: Path):
    names = klass["names"]
    roster = _roster(tmp_path / "roster.csv", names)
    first = await batch_live(tmp_path / "first", klass["address"], roster=roster)
    assert first.changes is None
    fixed = await _transfer(klass["client"], names["dave"], await klass["workers"].queue("dave", "broken"))
    await _visible(klass["client"], {fixed.id})
    result = CliRunner().invoke(cli, ["batch", "--address", klass["address"], "--roster", str(roster),
                                      "--out", str(tmp_path / "second"), "--previous",
                                      str(tmp_path / "first" / "gradebook.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --quiet
    assert "Regrade: 1 learners changed" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith(names["dave"]))
    assert line.split()[:5] == [names["dave"], "compensation", "not-attempted", "0", "->"]
    assert "pass 10" in line and "no run's deposit failed for good" in line  # what was missing before
    summary = json.loads(CliRunner().invoke(cli, [
        "batch", "--address", klass["address"], "--roster", str(roster), "--out", str(tmp_path / "third"),
        "--previous", str(tmp_path / "first" / "gradebook.json"), "--format", "json", "-q"]).stdout)
    change = next(c for c in summary["regrade"] if c["learner"] == names["dave"])
    assert change["learner"] == names["dave"] and change["experiment"] == "compensation"
    assert (change["old"], change["new"]) == ("not-attempted 0", "pass 10")
    assert "no run's deposit failed for good" in change["finding"]


@pytest.mark.slow
async def test_progress_on_stderr_is_a_line_per_tenth_off_a_terminal(klass, tmp_path: Path):
    roster = _roster(tmp_path / "roster.csv", klass["names"])
    result = CliRunner().invoke(cli, ["batch", "--address", klass["address"], "--roster", str(roster),
                                      "--out", str(tmp_path / "out")])
    lines = result.stderr.splitlines()
    assert lines[0] == "grader: grading 6 learners"
    assert lines[-1].startswith("grader: [########################] 6/6 learners (100%)")
    assert "elapsed" in lines[-1] and "ETA" in lines[-1]
    assert len(lines) == 7  # one line per learner here: each is more than a tenth of six


@pytest.mark.slow
async def test_server_restart_mid_batch_loses_no_learner(solution_dir, tmp_path: Path):
    """Kill the server (SIGKILL) while the batch runs, start it again on the same port and database."""
    port = free_port()
    db = tmp_path / "temporal.db"
    server = start_dev_server(port=port, db_path=db, headless=True)
    restarted = []
    finished = threading.Event()
    try:
        client = await connect(server.address)
        settings = AppSettings(address=server.address, task_queue=f"q-{uuid.uuid4().hex[:8]}", latency=0.0)
        worker = start_worker(solution_dir, settings)
        try:
            await wait_for_poller(client, worker)
            handles = await asyncio.gather(*(_transfer(client, f"l{i:02d}", settings.task_queue)
                                             for i in range(24) for _ in range(2)))
        finally:
            worker.stop(sig=signal.SIGKILL)
        await _visible(client, {h.id for h in handles})

        def restart() -> None:
            server.process.wait()
            # Down for longer than the SDK's own retries last (about 9 s), so the batch's retries must
            # carry it through.
            time.sleep(OUTAGE)
            restarted.append(start_dev_server(port=port, db_path=db, headless=True))
            # The server dies with the thread that started it (PR_SET_PDEATHSIG is per thread):
            # this thread lives until the test is over.
            finished.wait(120)

        graded = []

        def on_result(result) -> None:
            graded.append(result.learner)
            if len(graded) == 4:  # a few learners in: pull the plug, bring it back from another thread
                server.process.send_signal(signal.SIGKILL)
                threading.Thread(target=restart, daemon=True).start()

        result = await batch_live(tmp_path / "out", server.address, concurrency=2,
                                  retry_seconds=90, on_result=on_result, client=client)
        assert restarted, "the server was never restarted"
        rows = _rows(tmp_path / "out")
        assert sorted(rows) == [f"l{i:02d}" for i in range(24)]
        assert {row["status"] for row in rows.values()} <= {"graded", "not-gradable"}
        assert result.retried > 0  # the outage was really felt
        # The retry budget (90 s) outlasts the outage, so in fact nobody is left ungraded.
        assert result.counts["graded"] == 24
        assert result.elapsed > OUTAGE
    finally:
        server.stop()
        for again in restarted:
            again.stop()
        finished.set()


def test_an_empty_namespace_is_bad_input_not_an_empty_gradebook(tmp_path: Path):
    with start_dev_server(port=free_port(), ephemeral=True, headless=True) as server:
        result = CliRunner().invoke(cli, ["batch", "--address", server.address, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no learner found" in result.stderr and "--roster" in result.stderr


def test_no_server_is_exit_3(tmp_path: Path):
    result = CliRunner().invoke(cli, ["batch", "--address", f"localhost:{free_port()}", "--out",
                                      str(tmp_path / "out"), "-q"])
    assert result.exit_code == 3
    assert "no Temporal server" in result.stderr


# --- submissions folders (no server needed) --------------------------------------------


@pytest.fixture
def submissions(tmp_path: Path) -> Path:
    """An LMS download: folders, a zip, a bad file, an empty folder and a run handed in twice."""
    root = tmp_path / "download"
    (root / "ada").mkdir(parents=True)
    for name in ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund"):
        shutil.copy(GOLDENS / f"{name}.json", root / "ada" / f"{name}.json")
    with zipfile.ZipFile(root / "bob.zip", "w") as archive:
        archive.write(GOLDENS / "non-retryable-refund.json", "histories/refund.json")
        archive.write(GOLDENS / "sigint-during-deposit.json", "histories/crash.json")
        archive.writestr("__MACOSX/histories/._crash.json", b"\x00\x05junk")
    (root / "carol").mkdir()  # handed in nothing
    (root / "dave" / "exports").mkdir(parents=True)
    shutil.copy(GOLDENS / "live-fix.json", root / "dave" / "exports" / "fix.json")  # ada's run: copied
    (root / "dave" / "exports" / "crash.json").write_text('{"events": [')  # cut short
    (root / "dave" / "notes.txt").write_text("not a history")
    (root / "README.txt").write_text("downloaded from the LMS")
    (root / "=HYPERLINK(1)").mkdir()  # a spreadsheet would run it as a formula: not a learner
    return root


def test_submissions_folder_statuses_and_duplicates(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert {k: v["status"] for k, v in rows.items()} == {
        "ada": "graded", "bob": "graded", "carol": "missing", "dave": "unreadable-files"}
    # The live-fix run both ada and dave handed in is a copy: credited to neither, flagged for both.
    assert rows["ada"]["score"] == "20" and rows["bob"]["compensation"] == "pass"
    assert rows["ada"]["live-fix"] == rows["dave"]["live-fix"] == "fail"
    assert rows["carol"]["score"] == ""
    document = _gradebook(out)
    by_name = {e["learner"]: e for e in document["learners"]}
    assert by_name["ada"]["flags"] == by_name["dave"]["flags"] == ["copied-run"]
    dave_fix = next(e for e in by_name["dave"]["report"]["experiments"] if e["id"] == "live-fix")
    assert dave_fix["workflow"]["source"] == "dave/exports/fix.json"  # the readable file is still graded
    assert dave_fix["workflow"]["provenance"] == "file"
    assert any("copied run" in p and "ada" in p for p in by_name["dave"]["problems"])
    assert by_name["dave"]["problems"][0].startswith("dave/exports/crash.json: ")
    assert by_name["bob"]["report"]["sources"] == ["bob.zip:histories/crash.json", "bob.zip:histories/refund.json"]
    ada_dupes, dave_dupes = by_name["ada"]["duplicates"], by_name["dave"]["duplicates"]
    assert [d["also_under"] for d in ada_dupes] == [["dave"]]
    assert [d["also_under"] for d in dave_dupes] == [["ada"]]
    assert ada_dupes[0]["run_id"] == dave_dupes[0]["run_id"]
    assert "also appears under: dave" in (out / "feedback" / "ada.md").read_text()
    assert "Ignored (not a folder or .zip, or not a name a learner can have): =HYPERLINK(1), README.txt" in result.stdout
    assert "dave       unreadable-files" in result.stdout


def test_gradebook_header_and_feedback_exact(submissions: Path, tmp_path: Path, expected_output):
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufefflearner,name,email\ndave,Dave Example,dave@example.org\nada,Ada,ada@example.org\n"
                      "erin,Erin,erin@example.org\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--roster", str(roster),
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    # A byte-order mark first: Excel on Windows then reads the file as UTF-8.
    assert (out / "gradebook.csv").read_bytes().startswith(b"\xef\xbb\xbflearner,")
    expected_output("batch-gradebook-csv", (out / "gradebook.csv").read_text(encoding="utf-8-sig"))
    expected_output("batch-feedback-dave", (out / "feedback" / "dave.md").read_text())
    assert "Not on the roster, not graded: bob, carol" in result.stdout


def test_a_damaged_zip_is_named_and_the_class_goes_on(submissions: Path, tmp_path: Path):
    (submissions / "erin.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q"])
    assert result.exit_code == 0
    erin = {e["learner"]: e for e in _gradebook(out)["learners"]}["erin"]
    assert erin["status"] == "unreadable-files"
    assert erin["problems"][0].startswith("erin.zip: not a readable zip file")


@pytest.mark.parametrize("roster_text, says", [
    ("name,email\nAda,a@x\n", "has no 'learner' column"),
    ("learner,status\nada,x\n", "roster column 'status' is empty or a gradebook column"),
    ("learner,name\nada,Ada\nada,Bob\n", "lines 2 and 3: learner 'ada' appears on both with different cells"),
    ("learner\n\n", "lists no learners"),
    ("learner,name\nada,Ada,extra\n", "more cells than the header"),
])
def test_bad_roster_is_exit_2(submissions: Path, tmp_path: Path, roster_text: str, says: str):
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_text)
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--roster", str(roster),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert says in result.stderr and "Traceback" not in result.output


def test_live_roster_rejects_an_id_with_the_separator(tmp_path: Path):
    roster = tmp_path / "roster.csv"
    roster.write_text("learner\nada\nada-2\n")
    result = CliRunner().invoke(cli, ["batch", "--roster", str(roster), "--out", str(tmp_path / "out"),
                                      "--address", f"localhost:{free_port()}"])
    assert result.exit_code == 2  # bad input is found before the server is asked
    assert "the learner id on" in result.stderr and "line 3" in result.stderr and "contains '-'" in result.stderr


@pytest.mark.parametrize("make, says", [
    (lambda tmp: ["--submissions", str(tmp / "nowhere")], "not a folder"),
    (lambda tmp: ["--submissions", str(tmp / "download" / "carol")], "no learner folder or .zip in it"),
    (lambda tmp: ["--submissions", str(tmp / "download"), "--previous", str(tmp / "download" / "README.txt")],
     "not a gradebook.json written by `grader batch`"),
    (lambda tmp: ["--submissions", str(tmp / "download"), "--rubric", "no-such-rubric"], "no rubric"),
])
def test_bad_folder_and_options_are_exit_2(submissions: Path, tmp_path: Path, make, says: str):
    result = CliRunner().invoke(cli, ["batch", *make(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert says in result.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()  # refused before any work


def retimed(name: str, nanoseconds: int) -> dict:
    """A golden as another learner's own run of the scenario (see :func:`events.own_timings`)."""
    return own_timings(json.loads((GOLDENS / f"{name}.json").read_text()), nanoseconds)


def test_regrade_from_files_names_the_finding(submissions: Path, tmp_path: Path):
    before = tmp_path / "before"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(before), "-q"]
                              ).exit_code == 0
    (submissions / "carol" / "refund.json").write_text(json.dumps(retimed("retries-exhausted-refund", 7)))
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(tmp_path / "after"),
                                      "--previous", str(before / "gradebook.json"), "--format", "json", "-q"])
    changes = [c for c in json.loads(result.stdout)["regrade"] if c["learner"] == "carol"]
    assert changes[0] == {"learner": "carol", "experiment": "", "old": "missing", "new": "graded", "finding": ""}
    compensation = next(c for c in changes if c["experiment"] == "compensation")
    assert (compensation["old"], compensation["new"]) == ("-", "pass 10")


def test_feedback_of_a_learner_no_longer_there_is_removed(submissions: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q"]).exit_code == 0
    (out / "feedback" / "notes.md").write_text("the instructor's own notes\n")
    shutil.rmtree(submissions / "carol")
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q"]).exit_code == 0
    assert sorted(p.name for p in (out / "feedback").iterdir()) == ["ada.md", "bob.md", "dave.md", "notes.md"]


def test_an_interrupted_batch_leaves_the_old_gradebook(submissions: Path, tmp_path: Path, monkeypatch):
    """Writes go to temporary names first: a crash in the middle leaves the earlier files whole."""
    from grader.classroom import gradebook

    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q"]).exit_code == 0
    old_csv, old_json = (out / "gradebook.csv").read_text(), (out / "gradebook.json").read_text()
    calls = []

    def feedback_then_crash(row, rubric):
        calls.append(row.learner)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl+C would, in the middle of the final pass
        return "new feedback\n"

    monkeypatch.setattr("grader.classroom.feedback.render_feedback", feedback_then_crash)
    shutil.copy(GOLDENS / "no-failure.json", submissions / "carol" / "plain.json")
    with pytest.raises(KeyboardInterrupt):
        gradebook_dir_batch(submissions, out)
    assert (out / "gradebook.csv").read_text() == old_csv
    assert (out / "gradebook.json").read_text() == old_json
    # Temporary files gone; only the spool --resume continues from stays (see tests/test_resume.py).
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and ".grader-resume" not in p.parts]
    assert gradebook.SCHEMA_VERSION == 1


def gradebook_dir_batch(submissions: Path, out: Path) -> None:
    from grader.classroom import batch_files

    batch_files(submissions, out)


@pytest.mark.slow
async def test_a_server_gone_for_good_leaves_learners_not_gradable(solution_dir, tmp_path: Path):
    """Killed and never restarted: whoever was not read yet is not-gradable (exit 1), not failed."""
    server = start_dev_server(port=free_port(), db_path=tmp_path / "temporal.db", headless=True)
    try:
        client = await connect(server.address)
        settings = AppSettings(address=server.address, task_queue=f"q-{uuid.uuid4().hex[:8]}", latency=0.0)
        worker = start_worker(solution_dir, settings)
        try:
            await wait_for_poller(client, worker)
            handles = await asyncio.gather(*(_transfer(client, f"g{i}", settings.task_queue) for i in range(8)))
        finally:
            worker.stop(sig=signal.SIGKILL)
        await _visible(client, {h.id for h in handles})

        def on_result(result) -> None:
            if result.learner == "g2":
                server.process.send_signal(signal.SIGKILL)

        result = await batch_live(tmp_path / "out", server.address, concurrency=1, retry_seconds=1,
                                  on_result=on_result, client=client)
    finally:
        server.stop()
    rows = _rows(tmp_path / "out")
    assert [rows[f"g{i}"]["status"] for i in range(3)] == ["graded"] * 3
    assert [rows[f"g{i}"]["status"] for i in range(3, 8)] == ["not-gradable"] * 5
    assert all(rows[f"g{i}"]["score"] == "" for i in range(3, 8))
    assert result.exit_code == 1
    feedback = (tmp_path / "out" / "feedback" / "g5.md").read_text()
    assert "a problem on our side" in feedback and "the server did not return it" in feedback
    # The class formats say so too: an <error> per experiment in JUnit, an ::error annotation on GitHub.
    from junitparser import Error, JUnitXml

    from grader.formats import github, junit

    (tmp_path / "class.xml").write_text(junit.render_gradebook(result))
    suites = {s.name: s for s in JUnitXml.fromfile(str(tmp_path / "class.xml"))}
    assert all({type(r) for r in case.result} == {Error} for case in suites["g5"])
    errors = [line for line in github.render_gradebook(result).splitlines() if line.startswith("::error ")]
    assert [line.split("%3A ")[1].split(" ")[0] for line in errors] == [f"g{i}" for i in range(3, 8)]


def test_progress_bar_redraws_one_line_on_a_terminal():
    import io

    from grader.classroom.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(stream=screen)
    progress.start(3)
    for _ in range(3):
        progress.advance()
        progress._last_draw = 0.0  # draw every step here; a real terminal gets at most ten a second
    progress.close()
    frames = screen.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[0].startswith("[########----------------] 1/3 learners (33%)")
    assert frames[-1].startswith("[########################] 3/3 learners (100%)") and frames[-1].endswith("\n")
    quiet = Terminal()
    Progress(stream=quiet, quiet=True).start(3)
    assert quiet.getvalue() == ""


@pytest.mark.slow
async def test_ctrl_c_stops_a_live_batch_at_once_and_leaves_no_half_gradebook(tmp_path: Path):
    """A real SIGINT to a real `grader batch` process, a tenth of the way through a class."""
    import subprocess
    import sys

    with start_dev_server(port=free_port(), ephemeral=True, headless=True) as server:
        client = await connect(server.address)
        gate = asyncio.Semaphore(50)

        async def start(i: int) -> None:
            async with gate:  # no worker: the runs stay open, which costs a describe each to read
                await client.start_workflow("MoneyTransfer", {**DETAILS, "reference_id": str(i)},
                                            id=f"s{i:04d}-transfer-1", task_queue=f"idle-{uuid.uuid4().hex[:6]}")

        await asyncio.gather(*(start(i) for i in range(600)))
        await _visible(client, {f"s{i:04d}-transfer-1" for i in range(600)})
        out = tmp_path / "out"
        process = subprocess.Popen([sys.executable, "-m", "grader", "batch", "--address", server.address,
                                    "--out", str(out), "--concurrency", "1"], stderr=subprocess.PIPE, text=True)
        assert process.stderr.readline().startswith("grader: grading 600 learners")
        assert "60/600 learners" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 130
        # Measured before the dev server stops: stopping it with 600 open runs took 3 to 6.5 s on a
        # loaded machine, which is not the batch's time (the batch itself ended within 10 ms).
        assert time.monotonic() - began < 5
    assert rest.strip().splitlines()[-1] == "grader: interrupted"
    # No gradebook, no feedback, no staging folder; what it had graded stays for `--resume`.
    assert [p.name for p in out.iterdir()] == [".grader-resume"]


def test_bundles_in_a_submissions_folder_have_their_hashes_checked(submissions: Path, tmp_path: Path):
    """A learner's folder or zip from `grader export` is read as a bundle: a changed file is suspect."""
    from grader.sources.bundles import write_bundle

    from grader.engine.history import load_history_file

    golden = GOLDENS / "retries-exhausted-refund.json"
    history = load_history_file(golden)
    workflow_id, run_id = history.workflow_id, history.run_id
    for learner, as_zip, nanoseconds in (("fay", False, 3), ("gus", True, 5)):
        doc = retimed("retries-exhausted-refund", nanoseconds)  # not a copy of ada's run
        write_bundle([(workflow_id, run_id, doc)], submissions / (learner + (".zip" if as_zip else "")),
                     server_address="localhost:7233", namespace="default", learner=learner, as_zip=as_zip)
    # fay touches her history after the export: its bytes no longer hash to the manifest's sha256.
    history_file = next(p for p in (submissions / "fay").iterdir() if p.name != "manifest.json")
    history_file.write_text(history_file.read_text() + " ")
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(submissions), "--out", str(out), "-q"]).exit_code == 0
    rows = _rows(out)
    assert (rows["gus"]["status"], rows["gus"]["compensation"]) == ("graded", "pass")
    assert rows["fay"]["compensation"] != "pass"  # points withheld from a suspect history
    fay = {e["learner"]: e for e in _gradebook(out)["learners"]}["fay"]
    assert [entry["status"] for entry in fay["report"]["integrity"]] == ["suspect"]
    assert "bundle-hash" in json.dumps(fay["report"]["integrity"])
    assert "history is suspect" in (out / "feedback" / "fay.md").read_text()
    assert fay["flags"] == ["suspect"] and "suspect history (bundle-hash)" in fay["problems"][0]
    assert {e["learner"]: e for e in _gradebook(out)["learners"]}["gus"]["flags"] == []


def test_grading_processes_write_the_same_gradebook(tmp_path: Path):
    """A class large enough to be graded in processes gets the gradebook one process writes."""
    from grader.classroom import batch_files

    root = tmp_path / "download"
    for i in range(140):
        (root / f"l{i:03d}").mkdir(parents=True)
        name = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund")[i % 3]
        shutil.copy(GOLDENS / f"{name}.json", root / f"l{i:03d}" / "run.json")
    (root / "l007" / "bad.json").write_text("[]")
    one = batch_files(root, tmp_path / "one", jobs=1)
    two = batch_files(root, tmp_path / "two", jobs=2)
    assert one.counts == two.counts == {"graded": 139, "missing": 0, "not-gradable": 0, "unreadable-files": 1}
    for name in ("gradebook.csv", "gradebook.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    assert (tmp_path / "one" / "feedback" / "l007.md").read_text() == (tmp_path / "two" / "feedback" / "l007.md").read_text()


def test_grading_processes_write_every_file_as_one_process_does(tmp_path: Path):
    """Feedback files written by the grading processes equal the ones a single process writes, file for file.

    The class has what the final pass must still rewrite: a learner handing in
    another's runs (shared runs, a copied run graded again once the class is
    read), ids that fold to one file name (``bob`` and ``BOB``), a bad file.
    """
    from grader.classroom import batch_files

    root = tmp_path / "download"
    for i in range(140):
        (root / f"l{i:03d}").mkdir(parents=True)
        name = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund")[i % 3]
        history = own_timings(json.loads((GOLDENS / f"{name}.json").read_text()), i)
        run_id = history["events"][0]["workflowExecutionStartedEventAttributes"]["originalExecutionRunId"]
        # A run id and (but for every 10th learner: cross-talk) a worker host of its own too, as an
        # honest learner's run has: the final pass rewrites only the feedback of learners who share a
        # run or a worker with another.
        text = json.dumps(history).replace(run_id, str(uuid.uuid4()))
        text = text.replace("@worker-host", f"@host-{i}") if i % 10 else text
        (root / f"l{i:03d}" / "run.json").write_text(text)
    (root / "l007" / "bad.json").write_text("[]")
    shutil.copytree(root / "l010", root / "copycat")
    shutil.copytree(root / "l011", root / "bob")
    shutil.copytree(root / "l012", root / "BOB")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "feedback").mkdir()
    (tmp_path / "one" / "feedback" / "notes.txt").write_text("the instructor's")
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    batch_files(root, tmp_path / "one", jobs=1)
    batch_files(root, tmp_path / "two", jobs=2)

    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    one, two = files(tmp_path / "one"), files(tmp_path / "two")
    assert len(one) == 143 + 2 + 1 and one == two
    assert "also appears under" in one["feedback/copycat.md"].decode()
    assert sum(name.lower().startswith("feedback/bob-") for name in one) == 2  # one file each, never bob.md


def test_a_learner_whose_files_kill_every_grading_process_still_gets_their_feedback(tmp_path: Path, monkeypatch):
    """A learner who kills the grading process each time is graded alone at last, and their row says so.

    The process may have half written their feedback file; the gradebook's
    feedback is the parent's, and everyone else's is the processes' own.
    """
    import os

    from grader.classroom import batch as batch_module
    from grader.classroom import batch_files

    root = tmp_path / "download"
    for i in range(130):
        (root / f"l{i:03d}").mkdir(parents=True)
        shutil.copy(GOLDENS / "live-fix.json", root / f"l{i:03d}" / "run.json")
    parent, grade = os.getpid(), batch_module.grade_submission

    def deadly(learner, *args, **kwargs):
        if learner == "l005" and os.getpid() != parent:  # in a grading process (forked: it has this patch)
            # As if it died half-way through writing the learner's feedback file.
            with open(os.path.join(batch_module._JOB.feedback_dir, "l005.md"), "w") as half:
                half.write("half")
            os._exit(9)
        return grade(learner, *args, **kwargs)

    monkeypatch.setattr(batch_module, "grade_submission", deadly)
    result = batch_files(root, tmp_path / "out", jobs=2, replay=False)
    assert result.counts["unreadable-files"] == 1 and result.counts["graded"] == 129
    document = _gradebook(tmp_path / "out")
    named = sorted(entry["feedback"].split("/", 1)[1] for entry in document["learners"])
    assert sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir()) == named
    said = (tmp_path / "out" / "feedback" / "l005.md").read_text()
    assert "the grading process died while reading these files" in said
    assert (tmp_path / "out" / "feedback" / "l006.md").read_text().startswith("# Failure Lab feedback: l006")


async def test_retrier_backs_off_gives_up_then_probes_for_the_server():
    from temporalio.service import RPCError, RPCStatusCode

    from grader.classroom.live import Retrier

    retrier = Retrier(0.4, first=0.05, cap=0.1)
    # Long enough that a loaded machine's pause between the two calls below is not taken for the
    # time to probe again (0.3 s once made the second call probe, and the test fail, under load).
    retrier.probe_every = 2.0
    calls = []

    async def gone():
        calls.append(time.monotonic())
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    async def back():
        return "history"

    with pytest.raises(RPCError):
        await retrier.call(gone)
    assert len(calls) >= 4 and calls[-1] - calls[0] >= 0.3  # retried, backing off, for the budget
    tried = len(calls)
    with pytest.raises(RPCError):
        await retrier.call(gone)
    assert len(calls) == tried  # given up: fails at once, no call
    await asyncio.sleep(2.05)
    assert await retrier.call(back) == "history"  # the probe finds the server back
    assert retrier.down_since is None and retrier.retried == 1

    async def refused():
        raise RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b"")

    with pytest.raises(RPCError, match="no such workflow"):
        await retrier.call(refused)  # not transient: no retry
    assert retrier.retried == 1


@pytest.mark.slow
def test_a_batch_of_files_imports_the_sdk_only_to_replay(tmp_path: Path):
    """The SDK's client costs about 0.2 s to import: a batch of files without replay never imports it; one
    with replay imports it where it replays: in its one process, or, graded in processes, only in the
    replayer process (grader.classroom.replayer), which a parent with an honest class never needs."""
    probe = ("import sys\n"
             "from grader.classroom import batch_files\n"
             "batch_files(sys.argv[1], sys.argv[2], replay=sys.argv[3] == 'replay', jobs=int(sys.argv[4]))\n"
             "print('temporalio' in sys.modules, 'asyncio' in sys.modules)\n")
    root = tmp_path / "download"
    for i in range(130):  # enough for grading processes
        (root / f"l{i:03d}").mkdir(parents=True)
        history = own_timings(json.loads((GOLDENS / "live-fix.json").read_text()), i)
        run_id = history["events"][0]["workflowExecutionStartedEventAttributes"]["originalExecutionRunId"]
        text = json.dumps(history).replace(run_id, str(uuid.uuid4())).replace("@worker-host", f"@host-{i}")
        (root / f"l{i:03d}" / "run.json").write_text(text)
    # asyncio (about 20 ms to import) only comes with the SDK: a batch of files runs no event loop.
    for mode, jobs, imported in (("no-replay", 1, "False False"), ("replay", 1, "True True"),
                                 ("replay", 2, "False False"), ("no-replay", 2, "False False")):
        done = subprocess.run([sys.executable, "-c", probe, str(root), str(tmp_path / f"{mode}-{jobs}"), mode,
                               str(jobs)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == imported, (mode, jobs)
    book = json.loads((tmp_path / "replay-2" / "gradebook.json").read_text())
    assert {tuple(entry["notes"]) for learner in book["learners"] for entry in learner["report"]["integrity"]} \
        == {("replayed through the reference MoneyTransfer: deterministic",)}
