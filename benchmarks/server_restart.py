"""How soon `grader server` starts again on its port after it was killed with SIGKILL.

    .venv/bin/python benchmarks/server_restart.py [--rounds N] [--give-up SECONDS]

Each round starts `grader server --ephemeral` on a fresh port, makes a few
real client calls (their connections, closed by the dying server, are what
leave TIME_WAIT entries on its port), sends SIGKILL, and at once starts it
again on the same port, retrying every second while it refuses. It prints
the seconds from the kill until the new server answers, and how many starts
were refused on the way. The grader run is whichever `python -m grader`
resolves to (put another checkout first in PYTHONPATH to measure it).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from grader.sources.connect import connect
from grader.lab.server import free_port


def start(port: int, ui_port: int, cwd: str) -> subprocess.Popen[str]:
    """`grader server` on ``port`` (cwd outside any checkout, so PYTHONPATH decides which grader runs)."""
    return subprocess.Popen([sys.executable, "-m", "grader", "server", "--ephemeral", "--port", str(port),
                             "--ui-port", str(ui_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd)


def ready(proc: subprocess.Popen[str]) -> bool:
    """True once the server printed its banner; False when it exited instead."""
    for line in proc.stdout:
        if "Workflows kept" in line:
            return True
    proc.wait()
    return False


async def poke(port: int) -> None:
    client = await connect(f"localhost:{port}")
    for _ in range(5):
        await client.count_workflows()


def one_round(cwd: str, give_up: float) -> tuple[float | None, int]:
    port, ui_port = free_port(), free_port()
    first = start(port, ui_port, cwd)
    assert ready(first), first.stderr.read()
    asyncio.run(poke(port))
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    refused = 0
    while time.monotonic() - killed < give_up:
        second = start(port, ui_port, cwd)
        if ready(second):
            took = time.monotonic() - killed
            second.send_signal(signal.SIGINT)
            second.wait(timeout=30)
            return took, refused
        refused += 1
        time.sleep(1)
    return None, refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=120.0, metavar="SECONDS")
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as cwd:
        for n in range(1, args.rounds + 1):
            took, refused = one_round(cwd, args.give_up)
            shown = f"{took:.2f} s" if took is not None else f"not within {args.give_up:.0f} s"
            print(f"round {n}: restarted after {shown}, {refused} start(s) refused as 'port in use'")
            if took is not None:
                times.append(took)
    if times:
        print(f"median kill -> answering again: {statistics.median(times):.2f} s over {len(times)} round(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
