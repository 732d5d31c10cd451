"""Learner ids: validation, exact ownership of workflow ids, and `grader check`'s choice of learner."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from click.testing import CliRunner

from grader import api
from grader.cli import cli
from grader.errors import BadInputError
from grader.engine.learner import learner_of, owns, validate_learner_id
from grader.lab.simulate import SimulationOptions
from grader.sources.live import visibility_query


@pytest.mark.parametrize("good", ["ada", "Ada_Lovelace", "a.b", "ada@uni.edu", "x1", "_tmp", "zoë"])
def test_valid_learner_ids(good: str):
    assert validate_learner_id(good) == good


@pytest.mark.parametrize("bad, says", [
    ("", "is empty"), ("   ", "is empty"), (None, "is empty"),
    ("ada-x", "contains '-'"), ("ada lovelace", "not a valid learner id"), ("o'neil", "not a valid"),
    (".hidden", "not a valid"), ("a/b", "not a valid"), ("x" * 65, "not a valid"),
])
def test_invalid_learner_ids_say_why(bad, says: str):
    with pytest.raises(BadInputError, match=says):
        validate_learner_id(bad, what="--learner")


def test_a_learner_owns_exactly_their_prefix():
    assert owns("ada", "ada-transfer-1f2e3d4c")
    assert not owns("ada", "adam-transfer-1f2e3d4c")
    assert not owns("ada", "ada")
    assert learner_of("adam-transfer-1") == "adam"
    assert learner_of("pay-invoice-701") == "pay"
    assert learner_of("no_separator") is None
    assert learner_of("-transfer-1") is None
    assert "STARTS_WITH 'ada-'" in visibility_query("ada")


def test_simulate_makes_workflows_under_a_valid_learner_only():
    assert SimulationOptions(learner="ada").learner == "ada"
    with pytest.raises(BadInputError, match="contains '-'"):
        SimulationOptions(learner="ada-2")
    result = CliRunner().invoke(cli, ["simulate", "--learner", "bad id"])
    assert result.exit_code == 2 and "not a valid learner id" in result.stderr


@pytest.fixture
async def prefix_pair(client, task_queue):
    """Two learners whose ids are a prefix pair, each with one open run (no worker: they stay running)."""
    ada = f"ada{uuid.uuid4().hex[:6]}"
    handles = {}
    for learner in (ada, ada + "m"):
        handles[learner] = await client.start_workflow(
            "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                              "reference_id": learner},
            id=f"{learner}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    wanted = {h.id for h in handles.values()}
    for _ in range(100):  # visibility may list a new workflow a moment after it starts
        if wanted <= {e.id async for e in client.list_workflows(f"WorkflowId STARTS_WITH '{ada}'")}:
            break
        await asyncio.sleep(0.05)
    yield ada, ada + "m", handles
    for handle in handles.values():
        await handle.terminate("test over")


def _graded_ids(stdout: str) -> set[str]:
    # Every run read gets an integrity verdict; open runs that show no experiment yet are read
    # but counted for none, so the experiments alone would not name them.
    return {e["workflow_id"] for e in json.loads(stdout)["integrity"]}


async def test_learner_never_matches_a_longer_id(dev_server, prefix_pair):
    ada, adam, handles = prefix_pair
    report = await api.check_live(dev_server.address, learner=ada, limit=5)
    assert {e.workflow_id for e in report.integrity} == {handles[ada].id}


async def test_check_uses_learner_id_and_says_so(dev_server, prefix_pair):
    ada, adam, handles = prefix_pair
    runner = CliRunner()
    base = ["check", "--address", dev_server.address, "--format", "json"]
    from_env = runner.invoke(cli, base, env={"LEARNER_ID": adam})
    assert from_env.exit_code == 1  # a running workflow is pending
    assert f"graded learner {adam} from LEARNER_ID" in from_env.stderr
    assert _graded_ids(from_env.stdout) == {handles[adam].id}

    explicit = runner.invoke(cli, base + ["--learner", ada], env={"LEARNER_ID": adam})
    assert f"graded learner {ada} (workflows {ada}-...)" in explicit.stderr
    assert _graded_ids(explicit.stdout) == {handles[ada].id}

    everyone = runner.invoke(cli, base + ["--all-learners", "--limit", "1000"], env={"LEARNER_ID": adam})
    assert "graded every learner's workflows (--all-learners)" in everyone.stderr
    assert len(json.loads(everyone.stdout)["integrity"]) >= 2


@pytest.mark.parametrize("args, env, says", [
    (["--learner", "ada-1"], {}, "--learner 'ada-1' contains '-'"),
    ([], {"LEARNER_ID": ""}, "LEARNER_ID is empty"),
    ([], {"LEARNER_ID": "a b"}, "LEARNER_ID 'a b' is not a valid learner id"),
    (["--learner", "ada", "--all-learners"], {}, "exclude each other"),
])
def test_bad_learner_choice_is_bad_input(dev_server, args, env, says):
    result = CliRunner().invoke(cli, ["check", "--address", dev_server.address, *args], env=env)
    assert result.exit_code == 2
    assert says in result.stderr
    assert "Traceback" not in result.output


async def test_simulate_trials_are_named_under_the_learner(client, dev_server, solution_dir):
    from grader.lab.simulate import Lab

    for learner, prefix in (("ada", "ada-crash-recovery-"), (None, "sim-crash-recovery-")):
        # No experiment runs here: a trial's workflow id is decided when the trial is made.
        lab = Lab(client, solution_dir, address=dev_server.address, options=SimulationOptions(learner=learner))
        try:
            workflow_id = lab.trial("crash-recovery").workflow_id
        finally:
            lab.close()
        assert workflow_id.startswith(prefix)
        assert learner is None or learner_of(workflow_id) == learner and not owns(learner + "m", workflow_id)
