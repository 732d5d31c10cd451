"""Provenance on the record, copies between learners, and what grader simulate makes.

Every graded run says where its evidence came from (``workflow.provenance``):
``server``, ``file``, ``bundle`` or ``simulate``. Runs two learners share to
the nanosecond are ``copied-run`` for both and credited to neither. The
forgeries these catch come from ``scripts/make_forgeries.py`` like the others.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.api import check_files
from grader.classroom import batch_files
from grader.classroom.gradebook import gradebook_validator
from grader.cli import cli
from grader.engine.history import load_history_file, load_json_text
from grader.engine.integrity import CONSISTENT, assess, timing_fingerprint
from grader.engine.report import report_schema
from test_integrity import FORGE

GOLDENS = Path(__file__).parent / "goldens"
GOLDEN_FILES = sorted(GOLDENS.glob("*.json"))


def _write(folder: Path, docs: dict[str, dict]) -> Path:
    for name, doc in docs.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    return folder


def _learners(out: Path) -> dict[str, dict]:
    document = json.loads((out / "gradebook.json").read_text())
    gradebook_validator().validate(document)
    return {e["learner"]: e for e in document["learners"]}


def _experiment(entry: dict, experiment: str) -> dict:
    return next(e for e in entry["report"]["experiments"] if e["id"] == experiment)


# --- provenance --------------------------------------------------------------------


def test_a_file_is_file_and_a_bundle_is_bundle_in_the_json_report(tmp_path: Path):
    from grader.sources.bundles import write_bundle

    golden = GOLDENS / "sigkill-during-deposit.json"
    history = load_history_file(golden)
    write_bundle([(history.workflow_id, history.run_id, json.loads(golden.read_text()))], tmp_path / "b",
                 server_address="localhost:7233", namespace="default", learner="ada", as_zip=False)
    for path, provenance in ((golden, "file"), (tmp_path / "b", "bundle")):
        document = check_files([path], replay=False).to_dict()
        jsonschema.validate(document, report_schema())
        crash = next(e for e in document["experiments"] if e["id"] == "crash-recovery")
        assert crash["workflow"]["provenance"] == provenance


def test_what_simulate_saved_is_simulate_wherever_it_is_read(tmp_path: Path):
    _write(tmp_path, FORGE.simulate_lazy())
    report = check_files([tmp_path], replay=False)
    assert {e.workflow.provenance for e in report.experiments if e.workflow} == {"simulate"}
    assert "evidence made by grader simulate" in CliRunner().invoke(
        cli, ["check", "--history", str(tmp_path / "crash-recovery.json")]).stdout


def test_no_golden_carries_the_simulate_mark():
    """The goldens stand for learners' own runs: the recording script leaves the mark off."""
    assert {load_history_file(p).source_kind for p in GOLDEN_FILES} == {"file"}


def test_simulate_lazy_is_credited_but_flagged_and_not_credited_when_told(tmp_path: Path):
    root = tmp_path / "download"
    _write(root / "lazy", FORGE.simulate_lazy())
    (root / "ada").mkdir()
    shutil.copy(GOLDENS / "sigterm-during-deposit.json", root / "ada" / "crash.json")  # her own run

    credited = tmp_path / "credited"
    assert CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(credited), "-q"]
                              ).exit_code == 0
    lazy = _learners(credited)["lazy"]
    assert lazy["score"] == 30 and lazy["flags"] == ["simulate"]
    assert "made by `grader simulate`" in lazy["problems"][0]
    assert "evidence made by grader simulate" in (credited / "feedback" / "lazy.md").read_text()
    assert _learners(credited)["ada"]["flags"] == []

    strict = tmp_path / "strict"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(strict), "-q",
                                      "--no-credit-simulate"])
    assert result.exit_code == 0, result.output
    learners = _learners(strict)
    assert (learners["lazy"]["score"], learners["lazy"]["flags"]) == (0, ["simulate"])
    crash = _experiment(learners["lazy"], "crash-recovery")
    assert crash["checks"][-1]["id"] == "provenance.not-simulated" and crash["status"] == "fail"
    assert learners["ada"]["score"] == _learners(credited)["ada"]["score"] > 0  # her own run: as before
    assert "lazy" in result.stdout and "grader simulate" in result.stdout  # named in "Needs a look"


# --- copies between learners -----------------------------------------------------------


def test_the_timing_fingerprint_survives_renames_and_shifts_but_not_another_run():
    doc = json.loads((GOLDENS / "sigkill-during-deposit.json").read_text())
    base = timing_fingerprint(load_json_text(json.dumps(doc), source="a.json"))
    renamed = FORGE.renamed_every_id()["mallory/mallory-transfer-5ca1ab1e.json"]
    assert timing_fingerprint(load_json_text(json.dumps(renamed), source="m.json")) == base
    shifted = json.loads(json.dumps(doc).replace("T21:48:", "T22:48:"))  # every event an hour later
    assert timing_fingerprint(load_json_text(json.dumps(shifted), source="s.json")) == base
    # The same instants written with fewer digits (as proto JSON drops trailing zeros) agree too.
    for event in doc["events"]:
        head, fraction = event["eventTime"].rstrip("Z").split(".")
        event["eventTime"] = f"{head}.{fraction[:6]}000Z"
    cut = timing_fingerprint(load_json_text(json.dumps(doc), source="c.json"))
    for event in doc["events"]:
        event["eventTime"] = event["eventTime"].replace("000Z", "Z")
    assert timing_fingerprint(load_json_text(json.dumps(doc), source="d.json")) == cut != base


def test_no_two_goldens_share_a_fingerprint():
    """Honest runs of one scenario never match: every golden has its own (and has one at all)."""
    prints = [timing_fingerprint(load_history_file(p)) for p in GOLDEN_FILES]
    assert None not in prints and len(set(prints)) == len(prints)


def test_a_run_too_short_to_tell_has_no_fingerprint():
    doc = json.loads((GOLDENS / "no-failure.json").read_text())
    doc["events"] = doc["events"][:3]
    assert timing_fingerprint(load_json_text(json.dumps(doc), source="short.json")) is None


def test_a_copy_with_every_id_renamed_is_copied_run_for_both_and_credited_to_neither(tmp_path: Path):
    root = _write(tmp_path / "download", FORGE.renamed_every_id())
    (root / "carol").mkdir()
    shutil.copy(GOLDENS / "live-fix.json", root / "carol" / "fix.json")  # carol's own: not involved
    # Alone, mallory's copy breaks no rule: it names no one and its ids are consistent.
    copied = load_history_file(root / "mallory" / "mallory-transfer-5ca1ab1e.json")
    assert assess([copied])[0].status == CONSISTENT
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    learners = _learners(out)
    for name, other in (("bob", "mallory"), ("mallory", "bob")):
        entry = learners[name]
        assert entry["flags"] == ["copied-run"]
        assert _experiment(entry, "crash-recovery")["status"] == "fail" and entry["score"] == 0
        assert any("copied run" in p and other in p for p in entry["problems"])
        assert "credited" in (out / "feedback" / f"{name}.md").read_text()
    assert learners["carol"]["flags"] == [] and learners["carol"]["score"] > 0
    assert "mallory" in result.stdout and "bob" in result.stdout


def test_copies_found_when_graded_in_processes_too(tmp_path: Path):
    """The second look at copied learners also works when the class was graded in processes."""
    root = tmp_path / "download"
    docs = FORGE.renamed_every_id()
    for i in range(130):
        (root / f"l{i:03d}").mkdir(parents=True)
        shutil.copy(GOLDENS / "no-failure.json", root / f"l{i:03d}" / "plain.json") if i % 2 else None
    _write(root, docs)
    result = batch_files(root, tmp_path / "out", jobs=2)
    learners = _learners(tmp_path / "out")
    flagged = sorted(n for n, e in learners.items() if "copied-run" in e["flags"])
    # Every learner holding no-failure shares it with the others; bob and mallory share theirs.
    assert "bob" in flagged and "mallory" in flagged and len(flagged) == 2 + 65
    assert result.counts["graded"] == 67



def test_copied_runs_by_holder_and_linear_naming(tmp_path: Path):
    """A group submission (one holder) is no copy; a big group names a few and counts the rest."""
    from grader.classroom.gradebook import MAX_NAMED, Gradebook, Spooled
    from grader.engine.rubric import load_rubric

    def row(learner: str, fingerprint: str, holder: str = "") -> Spooled:
        return Spooled(0, learner, "graded", 0.0, 30.0, {}, [], {}, None, "", timings=[(fingerprint, "w")],
                       holder=holder)

    with Gradebook(tmp_path / "out", load_rubric(), roster_columns=[], source="test") as book:
        book.add(row("bob", "g", holder="group-1"), [])
        book.add(row("zoe", "g", holder="group-1"), [])
        for i in range(40):
            book.add(row(f"c{i:02d}", "x"), [])
        copies = book.copied_runs()
    assert "bob" not in copies and "zoe" not in copies
    assert copies["c00"]["x"] == [f"c{i:02d}" for i in range(1, MAX_NAMED + 1)] + [f"{39 - MAX_NAMED} more"]
    assert copies["c39"]["x"][-1] == f"{39 - MAX_NAMED} more"


# --- a shared server: decoys cannot push a learner's runs out -------------------------------


@pytest.mark.slow
async def test_decoys_from_another_client_push_nothing_out_and_are_named(dev_server, solution_dir, tmp_path: Path):
    """bob does the three counted experiments for real; mallory then starts 25 workflows named bob-...
    from her own client. Every run in the window is read: bob keeps 30/30, and the decoys are named."""
    import uuid

    from temporalio.client import Client

    from grader.classroom import batch_live
    from grader.lab.simulate import SimulationOptions, run_experiments

    bob = f"bob{uuid.uuid4().hex[:6]}"
    options = SimulationOptions(latency=0.5, wait_limit=45, learner=bob)
    runs = await run_experiments(solution_dir, experiments=["crash-recovery", "live-fix", "compensation"],
                                 server=dev_server, options=options)
    assert all(r.ok for r in runs), [r.note for r in runs]
    mallory = await Client.connect(dev_server.address, identity="4242@mallory-laptop")
    decoys = {f"{bob}-transfer-{i:02d}" for i in range(25)}
    for workflow_id in sorted(decoys):  # no worker polls their queue: newer than bob's runs, and open
        await mallory.start_workflow("MoneyTransfer", {"amount": 1}, id=workflow_id,
                                     task_queue=f"decoy-{uuid.uuid4().hex[:6]}")
    roster = tmp_path / "roster.csv"
    roster.write_text(f"learner\n{bob}\n")
    for attempt in range(100):  # visibility catches up within moments on the dev server
        listed = [e async for e in mallory.list_workflows(f"WorkflowId STARTS_WITH '{bob}-'")]
        if len(listed) == 28:
            break
        await asyncio.sleep(0.1)
    # The attack of the issue: the newest 20 runs under bob's id (the old --limit) are all decoys.
    assert {e.id for e in sorted(listed, key=lambda e: e.start_time, reverse=True)[:20]} <= decoys
    result = await batch_live(tmp_path / "out", dev_server.address, roster=roster, replay=False)
    entry = _learners(tmp_path / "out")[bob]
    assert entry["score"] == 30, entry["problems"]
    assert "unfamiliar-client" in entry["flags"]
    line = next(p for p in entry["problems"] if "unfamiliar client" in p)
    assert "25 run(s)" in line and "mallory-laptop" in line and f"{bob}-transfer-24" in line and "20 more" in line
    assert [a.learner for a in result.attention] == [bob]
    # `grader check --learner` reads every run of the learner too, not the newest 20.
    from grader.api import check_live

    own = await check_live(dev_server.address, learner=bob, replay=False)
    assert own.score == 30 and len(own.sources) >= 1
    assert "unfamiliar client" in result.attention[0].why or "grader simulate" in result.attention[0].why


def test_since_takes_durations_and_dates_and_refuses_the_rest(tmp_path: Path):
    from datetime import datetime, timezone

    from grader.classroom.live import parse_since

    now = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    assert parse_since("36h", now=now) == datetime(2026, 12, 3, 0, 0, tzinfo=timezone.utc)
    assert parse_since("2w", now=now) == datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-09-01", now=now) == datetime(2026, 9, 1, tzinfo=timezone.utc)
    result = CliRunner().invoke(cli, ["batch", "--address", "127.0.0.1:1", "--since", "last term",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("grader: error: --since 'last term': give a duration")
    old = CliRunner().invoke(cli, ["batch", "--address", "127.0.0.1:1", "--limit", "20", "--since", "nope",
                                   "--out", str(tmp_path / "out")])
    assert "--limit no longer applies" in old.stderr and old.exit_code == 2


def test_runs_from_a_client_the_passed_runs_did_not_come_from_are_named():
    """note_clients on histories alone: bob's passing crash run from his laptop, two decoys from elsewhere."""
    from grader.classroom.batch import LearnerResult, grade_runs, note_clients
    from grader.engine.rubric import load_rubric

    def started_by(name: str, identity: str, workflow_id: str) -> object:
        doc = json.loads((GOLDENS / f"{name}.json").read_text())
        doc["events"][0]["workflowExecutionStartedEventAttributes"]["identity"] = identity
        doc["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"] = workflow_id
        return load_json_text(json.dumps(doc), source="server x/default")

    histories = [started_by("sigkill-during-deposit", "811@bob-laptop", "bob-transfer-1"),
                 started_by("sigint-during-deposit", "977@bob-laptop", "bob-transfer-2"),  # another pid
                 started_by("running", "4242@mallory-laptop", "bob-transfer-3"),
                 started_by("fake-workflow", "4242@mallory-laptop", "bob-transfer-4")]
    result = LearnerResult("bob", "graded")
    result.report = grade_runs(histories, load_rubric(), sources=["server x/default"], errors=[])
    note_clients(result, histories)
    assert result.flags == ["unfamiliar-client"]
    assert "2 run(s) started from an unfamiliar client (mallory-laptop)" in result.problems[-1]
    assert "bob-transfer-3" in result.problems[-1] and "bob-transfer-1" not in result.problems[-1]
