"""Learner ids in a real class: one rule in the grader and the apps, any case, file names that never collide.

Also `grader check` with no learner named on a server that holds several
learners' runs (it asks whose, exit 2) or one learner's (it grades those).
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import os
import random
import shutil
import string
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.lab.app import bundled_app
from grader.classroom.gradebook import feedback_names
from grader.cli import cli
from grader.engine.learner import is_learner_id, learner_key, owns, prefix_spellings
from grader.sources.live import visibility_query

GOLDENS = Path(__file__).parent / "goldens"


def _load_shared(app: str):
    """The app's shared.py as a module of its own (LEARNER_ID set, so importing it cannot stop)."""
    spec = importlib.util.spec_from_file_location(f"shared_{app}", bundled_app(app) / "shared.py")
    module = importlib.util.module_from_spec(spec)
    old = os.environ.get("LEARNER_ID")
    os.environ["LEARNER_ID"] = "ada"
    try:
        spec.loader.exec_module(module)
    finally:
        if old is None:
            del os.environ["LEARNER_ID"]
        else:
            os.environ["LEARNER_ID"] = old
    return module


def _many_ids() -> list[str]:
    """Hand-picked edge cases plus a seeded spray of random strings over the interesting characters."""
    picked = ["ada", "Ada", "ADA", "olga", "a", "_", "x" * 64, "x" * 65, "ada-x", "-ada", "ada-", "a.b", ".a",
              "@a", "+a", "a@b.c", "a+b", "zoë", "Zoë", "北京", "ada lovelace", "ada\t", "ada\n", "o'neil",
              "a/b", "a\\b", "", "é" * 64, "é" * 65, "a" * 63 + "-", "٣", "ǅ", "ß", "ﬁ", "a\u200bb"]
    alphabet = string.ascii_letters + string.digits + "_.@+-/ 'é北\u0301"
    rng = random.Random(14)
    sprayed = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 70))) for _ in range(2000)]
    return picked + sprayed


@pytest.mark.parametrize("app", ["exercise", "solution"])
def test_the_apps_and_the_grader_agree_on_every_id(app: str):
    shared = _load_shared(app)
    disagree = [value for value in _many_ids()
                if (shared.learner_id_problem(value) is None) != is_learner_id(value)]
    assert disagree == []


def test_ids_match_whatever_their_case():
    assert owns("Olga", "olga-transfer-1a2b") and owns("olga", "OLGA-transfer-1a2b")
    assert not owns("Olga", "olgam-transfer-1a2b")
    assert learner_key("Zoë") == learner_key("ZOË") == learner_key("zoe\u0308")
    assert prefix_spellings("Olga") == ["Olga-", "olga-", "OLGA-"]
    assert "WorkflowId STARTS_WITH 'olga-'" in visibility_query("Olga")


def test_feedback_names_never_collide_on_a_case_insensitive_disk():
    names = feedback_names(["bob", "BOB", "Bob", "ada", "zoë", "ZOË"])
    assert names["ada"] == "ada.md"
    assert len({name.casefold() for name in names.values()}) == 6
    assert all(names[n].startswith(n + "-") for n in ("bob", "BOB", "Bob", "zoë", "ZOË"))
    assert feedback_names(["bob", "BOB"]) == feedback_names(["BOB", "bob"])  # stable from batch to batch


def _as_learner(golden: str, learner: str, folder: Path) -> None:
    doc = json.loads((GOLDENS / golden).read_text())
    start = doc["events"][0]["workflowExecutionStartedEventAttributes"]
    start["workflowId"] = f"{learner}-transfer-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / golden).write_text(json.dumps(doc))


def test_roster_olga_owns_the_olga_folder_and_keeps_her_spelling(tmp_path: Path):
    download = tmp_path / "download"
    _as_learner("sigkill-during-deposit.json", "olga", download / "olga")
    roster = tmp_path / "roster.csv"
    roster.write_text("learner,name\nOlga,Olga O.\n")
    out = tmp_path / "grades"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--roster", str(roster),
                                      "--out", str(out), "-q", "--no-replay"])
    assert result.exit_code == 0, result.output
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        [row] = list(csv.DictReader(f))
    assert (row["learner"], row["status"], row["name"]) == ("Olga", "graded", "Olga O.")
    assert row["crash-recovery"] == "pass"
    assert (out / "feedback" / "Olga.md").is_file()
    assert "Not on the roster" not in result.output


def test_bob_and_BOB_get_two_feedback_files(tmp_path: Path):
    download = tmp_path / "download"
    _as_learner("sigkill-during-deposit.json", "bob", download / "bob")
    _as_learner("live-fix.json", "BOB", download / "BOB")
    out = tmp_path / "grades"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(out), "-q",
                                      "--no-replay"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (out / "feedback").iterdir())
    assert len(files) == 2 and len({f.casefold() for f in files}) == 2
    texts = {f: (out / "feedback" / f).read_text() for f in files}
    assert {f.split("-")[0] for f in files} == {"bob", "BOB"}
    assert all(f.split("-")[0] in text for f, text in texts.items())


# -- the apps' scripts, as a learner starts them ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("app", ["exercise", "solution"])
@pytest.mark.parametrize("script", ["run_worker.py", "run_workflow.py"])
def test_a_dash_in_learner_id_is_one_line_and_exit_2(app: str, script: str, tmp_path: Path):
    env = {**os.environ, "LEARNER_ID": "ada-lovelace", "TEMPORAL_ADDRESS": "localhost:1"}
    done = subprocess.run([sys.executable, script], cwd=bundled_app(app), env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("LEARNER_ID='ada-lovelace' contains '-'") and "ada_lovelace" in line
    assert done.stdout == ""


# -- whose grade: check without a learner -------------------------------------------------


@pytest.fixture
async def namespace_with(client, dev_server):
    """A fresh namespace on the session server, filled with open runs (no worker) of the given learners."""
    from datetime import timedelta

    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
    from temporalio.client import Client
    from google.protobuf.duration_pb2 import Duration

    made = []

    async def make(*learners: str) -> str:
        name = f"whose-{uuid.uuid4().hex[:8]}"
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=int(timedelta(days=1).total_seconds()))))
        there = None
        for _ in range(50):  # a new namespace takes a moment to reach every service
            try:
                there = await Client.connect(dev_server.address, namespace=name)
                ids = set()
                for learner in learners:
                    handle = await there.start_workflow(
                        "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                                          "reference_id": learner},
                        id=f"{learner}-transfer-{uuid.uuid4().hex[:8]}", task_queue=f"q-{uuid.uuid4().hex[:6]}")
                    ids.add(handle.id)
                    made.append(handle)
                break
            except Exception:
                await asyncio.sleep(0.2)
        for _ in range(100):
            if ids <= {e.id async for e in there.list_workflows("WorkflowType = 'MoneyTransfer'")}:
                return name
            await asyncio.sleep(0.1)
        raise AssertionError("the runs never became visible")

    yield make
    for handle in made:
        await handle.terminate("test over")


async def test_check_without_a_learner_asks_whose_grade(dev_server, namespace_with):
    namespace = await namespace_with("ann", "ben", "Ben")
    result = await asyncio.to_thread(
        CliRunner(env={"LEARNER_ID": None}).invoke, cli,
        ["check", "--address", dev_server.address, "--namespace", namespace])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"grader: 2 learners have MoneyTransfer or PizzaOrderWorkflow workflows at {dev_server.address} (namespace {namespace}): "
        "Ben (2 runs), ann (1 run)",
        "grader: error: whose grade? pass --learner ID (or set LEARNER_ID) to grade one learner's workflows, "
        "or --all-learners for everyone's"]
    everyone = await asyncio.to_thread(
        CliRunner(env={"LEARNER_ID": None}).invoke, cli,
        ["check", "--address", dev_server.address, "--namespace", namespace, "--all-learners"])
    assert everyone.exit_code == 1 and "graded every learner's workflows (--all-learners)" in everyone.stderr


async def test_check_without_a_learner_grades_the_only_one_and_says_whose(dev_server, namespace_with):
    namespace = await namespace_with("solo", "SOLO")
    result = await asyncio.to_thread(
        CliRunner(env={"LEARNER_ID": None}).invoke, cli,
        ["check", "--address", dev_server.address, "--namespace", namespace, "--format", "json"])
    assert result.exit_code == 1, result.output  # open runs are pending
    assert "graded learner " in result.stderr and "the only learner with MoneyTransfer or PizzaOrderWorkflow workflows" in result.stderr
    report = json.loads(result.stdout)
    # Open runs showing no experiment yet are read (an integrity verdict each) but counted for none.
    assert {e["workflow_id"].split("-")[0].lower() for e in report["integrity"]} == {"solo"}
