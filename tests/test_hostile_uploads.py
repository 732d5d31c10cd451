"""A batch no submission can break: hostile and careless uploads end as that learner's problem.

Each probe is a real file on disk (a zip bomb, a FIFO, a link to /dev/zero or
to /, a name that is 240 characters long or not UTF-8) graded through the
library and the CLI beside an honest learner: the honest one is graded, the
probe's learner is ``unreadable-files`` with the reason, and the batch exits 0.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from events import own_timings
from grader.classroom import batch_files
from grader.classroom.batch import validate_live_id
from grader.classroom.gradebook import feedback_file_name, gradebook_validator
from grader.classroom.submissions import validate_submission_id
from grader.classroom.uploads import Budget, Limits, read_upload
from grader.cli import cli
from grader.errors import BadInputError

GOLDENS = Path(__file__).parent / "goldens"
HISTORY = (GOLDENS / "live-fix.json").read_bytes()


def own_run(nanoseconds: int) -> bytes:
    """HISTORY as one learner's own run (see :func:`events.own_timings`)."""
    return json.dumps(own_timings(json.loads(HISTORY), nanoseconds)).encode()


def _bomb(path: Path, gigabytes: float) -> None:
    """A zip whose one .json entry unpacks to ``gigabytes`` of zeros (about 1 MB packed per GB)."""
    chunk = b"0" * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("history.json", "w", force_zip64=True) as member:
            for _ in range(int(gigabytes * 1024)):
                member.write(chunk)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A submissions folder: one honest learner and one learner per probe of the issue."""
    root = tmp_path_factory.mktemp("hostile") / "subs"
    root.mkdir()
    (root / "honest").mkdir()
    (root / "honest" / "run.json").write_bytes(own_run(1))
    _bomb(root / "bomb.zip", 0.0625)  # 64 MB: the 2 GB one is the slow test below
    long_name = root / ("l" * 240)
    long_name.mkdir()
    (long_name / "run.json").write_bytes(own_run(2))
    latin1 = os.path.join(os.fsencode(root), b"caf\xe9")
    os.mkdir(latin1)
    with open(os.path.join(latin1, b"run.json"), "wb") as f:
        f.write(own_run(3))
    (root / "zero").mkdir()
    (root / "zero" / "run.json").symlink_to("/dev/zero")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "run.json")
    (root / "slash").mkdir()
    (root / "slash" / "run.json").symlink_to("/")
    (root / "rootlink").symlink_to("/")
    os.mkfifo(root / "fifozip.zip")
    return root


def test_every_probe_is_its_learners_unreadable_files_and_the_class_goes_on(hostile: Path, tmp_path: Path):
    began = time.monotonic()
    result = batch_files(hostile, tmp_path / "out", jobs=1)
    elapsed = time.monotonic() - began
    by_learner = {row.learner: row for row in result.learners}
    assert by_learner["honest"].status == "graded"
    probes = {"bomb": "packed", "l" * 240: "characters long", "caf\\xe9": "not UTF-8",
              "zero": "symbolic link", "fifo": "named pipe", "slash": "symbolic link",
              "rootlink": "symbolic link", "fifozip": "named pipe"}
    for learner, says in probes.items():
        row = by_learner[learner]
        assert row.status == "unreadable-files", (learner, row.problems)
        assert any(says in p for p in row.problems), (learner, row.problems)
    # A long or non-UTF-8 name is still graded: only the name is the problem.
    assert by_learner["l" * 240].score == by_learner["honest"].score
    assert by_learner["caf\\xe9"].score == by_learner["honest"].score
    assert result.exit_code == 0
    assert elapsed < 60, elapsed  # about 1 s on a quiet machine
    document = json.loads((tmp_path / "out" / "gradebook.json").read_text())
    assert not list(gradebook_validator().iter_errors(document))
    files = sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir())
    assert files == sorted(entry["feedback"].split("/", 1)[1] for entry in document["learners"])
    assert all(len(name.encode()) <= 100 for name in files)


def test_the_cli_grades_the_probes_with_exit_0(hostile: Path, tmp_path: Path):
    outcome = CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(hostile),
                                       "--out", str(tmp_path / "out"), "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    assert summary["counts"]["unreadable-files"] == 8
    assert summary["counts"]["graded"] == 1


@pytest.mark.slow
def test_the_two_gigabyte_bomb_costs_a_second_and_little_memory(tmp_path: Path):
    """The issue's probe as a user meets it: the real CLI in its own process, time and peak memory measured."""
    import subprocess
    import sys

    subs = tmp_path / "subs"
    subs.mkdir()
    _bomb(subs / "bomb.zip", 2)
    (subs / "honest").mkdir()
    (subs / "honest" / "run.json").write_bytes(HISTORY)
    # RUSAGE_CHILDREN in this process would report the largest child the whole test session ever
    # waited for (dev servers, workers): a small wrapper process measures the batch and its pool alone.
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "sys.stderr.write(f'\\npeak-kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); "
               "sys.exit(done.returncode)")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "grader", "batch", "-q",
                           "--submissions", str(subs), "--out", str(tmp_path / "out"), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - began
    peak_mib = int(done.stderr.rsplit("peak-kib=", 1)[1]) / 1024
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["unreadable-files"] == 1
    assert elapsed < 60, elapsed  # about 2 s quiet, mostly start-up and replay
    assert peak_mib < 500, peak_mib  # was 3.1 GB then MemoryError


def test_a_bomb_that_declares_its_size_is_refused_unread(tmp_path: Path):
    """The declared size alone stops it: nothing is unpacked (the ratio limit off to show it)."""
    _bomb(tmp_path / "bomb.zip", 0.1)
    members = list(read_upload(tmp_path / "bomb.zip", "bomb.zip",
                               budget=Budget(Limits(max_ratio=10**9, max_file_bytes=50 * 2**20))))
    assert len(members) == 1 and "bytes unpacked, more than" in members[0].error


def test_zips_inside_zips_are_read_down_to_the_depth_limit(tmp_path: Path):
    deepest = _zip_bytes({"three.json": HISTORY})
    middle = _zip_bytes({"two.json": HISTORY, "deeper.zip": deepest})
    (tmp_path / "ada.zip").write_bytes(_zip_bytes({"one.json": HISTORY, "inner.zip": middle}))
    members = list(read_upload(tmp_path / "ada.zip", "ada.zip"))
    read = [m.name for m in members if m.data]
    assert read == ["ada.zip:inner.zip:two.json", "ada.zip:one.json"]
    refused = [m for m in members if m.error]
    assert len(refused) == 1 and "nested deeper than 2 levels" in refused[0].error
    assert refused[0].name == "ada.zip:inner.zip:deeper.zip"


def test_a_zip_inside_a_learners_folder_is_read(tmp_path: Path):
    (tmp_path / "ada").mkdir()
    (tmp_path / "ada" / "runs.zip").write_bytes(_zip_bytes({"crash.json": HISTORY}))
    assert [m.name for m in read_upload(tmp_path / "ada", "ada") if m.data] == ["ada/runs.zip:crash.json"]


def test_too_many_entries_end_the_upload_with_one_line(tmp_path: Path):
    (tmp_path / "ada.zip").write_bytes(_zip_bytes({f"{i}.json": b"{}" for i in range(50)}))
    members = list(read_upload(tmp_path / "ada.zip", "ada.zip", budget=Budget(Limits(max_entries=20))))
    assert [m.error for m in members] == [
        "ada.zip: more than the 20 files and folders one upload may hold; the rest was not read: "
        "hand in only the exported histories"]


def test_histories_past_the_limit_are_counted_not_read(tmp_path: Path):
    (tmp_path / "ada").mkdir()
    for i in range(7):
        (tmp_path / "ada" / f"{i}.json").write_bytes(b"{}")
    members = list(read_upload(tmp_path / "ada", "ada", budget=Budget(Limits(max_histories=5))))
    assert len([m for m in members if m.data]) == 5
    assert members[-1].error == "ada: 2 more .json files were not read (at most 5 are): hand in only the exported histories"


def test_the_total_is_counted_across_a_learners_folder_and_zip(tmp_path: Path):
    (tmp_path / "ada").mkdir()
    (tmp_path / "ada" / "a.json").write_bytes(b"x" * 600)
    (tmp_path / "ada.zip").write_bytes(_zip_bytes({"b.json": b"y" * 600}))
    budget = Budget(Limits(max_total_bytes=1000))
    members = list(read_upload(tmp_path / "ada", "ada", budget=budget))
    members += list(read_upload(tmp_path / "ada.zip", "ada.zip", budget=budget))
    assert [m.name for m in members if m.data] == ["ada/a.json"]
    assert "unpacks to more than the 1000 bytes" in members[-1].error


def test_zip_member_names_are_shown_escaped_and_short(tmp_path: Path):
    odd = "evil\x1b[2J\r" + "n" * 300 + ".json"
    (tmp_path / "ada.zip").write_bytes(_zip_bytes({odd: HISTORY}))
    [member] = list(read_upload(tmp_path / "ada.zip", "ada.zip"))
    assert "\x1b" not in member.name and "\r" not in member.name and "\\x1b" in member.name
    assert len(member.name) < 140 and "…" in member.name


@pytest.mark.parametrize("value, says", [
    ("/etc/cron.d/evil", "is a path"), ("..", "is a path"), ("a\\b", "is a path"),
    ("nul\x00id", "control character"), ("x" * 200, "more than the 128"), ("", "is empty"),
])
def test_roster_ids_are_checked_the_same_way_live_and_from_files(value: str, says: str):
    for validate in (validate_submission_id, validate_live_id):
        with pytest.raises(BadInputError, match=says):
            validate(value, "the learner id on roster.csv line 2")


def test_a_roster_id_that_is_an_absolute_path_writes_nothing_outside_out(tmp_path: Path):
    subs = tmp_path / "subs"
    (subs / "ada").mkdir(parents=True)
    (subs / "ada" / "run.json").write_bytes(HISTORY)
    target = tmp_path / "outside"
    roster = tmp_path / "roster.csv"
    roster.write_text(f"learner\nada\n{target}\n")
    outcome = CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(subs),
                                       "--roster", str(roster), "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 2
    assert "is a path, not a name" in outcome.output
    assert not list(tmp_path.glob("outside*"))


@pytest.mark.parametrize("learner", ["Ada Lovelace", "../../etc/passwd", "x" * 240, "caf\\xe9", "ünï"])
def test_feedback_file_names_are_safe_and_distinct(learner: str):
    name = feedback_file_name(learner)
    assert "/" not in name and not name.startswith(".") and len(name) <= 80 and name.endswith(".md")
    assert feedback_file_name(learner + "x") != name


def test_plain_ids_keep_their_feedback_file_name():
    assert feedback_file_name("ada") == "ada.md"
    assert feedback_file_name("g.hopper+lab@uni") == "g.hopper+lab@uni.md"


def test_an_honest_learner_beside_the_probes_keeps_their_feedback_byte_for_byte(hostile: Path, tmp_path: Path):
    alone = tmp_path / "alone"
    (alone / "honest").mkdir(parents=True)
    shutil.copy(hostile / "honest" / "run.json", alone / "honest" / "run.json")
    batch_files(alone, tmp_path / "one", jobs=1)
    batch_files(hostile, tmp_path / "two", jobs=1)
    one = (tmp_path / "one" / "feedback" / "honest.md").read_text()
    two = (tmp_path / "two" / "feedback" / "honest.md").read_text()
    # Only the duplicate-run section differs: the long and latin-1 learners hand in the same run.
    assert two.startswith(one.split("\n## ", 1)[0])
