"""Settings and data types shared by every file of the pizza-order app.

Environment variables are read here, once, at import. The workflow module
imports this file through the sandbox pass-through, so workflow code never
reads os.environ itself: a replay must not depend on the machine it runs on.
"""

import getpass
import os
import re
import sys
from dataclasses import dataclass
from typing import List, Optional

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"


async def connect_to_temporal():
    """A connected Client, or None after printing why there is none.

    The address, namespace, TLS and API key are read as every Temporal tool
    reads them (TEMPORAL_ADDRESS, TEMPORAL_PROFILE, ...); with none set it is
    the local dev server that `grader server` starts.
    """
    from temporalio.client import Client
    from temporalio.envconfig import ClientConfig

    try:
        config = dict(ClientConfig.load_client_connect_config())
    except Exception as err:  # a missing profile, an unreadable temporal.toml
        print(f"Cannot read the Temporal connection settings: {err}", flush=True)
        return None
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    config.setdefault("namespace", "default")
    try:
        return await Client.connect(**config)
    except Exception as err:
        print(f"Could not reach Temporal at {config['target_host']} ({err}). Start it with "
              "`grader server`.", flush=True)
        return None


def _default_learner_id() -> str:
    try:
        name = getpass.getuser() or "learner"
    except Exception:  # no user name in some containers
        name = "learner"
    return re.sub(r"[^\w.@+]", "_", name)[:64]


# Your workflow ids start with your learner id, so the grader finds *your*
# orders on a server the whole class shares. A "-" would blur where the id
# ends, so it may not hold one.
LEARNER_ID = os.environ.get("LEARNER_ID") or _default_learner_id()
if not re.fullmatch(r"\w[\w.@+]{0,63}", LEARNER_ID):
    print(f"LEARNER_ID={LEARNER_ID!r} is not a learner id: use up to 64 letters, digits, _ . @ or +, "
          "with no '-' (for example ada)", file=sys.stderr, flush=True)
    raise SystemExit(2)

# One task queue per learner: on a shared server, every worker polling a
# queue takes its tasks, whoever started them. The course's queue name stays
# in front so the Web UI still shows where it came from. PIZZA_TASK_QUEUE
# overrides it (automated runs use a private queue each).
TASK_QUEUE_NAME = os.environ.get("PIZZA_TASK_QUEUE") or f"pizza-tasks-{LEARNER_ID.lower()}"

# The card the order is paid with. The exercise asks you to break it: delete
# its last digit, and process_credit_card refuses it with a non-retryable
# CreditCardProcessingError, which starts the rollback.
CREDIT_CARD_NUMBER = "4242424242424242"

# Fault hook, so tests and `grader simulate --pack sagas` can break the card
# without editing code: PIZZA_FAULT=bad-card uses a 15-digit card.
PIZZA_FAULT = (os.environ.get("PIZZA_FAULT") or "").strip().lower()
if PIZZA_FAULT not in ("", "bad-card"):
    print(f"PIZZA_FAULT={PIZZA_FAULT!r} is not one of: bad-card", file=sys.stderr, flush=True)
    raise SystemExit(2)
if PIZZA_FAULT == "bad-card":
    CREDIT_CARD_NUMBER = CREDIT_CARD_NUMBER[:-1]

# How long each compensation takes, in seconds. A real refund talks to a
# payment provider; the pause gives you time to kill the worker in the middle
# of the rollback (the crash experiment). Keep it below 5 s, the compensations'
# start_to_close timeout, or every attempt would time out.
COMPENSATION_SECONDS = float(os.environ.get("COMPENSATION_SECONDS") or 0)


@dataclass
class Address:
    """Where the pizza goes."""

    line1: str
    city: str
    postal_code: str


@dataclass
class Pizza:
    """One item of an order; prices are in cents."""

    description: str
    price: int


@dataclass
class Customer:
    """Who orders, and the card they pay with."""

    customer_id: int
    name: str
    email: str
    phone: str
    credit_card_number: str


@dataclass
class PizzaOrder:
    """The workflow's input."""

    order_number: str
    customer: Customer
    items: List[Pizza]
    is_delivery: bool
    address: Address


@dataclass
class Distance:
    """How far the customer lives from the shop."""

    kilometers: int


@dataclass
class Bill:
    """What the card is charged."""

    customer_id: int
    order_number: str
    description: str
    amount: int
    credit_card_number: str


@dataclass
class OrderConfirmation:
    """The workflow's result when the order goes through."""

    order_number: str
    status: str
    confirmation_number: str
    billing_timestamp: float
    amount: int


@dataclass
class CreditCardCharge:
    """What process_credit_card reports, and what refund_customer gives back."""

    customer_id: int
    order_number: str
    amount: int
    credit_card_number: str
    confirmation: Optional[str] = None


def sample_order(order_number: str = "XD001") -> PizzaOrder:
    """The order the starter places: two pizzas delivered nearby."""
    return PizzaOrder(
        order_number=order_number,
        customer=Customer(12983, "María García", "maria1985@example.com", "415-555-7418",
                          CREDIT_CARD_NUMBER),
        items=[Pizza("Large, with mushrooms and onions", 1500), Pizza("Small, with pepperoni", 1200)],
        is_delivery=True,
        address=Address("701 Mission Street", "San Francisco", "94103"),
    )
