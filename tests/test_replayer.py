"""A batch of files graded in processes replays each shape of the class once, in one replayer process.

The grading processes take a new shape as clean and say so; the replayer's
verdict decides whether the learners who relied on it keep that grade or
are graded again with their own replays (grader.classroom.replayer). Every
test here compares the files with those one process writes, replaying
every history itself: the gradebook must not tell the two apart.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from events import own_timings

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"
sys.path.insert(0, str(REPO / "scripts"))

HONEST = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund", "server-paused")


def _own_run(doc: dict, learner: int) -> str:
    """``doc`` as the learner's own run: a run id, timings and worker host of its own."""
    doc = own_timings(json.loads(json.dumps(doc)), learner + 1)
    run_id = doc["events"][0]["workflowExecutionStartedEventAttributes"]["originalExecutionRunId"]
    return json.dumps(doc).replace(run_id, str(uuid.uuid4())).replace("@worker-host", f"@host-{learner}")


def _class(root: Path, forged: bool) -> None:
    """140 learners (enough for grading processes) with honest runs and, with ``forged``, some who hand in
    forgeries only a replay catches, three learners to each forgery's shape, the first of them early."""
    forgeries = []
    if forged:
        import replay_value

        for name, (_, build) in sorted(replay_value.NEW.items()):
            if name != "coherent-compensation":  # consistent with the code: no replay can tell it
                forgeries += [doc for doc in build().values() if "events" in doc]
    for i in range(140):
        folder = root / f"l{i:03d}"
        folder.mkdir(parents=True)
        golden = json.loads((GOLDENS / f"{HONEST[i % len(HONEST)]}.json").read_text())
        (folder / "run.json").write_text(_own_run(golden, i))
        if forgeries and i % 11 == 3:
            (folder / "forged.json").write_text(_own_run(forgeries[(i // 11) % len(forgeries)], i))


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _same_as_one_process(tmp_path: Path, root: Path) -> dict:
    from grader.classroom import batch_files

    batch_files(root, tmp_path / "one", jobs=1)
    batch_files(root, tmp_path / "two", jobs=2)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) == 142
    assert [name for name in one if one[name] != two[name]] == []
    return json.loads(one["gradebook.json"])


@pytest.mark.slow
def test_honest_and_forged_learners_get_what_one_process_gives(tmp_path: Path):
    """Forgeries a replay catches are still caught when the grading processes do not replay."""
    _class(tmp_path / "download", forged=True)
    document = _same_as_one_process(tmp_path, tmp_path / "download")
    by_learner = {entry["learner"]: entry for entry in document["learners"]}
    caught = [name for name, entry in by_learner.items() if "replay-nondeterminism" in json.dumps(entry["report"])]
    assert caught == [f"l{i:03d}" for i in range(140) if i % 11 == 3]
    honest = by_learner["l000"]["report"]["integrity"]
    assert all(entry["notes"] == ["replayed through the reference MoneyTransfer: deterministic"] for entry in honest)


@pytest.mark.slow
def test_a_replayer_that_dies_costs_no_learner_their_replay(tmp_path: Path, monkeypatch):
    """The replayer process is killed on its first shape: every learner is graded again, replaying here."""
    from grader.lab import replay

    parent = os.getpid()
    real = replay.confirm_shape

    def dies(history):
        if os.getpid() != parent:  # the replayer process (forked: it has this patch)
            os._exit(9)
        return real(history)

    monkeypatch.setattr(replay, "confirm_shape", dies)
    _class(tmp_path / "download", forged=True)
    _same_as_one_process(tmp_path, tmp_path / "download")


def test_a_grading_process_defers_new_shapes_and_names_each_learner_s():
    """Deferred: a shape is handed over once, with one history; each learner's shapes are theirs alone."""
    from grader.engine.history import load_json_text
    from grader.lab import replay

    histories = [load_json_text((GOLDENS / f"{name}.json").read_text(), source=name) for name in HONEST[:2]]
    deferred = replay.Deferred()
    replay.forget_replays()
    replay.defer_replays(deferred)
    try:
        first = replay.replay_histories(histories)
        assert deferred.take_used() == [0, 1]
        again = replay.replay_histories(histories[:1])
        assert deferred.take_used() == [0]
    finally:
        replay.defer_replays(None)
    assert first.notes == [[replay.DETERMINISTIC]] * 2 and again.notes == [[replay.DETERMINISTIC]]
    new = deferred.take_new()
    assert sorted(new) == [0, 1] and [h for _, h in new.values()] == histories
    assert deferred.take_new() == {} and replay._clean_shapes == {}  # nothing was replayed here
    assert replay.confirm_shape(histories[0]) is True


KILLED_AT_FIRST_VERDICT = """
import os, signal, sys
from grader.classroom import batch_files
from grader.lab import replay

parent = os.getpid()


def kill_the_batch(history):  # in the replayer process: the batch dies before any shape is confirmed
    os.kill(parent, signal.SIGKILL)
    os._exit(9)


replay.confirm_shape = kill_the_batch
batch_files(sys.argv[1], sys.argv[2], jobs=2)
"""


@pytest.mark.slow
def test_learners_held_for_a_verdict_when_the_batch_is_killed_are_graded_on_resume(tmp_path: Path):
    """Learners waiting on a shape's verdict were never spooled: a batch killed then grades them on --resume,
    and ends with a clean run's files."""
    import subprocess

    from grader.classroom import batch_files

    _class(tmp_path / "download", forged=True)
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_VERDICT, str(tmp_path / "download"),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "out" / "gradebook.json").exists()
    resumed = batch_files(tmp_path / "download", tmp_path / "out", jobs=2, resume=True)
    assert resumed.counts["graded"] == 140
    batch_files(tmp_path / "download", tmp_path / "clean", jobs=2)
    assert _files(tmp_path / "out") == _files(tmp_path / "clean")


def test_past_its_limit_a_grading_process_replays_new_shapes_itself():
    """A class of shapes all different must not queue behind one replayer: past ``most`` deferred
    shapes, a grading process replays the next new shape itself, as it did before there was a replayer."""
    from grader.engine.history import load_json_text
    from grader.lab import replay

    histories = [load_json_text((GOLDENS / f"{name}.json").read_text(), source=name) for name in HONEST[:2]]
    deferred = replay.Deferred(most=1)
    replay.forget_replays()
    replay.defer_replays(deferred)
    try:
        outcome = replay.replay_histories(histories)
    finally:
        replay.defer_replays(None)
    assert outcome.notes == [[replay.DETERMINISTIC]] * 2
    assert list(deferred.take_new()) == [0] and deferred.take_used() == [0]
    assert list(replay._clean_shapes) == [replay.replay_key(histories[1])]  # replayed here
    replay.forget_replays()


def test_chunks_are_spooled_in_the_order_they_were_handed_out(tmp_path: Path, monkeypatch):
    """A grading process names a new shape, with its history, in the first chunk that relied on it, and its
    later chunks refer to the shape by number. When the parent finds several of them done at once, it
    spools them in the order they were handed out, whatever order the set of finished futures has
    (a batch on a loaded CI machine once met the later chunk first and stopped on a KeyError)."""
    from concurrent.futures import Future

    from grader.classroom import batch
    from grader.classroom.gradebook import Gradebook
    from grader.classroom.kept import ReportFile
    from grader.classroom.lms import read_download
    from grader.classroom.progress import Progress
    from grader.classroom.replayer import Replayer
    from grader.engine.rubric import load_rubric
    from grader.lab import replay
    from grader.packs import all_packs

    golden = json.loads((GOLDENS / "live-fix.json").read_text())
    for i in range(6):
        (tmp_path / "download" / f"l{i}").mkdir(parents=True)
        (tmp_path / "download" / f"l{i}" / "run.json").write_text(_own_run(golden, i))
    submissions = read_download(tmp_path / "download", None).submissions
    plan = [(0, name, None, submissions[name], None) for name in sorted(submissions)]
    all_packs()
    rubric = load_rubric()
    (tmp_path / "rows").mkdir()
    replay.forget_replays()
    replayer = Replayer()
    with Gradebook(tmp_path / "out", rubric, roster_columns=[], source="test") as book:
        job = batch._ChunkJob(str(tmp_path / "rows"), rubric.path, True, None, True, None,
                              str(book.staged_feedback), {}, str(book.reports_folder))
        deferred = replay.Deferred()
        monkeypatch.setattr(batch, "_JOB", job)
        monkeypatch.setattr(batch, "_REPORTS", ReportFile(job.reports_dir))
        monkeypatch.setattr(batch, "_DEFERRED", deferred)
        replay.defer_replays(deferred)
        try:
            running = {}
            for item in plan:  # one chunk a learner, all from this one "grading process"
                future = Future()
                future.set_result(batch._grade_chunk([item]))
                running[future] = [item]
            assert [len(_shapes_in(f.result())[1]) for f in running] == [1, 0, 0, 0, 0, 0]
            progress = Progress(quiet=True)
            batch._collect(set(running), running, book, progress, [], None, 2, job, replayer)
            assert running == {} and len(replayer.held) == 6  # all waiting on the one shape
            batch._last_verdicts(book, rubric, progress, job, replayer)
            assert book.finished_learners() == {item[1] for item in plan}
        finally:
            replay.defer_replays(None)
            replayer.close()
            replay.forget_replays()


def _shapes_in(path: str) -> tuple:
    """What a rows file holds, without consuming it: (pid, new shapes, shapes used per learner)."""
    import pickle

    with open(path, "rb") as handle:
        return pickle.load(handle)[2]
