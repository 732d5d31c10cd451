"""The note ``grader server`` leaves about each server it runs, so links can point at its Web UI.

One small JSON file per gRPC port in the state dir. The server command
writes and removes it; :mod:`grader.sources.connect` only reads it, which is
why it lives with the sources and not with the server that starts it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol


class RunningServer(Protocol):
    """What a note needs of a server (:class:`grader.lab.server.DevServer` has it)."""

    address: str
    ui_url: str | None

    @property
    def pid(self) -> int:
        """Process id of the server."""
        ...


def state_dir() -> Path:
    """Where ``grader server`` notes the servers it runs (``$XDG_STATE_HOME/failure-lab/servers``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "failure-lab" / "servers"


def _same_host(a: str, b: str) -> bool:
    loopback = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}
    return a == b or (a in loopback and b in loopback)


def record_server(server: RunningServer) -> Path | None:
    """Note a running server's address and Web UI in the state dir, so links can point at its UI.

    One small JSON file per gRPC port; :func:`recorded_ui_url` reads it and
    :func:`forget_server` removes it. Failing to write it only costs links.
    """
    port = server.address.rpartition(":")[2]
    path = state_dir() / f"{port}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"address": server.address, "ui_url": server.ui_url, "pid": server.pid}))
    except OSError:
        return None
    return path


def forget_server(server: RunningServer) -> None:
    """Remove what :func:`record_server` wrote for ``server`` (if it is still about this process)."""
    path = state_dir() / f"{server.address.rpartition(':')[2]}.json"
    try:
        if json.loads(path.read_text()).get("pid") == server.pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def recorded_ui_url(address: str) -> str | None:
    """The Web UI of the ``grader server`` still running at ``address``, if one noted it; else None."""
    host, _, port = address.rpartition(":")
    try:
        noted = json.loads((state_dir() / f"{port}.json").read_text())
        pid = int(noted["pid"])
        if os.name == "posix":  # signal 0 only asks whether it lives; on Windows os.kill would stop it
            os.kill(pid, 0)  # a stale note from a server that died without cleaning up says nothing
    except (OSError, ValueError, KeyError, TypeError):
        return None
    noted_host = str(noted.get("address", "")).rpartition(":")[0]
    if not _same_host(host.strip("[]"), noted_host.strip("[]")):
        return None
    return noted.get("ui_url") or None
