"""PizzaOrderWorkflow: take an order, and undo what was done if a step fails for good.

This is the Saga pattern. Each step that changes the world gets a
compensation, an activity that undoes it. The compensation is put on a list
*before* its step is called: if the step fails half way (the bank took the
money, then the connection dropped), the workflow cannot tell whether it
took effect, so it must undo it anyway. When a step fails for good, the
compensations run in reverse order, the newest first, exactly as a stack of
changes is unwound, and then the workflow fails with the original error so
whoever placed the order sees why.
"""

import asyncio
from datetime import timedelta
from typing import Any, Callable, List, Tuple

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import PizzaOrderActivities
    from shared import Bill, OrderConfirmation, PizzaOrder

#: Deliveries further than this are refused before anything is done.
MAX_DELIVERY_KM = 25


@workflow.defn
class PizzaOrderWorkflow:
    """One pizza order, from distance check to delivery, rolled back if the card is refused."""

    @workflow.run
    async def order_pizza(self, order: PizzaOrder) -> OrderConfirmation:
        """Run the order; raise the failed step's error after compensating."""
        quick = {"start_to_close_timeout": timedelta(seconds=5)}
        distance = await workflow.execute_activity_method(PizzaOrderActivities.get_distance, order, **quick)
        if order.is_delivery and distance.kilometers > MAX_DELIVERY_KM:
            # Nothing has been done yet, so there is nothing to undo.
            raise ApplicationError("Customer lives outside the service area", type="OutOfServiceAreaError")

        # A durable timer: the kitchen's pause before it commits to the order.
        await asyncio.sleep(3)

        # Each entry: the compensation activity and its argument.
        compensations: List[Tuple[Callable[..., Any], Any]] = []
        bill = Bill(order.customer.customer_id, order.order_number, f"Pizza order {order.order_number}",
                    sum(item.price for item in order.items), order.customer.credit_card_number)
        try:
            compensations.append((PizzaOrderActivities.revert_inventory, order))
            await workflow.execute_activity_method(PizzaOrderActivities.update_inventory, order, **quick)

            # TODO: register the compensation for the charge below (refund_customer,
            # with the bill), before the charge is attempted. Without it, a refused
            # card leaves the charge un-refunded while the inventory is restored.
            charge = await workflow.execute_activity_method(
                PizzaOrderActivities.process_credit_card, bill,
                start_to_close_timeout=timedelta(seconds=5),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=15),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=160),
                    maximum_attempts=100,
                    # A refused card stays refused: retrying cannot help.
                    non_retryable_error_types=["CreditCardProcessingError"],
                ),
            )
        except ActivityError:
            workflow.logger.info("A step failed for good: rolling back %d step(s)", len(compensations))
            for compensation, argument in reversed(compensations):
                await workflow.execute_activity_method(compensation, argument, **quick)
            raise  # the order fails with the original error, after the rollback

        await workflow.execute_activity_method(PizzaOrderActivities.send_bill, bill, **quick)
        await workflow.execute_activity_method(PizzaOrderActivities.notify_delivery_driver, order, **quick)
        return OrderConfirmation(order.order_number, "SUCCESS", charge.confirmation or "",
                                 workflow.now().timestamp(), bill.amount)
