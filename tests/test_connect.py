"""Where the grader connects, how it says it cannot, and where its Web UI links point.

Precedence is checked through ``temporalio.envconfig`` itself (a real
temporal.toml, real variables); servers are real dev servers, paused with a
real SIGSTOP; `grader server` runs as a real process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from temporalio.envconfig import ClientConfigProfile

from grader import api, defaults
from grader.lab.app import AppSettings, start_worker, wait_for_poller
from grader.cli import cli
from grader.sources.connect import (
    ConnectionSettings,
    ServerTimeoutError,
    Target,
    connect,
    isolated_environment,
    parse_address,
    resolve,
)
from grader.errors import EXIT_BAD_INPUT, EXIT_NO_SERVER, BadInputError
from grader.lab.server import free_port, start_dev_server
from grader.sources.server_note import forget_server, record_server, recorded_ui_url
from grader.sources.live import fetch_one, read_live

GRADER = [sys.executable, "-m", "grader"]

BAD_ADDRESSES = {
    "not an address": "is not HOST:PORT",
    "::::": "IPv6 address in brackets",
    "": "is empty",
    "127.0.0.1:99999": "no valid port (99999)",
    "http://127.0.0.1:7233": "try 127.0.0.1:7233",
    "localhost": "has no port",
    "[nonsense]:7233": "not an IPv6 address",
}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("grader: error: ") and "Traceback" not in stderr
    return lines[0]


# --- addresses ----------------------------------------------------------------


@pytest.mark.parametrize("address", sorted(BAD_ADDRESSES), ids=repr)
@pytest.mark.parametrize("command", [["check"], ["timeline", "some-id"], ["simulate"]])
def test_bad_address_flag_is_one_line_exit_2(address: str, command: list[str]):
    result = CliRunner().invoke(cli, [*command, "--address", address])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    line = _one_error_line(result.stderr)
    assert f"--address {address!r}" in line and BAD_ADDRESSES[address] in line
    assert "http://http://" not in result.output


@pytest.mark.parametrize("address", ["not an address", "127.0.0.1:0", "http://localhost:7233"])
def test_bad_address_variable_names_the_variable(address: str):
    result = CliRunner().invoke(cli, ["check"], env={"TEMPORAL_ADDRESS": address})
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"TEMPORAL_ADDRESS {address!r}" in _one_error_line(result.stderr)


def test_bad_address_in_a_profile_names_the_profile(tmp_path: Path):
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.lab]\naddress = "lab.example"\n')
    result = CliRunner().invoke(cli, ["check", "--config-file", str(config), "--profile", "lab"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "address of profile 'lab' 'lab.example' has no port" in _one_error_line(result.stderr)


def test_bad_address_as_a_real_process_is_one_line():
    proc = subprocess.run(GRADER + ["check", "--address", "::::"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    assert "IPv6 address in brackets" in _one_error_line(proc.stderr)


@pytest.mark.parametrize("address", ["localhost:7233", "127.0.0.1:1", "[::1]:7233", "temporal.internal:7233",
                                     " temporal:7233 "])
def test_good_addresses_pass_unchanged(address: str):
    assert parse_address(address) == address.strip()


# --- precedence: flag, then environment, then profile, then default --------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(
        '[profile.default]\naddress = "default-profile:7233"\nnamespace = "from-default-profile"\n\n'
        '[profile.lab]\naddress = "lab-profile:7233"\nnamespace = "from-lab-profile"\napi_key = "profile-key"\n'
        'ui_url = "http://lab-ui:8080/"\n'
        '[profile.lab.tls]\nserver_name = "profile-name"\n'
    )
    return path


def test_defaults_when_nothing_is_said(tmp_path: Path):
    target = resolve(ConnectionSettings(config_file=tmp_path / "missing.toml"), environ={})
    assert (target.address, target.namespace, target.ui_url) == (defaults.DEFAULT_ADDRESS,
                                                                 defaults.DEFAULT_NAMESPACE, None)
    assert not target.uses_tls and target.rpc_timeout == defaults.RPC_TIMEOUT


def test_the_default_profile_beats_the_defaults(config_file: Path):
    target = resolve(ConnectionSettings(), environ={"TEMPORAL_CONFIG_FILE": str(config_file)})
    assert (target.address, target.namespace) == ("default-profile:7233", "from-default-profile")


@pytest.mark.parametrize("select", ["flag", "variable"])
def test_a_chosen_profile_gives_address_namespace_key_tls_and_ui(config_file: Path, select: str):
    settings = ConnectionSettings(config_file=config_file, profile="lab" if select == "flag" else None)
    environ = {"TEMPORAL_PROFILE": "lab"} if select == "variable" else {}
    target = resolve(settings, environ=environ)
    assert (target.address, target.namespace, target.ui_url) == ("lab-profile:7233", "from-lab-profile",
                                                                 "http://lab-ui:8080")
    config = target.connect_config()
    assert config["api_key"] == "profile-key" and config["tls"].domain == "profile-name"


def test_environment_beats_the_profile_and_flags_beat_both(config_file: Path):
    environ = {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": "lab",
               "TEMPORAL_ADDRESS": "env:7233", "TEMPORAL_NAMESPACE": "from-env", "TEMPORAL_API_KEY": "env-key",
               "TEMPORAL_TLS_SERVER_NAME": "env-name", "TEMPORAL_UI_URL": "http://env-ui:1"}
    by_env = resolve(ConnectionSettings(), environ=environ)
    assert (by_env.address, by_env.namespace, by_env.ui_url) == ("env:7233", "from-env", "http://env-ui:1")
    assert by_env.connect_config()["api_key"] == "env-key"
    assert by_env.connect_config()["tls"].domain == "env-name"

    flags = ConnectionSettings(address="flag:7233", namespace="from-flag", api_key="flag-key",
                               tls_server_name="flag-name", ui_url="http://flag-ui:2/")
    by_flag = resolve(flags, environ=environ)
    assert (by_flag.address, by_flag.namespace, by_flag.ui_url) == ("flag:7233", "from-flag", "http://flag-ui:2")
    assert by_flag.connect_config()["api_key"] == "flag-key"
    assert by_flag.connect_config()["tls"].domain == "flag-name"


def test_an_api_key_turns_tls_on_unless_tls_is_switched_off():
    environ = {"TEMPORAL_CONFIG_FILE": os.devnull, "TEMPORAL_API_KEY": "secret"}
    keyed = resolve(ConnectionSettings(), environ=environ)
    assert keyed.uses_tls and keyed.connect_config()["api_key"] == "secret"
    plain = resolve(ConnectionSettings(tls=False), environ=environ)
    assert not plain.uses_tls and plain.connect_config()["tls"] is False


def test_a_profiles_ui_is_not_used_for_another_address(config_file: Path):
    target = resolve(ConnectionSettings(config_file=config_file, profile="lab", address="other:7233"), environ={})
    assert target.namespace == "from-lab-profile" and target.ui_url is None


def test_tls_flag_turns_a_profile_tls_off_and_on(config_file: Path):
    off = resolve(ConnectionSettings(config_file=config_file, profile="lab", tls=False), environ={})
    assert off.connect_config()["tls"] is False
    on = resolve(ConnectionSettings(tls=True), environ={"TEMPORAL_CONFIG_FILE": os.devnull})
    assert on.uses_tls


@pytest.mark.parametrize("args, expected", [
    (["--profile", "nope"], "profile 'nope' not found"),
    (["--tls-ca-path", "/nonexistent/ca.pem"], "cannot read the TLS server CA (--tls-ca-path)"),
    (["--tls-cert-path", __file__], "needs both a client certificate and its key"),
    (["--ui-url", "localhost:8233"], "must start with http:// or https://"),
])
def test_bad_connection_settings_are_one_line_exit_2(config_file: Path, args: list[str], expected: str):
    result = CliRunner().invoke(cli, ["check", "--config-file", str(config_file), *args])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert expected in _one_error_line(result.stderr)


def test_a_broken_temporal_toml_is_one_line_exit_2(tmp_path: Path):
    broken = tmp_path / "temporal.toml"
    broken.write_text("[profile.default\naddress = ")
    result = CliRunner().invoke(cli, ["timeline", "x"], env={"TEMPORAL_CONFIG_FILE": str(broken)})
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"cannot read the Temporal config file in {broken}" in _one_error_line(result.stderr)


def test_grading_files_ignores_connection_settings(tmp_path: Path):
    """An unusable TEMPORAL_ADDRESS must not stop offline grading, which never connects."""
    golden = sorted((Path(__file__).parent / "goldens").glob("*.json"))[0]
    result = CliRunner().invoke(cli, ["check", "--history", str(golden)], env={"TEMPORAL_ADDRESS": "nonsense"})
    assert result.exit_code in (0, 1) and "nonsense" not in result.output


# --- simulate's workers go where simulate says ------------------------------------


def test_worker_environment_describes_the_target_and_nothing_else(config_file: Path, tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    target = resolve(ConnectionSettings(address="graded:7233", tls_ca_path=ca, api_key="k"), environ={})
    user = {"TEMPORAL_PROFILE": "lab", "TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_NAMESPACE": "x",
            "TEMPORAL_GRPC_META_TENANT": "other", "HOME": "/home/someone"}
    env = isolated_environment(user, target)
    assert env["HOME"] == "/home/someone" and "TEMPORAL_PROFILE" not in env
    assert "TEMPORAL_GRPC_META_TENANT" not in env
    # What the app's own envconfig call makes of it is exactly the target.
    seen = ClientConfigProfile.load(override_env_vars=env)
    assert (seen.address, seen.namespace, seen.api_key) == ("graded:7233", "default", "k")
    assert seen.tls.server_root_ca_cert == ca.absolute()


@pytest.mark.slow
async def test_a_users_profile_does_not_redirect_a_simulated_worker(client, dev_server, task_queue, solution_dir,
                                                                  tmp_path: Path, monkeypatch):
    config = tmp_path / "temporal.toml"
    config.write_text(f'[profile.elsewhere]\naddress = "127.0.0.1:{free_port()}"\nnamespace = "nope"\n'
                      '[profile.default]\napi_key = "would-turn-tls-on"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TEMPORAL_PROFILE", "elsewhere")
    settings = AppSettings(address=dev_server.address, namespace=dev_server.namespace, task_queue=task_queue)
    worker = start_worker(solution_dir, settings)
    try:
        identity = await wait_for_poller(client, worker, timeout=30)
        assert identity.startswith(f"{worker.pid}@")
    finally:
        worker.stop(sig=signal.SIGKILL, grace=5)


# --- Web UI links ----------------------------------------------------------------------


async def _open_transfer(client) -> str:
    """A MoneyTransfer nobody works on: it stays open, which is all a link needs."""
    workflow_id = f"link-{uuid.uuid4().hex[:8]}"
    await client.start_workflow("MoneyTransfer", {"amount": 1}, id=workflow_id, task_queue=f"nobody-{workflow_id}")
    return workflow_id


async def test_links_use_the_ui_url_given_and_none_is_guessed(client, dev_server):
    workflow_id = await _open_transfer(client)
    given = await read_live(ConnectionSettings(address=dev_server.address, ui_url="http://127.0.0.1:1/"),
                            workflow_ids=[workflow_id])
    history = given.histories[0]
    assert history.ui_link == (f"http://127.0.0.1:1/namespaces/default/workflows/{workflow_id}/"
                               f"{history.run_id}/history")
    unknown = await read_live(dev_server.address, workflow_ids=[workflow_id])
    assert unknown.histories[0].ui_link is None


async def test_the_running_grader_server_is_where_links_point(dev_server):
    noted = dataclasses.replace(dev_server, ui_url="http://localhost:18233")
    path = record_server(noted)
    try:
        assert path.parent.is_relative_to(Path(os.environ["XDG_STATE_HOME"]))
        port = dev_server.address.rpartition(":")[2]
        assert recorded_ui_url(f"127.0.0.1:{port}") == "http://localhost:18233"
        assert recorded_ui_url(f"other-host:{port}") is None  # same port, another machine
        assert resolve(ConnectionSettings(address=dev_server.address), environ={}).ui_url == "http://localhost:18233"
    finally:
        forget_server(noted)
    assert recorded_ui_url(dev_server.address) is None


def test_a_stale_note_from_a_dead_server_is_ignored(dev_server):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    noted = dataclasses.replace(dev_server, process=dead, ui_url="http://localhost:18233")
    record_server(noted)
    try:
        assert recorded_ui_url(dev_server.address) is None
    finally:
        forget_server(noted)


@pytest.mark.slow
async def test_grader_server_process_gives_check_its_ui_link(client, tmp_path: Path):
    port, ui_port = free_port(), free_port()
    proc = subprocess.Popen(GRADER + ["server", "--port", str(port), "--ui-port", str(ui_port), "--ephemeral"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "Workflows kept" not in proc.stdout.readline():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        workflow_id = await _open_transfer(await connect(f"localhost:{port}"))
        out = subprocess.run(GRADER + ["check", "--address", f"127.0.0.1:{port}", "--workflow-id", workflow_id,
                                       "--format", "json"], capture_output=True, text=True, timeout=60)
        link = json.loads(out.stdout)["experiments"][0]["workflow"]["ui_link"]
        assert link.startswith(f"http://localhost:{ui_port}/namespaces/default/workflows/{workflow_id}/")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert recorded_ui_url(f"localhost:{port}") is None


# --- a server that stops answering ------------------------------------------------------


@pytest.fixture
def pausable_server():
    """A dev server of this test's own, since it will be frozen with SIGSTOP."""
    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    yield server
    server.resume()
    server.stop()


@pytest.mark.slow
async def test_paused_server_during_a_live_check_is_exit_3_within_the_timeout(pausable_server):
    client = await connect(pausable_server.address)
    workflow_id = await _open_transfer(client)
    timeout = 3
    pausable_server.pause()
    try:
        began = time.monotonic()
        proc = subprocess.run(GRADER + ["check", "--address", pausable_server.address, "--workflow-id",
                                        workflow_id, "--rpc-timeout", str(timeout)],
                              capture_output=True, text=True, timeout=60)
        took = time.monotonic() - began
    finally:
        pausable_server.resume()
    assert proc.returncode == EXIT_NO_SERVER, proc.stderr
    line = _one_error_line(proc.stderr)
    assert line == (f"grader: error: Temporal at {pausable_server.address} did not answer within {timeout} s "
                    "(paused or overloaded?)")
    # Bounded by the timeout, not by the SDK's own retries (start-up of the process aside).
    assert took < timeout + 20


@pytest.mark.slow
async def test_a_server_that_stops_answering_midway_through_a_read_is_reported(pausable_server):
    # The IPv4 address the server listens on, not "localhost": that name also means ::1, where
    # another process of a busy CI machine may hold the same port number (a frozen server's
    # client could then reconnect there and be told "not found" instead of waiting).
    address = pausable_server.address.replace("localhost", "127.0.0.1")
    client = await connect(address)
    workflow_id = await _open_transfer(client)
    target = Target(address=address, namespace="default", ui_url=None, rpc_timeout=1.5)
    before = await fetch_one(client, workflow_id, None, target=target)
    assert before.workflow_id == workflow_id  # answering: a history
    pausable_server.pause()
    try:
        with pytest.raises(ServerTimeoutError, match="did not answer within 1.5 s"):
            answer = await fetch_one(client, workflow_id, None, target=target)
            pytest.fail(f"a frozen server answered: {answer!r}")  # what it said, if this ever happens again
        with pytest.raises(ServerTimeoutError) as err:
            await read_live(target, client=client)
        assert err.value.exit_code == EXIT_NO_SERVER
    finally:
        pausable_server.resume()
    # Once it runs again, the same client reads again: nothing was left broken.
    assert (await fetch_one(client, workflow_id, None, target=target)).workflow_id == workflow_id


async def test_a_library_caller_gets_a_bad_input_error_for_a_bad_address():
    with pytest.raises(BadInputError, match="address 'nowhere' has no port"):
        await api.check_live("nowhere")
