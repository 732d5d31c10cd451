"""The roster: a CSV with a ``learner`` column, other columns carried into the gradebook."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grader.errors import BadInputError

#: The roster column holding learner ids.
LEARNER_COLUMN = "learner"


@dataclass
class Roster:
    """The learners of a class, in the roster's order, with their other columns."""

    #: The roster's columns other than ``learner``, in file order.
    columns: list[str] = field(default_factory=list)
    #: learner id -> that learner's other cells (column -> value), in roster order.
    learners: dict[str, dict[str, str]] = field(default_factory=dict)


def read_roster(path: Path, *, validate: Callable[[str, str], str], reserved: set[str] = frozenset()) -> Roster:
    """Read and check a roster CSV; raise :class:`BadInputError` naming the file and line.

    ``validate(value, what)`` checks one learner id (live and file batches
    accept different ids). ``reserved`` are the gradebook's own column names,
    which a roster column may not take.
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark before the header.
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if LEARNER_COLUMN not in header:
                raise BadInputError(f"{path}: the roster has no {LEARNER_COLUMN!r} column (found: "
                                    f"{', '.join(header) or 'nothing'}): add a header row naming it")
            columns = [c for c in header if c != LEARNER_COLUMN]
            clash = sorted({c for c in columns if c in reserved} | {c for c in columns if not c})
            if clash:
                raise BadInputError(f"{path}: roster column {clash[0]!r} is empty or a gradebook column: "
                                    "rename it")
            if len(set(header)) != len(header):
                raise BadInputError(f"{path}: a roster column name appears twice: rename one")
            roster = Roster(columns=columns)
            for row in reader:
                where = f"{path} line {reader.line_num}"
                if None in row:
                    raise BadInputError(f"{where}: more cells than the header has columns")
                if not any((v or "").strip() for v in row.values()):
                    continue  # a blank line at the end of a spreadsheet export
                learner = validate((row[LEARNER_COLUMN] or "").strip(), f"the learner id on {where}")
                if learner in roster.learners:
                    raise BadInputError(f"{where}: learner {learner!r} is already on the roster")
                roster.learners[learner] = {c: row.get(c) or "" for c in columns}
    except OSError as err:
        raise BadInputError(f"{path}: cannot read the roster ({err.strerror or err})") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadInputError(f"{path}: not a readable CSV file ({err}): save the roster as UTF-8 CSV") from None
    if not roster.learners:
        raise BadInputError(f"{path}: the roster lists no learners")
    return roster
