"""Running a coroutine to its end from synchronous code, on a thread of its own.

The command line is synchronous; the SDK is asynchronous. Every bridge between
the two goes through :func:`run_sync`, so that each one behaves the same on
Ctrl+C, on a deadline, and inside a caller that already runs an event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None, *, cleanup_grace: float = 0.0) -> T:
    """Run ``coro`` to the end from sync code, even inside a running event loop.

    It runs in a daemon thread: Ctrl+C reaches the calling thread at once and
    the process exits, instead of waiting for an RPC that ignores cancellation
    (a server that accepts the connection and never answers held the exit for
    30 s while a pool thread was joined). With ``cleanup_grace``, Ctrl+C first
    cancels the coroutine and waits up to that many seconds for its
    ``finally`` blocks (a batch removing its spool). A ``timeout`` that runs
    out raises :class:`TimeoutError` and abandons the thread.
    """
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
    running: dict[str, Any] = {}

    async def main() -> T:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await coro

    def work() -> None:
        try:
            outcome.set_result(asyncio.run(main()))
        except BaseException as err:  # handed to the caller's thread, which raises it
            outcome.set_exception(err)

    threading.Thread(target=work, name="grader-run-sync", daemon=True).start()
    try:
        return outcome.result(timeout)
    except KeyboardInterrupt:
        if cleanup_grace and running:
            running["loop"].call_soon_threadsafe(running["task"].cancel)
            try:
                outcome.result(timeout=cleanup_grace)
            except BaseException:  # the cancellation itself, or a clean-up that failed: Ctrl+C wins
                pass
        raise
