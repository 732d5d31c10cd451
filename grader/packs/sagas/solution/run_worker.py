"""Start a worker: the process that runs PizzaOrderWorkflow and its activities.

A worker keeps no order's state: that lives in the Temporal service. Kill it
at any moment, even in the middle of a rollback, and the next worker you
start carries on from the last step the service recorded.
"""

import asyncio
import os
import signal

from temporalio.worker import Worker

from activities import PizzaOrderActivities
from shared import TASK_QUEUE_NAME, connect_to_temporal
from workflows import PizzaOrderWorkflow


async def main() -> int:
    client = await connect_to_temporal()
    if client is None:
        return 3
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # e.g. Windows
            pass
    shop = PizzaOrderActivities()
    worker = Worker(
        client,
        task_queue=TASK_QUEUE_NAME,
        workflows=[PizzaOrderWorkflow],
        # Bound methods: the history names each activity by its method name.
        activities=[shop.get_distance, shop.update_inventory, shop.revert_inventory, shop.process_credit_card,
                    shop.refund_customer, shop.send_bill, shop.notify_delivery_driver],
    )
    async with worker:
        print(f"Worker {os.getpid()} started on task queue {TASK_QUEUE_NAME}. Press Ctrl+C to stop it.", flush=True)
        await stop.wait()
    print("Worker stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
