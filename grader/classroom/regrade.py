"""The regrade diff: what changed for whom since an earlier ``gradebook.json``.

Only the compact part of the old gradebook is kept (each learner's status
and, per experiment, status, points and finding), so comparing with a large
class costs little memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from grader.engine.classreport import Cell, Change
from grader.errors import BadInputError


@dataclass(frozen=True)
class Before:
    """A learner as the earlier gradebook had them."""

    status: str
    cells: dict[str, Cell]


def finding(status: str, checks: Iterable[tuple[bool, str, str]], note: str = "") -> str:
    """What an experiment that did not pass found: the first failing required check's message, else its note.

    ``checks`` are ``(required, status, message)``; "" for a passing experiment.
    """
    if status == "pass":
        return ""
    return next((message for required, check_status, message in checks
                 if required and check_status != "pass"), note)


def finding_of(experiment: dict[str, Any]) -> str:
    """:func:`finding` of an experiment as a report's JSON holds it."""
    checks = ((c.get("required", True), c.get("status"), c.get("message") or "")
              for c in experiment.get("checks") or [])
    return finding(experiment.get("status", ""), checks, experiment.get("note") or "")


def load_previous(path: Path) -> dict[str, Before]:
    """Read an earlier gradebook.json; raise :class:`BadInputError` when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
        learners = data["learners"]
        found: dict[str, Before] = {}
        for entry in learners:
            report = entry.get("report") or {}
            cells = {e["id"]: Cell(e["status"], e["score"], finding_of(e)) for e in report.get("experiments", [])}
            found[entry["learner"]] = Before(entry["status"], cells)
    except OSError as err:
        raise BadInputError(f"--previous {path}: cannot read it ({err.strerror or err})") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadInputError(f"--previous {path}: not a gradebook.json written by `grader batch`") from None
    return found


def compare(learner: str, before: Before | None, status: str, cells: dict[str, Cell]) -> list[Change]:
    """What changed for one learner between ``before`` and now."""
    if before is None:
        return [Change(learner, "", "not in the previous gradebook", status)]
    changes = []
    if before.status != status:
        changes.append(Change(learner, "", before.status, status))
    # In the rubric's order, which is the order the cells were made in.
    for exp_id in [*cells, *(e for e in before.cells if e not in cells)]:
        old, new = before.cells.get(exp_id), cells.get(exp_id)
        if old is not None and new is not None and (old.status, old.points) == (new.status, new.points):
            continue
        if old is None and new is None:
            continue
        finding = new.finding if new is not None and new.status != "pass" else (old.finding if old else "")
        changes.append(Change(learner, exp_id, old.text() if old else "-", new.text() if new else "-", finding))
    return changes


def gone(before: dict[str, Before], seen: set[str]) -> list[Change]:
    """Learners of the earlier gradebook that this one no longer has."""
    return [Change(name, "", b.status, "not in this gradebook") for name, b in sorted(before.items())
            if name not in seen]
