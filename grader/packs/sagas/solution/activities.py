"""The pizza shop's activities: the steps that talk to the outside world.

Each is a method of PizzaOrderActivities, registered as a bound method, so
the history names each activity by its method name (process_credit_card,
refund_customer, ...), the same names the course's app uses.
"""

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shared import COMPENSATION_SECONDS, Bill, CreditCardCharge, Distance, PizzaOrder


class PizzaOrderActivities:
    """Every activity of the pizza order, with the state a real shop would inject (none here)."""

    @activity.defn
    async def get_distance(self, order: PizzaOrder) -> Distance:
        """How far the delivery address is; a made-up figure from the postal code."""
        activity.logger.info("Calculating the distance to %s", order.address.postal_code)
        return Distance(kilometers=sum(map(ord, order.address.postal_code)) % 20)

    @activity.defn
    async def update_inventory(self, order: PizzaOrder) -> str:
        """Take the order's ingredients out of stock."""
        activity.logger.info("Updating the inventory for order %s", order.order_number)
        return f"inventory updated for {len(order.items)} items"

    @activity.defn
    async def revert_inventory(self, order: PizzaOrder) -> str:
        """Compensation for update_inventory: put the ingredients back."""
        await _slow_compensation("Reverting the inventory", order.order_number)
        return f"inventory restored for {len(order.items)} items"

    @activity.defn
    async def process_credit_card(self, bill: Bill) -> CreditCardCharge:
        """Charge the card. A card number that is not 16 digits is refused for good.

        The error is raised with type CreditCardProcessingError, which the
        workflow's retry policy lists as non-retryable: retrying a bad card
        number would never help, so Temporal stops at the first attempt.
        """
        activity.logger.info("Charging %s cents for order %s", bill.amount, bill.order_number)
        if len(bill.credit_card_number) != 16:
            raise ApplicationError("Invalid credit card number", type="CreditCardProcessingError")
        return CreditCardCharge(bill.customer_id, bill.order_number, bill.amount, bill.credit_card_number,
                                confirmation=f"AUTH-{bill.order_number}-{int(time.time())}")

    @activity.defn
    async def refund_customer(self, bill: Bill) -> str:
        """Compensation for process_credit_card: give the money back.

        It must be safe to run even when the charge never went through (the
        charge may have failed after the bank took the money): a real payment
        provider refunds by order number, and refunds nothing if nothing was taken.
        """
        await _slow_compensation("Refunding the customer", bill.order_number)
        return f"refunded {bill.amount} cents for order {bill.order_number}"

    @activity.defn
    async def send_bill(self, bill: Bill) -> str:
        """Email the receipt."""
        if bill.amount < 0:
            raise ApplicationError(f"Invalid charge amount: {bill.amount}", type="InvalidChargeAmountError",
                                   non_retryable=True)
        activity.logger.info("Sending the bill for order %s", bill.order_number)
        return f"bill sent for {bill.amount} cents"

    @activity.defn
    async def notify_delivery_driver(self, order: PizzaOrder) -> str:
        """Tell the driver an order is ready."""
        activity.logger.info("Notifying the driver of order %s", order.order_number)
        return "driver notified"


async def _slow_compensation(what: str, order_number: str) -> None:
    # Printed before the pause: when you see this line, the compensation is
    # running, and killing the worker now interrupts it in the middle.
    print(f"{what} for order {order_number} ({COMPENSATION_SECONDS:g} s)", flush=True)
    await asyncio.sleep(COMPENSATION_SECONDS)
