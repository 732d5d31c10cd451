"""TLS and mutual TLS for real: the session's dev server behind a real TLS terminator.

Certificates are made here by ``trustme`` (a throwaway CA, a server
certificate for 127.0.0.1, a client certificate); the terminator is the
asyncio proxy of ``tests/tlsproxy.py``, which negotiates ALPN h2 as gRPC
needs. `grader check`, `grader timeline` and both apps connect through it
with flags, with environment variables and with a temporal.toml profile.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from grader.lab.app import task_queue_pollers
from grader.cli import cli
from grader.errors import EXIT_NO_SERVER
from tlsproxy import TlsProxy, server_context

GRADER = [sys.executable, "-m", "grader"]
WAYS = ["flags", "environment", "profile"]


@dataclass(frozen=True)
class Pki:
    """Certificate files of one test module."""

    ca: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    #: A client certificate and key signed by the other CA, which the server does not trust.
    stranger_cert: Path
    stranger_key: Path
    authority: trustme.CA
    server: trustme.LeafCert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    authority, stranger = trustme.CA(), trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("learner@failure-lab.test")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    stranger.cert_pem.write_to_path(str(folder / "other-ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    impostor = stranger.issue_cert("impostor@failure-lab.test")
    impostor.cert_chain_pems[0].write_to_path(str(folder / "stranger.pem"))
    impostor.private_key_pem.write_to_path(str(folder / "stranger.key"))
    return Pki(ca=folder / "ca.pem", client_cert=folder / "client.pem", client_key=folder / "client.key",
               other_ca=folder / "other-ca.pem", stranger_cert=folder / "stranger.pem",
               stranger_key=folder / "stranger.key", authority=authority, server=server)


@pytest.fixture(scope="module")
def tls_proxy(dev_server, pki: Pki):
    """TLS only: the client checks the server."""
    with TlsProxy(dev_server.address, server_context(pki.server)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def mtls_proxy(dev_server, pki: Pki):
    """Mutual TLS: the server also demands a client certificate signed by the CA."""
    with TlsProxy(dev_server.address, server_context(pki.server, client_ca=pki.authority)) as proxy:
        yield proxy


def connection(way: str, address: str, pki: Pki, *, mutual: bool, folder: Path) -> tuple[list[str], dict[str, str]]:
    """Command-line arguments and environment variables that say "connect to ``address`` with TLS" one ``way``."""
    if way == "flags":
        args = ["--address", address, "--tls-ca-path", str(pki.ca)]
        if mutual:
            args += ["--tls-cert-path", str(pki.client_cert), "--tls-key-path", str(pki.client_key)]
        return args, {}
    if way == "environment":
        env = {"TEMPORAL_ADDRESS": address, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.ca)}
        if mutual:
            env.update(TEMPORAL_TLS_CLIENT_CERT_PATH=str(pki.client_cert),
                       TEMPORAL_TLS_CLIENT_KEY_PATH=str(pki.client_key))
        return [], env
    config = folder / "temporal.toml"
    lines = ["[profile.secure]", f'address = "{address}"', "[profile.secure.tls]",
             f'server_ca_cert_path = "{pki.ca}"']
    if mutual:
        lines += [f'client_cert_path = "{pki.client_cert}"', f'client_key_path = "{pki.client_key}"']
    config.write_text("\n".join(lines) + "\n")
    return [], {"TEMPORAL_CONFIG_FILE": str(config), "TEMPORAL_PROFILE": "secure"}


async def _open_transfer(client) -> str:
    """A MoneyTransfer on the plain side that nobody works on: open, so `check` calls it pending."""
    workflow_id = f"tls-{uuid.uuid4().hex[:8]}"
    await client.start_workflow("MoneyTransfer", {"amount": 1}, id=workflow_id, task_queue=f"nobody-{workflow_id}")
    return workflow_id


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- grader check and grader timeline ----------------------------------------------------


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
@pytest.mark.parametrize("way", WAYS)
async def test_check_connects_through_tls(client, tls_proxy, mtls_proxy, pki, tmp_path, way: str, mutual: bool):
    proxy = mtls_proxy if mutual else tls_proxy
    workflow_id = await _open_transfer(client)
    args, env = connection(way, proxy.address, pki, mutual=mutual, folder=tmp_path)
    result = CliRunner().invoke(cli, ["check", "--workflow-id", workflow_id, "--format", "json", *args], env=env)
    assert result.exit_code == 1, result.output  # read and graded: the transfer is pending
    report = json.loads(result.stdout)
    assert report["sources"] == [f"server {proxy.address}/default"]
    assert {e["workflow_id"] for e in report["integrity"]} == {workflow_id}


@pytest.mark.parametrize("way", WAYS)
async def test_timeline_connects_through_mutual_tls(client, mtls_proxy, pki, tmp_path, way: str):
    workflow_id = await _open_transfer(client)
    args, env = connection(way, mtls_proxy.address, pki, mutual=True, folder=tmp_path)
    result = CliRunner().invoke(cli, ["timeline", workflow_id, *args], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Workflow {workflow_id} ")
    assert f"source server {mtls_proxy.address}/default" in result.stdout


async def test_profile_flags_select_the_profile(client, mtls_proxy, pki, tmp_path):
    workflow_id = await _open_transfer(client)
    _, env = connection("profile", mtls_proxy.address, pki, mutual=True, folder=tmp_path)
    args = ["--config-file", env["TEMPORAL_CONFIG_FILE"], "--profile", env["TEMPORAL_PROFILE"]]
    result = CliRunner().invoke(cli, ["timeline", workflow_id, *args])
    assert result.exit_code == 0, result.output


async def test_check_as_a_real_process_through_mutual_tls(client, mtls_proxy, pki, tmp_path):
    workflow_id = await _open_transfer(client)
    _, env = connection("profile", mtls_proxy.address, pki, mutual=True, folder=tmp_path)
    proc = subprocess.run(GRADER + ["check", "--workflow-id", workflow_id], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert workflow_id in proc.stdout and "pending" in proc.stdout.lower()


# --- failures say what happened -------------------------------------------------------------


def _check(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["check", "--limit", "1", *args], env=env)


def test_a_wrong_ca_is_a_tls_error_not_no_server(tls_proxy, pki):
    result = _check(["--address", tls_proxy.address, "--tls-ca-path", str(pki.other_ca)])
    assert result.exit_code == EXIT_NO_SERVER
    line = _error_line(result.stderr)
    assert f"TLS handshake with {tls_proxy.address} failed" in line and "--tls-ca-path" in line
    assert "no Temporal server" not in line


def test_a_wrong_ca_from_the_environment_is_a_tls_error_too(tls_proxy, pki):
    result = _check([], env={"TEMPORAL_ADDRESS": tls_proxy.address,
                             "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.other_ca)})
    assert result.exit_code == EXIT_NO_SERVER
    assert f"TLS handshake with {tls_proxy.address} failed" in _error_line(result.stderr)


def test_mutual_tls_without_a_client_certificate_says_so(mtls_proxy, pki):
    result = _check(["--address", mtls_proxy.address, "--tls-ca-path", str(pki.ca)])
    assert result.exit_code == EXIT_NO_SERVER
    line = _error_line(result.stderr)
    assert f"TLS handshake with {mtls_proxy.address} failed" in line and "--tls-cert-path" in line


def test_mutual_tls_with_an_untrusted_client_certificate_says_so(mtls_proxy, pki):
    result = _check(["--address", mtls_proxy.address, "--tls-ca-path", str(pki.ca),
                     "--tls-cert-path", str(pki.stranger_cert), "--tls-key-path", str(pki.stranger_key)])
    assert result.exit_code == EXIT_NO_SERVER
    line = _error_line(result.stderr)
    assert f"TLS handshake with {mtls_proxy.address} failed" in line and "client certificate" in line


def test_a_certificate_for_another_name_points_at_tls_server_name(tls_proxy, pki):
    result = _check(["--address", tls_proxy.address, "--tls-ca-path", str(pki.ca),
                     "--tls-server-name", "not-this-server.test"])
    assert result.exit_code == EXIT_NO_SERVER
    assert "--tls-server-name" in _error_line(result.stderr)


def test_plain_grpc_to_a_tls_server_suggests_tls(tls_proxy):
    result = _check(["--address", tls_proxy.address])
    assert result.exit_code == EXIT_NO_SERVER
    line = _error_line(result.stderr)
    assert tls_proxy.address in line and "--tls" in line


def test_tls_to_a_plain_server_says_it_does_not_speak_tls(dev_server, pki):
    result = _check(["--address", dev_server.address, "--tls-ca-path", str(pki.ca)])
    assert result.exit_code == EXIT_NO_SERVER
    assert "does not speak TLS" in _error_line(result.stderr)


# --- the apps and grader simulate ------------------------------------------------------------


async def _wait_for_poller(client, task_queue: str, worker: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.startswith(f"{worker.pid}@") for p in await task_queue_pollers(client, task_queue)):
        assert worker.poll() is None, f"worker exited with {worker.returncode}"
        assert time.monotonic() < deadline, "the worker never polled"
        await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("way", ["environment", "profile"])
async def test_both_apps_run_a_transfer_through_mutual_tls(client, mtls_proxy, pki, tmp_path, task_queue,
                                                          solution_dir, way: str):
    _, connect_env = connection(way, mtls_proxy.address, pki, mutual=True, folder=tmp_path)
    env = {**os.environ, **connect_env, "TRANSFER_TASK_QUEUE": task_queue, "BANK_LATENCY_SECONDS": "0.2",
           "LEARNER_ID": "tls", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "run_worker.py"], cwd=solution_dir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        await _wait_for_poller(client, task_queue, worker)
        started = subprocess.run([sys.executable, "run_workflow.py"], cwd=solution_dir, env=env,
                                 capture_output=True, text=True, timeout=60)
    finally:
        worker.kill()
        worker.wait(10)
    assert started.returncode == 0, started.stdout + started.stderr + log.read_text()
    assert "Result: Transfer complete" in started.stdout
    # The UI of a server behind a proxy is unknown to the app: it prints no guessed link.
    assert "Web UI:" not in started.stdout


def test_the_apps_say_which_tls_problem_they_hit(tls_proxy, pki, solution_dir):
    env = {**os.environ, "TEMPORAL_ADDRESS": tls_proxy.address,
           "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.other_ca)}
    proc = subprocess.run([sys.executable, "run_workflow.py"], cwd=solution_dir, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert f"Could not reach Temporal at {tls_proxy.address}" in proc.stdout
    assert "UnknownIssuer" in proc.stdout


@pytest.mark.slow
def test_simulate_runs_workers_through_mutual_tls(mtls_proxy, pki, solution_dir):
    proc = subprocess.run(
        GRADER + ["simulate", str(solution_dir), "--experiment", "compensation", "--latency", "0.3",
                  "--address", mtls_proxy.address, "--tls-ca-path", str(pki.ca),
                  "--tls-cert-path", str(pki.client_cert), "--tls-key-path", str(pki.client_key),
                  "--format", "json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [e["id"] for e in report["experiments"]] == ["compensation"]
    assert report["experiments"][0]["status"] == "pass"
