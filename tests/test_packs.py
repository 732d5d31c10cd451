"""Course packs (issue 15): the registry, the pack data, and an engine that names no exercise."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import jsonschema
import pytest

import grader
from grader.engine import catalog
from grader.engine.checks import CHECKS
from grader.engine.rubric import load_rubric, rubric_schema
from grader.packs import DEFAULT_PACK, PackError, all_packs, get_pack, pack_for_workflow_type
from grader.resources import schema_path

ROOT = Path(grader.__file__).resolve().parent
#: The rooms that must grade any exercise without naming one (issue 15 item 1).
NEUTRAL_ROOMS = ("engine", "formats", "classroom")
#: The picture calls every compensation mark "refund" (the HTML legend and its tests name the kind); it is
#: a word of the drawing's vocabulary, drawn for any pack's compensation, not a test of an activity's name.
ALLOWED = {("engine/runview.py", "refund"), ("formats/html.py", "refund")}


def _pack_names() -> tuple[set[str], set[str]]:
    """Every workflow type and activity name a pack recognises, lowercased."""
    workflows, activities = set(), set()
    for pack in all_packs().values():
        workflows |= {w.lower() for w in pack.workflow_types}
        for spellings in pack.data.get("activities", {}).values():
            activities |= {a.lower() for a in spellings}
    return workflows, activities


def test_every_built_in_pack_validates_and_loads():
    schema = json.loads(schema_path("pack").read_text())
    for pack in all_packs().values():
        if not pack.builtin:
            continue
        jsonschema.Draft202012Validator(schema).validate(pack.data)
        jsonschema.Draft202012Validator(rubric_schema()).validate(json.loads(pack.rubric_path.read_text()))
        rubric = load_rubric(pack.rubric_path)
        assert {e.id for e in rubric.experiments} <= set(pack.experiments)
        assert all(CHECKS[c.id].experiment in pack.experiments for e in rubric.experiments for c in e.checks)
    assert next(iter(all_packs())) == DEFAULT_PACK


def test_the_default_pack_is_found_by_its_workflow_type_in_every_spelling():
    for name in ("MoneyTransfer", "moneyTransfer", "MONEYTRANSFER"):
        assert pack_for_workflow_type(name).id == DEFAULT_PACK
    assert pack_for_workflow_type("PayInvoice") is None
    assert catalog.kind_of_workflow_type("moneytransfer").pack_id == DEFAULT_PACK


def test_an_unknown_pack_is_one_line_naming_the_known_ones():
    with pytest.raises(PackError, match="no pack 'nope': choose one of money-transfer"):
        get_pack("nope")


def test_the_engine_formats_and_classroom_name_no_pack():
    """No workflow type a pack grades appears in their source, and no activity name as a string of code.

    Prose may use an activity as an example ("e.g. a deposit"); code that
    compares against ``"deposit"`` belongs in the pack.
    """
    workflows, activities = _pack_names()
    assert workflows and activities
    found = []
    for room in NEUTRAL_ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            lowered = text.lower()
            found += [f"{path.relative_to(ROOT)}: {w}" for w in workflows if w in lowered]
            if room == "classroom":  # its prose and messages are checked above; it has no activity logic
                continue
            for node in ast.walk(ast.parse(text)):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and node.value.lower() in activities
                        and (str(path.relative_to(ROOT)), node.value) not in ALLOWED):
                    found.append(f"{path.relative_to(ROOT)} line {node.lineno}: {node.value!r}")
    assert found == [], "move these into their pack:\n" + "\n".join(found)


# --- the CLI: grader packs, --pack, and packs told from the histories -------------

from click.testing import CliRunner  # noqa: E402

from grader.cli import cli  # noqa: E402

# The tests' own files sit beside this file; the sagas goldens ship in the package (installed or not).
TESTS = Path(__file__).resolve().parent
SAGAS_GOLDENS = ROOT / "packs" / "sagas" / "goldens"
MONEY_GOLDENS = TESTS / "goldens"
DURABLE = TESTS / "data" / "packs"


def test_grader_packs_lists_each_pack_with_its_experiments():
    result = CliRunner().invoke(cli, ["packs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2].split()[0] == "money-transfer" and "crash-recovery, live-fix" in lines[2]
    assert lines[3].split()[0] == "sagas" and "saga-rollback, crash-survived" in lines[3]
    listed = json.loads(CliRunner().invoke(cli, ["packs", "--format", "json"]).output)
    assert [p["id"] for p in listed] == ["money-transfer", "sagas"]
    assert listed[1]["workflow_types"][0] == "PizzaOrderWorkflow"


def test_an_unknown_pack_is_exit_2_with_one_line():
    result = CliRunner().invoke(cli, ["check", "--pack", "nope", "--history", str(SAGAS_GOLDENS)])
    assert result.exit_code == 2
    assert "no pack 'nope': choose one of money-transfer, sagas" in result.output


def test_init_pack_sagas_writes_the_practice_copy(tmp_path: Path):
    result = CliRunner().invoke(cli, ["init", "--pack", "sagas", str(tmp_path / "pizza")])
    assert result.exit_code == 0, result.output
    assert "grader check --pack sagas --experiment saga-rollback" in result.output
    assert "TODO" in (tmp_path / "pizza" / "workflows.py").read_text()
    assert "grader init --pack sagas" in (tmp_path / "pizza" / "README.md").read_text()


def test_check_tells_the_pack_from_the_history(tmp_path: Path):
    result = CliRunner().invoke(cli, ["check", "--history", str(SAGAS_GOLDENS / "saga-rollback.json"),
                                      "--format", "json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1  # crash-survived is not in this one history
    assert report["rubric"]["id"] == "sagas"
    assert {e["id"]: e["status"] for e in report["experiments"]} == {"saga-rollback": "pass",
                                                                       "crash-survived": "not-attempted"}


def test_a_mixed_folder_is_graded_pack_by_pack(tmp_path: Path):
    for src in (SAGAS_GOLDENS / "crash-survived.json", MONEY_GOLDENS / "live-fix.json"):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    result = CliRunner().invoke(cli, ["check", "--history", str(tmp_path), "--format", "json"])
    report = json.loads(result.stdout)
    assert report["rubric"]["id"] == "failure-simulation+sagas"
    statuses = {e["id"]: e["status"] for e in report["experiments"]}
    assert statuses["live-fix"] == "pass" and statuses["crash-survived"] == "pass"
    assert statuses["saga-rollback"] == "not-attempted" and statuses["crash-recovery"] == "not-attempted"
    jsonschema.Draft202012Validator(json.loads(schema_path("report").read_text())).validate(report)


def test_the_packs_of_a_folder_are_told_from_the_start_of_its_files(tmp_path: Path):
    from grader.packs import packs_in

    sagas = json.loads((SAGAS_GOLDENS / "saga-rollback.json").read_text())
    # Keys sorted, with a large input: the workflow type is written past the first 4 KiB of the file.
    attrs = sagas["events"][0]["workflowExecutionStartedEventAttributes"]
    attrs["input"] = {"payloads": [{"metadata": {"encoding": "YmluYXJ5L3BsYWlu"}, "data": "QUFB" * 3000}]}
    late = json.dumps(sagas, sort_keys=True)
    assert late.index('"workflowType"') > 4096
    (tmp_path / "class" / "ada").mkdir(parents=True)
    (tmp_path / "class" / "ada" / "late-type.json").write_text(late)
    (tmp_path / "class" / "ada" / "notes.txt").write_text('"workflowType": {"name": "MoneyTransfer"}')
    assert [p.id for p in packs_in([tmp_path / "class"])] == ["sagas"]
    # A link is never read by the grading, so it does not choose the rubric either.
    (tmp_path / "class" / "ada" / "linked.json").symlink_to(MONEY_GOLDENS / "live-fix.json")
    assert [p.id for p in packs_in([tmp_path / "class"])] == ["sagas"]
    # A file named on its own is read whatever it is called; both packs, the default first.
    assert [p.id for p in packs_in([MONEY_GOLDENS / "live-fix.json", tmp_path / "class"])] == \
        [DEFAULT_PACK, "sagas"]


@pytest.fixture
def pack_path_restored(monkeypatch):
    """--pack-path adds to the registry and the environment for the process: undo it after the test."""
    import grader.packs as registry

    monkeypatch.delenv(registry.PACK_PATH_ENV, raising=False)
    yield
    registry._extra_paths.clear()
    registry._loaded = None
    os.environ.pop(registry.PACK_PATH_ENV, None)


def test_a_pack_from_the_pack_path_is_listed_and_validated(tmp_path: Path, pack_path_restored):
    result = CliRunner().invoke(cli, ["packs", "--pack-path", str(DURABLE)])
    assert result.exit_code == 0, result.output
    assert "durable" in result.output and str(DURABLE / "durable") in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pack.json").write_text(json.dumps({"id": "broken", "title": "x", "workflow_types": [],
                                                  "experiments": [{"id": "b", "title": "b"}]}))
    result = CliRunner().invoke(cli, ["packs", "--pack-path", str(broken)])
    assert result.exit_code == 2
    assert "invalid pack at workflow_types" in result.output


# --- a third pack is a folder and a rubric: recorded for real, graded through --pack-path ----

@pytest.mark.slow
async def test_a_third_pack_grades_a_real_run_through_the_pack_path(dev_server, client, tmp_path: Path,
                                                                    pack_path_restored):
    """tests/data/packs/durable: pack.json and rubric.json only (its app is here to make the run).

    A real worker process runs the activity; it is killed (SIGKILL) in the
    middle of it, a new worker process finishes; the run is then graded by
    the pack loaded from --pack-path, told from its workflow type.
    """
    import asyncio
    import signal
    import subprocess
    import sys
    import uuid

    from grader.lab.processes import spawn, stop_process

    app = DURABLE / "durable" / "app"
    queue = f"durable-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "TASK_QUEUE": queue}
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]

    def start(log: Path) -> subprocess.Popen:
        return spawn([sys.executable, "-u", "worker.py"], cwd=app, env=env, stdout=log.open("wb"),
                     stderr=subprocess.STDOUT)

    async def printed(log: Path, text: str) -> None:
        for _ in range(300):
            if log.exists() and text in log.read_text():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{log.name} never printed {text!r}: {log.read_text() if log.exists() else ''}")

    first = start(logs[0])
    second = None
    try:
        await printed(logs[0], "worker started")
        handle = await client.start_workflow("TranslationWorkflow", "hello", id=f"ada-durable-{queue}",
                                             task_queue=queue)
        await printed(logs[0], "translating hello")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start(logs[1])
        assert await asyncio.wait_for(handle.result(), timeout=60) == "HELLO"
        history = (await handle.fetch_history()).to_json_dict()
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process, sig=signal.SIGKILL)
    path = tmp_path / "durable.json"
    path.write_text(json.dumps(history))

    result = CliRunner().invoke(cli, ["check", "--pack-path", str(DURABLE), "--history", str(path),
                                      "--format", "json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert report["rubric"]["id"] == "durable"
    [experiment] = report["experiments"]
    assert experiment["status"] == "pass" and experiment["score"] == 5
    assert {c["id"] for c in experiment["checks"] if c["status"] == "pass"} == {
        "durable-crash.completed", "durable-crash.timer", "durable-crash.worker-replaced", "durable-crash.done-once"}


def test_batch_grades_a_mixed_class_pack_by_pack(tmp_path: Path):
    subs = tmp_path / "subs"
    for learner, src in (("ada", SAGAS_GOLDENS / "saga-rollback.json"), ("bob", SAGAS_GOLDENS / "practice-copy.json"),
                         ("cy", MONEY_GOLDENS / "live-fix.json")):
        (subs / learner).mkdir(parents=True)
        (subs / learner / src.name).write_bytes(src.read_bytes())
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(subs), "--out", str(tmp_path / "out"), "-q",
                                      "--jobs", "1"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8-sig").splitlines()
    header = text[0].split(",")
    assert "saga-rollback" in header and "live-fix" in header
    cells = {line.split(",")[0]: dict(zip(header, line.split(","))) for line in text[1:]}
    assert cells["ada"]["saga-rollback"] == "pass" and cells["ada"]["live-fix"] == "not-attempted"
    assert cells["bob"]["saga-rollback"] == "fail"
    assert cells["cy"]["live-fix"] == "pass" and cells["cy"]["saga-rollback"] == "not-attempted"
    assert set(cells) == {"ada", "bob", "cy"}


def test_simulate_refuses_another_pack_s_experiment_before_starting_anything():
    result = CliRunner().invoke(cli, ["simulate", "--pack", "sagas", "--experiment", "crash-recovery"])
    assert result.exit_code == 2
    assert "--experiment crash-recovery is not an experiment of pack sagas: choose from saga-rollback, " \
           "crash-survived" in result.output
    unknown = CliRunner().invoke(cli, ["check", "--experiment", "nope", "--history", str(SAGAS_GOLDENS)])
    assert unknown.exit_code == 2 and "'nope' is not an experiment of any pack" in unknown.output


@pytest.mark.slow
async def test_live_reads_tell_the_pack_from_the_runs_they_read(dev_server, client, fast_settings, solution_dir,
                                                                tmp_path: Path):
    """No --pack: a learner's saga run on a server is graded by the sagas pack, in check and in batch.

    A real sagas worker takes a real order whose charge fails for good, and a
    real money-transfer worker refunds a transfer to a closed account, for two
    learners of one server. The saga learner checks with nothing but --learner,
    as a learner of that course would; --pack money-transfer reads only
    MoneyTransfer runs, and does not narrow the next command run in the same
    process. A live batch of both learners grades each run by its own pack,
    into one gradebook with both packs' columns.
    """
    import uuid

    from grader.packs import get_pack
    from grader.packs.sagas.scenarios import run_scenarios

    from conftest import refunded_transfer

    pia, mo = f"pia{uuid.uuid4().hex[:6]}", f"mo{uuid.uuid4().hex[:6]}"
    [run] = await run_scenarios(get_pack("sagas").solution_dir, experiments=["saga-rollback"],
                                address=dev_server.address, learner=pia)
    assert run.workflow_id.startswith(f"{pia}-")
    await refunded_transfer(client, fast_settings, solution_dir, f"{mo}-transfer-{uuid.uuid4().hex[:8]}")

    def check(*extra: str):
        return CliRunner().invoke(cli, ["check", "--address", dev_server.address, "--learner", pia,
                                        "--format", "json", *extra])

    told = check()
    report = json.loads(told.stdout)
    assert report["rubric"]["id"] == "sagas", told.output
    by_id = {e["id"]: e for e in report["experiments"]}
    assert by_id["saga-rollback"]["status"] == "pass"
    assert by_id["saga-rollback"]["workflow"]["workflow_id"] == run.workflow_id
    money = check("--pack", "money-transfer")
    assert money.exit_code == 1
    assert {e["id"] for e in json.loads(money.stdout)["experiments"]} >= {"crash-recovery", "live-fix"}
    assert all(e["workflow"] is None for e in json.loads(money.stdout)["experiments"])
    again = check()  # the --pack above lasted one command
    assert json.loads(again.stdout)["rubric"]["id"] == "sagas"

    roster = tmp_path / "roster.csv"
    roster.write_text(f"learner\n{pia}\n{mo}\n")
    out = tmp_path / "out"
    batch = CliRunner().invoke(cli, ["batch", "--address", dev_server.address, "--roster", str(roster),
                                     "--out", str(out), "-q"])
    assert batch.exit_code == 0, batch.output
    lines = (out / "gradebook.csv").read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    cells = {line.split(",")[0]: dict(zip(header, line.split(","))) for line in lines[1:]}
    assert cells[pia]["saga-rollback"] == "pass" and cells[pia]["compensation"] == "not-attempted"
    assert cells[mo]["compensation"] == "pass" and cells[mo]["saga-rollback"] == "not-attempted"
    assert json.loads((out / "gradebook.json").read_text())["rubric"]["id"] == "failure-simulation+sagas"
