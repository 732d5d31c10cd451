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
