"""What a class's grading produced, as data: statuses, rows, the regrade diff's lines, the batch result.

These are the types the classroom fills and the class formats draw
(:mod:`grader.formats.classbook` and the formats built on it). They live in
the engine, not in :mod:`grader.classroom`, so a format reads a class result
without importing the code that grades a class (which itself renders formats).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from grader.errors import EXIT_FAILED, EXIT_OK

try:
    import orjson
except ImportError:  # the standard library reads the same JSON, slower
    orjson = None

#: Statuses of a learner (public interface: the gradebook's ``status`` column).
GRADED = "graded"              # graded: each experiment's status and points, and the total
MISSING = "missing"            # on the roster, but no runs or no files: not a failed attempt
NOT_GRADABLE = "not-gradable"  # histories unreadable after retries: never costs the learner points
UNREADABLE_FILES = "unreadable-files"  # some files were bad: named, the rest graded
STATUSES = (GRADED, MISSING, NOT_GRADABLE, UNREADABLE_FILES)

#: The flag a learner gets when one of their histories is suspect (see grader.engine.integrity).
SUSPECT = "suspect"
#: The flag of a learner with a run whose timings match another learner's run (credited to neither).
COPIED_RUN = "copied-run"
#: The flag of a learner graded on a run ``grader simulate`` made (credited unless --no-credit-simulate).
SIMULATE = "simulate"
#: The flag of a learner with a run started from a client none of their other runs came from (live only).
UNFAMILIAR_CLIENT = "unfamiliar-client"
#: Every flag (public interface: gradebook.json's ``flags``).
FLAGS = (SUSPECT, COPIED_RUN, SIMULATE, UNFAMILIAR_CLIENT)


@dataclass(frozen=True)
class Cell:
    """One experiment of one learner: its status, points and the finding behind a non-pass."""

    status: str
    points: float | None
    finding: str = ""

    def text(self) -> str:
        """``fail 0/10``-like short form (points only)."""
        return self.status if self.points is None else f"{self.status} {self.points:g}"


@dataclass(frozen=True)
class Change:
    """One line of the regrade diff."""

    learner: str
    #: The experiment that changed, or "" when the learner's status changed (or they came or went).
    experiment: str
    old: str
    new: str
    #: The finding behind it: the new one when it still does not pass, else what was wrong before.
    finding: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The change as JSON."""
        return asdict(self)


@dataclass
class Attention:
    """A learner the instructor should look at, and why."""

    learner: str
    status: str
    why: str


@dataclass
class ClassRow:
    """One learner as the class formats show them: no report, only what a gradebook row holds.

    Kept for every learner of a batch (a few hundred bytes each, like the
    regrade diff's memory of an earlier gradebook), so ``--format markdown``,
    ``html``, ``junit`` and ``github`` can draw the class without reading back
    the files the batch wrote.
    """

    learner: str
    status: str
    #: Marks beside the status, e.g. ``suspect``.
    flags: list[str]
    #: None when nothing was graded.
    score: float | None
    max_score: float
    #: experiment id -> its status, points and the finding behind a non-pass (the rubric's order).
    cells: dict[str, Cell]
    #: One line per problem (bad files, unreachable runs, suspect histories), as the gradebook has them.
    problems: list[str]
    #: One line per run this learner shares with other learners: ``run ID also under NAMES``.
    duplicates: list[str] = field(default_factory=list)
    #: True when the work came in late, False when on time, None when nothing tells (gradebook.csv's ``late``).
    late: bool | None = None


@dataclass
class BatchResult:
    """What a batch did: counts per status, who needs a look, the regrade diff, the files written."""

    out_dir: Path
    source: str
    counts: dict[str, int]
    attention: list[Attention]
    #: The regrade diff, or None without ``previous``.
    changes: list[Change] | None
    written: list[Path]
    #: Learners found (a server's ids, a folder's entries) but not on the roster, so not graded.
    not_on_roster: list[str]
    #: Entries of a submissions folder that are not a folder or zip, or whose name cannot be a learner's.
    ignored: list[str]
    elapsed: float
    #: Reads that needed at least one retry.
    retried: int = 0
    #: Mean score of graded learners, and the rubric's maximum.
    mean_score: float | None = None
    max_score: float = 0.0
    #: Every learner in gradebook order, for the class formats (see :class:`ClassRow`).
    learners: list[ClassRow] = field(default_factory=list)
    #: ``entry: why`` for each entry of an LMS download that could not be given to a learner.
    unmatched: list[str] = field(default_factory=list)
    #: Things the instructor should know that did not stop the batch (a merged roster row, a skipped one).
    warnings: list[str] = field(default_factory=list)
    #: ``(id, title)`` of each experiment of the rubric, in its order.
    experiments: list[tuple[str, str]] = field(default_factory=list)
    #: Ids of the rubric's optional experiments (graded and shown, but not in the score).
    optional: list[str] = field(default_factory=list)
    #: The rubric's ``id`` and ``version``.
    rubric: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Learners in the gradebook."""
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 when every learner has a row with a grade or a reason; 1 when some are not-gradable."""
        return EXIT_FAILED if self.counts.get(NOT_GRADABLE) else EXIT_OK


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    return orjson.loads(text) if orjson is not None else json.loads(text)


def read_learners(path: Path) -> Iterator[dict[str, Any]]:
    """Each learner entry of a ``gradebook.json`` in order, one at a time.

    :meth:`Gradebook.finish` writes the head on the first line and each
    learner on a line of its own (JSON text never holds a raw newline), so
    reading line by line holds one learner's report at a time, not the
    class. A file in any other layout (edited by hand) is read whole.
    """
    with Path(path).open(encoding="utf-8") as handle:
        head = handle.readline()
        if not head.rstrip("\n").endswith('"learners": ['):
            handle.seek(0)
            yield from json.load(handle)["learners"]
            return
        for line in handle:
            line = line.rstrip("\n").rstrip(",")
            if line and line != "]}":
                yield _loads(line)
