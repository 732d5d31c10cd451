"""Submission bundles: `grader export` from a real server, `grader check` of the bundle, tampering caught.

The live tests run a real worker and real workflows on the session's dev
server; the offline ones write bundles from the goldens with the same
library function the export uses.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader import api
from grader.lab.app import start_worker, wait_for_poller
from grader.sources.bundles import MANIFEST, manifest_schema, read_bundle, write_bundle
from grader.engine.learner import owns
from grader.cli import cli
from grader.engine.report import report_schema
from test_integrity import FORGE

GOLDENS = Path(__file__).parent / "goldens"


def golden_runs(*names: str) -> list[tuple[str, str, dict]]:
    runs = []
    for name in names:
        doc = json.loads((GOLDENS / f"{name}.json").read_text())
        start = doc["events"][0]["workflowExecutionStartedEventAttributes"]
        runs.append((start["workflowId"], start["originalExecutionRunId"], doc))
    return runs


def bundle_of(tmp_path: Path, *names: str, as_zip: bool = False) -> Path:
    path = tmp_path / ("bundle.zip" if as_zip else "bundle")
    write_bundle(golden_runs(*names), path, server_address="localhost:7233", namespace="default",
                 learner="sim", as_zip=as_zip)
    return path


def check_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--format", "json", *args])
    data = json.loads(result.stdout)
    jsonschema.validate(data, report_schema())
    return result.exit_code, data


# --- offline: bundles written from the goldens ----------------------------------


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_a_bundle_grades_like_its_files_and_is_consistent(tmp_path: Path, as_zip: bool):
    names = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund")
    bundle = bundle_of(tmp_path, *names, as_zip=as_zip)
    code, data = check_json("--history", str(bundle))
    assert code == 0
    assert [e["status"] for e in data["integrity"]] == ["consistent"] * 3
    plain = api.check_files([GOLDENS / f"{n}.json" for n in names])
    assert [(e["id"], e["status"], e["score"]) for e in data["experiments"]] == \
        [(e.id, e.status, e.score) for e in plain.experiments]


def test_the_manifest_says_what_the_issue_asks(tmp_path: Path):
    bundle = bundle_of(tmp_path, "no-failure")
    manifest = json.loads((bundle / MANIFEST).read_text())
    jsonschema.validate(manifest, manifest_schema())
    assert {"grader_version", "server_address", "namespace", "learner", "exported_at"} <= set(manifest)
    (entry,) = manifest["histories"]
    assert set(entry) == {"file", "workflow_id", "run_id", "sha256"}
    assert (bundle / entry["file"]).is_file()
    # Each history is in the `temporal workflow show --output json` form.
    assert list(json.loads((bundle / entry["file"]).read_text())) == ["events"]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_a_file_changed_after_export_is_a_finding(tmp_path: Path, as_zip: bool):
    bundle = bundle_of(tmp_path, "sigkill-during-deposit", "live-fix", as_zip=as_zip)
    if as_zip:  # rewrite the zip with one member edited
        with zipfile.ZipFile(bundle) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        victim = next(n for n in members if n.startswith("sim-live-fix"))
        members[victim] = members[victim].replace(b'"requestId": "', b'"requestId": "0', 1)
        bundle.unlink()
        with zipfile.ZipFile(bundle, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    else:
        victim = next(p for p in bundle.iterdir() if p.name.startswith("sim-live-fix"))
        victim.write_text(victim.read_text().replace('"requestId": "', '"requestId": "0', 1))
    code, data = check_json("--history", str(bundle))
    assert code == 1
    verdicts = {e["workflow_id"].rsplit("-", 1)[0]: e for e in data["integrity"]}
    assert verdicts["sim-sigkill-during-deposit"]["status"] == "consistent"
    tampered = verdicts["sim-live-fix"]
    assert tampered["status"] == "suspect"
    assert [f["code"] for f in tampered["findings"]] == ["bundle-hash"]
    live_fix = next(e for e in data["experiments"] if e["id"] == "live-fix")
    assert live_fix["status"] == "fail"  # it passed before the edit; now the best is the other run's 6/10


def test_a_file_added_to_a_bundle_is_flagged(tmp_path: Path):
    bundle = bundle_of(tmp_path, "no-failure")
    shutil.copy(GOLDENS / "live-fix.json", bundle / "extra.json")
    loaded = read_bundle(bundle)
    assert [f.code for f in loaded.findings[str(bundle / "extra.json")]] == ["bundle-unlisted"]


def test_a_renamed_workflow_in_the_manifest_is_a_finding(tmp_path: Path):
    bundle = bundle_of(tmp_path, "sigkill-during-deposit")
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["histories"][0]["workflow_id"] = "mallory-transfer-00000001"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    loaded = read_bundle(bundle)
    (findings,) = loaded.findings.values()
    assert [f.code for f in findings] == ["manifest-mismatch"]


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / MANIFEST).write_text("{"), "manifest.json is not valid JSON"),
    (lambda b: (b / MANIFEST).write_text('{"format": "failure-lab-bundle/1"}'), "'grader_version' is a required"),
    (lambda b: next(p for p in b.iterdir() if p.name != MANIFEST).unlink(), "but the folder lacks it"),
])
def test_a_broken_bundle_is_one_clear_error_and_exit_2(tmp_path: Path, damage, message: str):
    bundle = bundle_of(tmp_path, "no-failure")
    damage(bundle)
    result = CliRunner().invoke(cli, ["check", "--history", str(bundle), "--history", str(GOLDENS / "live-fix.json")])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert "Live bug fix: PASS" in result.stdout  # the other input is still graded


def test_a_zip_that_is_not_a_bundle_is_refused(tmp_path: Path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    result = CliRunner().invoke(cli, ["check", "--history", str(junk)])
    assert result.exit_code == 2
    assert "not a readable zip file" in result.stderr


def test_export_refuses_to_write_over_anything(tmp_path: Path):
    target = tmp_path / "there"
    target.symlink_to(tmp_path / "elsewhere")
    from grader.errors import BadInputError

    with pytest.raises(BadInputError, match="already exists"):
        write_bundle(golden_runs("no-failure"), target, server_address="x", namespace="default", learner="sim")
    assert not (tmp_path / "elsewhere").exists()


def test_learner_matching_is_exact():
    assert owns("ada", "ada-transfer-1")
    assert not owns("ada", "adam-transfer-1")
    assert not owns("ada", "ada")


# --- live: a real server, a real worker, the installed command ---------------------


async def _transfers(client, settings, solution_dir, workflow_ids: list[str]) -> None:
    worker = start_worker(solution_dir, settings)
    try:
        await wait_for_poller(client, worker)
        handles = [await client.start_workflow(
            "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                              "reference_id": uuid.uuid4().hex}, id=wid, task_queue=settings.task_queue)
            for wid in workflow_ids]
        await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
    finally:
        worker.stop(sig=signal.SIGKILL)


@pytest.mark.slow
async def test_export_check_and_tamper_against_a_real_server(dev_server, client, fast_settings, solution_dir,
                                                              tmp_path: Path):
    learner = f"ada{uuid.uuid4().hex[:6]}"
    mine = [f"{learner}-transfer-{i}" for i in range(2)]
    await _transfers(client, fast_settings, solution_dir, mine + [f"{learner}x-transfer-0"])  # not hers
    grader = Path(sys.executable).parent / "grader"

    for as_zip in (False, True):
        bundle = tmp_path / f"{learner}{'.zip' if as_zip else ''}"
        export = subprocess.run([str(grader), "export", "--learner", learner, "--address", dev_server.address,
                                 "--output", str(bundle)] + (["--zip"] if as_zip else []),
                                capture_output=True, text=True, timeout=120)
        assert export.returncode == 0, export.stderr
        assert export.stdout.startswith(f"exported 2 runs of learner {learner} from {dev_server.address}/default")

        loaded = read_bundle(bundle)
        assert sorted(h.workflow_id for h in loaded.histories) == sorted(mine)
        assert loaded.errors == [] and loaded.findings == {}
        report = api.grade_loaded(loaded)
        assert [e.status for e in report.integrity] == ["consistent", "consistent"]
        assert all(e.notes == ["replayed through the reference MoneyTransfer: deterministic"]
                   for e in report.integrity)

        checked = subprocess.run([str(grader), "check", "--history", str(bundle), "--format", "json"],
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 1  # plain transfers: no experiment done yet, but nothing suspect
        data = json.loads(checked.stdout)
        jsonschema.validate(data, report_schema())
        assert {e["status"] for e in data["integrity"]} == {"consistent"}

    # Tamper with the folder bundle: the grade now says which file changed.
    folder = tmp_path / learner
    victim = next(p for p in folder.iterdir() if p.name != MANIFEST)
    victim.write_text(victim.read_text().replace('"identity": "', '"identity": "9', 1))
    checked = subprocess.run([str(grader), "check", "--history", str(folder)], capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 1
    assert "Suspect histories: 1 of 2" in checked.stdout
    assert f"bundle-hash: {victim.name} does not match the sha256" in checked.stdout


@pytest.mark.slow
async def test_export_of_an_unknown_learner_says_so(dev_server):
    result = CliRunner().invoke(cli, ["export", "--learner", f"nobody{uuid.uuid4().hex[:6]}",
                                      "--address", dev_server.address, "-o", "unused"])
    assert result.exit_code == 2
    assert "check the learner id" in result.stderr
    assert not Path("unused").exists()


def test_export_says_when_no_server_answers(tmp_path: Path):
    from grader.lab.server import free_port

    result = CliRunner().invoke(cli, ["export", "--learner", "ada", "--address", f"localhost:{free_port()}",
                                      "-o", str(tmp_path / "b")])
    assert result.exit_code == 3
    assert result.stderr.startswith("grader: error: no Temporal server at localhost:")
    assert not (tmp_path / "b").exists()


def test_export_refuses_an_existing_destination_before_reading(tmp_path: Path):
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(cli, ["export", "--learner", "ada", "--address", "localhost:1", "-o",
                                      str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_check_replays_only_when_asked_and_keeps_the_rules(tmp_path: Path):
    FORGE.write_all(tmp_path, ["fake-compensation"])
    code, data = check_json("--history", str(tmp_path / "fake-compensation"))
    (entry,) = data["integrity"]
    assert entry["notes"] == [] and entry["status"] == "suspect"
    assert "replay-nondeterminism" not in {f["code"] for f in entry["findings"]}
    code, data = check_json("--replay", "--history", str(tmp_path / "fake-compensation"))
    assert "replay-nondeterminism" in {f["code"] for f in data["integrity"][0]["findings"]}


@pytest.mark.slow
async def test_a_reset_run_and_its_parent_are_consistent_in_a_bundle_and_as_plain_files(
        dev_server, client, fast_settings, solution_dir, tmp_path: Path):
    """Real data for the reset rule: the reset run copies its parent's first events under the parent's run id."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    from grader.engine.history import load_history_file

    learner = f"rita{uuid.uuid4().hex[:6]}"
    workflow_id = f"{learner}-transfer-0"
    worker = start_worker(solution_dir, fast_settings)
    try:
        await wait_for_poller(client, worker)
        handle = await client.start_workflow(
            "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 250,
                              "reference_id": uuid.uuid4().hex}, id=workflow_id, task_queue=fast_settings.task_queue)
        await asyncio.wait_for(handle.result(), 60)
        parent_run = (await handle.describe()).run_id
        events = [e async for e in handle.fetch_history_events()]
        first_task = next(e.event_id for e in events if e.HasField("workflow_task_completed_event_attributes"))
        await client.workflow_service.reset_workflow_execution(ResetWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=parent_run),
            reason="test: reset to the first workflow task", workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4())))
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    finally:
        worker.stop(sig=signal.SIGKILL)

    from grader.sources.bundles import export_learner

    bundle = tmp_path / "bundle"
    manifest = await export_learner(bundle, learner=learner, connection=dev_server.address, client=client)
    assert len({h.run_id for h in manifest.histories}) == 2
    report = api.grade_loaded(read_bundle(bundle))
    assert [e.status for e in report.integrity] == ["consistent", "consistent"]
    assert sorted(e.run_id for e in report.integrity) == sorted(h.run_id for h in manifest.histories)

    # Read as plain files, both carry the parent's run id: the reset rule keeps them consistent.
    plain = tmp_path / "plain"
    plain.mkdir()
    for entry in manifest.histories:
        shutil.copy(bundle / entry.file, plain / entry.file)
    histories = [load_history_file(p) for p in sorted(plain.iterdir())]
    assert histories[0].run_id == histories[1].run_id == parent_run
    report = api.check_files([plain])
    assert [e.status for e in report.integrity] == ["consistent", "consistent"]


@pytest.mark.slow
async def test_one_run_in_every_export_spelling_is_one_consistent_run(dev_server, client, fast_settings,
                                                                       solution_dir, tmp_path: Path):
    """The SDK's JSON, `temporal workflow show` and the HTTP API's shorthand of one real run, graded together."""
    import urllib.request

    from grader.lab.server import temporal_binary

    workflow_id = f"eve{uuid.uuid4().hex[:6]}-transfer-0"
    await _transfers(client, fast_settings, solution_dir, [workflow_id])
    handle = client.get_workflow_handle(workflow_id)
    (tmp_path / "sdk.json").write_text((await handle.fetch_history()).to_json())
    shown = subprocess.run([str(temporal_binary()), "workflow", "show", "-w", workflow_id, "--address",
                            dev_server.address, "--output", "json"], capture_output=True, text=True, check=True)
    (tmp_path / "cli.json").write_text(shown.stdout)
    url = f"http://localhost:{dev_server.http_port}/api/v1/namespaces/default/workflows/{workflow_id}/history"
    with urllib.request.urlopen(url, timeout=10) as response:
        (tmp_path / "http.json").write_bytes(response.read())

    report = api.check_files([tmp_path])
    assert report.errors == []
    assert len({e.run_id for e in report.integrity}) == 1
    assert [(Path(e.source).name, e.status) for e in report.integrity] == [
        ("cli.json", "consistent"), ("http.json", "consistent"), ("sdk.json", "consistent")]
    assert all(e.notes == ["replayed through the reference MoneyTransfer: deterministic"] for e in report.integrity)


def test_a_zipped_bundle_folder_reads_and_a_zip_without_manifest_is_refused(tmp_path: Path):
    folder = bundle_of(tmp_path, "live-fix")
    by_hand = tmp_path / "by-hand.zip"  # zipped with its folder as the top level, as people do
    with zipfile.ZipFile(by_hand, "w") as archive:
        for item in folder.iterdir():
            archive.write(item, f"bundle/{item.name}")
    loaded = read_bundle(by_hand)
    assert (loaded.errors, len(loaded.histories), loaded.findings) == ([], 1, {})
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.write(GOLDENS / "live-fix.json", "live-fix.json")
    assert read_bundle(bare).errors == [f"{bare}: the zip holds no manifest.json: it is not a bundle from "
                                        "`grader export`"]
