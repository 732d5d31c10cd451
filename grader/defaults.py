"""Every default the grader uses, written once.

The CLI takes its option defaults from here, and so do the library functions,
so a default address or namespace can never drift between the two.
"""

from pathlib import Path

#: Where a Temporal server is looked for when nothing else is said.
DEFAULT_ADDRESS = "localhost:7233"
#: The namespace the dev server always creates.
DEFAULT_NAMESPACE = "default"
#: gRPC port of the embedded server; its Web UI listens 1000 higher.
DEFAULT_PORT = 7233
UI_PORT_OFFSET = 1000
#: Seconds any single call to a server may take before it counts as not answering.
RPC_TIMEOUT = 10.0

#: Names shared with Temporal's official money-transfer tutorial app, so
#: histories made with that app grade the same as ours.
WORKFLOW_TYPE = "MoneyTransfer"
TASK_QUEUE = "TRANSFER_MONEY_TASK_QUEUE"
ACTIVITY_WITHDRAW = "withdraw"
ACTIVITY_DEPOSIT = "deposit"
ACTIVITY_REFUND = "refund"

#: Prefix of the build id this project's workers record: a fingerprint of the
#: code they run (see ``code_fingerprint`` in the apps' shared.py).
FINGERPRINT_PREFIX = "failure-lab-"

#: The memo key ``grader simulate`` puts on every workflow it starts, so its runs are told apart from a
#: learner's own wherever they end up (read live, exported, handed in). A learner's app never sets it;
#: an editor can remove it from a file, which is why a file's provenance is weaker than a server's.
SIMULATE_MARK = "failure-lab-made-by"

#: The experiments, in the tutorial's order, with their titles. Their ids are
#: public: rubrics, `--experiment` and the JSON report use them.
EXPERIMENTS: dict[str, str] = {
    "crash-recovery": "Crash recovery",
    "live-fix": "Live bug fix",
    "compensation": "Compensation",
    "network-partition": "Network partition",
}

#: How many workflows ``grader check`` reads from a server when no id is given
#: (here, not in grader.sources.live, so that grader.api names it without loading the live reader).
LIVE_LIMIT = 20

#: `grader batch`: reads in flight at once.
BATCH_CONCURRENCY = 32
#: `grader batch` live: how far back runs are read. Every run a learner started in this window is
#: graded, however many there are (a count would let a classmate's decoys push real runs out of view);
#: a term's length, so last year's class on a long-lived namespace is not read.
BATCH_SINCE = "120d"
#: grader batch: history reads a second at most (half of Temporal Cloud's default 2,000 requests/s a namespace).
BATCH_MAX_RPS = 1000
#: grader batch: listing pages a second at most (Temporal Cloud allows 30 visibility calls/s a namespace).
BATCH_MAX_VISIBILITY_RPS = 25


def repo_root() -> Path:
    """The folder holding the bundled ``solution/``, ``exercise/``, ``rubrics/`` and ``docs/``.

    ``grader/data/`` in an installed package, the checkout in an editable
    install; :mod:`grader.resources` decides which.
    """
    from grader.resources import data_root

    return data_root()
