"""Learner ids and the workflow ids they own.

A learner id owns exactly the workflow ids that start with ``<id>-`` (the
apps make ``<id>-transfer-<hex>``). The dash is the separator, so a learner
id may not contain one: if ``ada-x`` were allowed, ``ada-x-transfer-1f2e``
would belong to both ``ada`` and ``ada-x``. An id is letters, digits, ``_``,
``.``, ``@`` and ``+``, starting with a letter, digit or ``_``: enough for
user names and e-mail-like ids, and always a safe file name for the
gradebook's ``feedback/<learner>.md``.

Ids match case-insensitively: ``Olga`` on a roster owns ``olga-transfer-...``
(people type their names in whatever case; Temporal keeps what they typed).
:func:`learner_key` is that comparison, written once. Where an id is shown
(the gradebook, feedback), the spelling given (the roster's) is kept.

The apps (``exercise/shared.py``, ``solution/shared.py``) cannot import the
grader, so they repeat :data:`PATTERN` and :data:`MAX_LENGTH`;
``tests/test_learner.py`` checks that both agree on many ids.
"""

from __future__ import annotations

import re
import unicodedata

from grader.errors import BadInputError

#: Between the learner id and the rest of a workflow id.
SEPARATOR = "-"
#: Longest learner id accepted (workflow ids get long enough with the suffix).
MAX_LENGTH = 64
#: The whole id rule as one regular expression (the apps repeat it; keep them equal).
PATTERN = r"\w[\w.@+]{0,63}"
_VALID = re.compile(PATTERN)


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


def learner_key(learner: str) -> str:
    """The form two ids are compared in: ``Olga``, ``olga`` and ``OLGA`` are one learner.

    Case-folded after NFKC normalisation, so the ways one name can be typed or
    stored (an ``é`` as one character or two) compare equal too.
    """
    return unicodedata.normalize("NFKC", learner).casefold()


def same_learner(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same learner (case-insensitively)."""
    return a == b or learner_key(a) == learner_key(b)


def workflow_prefix(learner: str) -> str:
    """The prefix of every workflow id ``learner`` owns: ``ada-`` (matched case-insensitively)."""
    return learner + SEPARATOR


def prefix_spellings(learner: str) -> list[str]:
    """The prefixes a server-side ``STARTS_WITH`` query asks for: as given, lower, upper and capitalised.

    A visibility query compares case-sensitively and has no lower(); these
    four cover how people type a name. Matches are then kept only when
    :func:`owns` agrees, so the query can only widen, never wrongly narrow, a
    listing (an id typed ``oLgA`` is found by reading everything, as ``grader
    batch`` does).
    """
    seen: list[str] = []
    for spelling in (learner, learner.lower(), learner.upper(), learner.capitalize()):
        if spelling + SEPARATOR not in seen:
            seen.append(spelling + SEPARATOR)
    return seen


def owns(learner: str, workflow_id: str) -> bool:
    """True when ``workflow_id`` belongs to ``learner``: ``ada`` and ``Ada`` own ``ada-...``, never ``adam-...``."""
    head, sep, _ = workflow_id.partition(SEPARATOR)
    return bool(sep) and same_learner(head, learner)


def learner_of(workflow_id: str) -> str | None:
    """The learner who owns ``workflow_id``, or None when it does not start with a valid id and ``-``."""
    head, sep, _ = workflow_id.partition(SEPARATOR)
    return head if sep and is_learner_id(head) else None
