"""The MoneyTransfer workflow: withdraw, deposit, and refund if the deposit
cannot be done.

Workflow code must be deterministic: when a worker restarts, Temporal replays
the recorded history through this code to rebuild where it was. So no I/O,
no clocks, no random numbers and no environment variables here; anything
that can fail or differ between runs is an activity.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# The workflow runs in a sandbox that re-imports modules for every run.
# Passing these through reuses the worker's already-loaded modules (shared.py
# read the environment once, at worker start-up).
with workflow.unsafe.imports_passed_through():
    from activities import BankingActivities
    from shared import TRANSFER_MAX_ATTEMPTS, TRANSFER_PAUSE_SECONDS, PaymentDetails


@workflow.defn
class MoneyTransfer:
    @workflow.run
    async def run(self, payment_details: PaymentDetails) -> str:
        # How Temporal retries a failed activity. The policy is recorded on
        # each ActivityTaskScheduled event, so the Web UI shows it.
        retry_policy = RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=2),
            # 0 = no limit: a failing deposit keeps retrying until fixed.
            # TODO Compensation challenge: limit the retries so a broken
            # deposit gives up and the refund below runs. Either write
            # maximum_attempts=2 here (one try plus one retry) or start the
            # worker with TRANSFER_MAX_ATTEMPTS=2.
            maximum_attempts=TRANSFER_MAX_ATTEMPTS,
            # Retrying cannot fix these, so fail at once (matched by class name).
            non_retryable_error_types=["InvalidAccountError", "InsufficientFundsError"],
        )
        # One attempt may take at most 5 s. If a worker dies mid-attempt, the
        # server notices when this runs out and gives the activity to another
        # worker.
        timeout = timedelta(seconds=5)

        # If the withdrawal fails for good (e.g. insufficient funds), the
        # error ends the workflow: no money moved, nothing to undo.
        withdraw_output = await workflow.execute_activity_method(
            BankingActivities.withdraw,
            payment_details,
            start_to_close_timeout=timeout,
            retry_policy=retry_policy,
        )

        if TRANSFER_PAUSE_SECONDS > 0:
            # A durable timer: the server keeps it, so it fires even if every
            # worker is down meanwhile. (Changing this setting while transfers
            # are running would break their replay: workflow code must take
            # the same steps every time it runs.)
            await workflow.sleep(TRANSFER_PAUSE_SECONDS)

        try:
            deposit_output = await workflow.execute_activity_method(
                BankingActivities.deposit,
                payment_details,
                start_to_close_timeout=timeout,
                retry_policy=retry_policy,
            )
        except ActivityError as deposit_err:
            # The deposit failed for good (retries used up or non-retryable),
            # but the money has already left the source account: compensate.
            workflow.logger.error("Deposit failed for good: %s", deposit_err.cause)
            try:
                refund_output = await workflow.execute_activity_method(
                    BankingActivities.refund,
                    payment_details,
                    start_to_close_timeout=timeout,
                    retry_policy=retry_policy,
                )
                workflow.logger.info("Refund done: %s", refund_output)
            except ActivityError as refund_err:
                raise ApplicationError(
                    f"Failed to deposit money into account {payment_details.target_account}"
                    f" and the refund to {payment_details.source_account} failed too."
                    f" Cause: {refund_err}"
                ) from refund_err
            # Raising ApplicationError marks the workflow FAILED (other
            # exception types would only fail this workflow task and retry it).
            raise ApplicationError(
                f"Failed to deposit money into account {payment_details.target_account}."
                f" Money returned to {payment_details.source_account}. Cause: {deposit_err}"
            ) from deposit_err

        return f"Transfer complete (transaction IDs: {withdraw_output}, {deposit_output})"
