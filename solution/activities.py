"""Activities: the steps of a transfer that talk to the outside world.

An activity may fail, time out, or run again after a crash; Temporal records
each outcome and retries it according to the workflow's retry policy. That is
why risky work (network calls, other services) belongs here and not in the
workflow.
"""

import asyncio

from temporalio import activity

from banking_service import Bank
from shared import BANK_FAULT, PaymentDetails


def _attempt_note() -> str:
    # Shows retries in the worker's log: "... Attempt 3."
    attempt = activity.info().attempt
    return f" Attempt {attempt}." if attempt > 1 else ""


class BankingActivities:
    """The activities are methods so they can share one Bank object.
    Temporal registers each one under its method name: withdraw, deposit, refund."""

    def __init__(self, bank: Bank | None = None) -> None:
        self.bank = bank or Bank()

    # The bank client is blocking (time.sleep, like most HTTP/database
    # clients). asyncio.to_thread runs it on a helper thread so the worker's
    # event loop stays free to poll, heartbeat and run other tasks.

    @activity.defn
    async def withdraw(self, data: PaymentDetails) -> str:
        activity.logger.info(
            "Withdrawing $%s from account %s.%s",
            data.amount, data.source_account, _attempt_note(),
        )
        # The reference id makes the bank call idempotent: a retry of this
        # same step will not take the money twice.
        reference_id = f"{data.reference_id}-withdraw"
        return await asyncio.to_thread(
            self.bank.withdraw, data.source_account, data.amount, reference_id
        )

    @activity.defn
    async def deposit(self, data: PaymentDetails) -> str:
        activity.logger.info(
            "Depositing $%s into account %s.%s",
            data.amount, data.target_account, _attempt_note(),
        )
        reference_id = f"{data.reference_id}-deposit"

        # Fault hook: BANK_FAULT breaks the deposit without editing code.
        if BANK_FAULT == "failing-deposit":
            # Same bug as the commented-out line below.
            return await asyncio.to_thread(
                self.bank.deposit_that_fails,
                data.target_account, data.amount, reference_id,
            )
        if BANK_FAULT == "closed-account":
            # The bank will answer InvalidAccountError, which is non-retryable.
            self.bank.close_account(data.target_account)
        if BANK_FAULT == "slow-first-deposit" and activity.info().attempt == 1:
            # Outlive start_to_close: the server gives up on this attempt and
            # schedules attempt 2, which this same worker then runs.
            await asyncio.sleep(activity.info().start_to_close_timeout.total_seconds() + 1)

        # Working line (the bug from Experiment 2 has been fixed):
        confirmation = await asyncio.to_thread(
            self.bank.deposit, data.target_account, data.amount, reference_id
        )
        # Failing line, kept for reference:
        # confirmation = await asyncio.to_thread(
        #     self.bank.deposit_that_fails, data.target_account, data.amount, reference_id
        # )
        return confirmation

    @activity.defn
    async def refund(self, data: PaymentDetails) -> str:
        """Compensation: put the withdrawn money back in the source account."""
        activity.logger.info(
            "Refunding $%s to account %s.%s",
            data.amount, data.source_account, _attempt_note(),
        )
        reference_id = f"{data.reference_id}-refund"
        return await asyncio.to_thread(
            self.bank.refund, data.source_account, data.amount, reference_id
        )
