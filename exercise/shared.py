"""Settings and data types used by every other file of the transfer app.

All environment variables are read here, once, when the module is imported.
The workflow module imports this file through the sandbox pass-through, so the
workflow code itself never touches os.environ (reading the environment inside
a workflow would make its replay depend on the machine it runs on).
"""

import getpass
import hashlib
import os
from pathlib import Path
from dataclasses import dataclass

# The worker polls this queue and the starter puts work on it. Both sides
# import the same constant so a typo cannot leave tasks on a queue nobody reads.
DEFAULT_TASK_QUEUE_NAME = "TRANSFER_MONEY_TASK_QUEUE"
# TRANSFER_TASK_QUEUE lets automated tests use a private queue.
MONEY_TRANSFER_TASK_QUEUE_NAME = (
    os.environ.get("TRANSFER_TASK_QUEUE") or DEFAULT_TASK_QUEUE_NAME
)

# Where the Temporal service is and how to link to its Web UI.
TEMPORAL_ADDRESS = os.environ.get("TEMPORAL_ADDRESS") or "localhost:7233"
TEMPORAL_NAMESPACE = os.environ.get("TEMPORAL_NAMESPACE") or "default"
TEMPORAL_UI_URL = (os.environ.get("TEMPORAL_UI_URL") or "http://localhost:8233").rstrip(
    "/"
)


def _default_learner_id() -> str:
    try:
        return getpass.getuser() or "learner"
    except Exception:  # no user name available (some containers)
        return "learner"


# Workflow ids start with this, so the grader can find *your* transfers.
LEARNER_ID = os.environ.get("LEARNER_ID") or _default_learner_id()

# Every bank call sleeps this long, which gives you time to kill the worker
# while an activity is in the middle of running. Keep it below 5 s: that is
# the activities' start_to_close timeout, so a slower bank would time out on
# every attempt.
BANK_LATENCY_SECONDS = float(os.environ.get("BANK_LATENCY_SECONDS") or 3)

# Fault hook: breaks the deposit without editing code (used by tests and
# handy for a quick demo).
#   ""                 no fault
#   "failing-deposit"  deposit raises ValueError (retryable, so it retries)
#   "closed-account"   the target account is closed (InvalidAccountError,
#                      non-retryable, so the workflow compensates at once)
#   "slow-first-deposit"  the first deposit attempt outlives its timeout, so
#                      the same worker retries it: a timeout without a crash
BANK_FAULT = (os.environ.get("BANK_FAULT") or "").strip().lower()
BANK_FAULTS = ("", "failing-deposit", "closed-account", "slow-first-deposit")
if BANK_FAULT not in BANK_FAULTS:
    raise ValueError(
        f"BANK_FAULT={BANK_FAULT!r} is not one of: {', '.join(BANK_FAULTS[1:])}"
    )

# Seconds the workflow waits (a durable timer) between withdraw and deposit;
# 0 = no wait. Kill the worker during the wait: nothing is running, yet the
# timer still fires and a new worker carries on with the deposit.
TRANSFER_PAUSE_SECONDS = float(os.environ.get("TRANSFER_PAUSE_SECONDS") or 0)

# maximum_attempts for withdraw/deposit/refund. 0 means "retry forever",
# which is what the live bug fix needs: the deposit keeps retrying until you
# deploy the fix. The compensation challenge sets it to 2.
TRANSFER_MAX_ATTEMPTS = int(os.environ.get("TRANSFER_MAX_ATTEMPTS") or 0)


@dataclass
class PaymentDetails:
    """The workflow's input. Temporal stores it (as JSON) in the history."""

    source_account: str
    target_account: str
    amount: int
    reference_id: str


# Variables that change what the worker does without a code edit. They are
# part of the code fingerprint below, so breaking or fixing the deposit with
# BANK_FAULT counts as a change of code, just like editing activities.py.
FINGERPRINTED_VARIABLES = ("BANK_FAULT", "TRANSFER_MAX_ATTEMPTS")


def code_fingerprint() -> str:
    """A short hash of this app's .py files and fault-hook settings.

    The worker passes it to Temporal as its build id, and the server stamps it
    on every task that worker runs. So the history proves which code ran each
    step: after a live fix, the deposit's successful attempt carries a
    different fingerprint from the buggy worker's.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in FINGERPRINTED_VARIABLES:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    return "failure-lab-" + digest.hexdigest()[:12]
