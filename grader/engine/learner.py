"""Learner ids and the workflow ids they own.

A learner id owns exactly the workflow ids that start with ``<id>-`` (the
apps make ``<id>-transfer-<hex>``). The dash is the separator, so a learner
id may not contain one: if ``ada-x`` were allowed, ``ada-x-transfer-1f2e``
would belong to both ``ada`` and ``ada-x``. An id is letters, digits, ``_``,
``.``, ``@`` and ``+``, starting with a letter, digit or ``_``: enough for
user names and e-mail-like ids, and always a safe file name for the
gradebook's ``feedback/<learner>.md``.
"""

from __future__ import annotations

import re

from grader.errors import BadInputError

#: Between the learner id and the rest of a workflow id.
SEPARATOR = "-"
#: Longest learner id accepted (workflow ids get long enough with the suffix).
MAX_LENGTH = 64
_VALID = re.compile(r"\w[\w.@+]*")


def is_learner_id(value: str) -> bool:
    """True when ``value`` is a well-formed learner id (see the module docstring)."""
    return 0 < len(value) <= MAX_LENGTH and _VALID.fullmatch(value) is not None


def validate_learner_id(value: str | None, *, what: str = "learner id") -> str:
    """Return ``value`` if it is a valid learner id, else raise :class:`BadInputError` saying why.

    ``what`` names where the id came from in the message (``--learner``,
    ``LEARNER_ID``, ``roster.csv line 4``).
    """
    if value is None or not value.strip():
        raise BadInputError(f"{what} is empty: give the id that starts your workflow ids, e.g. ada")
    if SEPARATOR in value:
        head = value.split(SEPARATOR, 1)[0]
        raise BadInputError(
            f"{what} {value!r} contains {SEPARATOR!r}, which separates the learner id from the rest of "
            f"a workflow id ({value}-transfer-... would also belong to learner {head!r}): "
            "use letters, digits, _ or . instead")
    if not is_learner_id(value):
        raise BadInputError(
            f"{what} {value!r} is not a valid learner id: use up to {MAX_LENGTH} letters, digits, "
            "_ . @ or +, starting with a letter, digit or _")
    return value


def workflow_prefix(learner: str) -> str:
    """The exact prefix of every workflow id ``learner`` owns: ``ada-``."""
    return learner + SEPARATOR


def owns(learner: str, workflow_id: str) -> bool:
    """True when ``workflow_id`` belongs to ``learner`` (``ada`` owns ``ada-...``, never ``adam-...``)."""
    return workflow_id.startswith(workflow_prefix(learner))


def learner_of(workflow_id: str) -> str | None:
    """The learner who owns ``workflow_id``, or None when it does not start with a valid id and ``-``."""
    head, sep, _ = workflow_id.partition(SEPARATOR)
    return head if sep and is_learner_id(head) else None
