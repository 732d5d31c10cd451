"""One history, three ways in: live from the server, the SDK's JSON and `temporal workflow show`.

All three must get the same grade; only where the history came from may differ.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader import api
from grader.cli import cli
from grader.engine.report import report_schema
from grader.lab.server import temporal_binary

from conftest import refunded_transfer, running_worker, start_transfer



def _without_sources(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("sources")
    for exp in report["experiments"]:
        if exp["workflow"]:  # an experiment the run does not show names no workflow
            exp["workflow"].pop("source")
            exp["workflow"].pop("ui_link")
            exp["workflow"].pop("provenance", None)  # where it came from: server, file, ... by design
    for entry in report.get("integrity", []):
        entry.pop("source")
    return report


@pytest.mark.slow
async def test_live_sdk_json_and_cli_json_grade_the_same(dev_server, finished_transfer, tmp_path: Path):
    handle = finished_transfer
    sdk_file = tmp_path / "sdk.json"
    sdk_file.write_text((await handle.fetch_history()).to_json())
    cli_file = tmp_path / "cli.json"
    shown = subprocess.run([temporal_binary(), "workflow", "show", "-w", handle.id, "--address",
                            dev_server.address, "--output", "json"], capture_output=True, text=True,
                           check=True)
    cli_file.write_text(shown.stdout)

    live = await api.check_live(dev_server.address, workflow_ids=[handle.id])
    from_sdk = api.check_files([sdk_file])
    from_cli = api.check_files([cli_file])
    for report in (live, from_sdk, from_cli):
        jsonschema.validate(report.to_dict(), report_schema())
    assert _without_sources(live.to_dict()) == _without_sources(from_sdk.to_dict())
    assert _without_sources(from_cli.to_dict()) == _without_sources(from_sdk.to_dict())
    exp = next(e for e in live.experiments if e.id == "compensation")
    assert exp.status == "pass" and exp.workflow.workflow_id == handle.id
    # The session server runs without a Web UI and nobody named one: no link rather than a guessed one.
    assert exp.workflow.ui_link is None
    assert next(e for e in from_sdk.experiments if e.id == "compensation").workflow.workflow_id == handle.id


@pytest.mark.slow
async def test_http_api_shorthand_payloads_grade_the_same(dev_server, finished_transfer, tmp_path: Path):
    """What a curl user gets: {"history": {"events": ...}} with payloads as plain JSON values."""
    import urllib.request

    handle = finished_transfer
    url = (f"http://localhost:{dev_server.http_port}/api/v1/namespaces/default/workflows/"
           f"{handle.id}/history")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    document = json.loads(body)
    started = document["history"]["events"][0]["workflowExecutionStartedEventAttributes"]
    assert isinstance(started["input"], list)  # the shorthand form the SDK's from_json rejects
    http_file = tmp_path / "http.json"
    http_file.write_bytes(body)
    sdk_file = tmp_path / "sdk.json"
    sdk_file.write_text((await handle.fetch_history()).to_json())
    from_http, from_sdk = api.check_files([http_file]), api.check_files([sdk_file])
    assert from_http.errors == []
    assert _without_sources(from_http.to_dict()) == _without_sources(from_sdk.to_dict())


@pytest.mark.slow
async def test_learner_prefix_narrows_the_live_listing(dev_server, finished_transfer):
    report = await api.check_live(dev_server.address, learner="ada", limit=5,
                                  experiments=["compensation"])
    assert report.experiments[0].workflow.workflow_id.startswith("ada-")
    nobody = await api.check_live(dev_server.address, learner=f"nobody{uuid.uuid4().hex[:8]}")
    assert all(e.workflow is None and e.status == "fail" for e in nobody.experiments)
    assert "no MoneyTransfer workflow" in nobody.experiments[0].note


async def test_no_workflow_for_a_learner_is_one_line_and_exit_1(dev_server):
    learner = f"nobody{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(cli, ["check", "--address", dev_server.address, "--learner", learner])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"grader: no MoneyTransfer or PizzaOrderWorkflow workflows for learner {learner} at {dev_server.address} (namespace default): "
        "start one with python run_workflow.py, or check --learner"]


@pytest.mark.slow
async def test_json_format_prints_only_the_document(dev_server, finished_transfer):
    result = CliRunner().invoke(cli, ["check", "--address", dev_server.address, "--workflow-id",
                                      finished_transfer.id, "--format", "json", "--experiment", "crash-recovery"])
    assert result.exit_code == 1  # a plain transfer is not a crash recovery
    document = json.loads(result.stdout)
    jsonschema.validate(document, report_schema())
    assert [e["id"] for e in document["experiments"]] == ["crash-recovery"]
    assert document["status"] == "fail"


async def test_unknown_workflow_id_is_bad_input(dev_server):
    result = CliRunner().invoke(cli, ["check", "--address", dev_server.address, "--workflow-id", "no-such-id"])
    assert result.exit_code == 2 and result.stdout == ""  # the error line alone, no table of zeros
    assert "workflow 'no-such-id': not found in namespace 'default'" in result.stderr


@pytest.mark.slow
async def test_a_live_running_workflow_is_pending_and_says_what_describe_says(client, fast_settings, solution_dir):
    async with running_worker(client, solution_dir, fast_settings, fault="failing-deposit"):
        handle = await start_transfer(client, fast_settings, f"ada-transfer-{uuid.uuid4().hex[:8]}")
        for _ in range(200):  # until describe() shows a failed deposit attempt
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].attempt >= 2:
                break
            await asyncio.sleep(0.05)
        report = await api.check_live(client.service_client.config.target_host,
                                      workflow_ids=[handle.id], experiments=["live-fix"])
    experiment = report.experiments[0]
    assert experiment.status == "pending"
    checks = {c.id: c for c in experiment.checks}
    assert "the deposit is failing and being retried" in checks["live-fix.deposit-retried"].message
    assert "ValueError: This deposit has failed." in checks["live-fix.deposit-retried"].message
    waiting = checks["live-fix.fixed-by-restart"]
    assert waiting.status == "pending" and "deposit" in waiting.message and "attempt" in waiting.message
    assert waiting.hint.startswith("fix the deposit and restart the worker")
    await handle.terminate("test over")


@pytest.mark.slow
async def test_one_workflow_id_reused_grades_every_run(dev_server, client, fast_settings, solution_dir):
    """The official app starts every transfer with the same id: each run is a candidate."""
    from temporalio.common import WorkflowIDReusePolicy

    workflow_id = f"pay-invoice-{uuid.uuid4().hex[:6]}"
    first = await refunded_transfer(client, fast_settings, solution_dir, workflow_id)
    async with running_worker(client, solution_dir, fast_settings):
        second = await start_transfer(client, fast_settings, workflow_id, reference_id="b",
                                      id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        await asyncio.wait_for(second.result(), 30)

    for _ in range(50):  # visibility may trail the close by a moment
        report = await api.check_live(dev_server.address, workflow_ids=[workflow_id])
        if len(report.integrity) == 2:
            break
        await asyncio.sleep(0.1)
    by_id = {e.id: e for e in report.experiments}
    assert by_id["compensation"].status == "pass"
    assert by_id["compensation"].workflow.run_id == first.result_run_id
    # One run, one experiment: the plain second run shows none, so only the first is a candidate.
    assert by_id["compensation"].candidates == 1 and len(report.integrity) == 2
    assert by_id["crash-recovery"].status == "not-attempted"
