"""A small durable-execution app for the test-only pack: one slow activity, then a durable timer.

Run with TEMPORAL_ADDRESS and TASK_QUEUE set; prints "translating" when the
activity starts, so a test can kill the worker while it runs.
"""

import asyncio
import os
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def translate_term(term: str) -> str:
    """Slow on purpose: the test kills the worker in the middle of it."""
    print(f"translating {term}", flush=True)
    await asyncio.sleep(2)
    return term.upper()


@workflow.defn
class TranslationWorkflow:
    """Translate one term, then wait on a durable timer."""

    @workflow.run
    async def run(self, term: str) -> str:
        done = await workflow.execute_activity(translate_term, term, start_to_close_timeout=timedelta(seconds=4))
        await asyncio.sleep(1)
        return done


async def main() -> None:
    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
    async with Worker(client, task_queue=os.environ["TASK_QUEUE"], workflows=[TranslationWorkflow],
                      activities=[translate_term],
                      sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)):
        print("worker started", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
