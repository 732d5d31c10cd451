"""A real TLS terminator in front of a plain dev server, for the TLS tests.

The Temporal SDK's gRPC client speaks HTTP/2 and refuses a TLS server that
does not agree on ALPN ``h2`` (a generic terminator such as socat fails with
``H2NotNegotiated``). This proxy accepts TLS with ALPN ``h2``, optionally
demands a client certificate (mutual TLS), and copies bytes both ways to the
server's plain gRPC port. It runs its own event loop in a thread, so both
synchronous tests and subprocesses can use it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field


@dataclass
class TlsProxy:
    """A running TLS proxy: ``address`` takes TLS and forwards to ``upstream``."""

    upstream: str
    context: ssl.SSLContext
    host: str = "127.0.0.1"
    port: int = 0
    #: Handshakes that failed, as the ssl module reported them (for assertions).
    failed_handshakes: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.base_events.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` where clients connect with TLS."""
        return f"{self.host}:{self.port}"

    def start(self) -> "TlsProxy":
        """Listen on a free port and serve in a background thread."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.context,
                                                      ssl_handshake_timeout=10)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(listen())
            self._loop.run_forever()

        self._loop.set_exception_handler(self._note_failure)
        self._thread = threading.Thread(target=run, name="tls-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread."""
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "TlsProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _note_failure(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # A refused handshake (wrong CA, no client certificate) surfaces here;
        # keep it for the test instead of printing it.
        self.failed_handshakes.append(str(context.get("exception") or context.get("message")))

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        host, _, port = self.upstream.rpartition(":")
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer),
                             return_exceptions=True)


def server_context(cert, *, client_ca=None) -> ssl.SSLContext:
    """A TLS server context offering ALPN h2; with ``client_ca`` it demands a client certificate.

    ``cert`` is a trustme ``LeafCert`` and ``client_ca`` a trustme ``CA``.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(["h2"])
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
