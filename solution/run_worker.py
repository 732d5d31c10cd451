"""Start a worker: the process that runs MoneyTransfer and its activities.

A worker holds no workflow state. It asks the Temporal service for tasks,
runs them and reports back. Kill it at any moment: the state is in the
service, and the next worker you start carries on from the last recorded step.
"""

import asyncio
import logging
import os
import signal
import sys

from temporalio import activity, workflow
from temporalio.worker import Worker

from activities import BankingActivities
from shared import (
    MONEY_TRANSFER_TASK_QUEUE_NAME,
    code_fingerprint,
    connect_to_temporal,
)
from workflows import MoneyTransfer


class _OneLineActivityFailures(logging.Filter):
    """The SDK logs every failed activity attempt with a full traceback.
    With endless retries that floods the terminal, so keep one line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage() == "Completing activity as failed":
            err = record.exc_info[1]
            info = getattr(record, "temporal_activity", {}) or {}
            record.msg = "Activity %s attempt %s failed: %s: %s"
            record.args = (
                info.get("activity_type", "?"),
                info.get("attempt", "?"),
                type(err).__name__,
                err,
            )
            record.exc_info = None
            record.exc_text = None
        return True


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    )
    handler.addFilter(_OneLineActivityFailures())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # Our log lines are short; drop the dict of ids the SDK appends to them.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False


async def main() -> int:
    _configure_logging()
    client = await connect_to_temporal()
    if client is None:
        return 3

    # Ctrl+C (SIGINT) and `kill PID` (SIGTERM) both ask the worker to stop.
    # Leaving the `async with` block below shuts the worker down: activities
    # still running are cancelled and reported as failed (WorkerShutdown), so
    # the server can retry them on the next worker straight away.
    # (`kill -9` gives no such chance: the server only notices when the
    # activity's start_to_close timeout runs out.)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # e.g. Windows
            pass

    banking = BankingActivities()
    fingerprint = code_fingerprint()
    worker = Worker(
        client,
        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
        workflows=[MoneyTransfer],
        activities=[banking.withdraw, banking.deposit, banking.refund],
        # No identity= here: the default "<pid>@<host>" changes with every
        # restart, which is how the history shows that a new worker took over.
        # The build id is recorded on every task this worker starts: a hash
        # of the code it loaded, so the history shows when the code changed.
        build_id=fingerprint,
    )
    async with worker:
        print(
            f"Worker started (pid {os.getpid()}) on task queue {MONEY_TRANSFER_TASK_QUEUE_NAME}"
            f" with code {fingerprint}",
            flush=True,
        )
        await stop.wait()
    print("Worker stopped.", flush=True)
    return 0


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:  # only where signal handlers are unavailable
        print("Worker stopped.", flush=True)
        code = 0
    # Skip the interpreter's teardown: the SDK's background (Rust) threads can
    # abort it with "Fatal Python error: PyGILState_Release" (temporalio
    # sdk-python issue #300). Flush output first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
