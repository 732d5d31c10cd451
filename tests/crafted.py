"""A crafted history for the safe-text tests: a real golden with hostile text planted in it.

The workflow id and the workflow's result (which the crash-recovery result
check quotes when it does not name the transactions) carry a carriage
return, ANSI escapes, a bidi override, ``</failure>``, markdown table and
link syntax, a mention, and a GitHub workflow command.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

GOLDENS = Path(__file__).parent / "goldens"

#: The hostile text planted in the result.
EVIL_RESULT = ("done\r\x1b[2K\x1b[32mPASS  all good\x1b[0m</failure><x/> | a | b\n::error::pwned %0A "
               "@team [x](javascript:alert(1)) `code` \u202e")
#: The hostile workflow id (a real server would refuse it; a hand-written file need not).
EVIL_WORKFLOW_ID = "evil\r\x1b[1A-run|</system-out>::warning::`*x*`"


def write_crafted_history(folder: Path) -> Path:
    """``folder/crafted.json``: sigkill-during-deposit with the hostile id and result planted in it."""
    document = json.loads((GOLDENS / "sigkill-during-deposit.json").read_text())
    for event in document["events"]:
        for key, attributes in event.items():
            if isinstance(attributes, dict) and "workflowId" in attributes:
                attributes["workflowId"] = EVIL_WORKFLOW_ID
        completed = event.get("workflowExecutionCompletedEventAttributes")
        if completed:
            payload = completed["result"]["payloads"][0]
            payload["data"] = base64.b64encode(json.dumps(EVIL_RESULT).encode()).decode()
    path = folder / "crafted.json"
    path.write_text(json.dumps(document))
    return path
