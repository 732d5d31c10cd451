"""Start one money transfer and wait for its result.

This script only asks Temporal to start the workflow and then waits. The work
itself happens in whichever worker picks it up, so you can stop and restart
workers while this script keeps waiting.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from shared import (
    DEFAULT_TEMPORAL_ADDRESS,
    LEARNER_ID,
    MONEY_TRANSFER_TASK_QUEUE_NAME,
    TEMPORAL_UI_URL,
    PaymentDetails,
    connect_to_temporal,
)
from workflows import MoneyTransfer


def _failure_text(err: BaseException) -> str:
    # A failure arrives as a chain: workflow failed <- activity failed <- the
    # original error. Show each link once.
    parts = []
    while err is not None:
        text = getattr(err, "message", None) or str(err)
        kind = getattr(err, "type", None)  # original class name, e.g. ValueError
        if kind:
            text = f"{kind}: {text}"
        if text and not (parts and text in parts[-1]):  # skip repeats
            parts.append(text)
        err = err.__cause__
    return " <- ".join(parts)


def _say_back(silence: dict) -> None:
    """Once the server answers again, say so (once) to whoever was told it went quiet."""
    since = silence.pop("since", None)
    if since is not None:
        print(
            f"Temporal answers again after {time.monotonic() - since:.0f} s"
            " of silence; still waiting for the result...",
            flush=True,
        )


async def _report_silences(client: Client, silence: dict, every: float = 2.0) -> None:
    """Say so when the server stops answering, and again when it is back.

    Waiting for a result is one long request that a frozen server simply
    leaves unanswered, so on its own this script would notice nothing until
    the server woke up. A cheap question every few seconds, each with a short
    deadline, tells a paused server (or a cut network) apart from a transfer
    that is merely slow. ``silence["since"]`` holds when the silence began.
    """
    while True:
        try:
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=every)
            )
            _say_back(silence)
        except RPCError:
            if "since" not in silence:
                silence["since"] = time.monotonic()
                print(
                    f"Temporal at {client.service_client.config.target_host} is not"
                    " answering (server paused or network cut?). The transfer is safe"
                    " in Temporal; still waiting...",
                    flush=True,
                )
        await asyncio.sleep(every)


async def main() -> int:
    parser = argparse.ArgumentParser(description="Start a money transfer.")
    parser.add_argument(
        "--amount", type=int, default=250,
        help="dollars to move (try 5000: more than the account holds)",
    )
    args = parser.parse_args()

    client = await connect_to_temporal()
    if client is None:
        return 3

    details = PaymentDetails(
        source_account="85-150",
        target_account="43-812",
        amount=args.amount,
        reference_id=str(uuid.uuid4()),
    )
    # The id starts with your LEARNER_ID so the grader can find your runs.
    workflow_id = f"{LEARNER_ID}-transfer-{uuid.uuid4().hex[:8]}"

    handle = await client.start_workflow(
        MoneyTransfer.run,
        details,
        id=workflow_id,
        # Must be the queue the worker polls, hence the shared constant.
        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
    )
    print(
        f"Started transfer of ${details.amount} from {details.source_account}"
        f" to {details.target_account}"
    )
    print(f"Workflow id: {workflow_id}")
    # Your own queue (shared.py says why): only your worker picks this transfer up.
    print(f"Task queue: {MONEY_TRANSFER_TASK_QUEUE_NAME}")
    # Only a UI address someone told us (or the local dev server's) makes a link that works.
    ui_url = TEMPORAL_UI_URL
    local = client.service_client.config.target_host == DEFAULT_TEMPORAL_ADDRESS
    if ui_url is None and local:
        ui_url = "http://localhost:8233"
    if ui_url:
        print(f"Web UI: {ui_url}/namespaces/{client.namespace}/workflows/{workflow_id}")
    print("Waiting for the result (a worker must be running: python run_worker.py)...", flush=True)

    silence: dict = {}
    watchdog = asyncio.create_task(_report_silences(client, silence))
    try:
        while True:
            try:
                result = await handle.result()
                break
            except WorkflowFailureError as err:
                # The answer itself shows the server is back: say so before the answer
                # (the watchdog's next question might come too late).
                _say_back(silence)
                print(f"Transfer failed: {_failure_text(err.cause)}")
                return 1
            except RPCError:
                # The wait itself broke off (the server went away and came
                # back, for instance). The transfer is safe in Temporal, and
                # the watchdog above tells the user what is going on: ask again.
                await asyncio.sleep(1)
    finally:
        watchdog.cancel()
    _say_back(silence)
    print(f"Result: {result}")
    return 0


def _exit(code: int) -> None:
    # The SDK's background (Rust) threads can abort a normal interpreter
    # shutdown with "Fatal Python error: PyGILState_Release" (temporalio
    # sdk-python issue #300). Flush our output and skip that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    try:
        exit_code = asyncio.run(main())
    except KeyboardInterrupt:
        # Stopping this script does not stop the transfer: it lives on in Temporal.
        print("\nStopped waiting. The transfer keeps running; see the Web UI.")
        exit_code = 130
    _exit(exit_code)
