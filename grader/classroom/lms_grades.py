"""Grades back into the LMS: a copy of the roster's Canvas export or Moodle worksheet with the scores filled in.

With a Canvas gradebook export as roster, ``grader batch`` also writes
``canvas-import.csv``: the export's own header, its Points Possible row and
every other cell as they were, with one assignment column (``--lms-column``)
set to each graded learner's score, ready for Canvas's *Import* in the
gradebook. With a Moodle grading worksheet it writes ``moodle-import.csv``,
the worksheet with ``Grade`` filled, ready for *Upload grading worksheet*.

Only learners with a score are written (``graded`` and ``unreadable-files``);
for a learner who handed in nothing (``missing``) or whose runs the server
did not return (``not-gradable``) the cell keeps what the LMS exported, so
an import never wipes a grade the instructor entered by hand. The file keeps
the export's delimiter, line ending and byte-order mark: its reader is the
LMS's importer, which surely reads what the LMS itself wrote.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from grader.classroom.roster import CANVAS, CANVAS_POINTS_POSSIBLE, MOODLE, Roster
from grader.errors import BadInputError

CANVAS_IMPORT = "canvas-import.csv"
MOODLE_IMPORT = "moodle-import.csv"
#: Moodle's column for the grade, and for the assignment's maximum.
MOODLE_GRADE, MOODLE_MAXIMUM = "Grade", "Maximum Grade"
#: A Canvas assignment column: ``<title> (<assignment id>)``.
CANVAS_ASSIGNMENT = re.compile(r"^(?P<title>.*\S)\s*\((?P<id>\d+)\)$")
#: Statuses whose score goes back to the LMS.
SCORED = ("graded", "unreadable-files")


@dataclass
class ImportTarget:
    """Where the scores go: the file name and the column of the export (None: no file, for ``why``)."""

    file_name: str
    column: int | None
    #: Why no import file is written (an export with several assignments and no ``--lms-column``).
    why: str = ""


def canvas_assignments(header: list[str]) -> list[str]:
    """The assignment columns of a Canvas export header, as written there."""
    return [h for h in header if CANVAS_ASSIGNMENT.match(h.strip())]


def import_target(roster: Roster | None, lms_column: str | None) -> ImportTarget | None:
    """The import file and column for this roster, or None when it is not an LMS export.

    Checked before any grading, so a wrong ``--lms-column`` costs nothing.
    For Canvas, ``lms_column`` matches an assignment column by its whole
    header, its title, its assignment id or the start of one title only
    (ignoring case); it may be left
    out when the export has a single assignment; with several and none
    chosen, no file is written and the target says why (the gradebook is
    still written). Raises :class:`BadInputError` for a column that is not there.
    """
    export = roster.export if roster is not None else None
    if export is None:
        if lms_column is not None:
            raise BadInputError("--lms-column names a column of a Canvas gradebook export (or Moodle worksheet) "
                                "given as --roster: pass one")
        return None
    if export.kind == MOODLE:
        index = export.column(MOODLE_GRADE)
        if lms_column is not None and export.column(lms_column) != index:
            raise BadInputError(f"--lms-column {lms_column!r}: a Moodle grading worksheet takes grades in its "
                                f"{MOODLE_GRADE!r} column only: leave --lms-column out")
        return ImportTarget(MOODLE_IMPORT, index)
    assignments = canvas_assignments(export.header)
    listed = "; ".join(a.strip() for a in assignments) or "none"
    if not assignments:
        raise BadInputError("the Canvas export has no assignment column (<title> (<id>)): create the assignment "
                            "in Canvas and export the gradebook again")
    if lms_column is None:
        if len(assignments) > 1:
            return ImportTarget(CANVAS_IMPORT, None, f"{CANVAS_IMPORT} was not written: the Canvas export has "
                                                     f"{len(assignments)} assignment columns ({listed}): pass "
                                                     "--lms-column with the one to fill")
        return ImportTarget(CANVAS_IMPORT, export.header.index(assignments[0]))
    wanted = lms_column.strip().casefold()
    for column in assignments:
        match = CANVAS_ASSIGNMENT.match(column.strip())
        if wanted in (column.strip().casefold(), match["title"].casefold(), match["id"]):
            return ImportTarget(CANVAS_IMPORT, export.header.index(column))
    # The start of a title is enough when only one title starts that way ("Failure Lab" for
    # "Failure Lab: break it on purpose (4711)").
    starting = [c for c in assignments if CANVAS_ASSIGNMENT.match(c.strip())["title"].casefold().startswith(wanted)]
    if len(starting) == 1:
        return ImportTarget(CANVAS_IMPORT, export.header.index(starting[0]))
    if len(starting) > 1:
        raise BadInputError(f"--lms-column {lms_column!r} starts {len(starting)} assignment titles of the Canvas "
                            f"export ({'; '.join(c.strip() for c in starting)}): pass the whole title or the id")
    raise BadInputError(f"--lms-column {lms_column!r} is not an assignment of the Canvas export ({listed}): "
                        "pass its title or its id")


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def _format(score: float, decimal_comma: bool) -> str:
    text = f"{round(score, 2):g}"
    return text.replace(".", ",") if decimal_comma else text


def write_import(roster: Roster, target: ImportTarget, scores: Iterable[tuple[str, str, float | None]],
                 out_dir: Path, *, max_score: float) -> tuple[Path | None, list[str]]:
    """Write the import file into ``out_dir``; return its path (None when not written) and warnings.

    ``scores`` are ``(learner, status, score)`` for every learner of the
    gradebook. A warning says when the LMS's maximum for the column differs
    from the rubric's (the score is points out of the rubric's maximum).
    """
    from grader.classroom.gradebook import atomic_write

    if target.column is None:
        return None, [target.why]
    export = roster.export
    rows = [list(row) for row in export.rows]
    warnings: list[str] = []
    width = len(export.header)
    points_row = next((r for r in rows if r and r[0].strip().casefold() == CANVAS_POINTS_POSSIBLE.casefold()), None)
    if export.kind == CANVAS:
        possible = points_row[target.column] if points_row is not None and target.column < len(points_row) else ""
        # Canvas writes numbers in the exporting user's locale: 30,00 in a ;-separated export.
        decimal_comma = "," in possible or (export.delimiter == ";" and "," not in possible and "." not in possible)
        maximum = _number(possible) if possible else None
    else:
        decimal_comma = False
        maximum_index = export.column(MOODLE_MAXIMUM)
        maxima = {_number(r[maximum_index]) for r in rows if maximum_index is not None and maximum_index < len(r)}
        maxima.discard(None)
        maximum = maxima.pop() if len(maxima) == 1 else None
    column = export.header[target.column].strip()
    if maximum is not None and abs(maximum - max_score) > 1e-9:
        warnings.append(f"{target.file_name}: {column!r} is out of {maximum:g} in the LMS but the rubric's maximum "
                        f"is {max_score:g}: the scores are points out of {max_score:g}; change one of them "
                        "before importing")
    for learner, status, score in scores:
        index = export.row_of.get(learner)
        if index is None or status not in SCORED or score is None:
            continue
        row = rows[index]
        row += [""] * (width - len(row))
        row[target.column] = _format(score, decimal_comma)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=export.delimiter, lineterminator=export.line_ending)
    writer.writerow(export.header)
    writer.writerows(rows)
    path = Path(out_dir) / target.file_name
    atomic_write(path, ("\ufeff" if export.bom else "") + buffer.getvalue())
    return path, warnings
