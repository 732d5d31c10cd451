"""Settings and data types used by every other file of the transfer app.

All environment variables are read here, once, when the module is imported.
The workflow module imports this file through the sandbox pass-through, so the
workflow code itself never touches os.environ (reading the environment inside
a workflow would make its replay depend on the machine it runs on).
"""

import getpass
import hashlib
import os
import re
import sys
from pathlib import Path
from dataclasses import dataclass

# Where the Temporal service is and how to talk to it, read the way every
# Temporal tool reads it (the `temporal` CLI, the SDKs, the grader): the
# profile of temporal.toml named by TEMPORAL_PROFILE (file: TEMPORAL_CONFIG_FILE,
# else the standard one), then TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
# TEMPORAL_API_KEY and TEMPORAL_TLS_* on top. With none of them set it is the
# local dev server, so nothing changes for the exercises; set them, and the
# same code runs against a secured server or Temporal Cloud.
DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"


def temporal_connect_config() -> dict:
    """Keyword arguments for Client.connect: address, namespace, TLS, API key."""
    # Imported here, not at the top: the workflow sandbox passes this module
    # through, and workflow code must never read files or the environment.
    from temporalio.envconfig import ClientConfig

    config = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    config.setdefault("namespace", "default")
    return config


async def connect_to_temporal():
    """A connected Client, or None after printing why there is none."""
    from temporalio.client import Client

    try:
        config = temporal_connect_config()
    except Exception as err:  # a missing profile, an unreadable temporal.toml
        print(f"Cannot read the Temporal connection settings: {err}", flush=True)
        return None
    address = config["target_host"]
    try:
        return await Client.connect(**config)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(
            f"Could not reach Temporal at {address} ({reason}). Start it with "
            "`grader server`, or point TEMPORAL_ADDRESS / TEMPORAL_PROFILE at yours.",
            flush=True,
        )
        return None


# Base of the Web UI links the starter prints. Only the local dev server's UI
# address is known without being told; elsewhere set TEMPORAL_UI_URL.
TEMPORAL_UI_URL = (os.environ.get("TEMPORAL_UI_URL") or "").rstrip("/") or None


def settings_error(message: str) -> None:
    """Stop the program with one line saying what to fix (exit code 2, no traceback).

    A wrong setting is not a bug in your code, so it should not look like one.
    """
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(2)


def _default_learner_id() -> str:
    try:
        name = getpass.getuser() or "learner"
    except Exception:  # no user name available (some containers)
        name = "learner"
    # A "-" would blur where the id ends (see below), so user names like
    # "ada-lovelace" become "ada_lovelace".
    return re.sub(r"[^\w.@+]", "_", name)[:64]


# The learner-id rule. The grader has the same rule (grader/engine/learner.py), and
# a test checks that the two agree; the app cannot import the grader, since
# it is your code and runs without it.
LEARNER_ID_PATTERN = r"\w[\w.@+]{0,63}"


def learner_id_problem(value: str) -> "str | None":
    """Why ``value`` cannot be a learner id, or None when it can."""
    if not value:
        return "is empty"
    if "-" in value:
        return (
            "contains '-', which separates your id from the rest of a workflow id"
            f" ({value}-transfer-... would also belong to learner {value.split('-')[0]!r})"
        )
    if not re.fullmatch(LEARNER_ID_PATTERN, value):
        return "is not a learner id"
    return None


# Workflow ids start with this, so the grader can find *your* transfers: the id
# owns every workflow id "<id>-..." (in any mix of upper and lower case). That
# is why the id itself cannot hold a "-": "ada-x-transfer-..." would then
# belong to both "ada" and "ada-x".
LEARNER_ID = os.environ.get("LEARNER_ID") or _default_learner_id()
_problem = learner_id_problem(LEARNER_ID)
if _problem:
    settings_error(
        f"LEARNER_ID={LEARNER_ID!r} {_problem}: use up to 64 letters, digits,"
        " _ . @ or +, with no '-' (for example ada or ada_lovelace)"
    )

# The worker polls this queue and the starter puts work on it. Both sides
# import the same constant so a typo cannot leave tasks on a queue nobody reads.
#
# Why the queue carries your learner id: on a server the whole class shares,
# every worker polling one queue name takes tasks from that queue, whoever
# started them. Your worker would then run a classmate's transfers, and theirs
# yours: kill your worker and a classmate's finishes your transfer (the grader
# sees another learner's worker in your history and gives no credit for it).
# One queue per learner keeps each worker on its own learner's work. The
# tutorial's name stays in front, so the Web UI still shows where it came from.
DEFAULT_TASK_QUEUE_NAME = "TRANSFER_MONEY_TASK_QUEUE"
LEARNER_TASK_QUEUE_NAME = f"{DEFAULT_TASK_QUEUE_NAME}-{LEARNER_ID.lower()}"
# TRANSFER_TASK_QUEUE overrides it (automated tests use a private queue each).
MONEY_TRANSFER_TASK_QUEUE_NAME = (
    os.environ.get("TRANSFER_TASK_QUEUE") or LEARNER_TASK_QUEUE_NAME
)

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
    settings_error(
        f"BANK_FAULT={BANK_FAULT!r} is not one of: {', '.join(BANK_FAULTS[1:])}"
        " (or leave it unset)"
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
