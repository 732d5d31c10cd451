"""What connecting costs with TLS, and how soon a frozen server is reported.

Run from the checkout (needs the test extra, for ``trustme``)::

    .venv/bin/python benchmarks/bench_connect.py
    .venv/bin/python benchmarks/bench_connect.py --repeat 10 --rpc-timeout 3

One in-memory dev server; in front of it the TLS terminator the tests use
(``tests/tlsproxy.py``, ALPN h2), once with server TLS and once demanding a
client certificate. Then, in the same run:

    (a) ``connect()`` (connect + describe the namespace) plain, TLS and mutual TLS:
        median of ``--repeat`` in this process;
    (b) ``grader check --workflow-id ID`` as a whole process, plain, TLS and
        mutual TLS: median wall time of ``--repeat`` runs;
    (c) ``grader check`` against the same server frozen with SIGSTOP, with
        ``--rpc-timeout`` and with the default 10 s: wall time until it exits
        (with exit 3), once each.

This is a script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tlsproxy import TlsProxy, server_context  # noqa: E402

from grader import defaults  # noqa: E402
from grader.sources.connect import ConnectionSettings, connect  # noqa: E402
from grader.lab.server import free_port, start_dev_server  # noqa: E402

GRADER = [sys.executable, "-m", "grader"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rpc-timeout", type=float, default=3.0)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1")
    client = authority.issue_cert("bench@failure-lab.test")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))

    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    try:
        with TlsProxy(server.address, server_context(server_cert)) as tls, \
                TlsProxy(server.address, server_context(server_cert, client_ca=authority)) as mtls:
            ways = {
                "plain": ["--address", server.address],
                "TLS": ["--address", tls.address, "--tls-ca-path", str(folder / "ca.pem")],
                "mutual TLS": ["--address", mtls.address, "--tls-ca-path", str(folder / "ca.pem"),
                               "--tls-cert-path", str(folder / "client.pem"),
                               "--tls-key-path", str(folder / "client.key")],
            }
            settings = {
                "plain": ConnectionSettings(address=server.address),
                "TLS": ConnectionSettings(address=tls.address, tls_ca_path=folder / "ca.pem"),
                "mutual TLS": ConnectionSettings(address=mtls.address, tls_ca_path=folder / "ca.pem",
                                                 tls_cert_path=folder / "client.pem",
                                                 tls_key_path=folder / "client.key"),
            }
            workflow_id = asyncio.run(_open_transfer(server.address))

            print(f"(a) connect() + describe namespace, median of {args.repeat}")
            for name, setting in settings.items():
                times = asyncio.run(_time_connects(setting, args.repeat))
                print(f"    {name:<11} {statistics.median(times) * 1000:7.1f} ms")

            print(f"(b) `grader check --workflow-id ID` as a process, median of {args.repeat}")
            for name, flags in ways.items():
                times = [_time_process(GRADER + ["check", "--workflow-id", workflow_id, *flags])[0]
                         for _ in range(args.repeat)]
                print(f"    {name:<11} {statistics.median(times):7.2f} s")

            print("(c) `grader check` against the frozen server (SIGSTOP): time to exit")
            server.pause()
            try:
                for timeout in (args.rpc_timeout, defaults.RPC_TIMEOUT):
                    took, code = _time_process(GRADER + ["check", "--workflow-id", workflow_id,
                                                         *ways["plain"], "--rpc-timeout", str(timeout)])
                    print(f"    --rpc-timeout {timeout:g}: exit {code} after {took:.2f} s")
            finally:
                server.resume()
    finally:
        server.stop()


async def _open_transfer(address: str) -> str:
    client = await connect(address)
    workflow_id = f"bench-{uuid.uuid4().hex[:8]}"
    await client.start_workflow("MoneyTransfer", {"amount": 1}, id=workflow_id, task_queue="nobody")
    return workflow_id


async def _time_connects(settings: ConnectionSettings, repeat: int) -> list[float]:
    target = settings.resolve()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await connect(target)
        times.append(time.perf_counter() - began)
    return times


def _time_process(argv: list[str]) -> tuple[float, int]:
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - began, proc.returncode


if __name__ == "__main__":
    main()
