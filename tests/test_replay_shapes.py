"""Replay remembers clean shapes: the verdicts must be exactly those of replaying every history.

A class of thousands replays a handful of shapes (grader.lab.replay.replay_key);
each shape is replayed once per process. These tests replay real, honestly
varied and fuzzed histories both ways and compare, and check that the
forgeries that only replay catches (scripts/replay_value.py) are still caught
when an honest run of the same scenario was replayed first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from scripts.fuzz_histories import Fuzzer  # noqa: E402

from grader.lab import replay  # noqa: E402
from grader.errors import GraderError  # noqa: E402
from grader.engine.history import load_json_text  # noqa: E402

GOLDENS = REPO / "tests" / "goldens"


def _load(name: str, data: bytes | str):
    try:
        return load_json_text(data if isinstance(data, str) else data.decode("utf-8", "replace"), source=name)
    except GraderError:
        return None


def _verdicts(outcome: replay.ReplayOutcome) -> list[tuple]:
    return [(tuple(f.code for f in found), tuple(notes)) for found, notes in zip(outcome.findings, outcome.notes)]


@pytest.fixture(autouse=True)
def _fresh_memory():
    replay.forget_replays()
    yield
    replay.forget_replays()


def test_fuzzed_histories_get_the_verdicts_a_full_replay_gives():
    """Goldens with values changed in type and in range (the fuzzer's well-typed and payload edits, plus
    the others): remembered shapes never change a finding or a note."""
    cases = [*Fuzzer.from_goldens(seed=18).cases(300),
             *Fuzzer.from_goldens(seed=19, operators=["op_well_typed", "op_payload"]).cases(300)]
    histories = [history for case in cases if (history := _load(case.name, case.data)) is not None]
    honest = [_load(p.name, p.read_text()) for p in sorted(GOLDENS.glob("*.json"))]
    full = _verdicts(replay.replay_histories(honest + histories, remember=False))
    replay.forget_replays()
    # Goldens first, so the fuzzed copies meet their honest shapes in memory.
    remembered = _verdicts(replay.replay_histories(honest, remember=True))
    hits = sum(replay.replay_key(h) in replay._clean_shapes for h in histories)
    remembered += _verdicts(replay.replay_histories(histories, remember=True))
    # Findings are always the same. A note may differ in one way: a value the server never writes (a
    # duration beyond protobuf's range) that the SDK's reader refuses, in a history whose shape replayed
    # clean; its note then says deterministic instead of "cannot read". Never a finding either way.
    assert [f for f, _ in remembered] == [f for f, _ in full]
    differ = [(r, f) for (_, r), (_, f) in zip(remembered, full) if r != f]
    assert all(r == (replay.DETERMINISTIC,) and "the SDK cannot read" in f[0] for r, f in differ), differ
    assert len(histories) > 200 and hits > 30, (len(histories), hits)


def test_a_refund_run_s_failure_text_and_worker_do_not_make_a_new_shape():
    """The deposit's failure inside the workflow's failure carries the worker's identity, a stack trace
    and a message, all of which differ from learner to learner: one shape still, the verdict the same
    (a class's compensation runs were each replayed for themselves, 4 ms apiece)."""
    base = json.loads((GOLDENS / "retries-exhausted-refund.json").read_text())
    text = json.dumps(base).replace("worker-host", "laptop-7").replace("This deposit has failed.", "Nope.")
    text = text.replace("site-packages", "lib-packages")
    first, second = _load("a.json", json.dumps(base)), _load("b.json", text)
    assert replay.replay_key(first) == replay.replay_key(second)
    assert _verdicts(replay.replay_histories([first])) == [((), (replay.DETERMINISTIC,))]
    assert replay.replay_key(second) in replay._clean_shapes
    full = _verdicts(replay.replay_histories([second], remember=False))
    assert full == [((), (replay.DETERMINISTIC,))]
    # A cause of another kind (a timeout where the deposit's own error was) is another shape.
    kinds = json.loads(text)
    for event in kinds["events"]:
        cause = event.get("workflowExecutionFailedEventAttributes", {}).get("failure", {}).get("cause")
        if cause is not None:
            cause["cause"] = {"message": "timed out", "timeoutFailureInfo": {"timeoutType": "TIMEOUT_TYPE_START_TO_CLOSE"}}
    assert replay.replay_key(_load("c.json", json.dumps(kinds))) != replay.replay_key(first)


def test_honest_variations_share_a_shape_and_are_not_replayed_again():
    """Another worker, other times, another amount: one shape, replayed once."""
    base = json.loads((GOLDENS / "sigkill-during-deposit.json").read_text())
    variant = json.loads(json.dumps(base).replace("worker-host", "laptop-7").replace("2026-11-2", "2026-10-2"))
    first, second = _load("a.json", json.dumps(base)), _load("b.json", json.dumps(variant))
    assert replay.replay_key(first) == replay.replay_key(second)
    replay.replay_histories([first])
    assert replay.replay_key(second) in replay._clean_shapes
    assert _verdicts(replay.replay_histories([second])) == [((), (replay.DETERMINISTIC,))]


def test_forgeries_only_replay_catches_are_caught_after_their_honest_scenario():
    import replay_value

    honest = [_load(p.name, p.read_text()) for p in sorted(GOLDENS.glob("*.json"))]
    replay.replay_histories(honest)
    for name, (_, build) in replay_value.NEW.items():
        if name == "coherent-compensation":  # consistent with the code: no replay can tell (README)
            continue
        forged = [_load(file_name, json.dumps(doc)) for file_name, doc in build().items()]
        outcome = replay.replay_histories(forged)
        assert all("replay-nondeterminism" in {f.code for f in found} for found in outcome.findings), name


def test_a_value_too_deep_to_hash_has_no_shape_and_no_traceback():
    """SDK metadata nested about as deep as the reader accepts (1,000 objects): repr would recurse past
    Python's limit (the fuzzer found such a case); the history gets a shape of its own instead."""
    doc = json.loads((GOLDENS / "retries-exhausted-refund.json").read_text())
    completed = next(e for e in doc["events"]
                     if e["eventType"] in ("EVENT_TYPE_WORKFLOW_TASK_COMPLETED", "WorkflowTaskCompleted"))
    attributes = next(v for k, v in completed.items() if k.endswith("Attributes"))
    attributes["sdkMetadata"] = "@@DEEP@@"
    # Built as text: the json module itself refuses to write a value this deep.
    text = json.dumps(doc).replace('"@@DEEP@@"', '{"a":' * 1000 + "{}" + "}" * 1000)
    history = _load("deep.json", text)
    assert history is not None
    first, second = replay.replay_key(history), replay.replay_key(history)
    assert first != second  # nothing to share: each asks for its own replay
