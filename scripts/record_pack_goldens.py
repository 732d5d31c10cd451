"""Record the sagas pack's golden histories from real runs (issue 15).

    python scripts/record_pack_goldens.py            # every scenario
    python scripts/record_pack_goldens.py practice-copy forward-order

Each scenario runs on a throwaway in-memory dev server with real workers:

- ``saga-rollback`` and ``crash-survived``: the pack's own ``grader simulate``
  scenarios (:mod:`grader.packs.sagas.scenarios`) on the solution app: worker
  processes, a refused card, and for the crash a real SIGKILL during the
  refund and a new worker process;
- ``practice-copy``: the same rollback on the *exercise* app as shipped
  (its refund compensation is a TODO);
- ``forward-order``, ``compensated-twice``, ``compensations-without-failure``,
  ``failure-before-steps``: variants of the workflow defined here and run by
  an in-process worker with the solution's activities, each doing one thing
  a learner could get wrong.

Histories are sanitized like the money-transfer goldens (scripts/record_goldens.py:
host names and machine paths replaced) and written with their expected
verdicts to grader/packs/sagas/goldens/ and grader/packs/sagas/goldens.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from record_goldens import _host_pattern, _replacements, sanitize  # noqa: E402

from grader.lab.server import free_port, start_dev_server  # noqa: E402
from grader.packs import all_packs  # noqa: E402
from grader.packs.sagas.scenarios import run_scenarios, sample_order  # noqa: E402
from grader.sources.connect import as_target, connect  # noqa: E402

PACK = REPO / "grader" / "packs" / "sagas"
OUT = PACK / "goldens"
QUICK = {"start_to_close_timeout": timedelta(seconds=5)}


async def variant_order(mode: str, order: dict) -> str:
    """The course's workflow with one thing changed (``mode``), calling the solution's activities by name."""
    # In failure-before-steps the worker's get_distance refuses the address for good,
    # before any step that needs undoing has started.
    await workflow.execute_activity("get_distance", order, **QUICK)
    await asyncio.sleep(1)  # a durable timer, as the course's workflow has
    done = []
    bill = {"customer_id": 1, "order_number": order["order_number"], "description": "golden",
            "amount": 2700, "credit_card_number": order["customer"]["credit_card_number"]}
    try:
        done.append(("revert_inventory", order))
        await workflow.execute_activity("update_inventory", order, **QUICK)
        done.append(("refund_customer", bill))
        await workflow.execute_activity(
            "process_credit_card", bill, start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(non_retryable_error_types=["CreditCardProcessingError"]))
    except ActivityError:
        steps = done if mode == "forward-order" else list(reversed(done))
        if mode == "compensated-twice":
            steps = steps + steps[-1:]
        for name, argument in steps:
            await workflow.execute_activity(name, argument, **QUICK)
        raise
    if mode == "compensations-without-failure":
        for name, argument in reversed(done):
            await workflow.execute_activity(name, argument, **QUICK)
    return "order done"


@workflow.defn(name="PizzaOrderWorkflow")
class ForwardOrder:
    """Runs the compensations in the order their steps ran."""

    @workflow.run
    async def order(self, order: dict) -> str:
        return await variant_order("forward-order", order)


@workflow.defn(name="PizzaOrderWorkflow")
class CompensatedTwice:
    """Runs the first step's compensation twice."""

    @workflow.run
    async def order(self, order: dict) -> str:
        return await variant_order("compensated-twice", order)


@workflow.defn(name="PizzaOrderWorkflow")
class CompensationsWithoutFailure:
    """Compensates a good order that then completes."""

    @workflow.run
    async def order(self, order: dict) -> str:
        return await variant_order("compensations-without-failure", order)


@workflow.defn(name="PizzaOrderWorkflow")
class FailureBeforeSteps:
    """Fails for good in its first activity, before any step to undo."""

    @workflow.run
    async def order(self, order: dict) -> str:
        return await variant_order("failure-before-steps", order)


WORKFLOWS = {"forward-order": ForwardOrder, "compensated-twice": CompensatedTwice,
             "compensations-without-failure": CompensationsWithoutFailure,
             "failure-before-steps": FailureBeforeSteps}


VARIANTS = ("forward-order", "compensated-twice", "compensations-without-failure", "failure-before-steps")

#: Scenario -> (what it shows, expected verdicts).
EXPECTED = {
    "saga-rollback": ("the solution app, a refused card: refund_customer then revert_inventory, FAILED",
                      {"saga-rollback": True, "crash-survived": False}),
    "crash-survived": ("the solution app, a refused card; SIGKILL during refund_customer, a new worker "
                       "finishes the rollback", {"saga-rollback": False, "crash-survived": True}),
    "practice-copy": ("the exercise app as shipped: the refund compensation is missing, only revert_inventory runs",
                      {"saga-rollback": False, "crash-survived": False}),
    "forward-order": ("revert_inventory then refund_customer: the compensations in forward order",
                      {"saga-rollback": False, "crash-survived": False}),
    "compensated-twice": ("revert_inventory runs twice", {"saga-rollback": False, "crash-survived": False}),
    "compensations-without-failure": ("the card is good, the order completes, yet both compensations ran",
                                      {"saga-rollback": False, "crash-survived": False}),
    "failure-before-steps": ("get_distance fails for good before any step with a compensation started",
                             {"saga-rollback": False, "crash-survived": False}),
}


async def _variant_history(client, mode: str) -> dict:
    sys.path.insert(0, str(PACK / "solution"))
    import activities  # the solution's activities, run in this process

    shop = activities.PizzaOrderActivities()

    from temporalio import activity

    @activity.defn(name="get_distance")
    async def get_distance_refused(order: dict) -> dict:
        raise ApplicationError("Address not found", type="AddressError", non_retryable=True)

    queue = f"golden-{mode}-{uuid.uuid4().hex[:6]}"
    card = "4242424242424242" if mode == "compensations-without-failure" else "424242424242424"
    worker = Worker(client, task_queue=queue, workflows=[WORKFLOWS[mode]], workflow_runner=UnsandboxedWorkflowRunner(),
                    activities=[get_distance_refused if mode == "failure-before-steps" else shop.get_distance,
                                shop.update_inventory, shop.revert_inventory,
                                shop.process_credit_card, shop.refund_customer])
    async with worker:
        handle = await client.start_workflow("PizzaOrderWorkflow", sample_order("XD001", card),
                                             id=f"golden-pizza-{mode}-{uuid.uuid4().hex[:8]}", task_queue=queue)
        try:
            await asyncio.wait_for(handle.result(), timeout=60)
        except Exception:  # noqa: BLE001 - most variants end FAILED on purpose
            pass
        return (await handle.fetch_history()).to_json_dict()


async def record(names: list[str]) -> None:
    """Record ``names`` and rewrite the manifest entries for them."""
    all_packs()
    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    replacements, host = _replacements(PACK / "solution"), _host_pattern()
    manifest_path = PACK / "goldens.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    try:
        client = await connect(as_target(server.address, server.namespace))
        say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        for name in names:
            if name in ("saga-rollback", "crash-survived", "practice-copy"):
                app = PACK / ("exercise" if name == "practice-copy" else "solution")
                experiment = "saga-rollback" if name == "practice-copy" else name
                [run] = await run_scenarios(app, experiments=[experiment], address=server.address, learner="golden",
                                            mark=False, progress=say)
                history, status = run.history, run.status
            else:
                history = await _variant_history(client, name)
                status = "see events"
            OUT.mkdir(exist_ok=True)
            clean = sanitize(history, replacements, host)
            (OUT / f"{name}.json").write_text(json.dumps(clean, indent=1) + "\n")
            shows, verdicts = EXPECTED[name]
            manifest[name] = {"shows": shows, "verdicts": verdicts}
            say(f"recorded {name} ({status})")
    finally:
        server.stop()
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


def main() -> int:
    """Parse the scenario names and record them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"scenarios (default: all): {', '.join(EXPECTED)}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(EXPECTED))
    if unknown:
        parser.error(f"unknown scenarios {', '.join(unknown)}: choose from {', '.join(EXPECTED)}")
    asyncio.run(record(list(args.names) or list(EXPECTED)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
