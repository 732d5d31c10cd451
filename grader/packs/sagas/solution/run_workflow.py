"""Place one pizza order and wait for how it ends.

The workflow id starts with your learner id, so the grader can find your
orders on a server the whole class shares: <LEARNER_ID>-pizza-<order>-<random>.
"""

import asyncio
import sys
import uuid

from temporalio.client import WorkflowFailureError

from shared import LEARNER_ID, TASK_QUEUE_NAME, connect_to_temporal, sample_order
from workflows import PizzaOrderWorkflow


async def main() -> int:
    client = await connect_to_temporal()
    if client is None:
        return 3
    order = sample_order()
    workflow_id = f"{LEARNER_ID}-pizza-{order.order_number.lower()}-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(PizzaOrderWorkflow.order_pizza, order, id=workflow_id,
                                         task_queue=TASK_QUEUE_NAME)
    print(f"Started order {order.order_number}: workflow {workflow_id} (run {handle.result_run_id})", flush=True)
    try:
        confirmation = await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        print(f"The order failed and was rolled back: {cause}", flush=True)
        return 0
    print(f"Order confirmed: {confirmation}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
